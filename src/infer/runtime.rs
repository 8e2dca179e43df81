//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! `ort` is built with `load-dynamic`: the library is opened at run time, so
//! the crate builds without it and the same binary can use whichever
//! ONNX Runtime the machine has. ONNX Runtime allows one environment per
//! process, so the first successful [`environment`] call fixes the library;
//! later calls return the same environment.
//!
//! Search order (first existing file wins):
//! 1. the explicit path (from configuration), a file or a folder holding
//!    `libonnxruntime.so`;
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. the project-local `.local/onnxruntime/lib/libonnxruntime.so` that
//!    `scripts/setup.sh` fills, relative to the current directory and to the
//!    crate's source folder (so `cargo test` and `cargo run` find it from
//!    anywhere);
//! 4. next to the executable: `<exe dir>/libonnxruntime.so`, then
//!    `<exe dir>/lib/libonnxruntime.so` (for a shipped bundle).
//!
//! An explicit path or `ORT_DYLIB_PATH` that names a missing file is an
//! error rather than a reason to fall back: the user asked for that library.
//!
//! Telemetry: ONNX Runtime 1.32 on Linux records a "ProcessInfo" event (the
//! executable's name, OS, CPU model, container kind, a device id) into
//! `~/.cache/Microsoft/DeveloperTools/.onnxruntime/` and starts an uploader
//! as the library initialises, before any API call can turn it off; `ort`'s
//! `with_telemetry(false)` (below) only silences later events. Its one
//! off-switch is `ORT_DISABLE_TELEMETRY` in the environment before the
//! library loads: [`keep_telemetry_off`] sets it for the command line.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use super::InferError;

/// The library's file name on this platform (`libonnxruntime.so` on Linux).
pub const LIBRARY_FILE: &str = if cfg!(target_os = "windows") {
    "onnxruntime.dll"
} else if cfg!(target_os = "macos") {
    "libonnxruntime.dylib"
} else {
    "libonnxruntime.so"
};

/// The environment variable that names the library, as `ort` itself reads it.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// ONNX Runtime's telemetry off-switch, read once as the library loads.
pub const TELEMETRY_ENV_VAR: &str = "ORT_DISABLE_TELEMETRY";

/// Sets `ORT_DISABLE_TELEMETRY=1` unless the environment already says
/// (an operator who sets it, to either value, is obeyed). A daemon must not
/// write outside its data folders nor reach hosts it was not configured
/// for. Call it first thing in `main`, while the process has one thread:
/// changing the environment races with `getenv` in other threads (C code
/// such as librdkafka's included).
pub fn keep_telemetry_off() {
    if std::env::var_os(TELEMETRY_ENV_VAR).is_none() {
        std::env::set_var(TELEMETRY_ENV_VAR, "1");
    }
}

/// Where `scripts/setup.sh` puts the library, relative to the project root.
pub const PROJECT_LOCAL_DIR: &str = ".local/onnxruntime/lib";

/// The environment and the library it was loaded from.
struct Loaded {
    env: Environment,
    path: PathBuf,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
/// Serialises first loads: `OnceLock::get_or_try_init` is not stable, and two
/// threads racing to create the one allowed environment would make one fail.
static LOADING: Mutex<()> = Mutex::new(());

/// What the search looks at. Kept apart from the process state so the search
/// order can be tested without loading anything.
#[derive(Debug, Clone, Default)]
pub struct SearchPaths {
    /// A path from configuration: a library file or a folder holding one.
    pub explicit: Option<PathBuf>,
    /// The value of `ORT_DYLIB_PATH`, if set and non-empty.
    pub env_var: Option<PathBuf>,
    /// Project roots whose `.local/onnxruntime/lib` is searched, in order.
    pub project_roots: Vec<PathBuf>,
    /// The folder holding the running executable.
    pub exe_dir: Option<PathBuf>,
}

impl SearchPaths {
    /// The search of this process: `explicit`, then `ORT_DYLIB_PATH`, the
    /// current directory and the crate's source folder, the executable's
    /// folder.
    pub fn from_process(explicit: Option<&Path>) -> Self {
        let env_var = std::env::var_os(ENV_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let mut project_roots = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            project_roots.push(cwd);
        }
        project_roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        Self {
            explicit: explicit.map(Path::to_path_buf),
            env_var,
            project_roots,
            exe_dir,
        }
    }

    /// Finds the library: the first candidate that exists, in search order.
    pub fn locate(&self) -> Result<PathBuf, InferError> {
        // A configured path is authoritative: a typo must not silently pick
        // up some other library.
        if let Some(configured) = self.explicit.as_ref().or(self.env_var.as_ref()) {
            let file = library_file(configured);
            return if file.is_file() {
                Ok(file)
            } else {
                Err(InferError::LibraryNotFound {
                    looked_in: vec![file],
                })
            };
        }
        let candidates = self.default_candidates();
        match candidates.iter().find(|c| c.is_file()) {
            Some(found) => Ok(found.clone()),
            None => Err(InferError::LibraryNotFound {
                looked_in: candidates,
            }),
        }
    }

    /// The fallback places, in order, without duplicates.
    fn default_candidates(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        let roots = self
            .project_roots
            .iter()
            .map(|root| root.join(PROJECT_LOCAL_DIR).join(LIBRARY_FILE));
        let beside_exe = self
            .exe_dir
            .iter()
            .flat_map(|dir| [dir.join(LIBRARY_FILE), dir.join("lib").join(LIBRARY_FILE)]);
        for candidate in roots.chain(beside_exe) {
            if !out.contains(&candidate) {
                out.push(candidate);
            }
        }
        out
    }
}

/// A configured path may name the folder rather than the file.
fn library_file(configured: &Path) -> PathBuf {
    if configured.is_dir() {
        configured.join(LIBRARY_FILE)
    } else {
        configured.to_path_buf()
    }
}

/// Resolves symlinks so `lib/libonnxruntime.so` and the versioned file it
/// points to count as the same library.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The process's ONNX Runtime environment, loading the library on first use.
///
/// `explicit` is the library path from configuration, if any (a file or its
/// folder). Once loaded, calls are cheap; a later call naming a different
/// library fails with [`InferError::LibraryConflict`] instead of silently
/// using the loaded one.
pub fn environment(explicit: Option<&Path>) -> Result<&'static Environment, InferError> {
    if let Some(loaded) = LOADED.get() {
        return check_same(loaded, explicit);
    }
    // A panic while loading elsewhere leaves nothing half-set, so a poisoned
    // lock is safe to take.
    let _guard = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(loaded) = LOADED.get() {
        return check_same(loaded, explicit);
    }
    let path = SearchPaths::from_process(explicit).locate()?;
    let env = load(&path)?;
    let loaded = LOADED.get_or_init(|| Loaded {
        env,
        path: canonical(&path),
    });
    tracing::info!(library = %loaded.path.display(), "loaded ONNX Runtime");
    Ok(&loaded.env)
}

fn check_same(
    loaded: &'static Loaded,
    explicit: Option<&Path>,
) -> Result<&'static Environment, InferError> {
    if let Some(explicit) = explicit {
        let wanted = SearchPaths {
            explicit: Some(explicit.to_path_buf()),
            ..SearchPaths::default()
        }
        .locate()?;
        if canonical(&wanted) != loaded.path {
            return Err(InferError::LibraryConflict {
                loaded: loaded.path.clone(),
                requested: wanted,
            });
        }
    }
    Ok(&loaded.env)
}

fn load(path: &Path) -> Result<Environment, InferError> {
    let failed = |message: String| InferError::LibraryLoad {
        path: path.to_path_buf(),
        message,
    };
    // `ort` resolves relative paths against the executable's folder; an
    // absolute path keeps "relative to the current directory" meaning that.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    ort::init_from(&absolute)
        .map_err(|e| failed(e.to_string()))?
        .with_name("lstm-ae")
        .with_telemetry(false)
        .build()
        .map_err(|e| failed(e.to_string()))
}

/// The library the process loaded, if any (canonical path).
pub fn library_path() -> Option<PathBuf> {
    LOADED.get().map(|l| l.path.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"not really a library").unwrap();
    }

    #[test]
    fn missing_everywhere_is_one_line_naming_setup_and_every_place() {
        let tmp = tempfile::tempdir().unwrap();
        let search = SearchPaths {
            project_roots: vec![tmp.path().join("proj")],
            exe_dir: Some(tmp.path().join("bin")),
            ..SearchPaths::default()
        };
        let err = search.locate().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, InferError::LibraryNotFound { .. }));
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(msg.starts_with("ONNX Runtime library not found (looked in: "));
        assert!(msg.ends_with("; run scripts/setup.sh or set ORT_DYLIB_PATH"));
        for place in [
            tmp.path()
                .join("proj/.local/onnxruntime/lib/libonnxruntime.so"),
            tmp.path().join("bin/libonnxruntime.so"),
            tmp.path().join("bin/lib/libonnxruntime.so"),
        ] {
            assert!(msg.contains(&place.display().to_string()), "{msg}");
        }
    }

    #[test]
    fn bogus_explicit_path_fails_without_falling_back() {
        let tmp = tempfile::tempdir().unwrap();
        let fallback = tmp.path().join("bin/libonnxruntime.so");
        touch(&fallback);
        let bogus = tmp.path().join("nope/libonnxruntime.so");
        let search = SearchPaths {
            explicit: Some(bogus.clone()),
            exe_dir: Some(tmp.path().join("bin")),
            ..SearchPaths::default()
        };
        let msg = search.locate().unwrap_err().to_string();
        assert!(msg.contains(&bogus.display().to_string()), "{msg}");
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
        assert!(!msg.contains("bin/libonnxruntime.so"), "{msg}");
    }

    #[test]
    fn search_order_explicit_then_env_then_project_then_exe() {
        let tmp = tempfile::tempdir().unwrap();
        let explicit = tmp.path().join("explicit/libonnxruntime.so");
        let env = tmp.path().join("env/libonnxruntime.so");
        let project = tmp
            .path()
            .join("proj/.local/onnxruntime/lib/libonnxruntime.so");
        let manifest = tmp
            .path()
            .join("crate/.local/onnxruntime/lib/libonnxruntime.so");
        let exe = tmp.path().join("bin/libonnxruntime.so");
        let exe_lib = tmp.path().join("bin/lib/libonnxruntime.so");
        for p in [&explicit, &env, &project, &manifest, &exe, &exe_lib] {
            touch(p);
        }
        let mut search = SearchPaths {
            explicit: Some(explicit.clone()),
            env_var: Some(env.clone()),
            project_roots: vec![tmp.path().join("proj"), tmp.path().join("crate")],
            exe_dir: Some(tmp.path().join("bin")),
        };
        assert_eq!(search.locate().unwrap(), explicit);
        search.explicit = None;
        assert_eq!(search.locate().unwrap(), env);
        search.env_var = None;
        assert_eq!(search.locate().unwrap(), project);
        std::fs::remove_file(&project).unwrap();
        assert_eq!(search.locate().unwrap(), manifest);
        std::fs::remove_file(&manifest).unwrap();
        assert_eq!(search.locate().unwrap(), exe);
        std::fs::remove_file(&exe).unwrap();
        assert_eq!(search.locate().unwrap(), exe_lib);
    }

    #[test]
    fn explicit_folder_means_the_library_inside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("libonnxruntime.so");
        touch(&lib);
        let search = SearchPaths {
            explicit: Some(tmp.path().to_path_buf()),
            ..SearchPaths::default()
        };
        assert_eq!(search.locate().unwrap(), lib);
    }

    #[test]
    fn process_search_includes_the_crate_folder() {
        let search = SearchPaths::from_process(None);
        assert!(search
            .project_roots
            .contains(&PathBuf::from(env!("CARGO_MANIFEST_DIR"))));
        assert!(search.exe_dir.is_some());
    }

    #[test]
    fn a_file_that_is_not_a_library_gives_a_load_error_naming_setup() {
        // Under the loading lock so this cannot race a real first load.
        let _guard = LOADING.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let fake = tmp.path().join("libonnxruntime.so");
        touch(&fake);
        let err = load(&fake).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, InferError::LibraryLoad { .. }), "{msg}");
        assert!(msg.contains(&fake.display().to_string()), "{msg}");
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
    }

    /// Needs the real library: fails (does not skip) without it, telling to
    /// run scripts/setup.sh.
    #[test]
    fn loads_once_and_refuses_to_switch_library() {
        let env = environment(None).unwrap_or_else(|e| panic!("{e}"));
        let again = environment(None).unwrap_or_else(|e| panic!("{e}"));
        assert!(std::ptr::eq(env, again), "the environment is created once");
        let loaded = library_path().expect("a library is loaded");
        assert!(loaded.is_file());

        // The same library named explicitly (e.g. through its symlink) is fine.
        assert!(environment(Some(&loaded)).is_ok());

        // Another file is refused, not silently ignored.
        let tmp = tempfile::tempdir().unwrap();
        let other = tmp.path().join("libonnxruntime.so");
        touch(&other);
        let err = environment(Some(&other)).unwrap_err();
        assert!(matches!(err, InferError::LibraryConflict { .. }), "{err}");
        assert!(err.to_string().contains("already loaded"), "{err}");

        // A bogus explicit path still reports not-found, naming setup.
        let err = environment(Some(&tmp.path().join("missing.so"))).unwrap_err();
        assert!(err.to_string().contains("scripts/setup.sh"), "{err}");
        assert_eq!(library_path(), Some(loaded));
    }
}
