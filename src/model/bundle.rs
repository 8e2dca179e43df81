//! A model bundle folder: `model.onnx`, `manifest.json` and `report/`.
//! Opening one checks that the manifest and the model agree, so a daemon
//! never serves weights under the wrong spec, scaler or threshold.

use std::io::Read;
use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, FORMAT_VERSION};
use super::onnx::names;
use super::onnx_pb::{tensor_shape_proto::dimension, type_proto, ModelProto, ValueInfoProto};
use super::ModelSpec;

pub const MODEL_FILE: &str = "model.onnx";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const REPORT_DIR: &str = "report";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a valid manifest: {source}", path.display())]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: manifest format version {found} is newer than this lstm-ae reads ({supported}); upgrade lstm-ae", path.display())]
    Format {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{}: not a valid ONNX model: {source}", path.display())]
    Onnx {
        path: PathBuf,
        source: prost::DecodeError,
    },
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("bundle {}: manifest.json and model.onnx disagree: {what}", dir.display())]
    Mismatch { dir: PathBuf, what: String },
}

/// An opened, consistent bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub onnx: Vec<u8>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Largest `model.onnx` a bundle may hold: a manifest in a shared store
/// naming something huge must not exhaust every daemon's memory.
pub const MAX_ONNX_BYTES: u64 = 256 << 20;
/// Largest `manifest.json`.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Reads a regular file of at most `cap` bytes. A device or a FIFO is
/// refused before it is opened: reading one never ends or never returns.
fn read(path: &Path, cap: u64) -> Result<Vec<u8>, BundleError> {
    let io = |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |reason: String| BundleError::File {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > cap {
        return Err(bad(format!("{} bytes, larger than {cap}", meta.len())));
    }
    let mut bytes = vec![];
    // The cap again while reading: the file may grow after the check.
    std::fs::File::open(path)
        .and_then(|f| f.take(cap + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(bad(format!("larger than {cap} bytes")));
    }
    Ok(bytes)
}

/// The model file a manifest names, which must be a plain file name in the
/// bundle folder: no separators, `..` or absolute paths out of it.
fn model_path(dir: &Path, file: &str) -> Result<PathBuf, BundleError> {
    let mut parts = Path::new(file).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) if !file.contains(['/', '\\']) => {
            Ok(dir.join(file))
        }
        _ => Err(BundleError::File {
            path: dir.join(MANIFEST_FILE),
            reason: format!("onnx.file {file:?} must be a plain file name in the bundle folder"),
        }),
    }
}

/// Static dims of a value: `None` for a symbolic (dynamic) dimension.
fn dims(v: &ValueInfoProto) -> Vec<Option<i64>> {
    let shape = v.r#type.as_ref().and_then(|t| match &t.value {
        Some(type_proto::Value::TensorType(tt)) => tt.shape.as_ref(),
        None => None,
    });
    shape
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(dimension::Value::DimValue(n)) => Some(n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The outputs a spec's graph has, in export order.
pub fn expected_outputs(spec: &ModelSpec) -> Vec<&'static str> {
    let mut v = vec![names::EMBEDDING];
    if spec.mode.has_reconstruction() {
        v.extend([names::RECONSTRUCTION, names::SQUARED_ERROR, names::SCORE]);
    }
    if spec.mode.has_prediction() {
        v.push(names::PREDICTION);
    }
    v
}

impl Bundle {
    /// Opens and cross-checks a bundle folder.
    pub fn open(dir: &Path) -> Result<Bundle, BundleError> {
        let mpath = dir.join(MANIFEST_FILE);
        let raw = read(&mpath, MAX_MANIFEST_BYTES)?;
        // Read the version first, so a newer format gets the upgrade message
        // rather than a confusing field error.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) {
            if let Some(found) = v.get("format_version").and_then(|f| f.as_u64()) {
                if found > FORMAT_VERSION as u64 {
                    return Err(BundleError::Format {
                        path: mpath,
                        found: found as u32,
                        supported: FORMAT_VERSION,
                    });
                }
            }
        }
        let manifest: Manifest =
            serde_json::from_slice(&raw).map_err(|source| BundleError::Manifest {
                path: mpath.clone(),
                source,
            })?;
        let onnx = read(&model_path(dir, &manifest.onnx.file)?, MAX_ONNX_BYTES)?;
        let bundle = Bundle {
            dir: dir.to_path_buf(),
            manifest,
            onnx,
        };
        bundle.check()?;
        Ok(bundle)
    }

    fn mismatch(&self, what: String) -> BundleError {
        BundleError::Mismatch {
            dir: self.dir.clone(),
            what,
        }
    }

    /// Every way the manifest and the model can disagree, each named.
    fn check(&self) -> Result<(), BundleError> {
        let m = &self.manifest;
        let spec = &m.spec;
        if let Err(e) = spec.validate() {
            return Err(self.mismatch(format!("the manifest's spec is invalid: {e}")));
        }
        let sha = sha256_hex(&self.onnx);
        if sha != m.onnx.sha256 {
            return Err(self.mismatch(format!(
                "{} has sha256 {sha}, the manifest records {}",
                m.onnx.file, m.onnx.sha256
            )));
        }
        if m.feature_names.len() != spec.features {
            return Err(self.mismatch(format!(
                "the manifest names {} features but its spec has {}",
                m.feature_names.len(),
                spec.features
            )));
        }
        if m.scaler.offset.len() != spec.features || m.scaler.scale.len() != spec.features {
            return Err(self.mismatch(format!(
                "the scaler covers {} features, the spec has {}",
                m.scaler.offset.len(),
                spec.features
            )));
        }
        // A predict-only model has no score to threshold (its value is
        // infinite, `null` in the manifest).
        let scored = spec.mode.has_reconstruction();
        if scored && !(m.threshold.value.is_finite() && m.threshold.value > 0.0) {
            return Err(self.mismatch(format!(
                "threshold {} is not a positive number",
                m.threshold.value
            )));
        }
        let path = self.dir.join(&m.onnx.file);
        let model = ModelProto::decode(self.onnx.as_slice())
            .map_err(|source| BundleError::Onnx { path, source })?;
        if model.model_version.unwrap_or(-1) != m.model_version {
            return Err(self.mismatch(format!(
                "model version: model.onnx says {}, the manifest {}",
                model.model_version.unwrap_or(-1),
                m.model_version
            )));
        }
        let graph = model.graph.unwrap_or_default();
        let window = graph
            .input
            .iter()
            .find(|i| i.name.as_deref() == Some(names::WINDOW));
        let Some(window) = window else {
            return Err(self.mismatch(format!("model.onnx has no input named `{}`", names::WINDOW)));
        };
        let d = dims(window);
        let want = vec![None, Some(spec.window as i64), Some(spec.features as i64)];
        if d != want {
            return Err(self.mismatch(format!(
                "input shape: model.onnx takes {}, the manifest's spec needs [batch, {}, {}] (window T = {}, features F = {})",
                fmt_dims(&d),
                spec.window,
                spec.features,
                spec.window,
                spec.features
            )));
        }
        let got: Vec<String> = graph.output.iter().filter_map(|o| o.name.clone()).collect();
        let want: Vec<String> = expected_outputs(spec)
            .iter()
            .map(|s| s.to_string())
            .collect();
        if got != want {
            return Err(self.mismatch(format!(
                "outputs: model.onnx has [{}], a {:?}-mode spec has [{}]",
                got.join(", "),
                spec.mode,
                want.join(", ")
            )));
        }
        for o in &graph.output {
            let d = dims(o);
            let need: Option<(usize, i64)> = match o.name.as_deref() {
                Some(names::EMBEDDING) => Some((1, spec.hidden as i64)),
                Some(names::PREDICTION) => Some((1, spec.horizon as i64)),
                _ => None,
            };
            if let Some((axis, n)) = need {
                if d.get(axis).copied().flatten() != Some(n) {
                    return Err(self.mismatch(format!(
                        "output `{}` has shape {}, the spec needs {} along axis {axis}",
                        o.name.as_deref().unwrap_or(""),
                        fmt_dims(&d),
                        n
                    )));
                }
            }
        }
        let onnx_spec = model
            .metadata_props
            .iter()
            .find(|p| p.key.as_deref() == Some("lstm_ae.spec"))
            .and_then(|p| p.value.as_deref())
            .and_then(|v| serde_json::from_str::<ModelSpec>(v).ok());
        match onnx_spec {
            Some(s) if &s == spec => {}
            Some(s) => {
                return Err(self.mismatch(format!(
                    "spec: model.onnx was exported as {s:?}, the manifest says {spec:?}"
                )))
            }
            None => return Err(self.mismatch("model.onnx carries no lstm_ae.spec metadata".into())),
        }
        Ok(())
    }

    /// Writes `model.onnx` and `manifest.json` into `dir` (created if needed).
    /// The manifest's ONNX file name and hash are filled in here.
    pub fn write(dir: &Path, manifest: &mut Manifest, onnx: &[u8]) -> Result<(), BundleError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BundleError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        manifest.onnx.file = MODEL_FILE.into();
        manifest.onnx.sha256 = sha256_hex(onnx);
        // What is written now is in the current format, whatever it was read as.
        manifest.format_version = FORMAT_VERSION;
        let mpath = dir.join(MODEL_FILE);
        std::fs::write(&mpath, onnx).map_err(io(&mpath))?;
        let json = serde_json::to_vec_pretty(manifest).map_err(|source| BundleError::Manifest {
            path: dir.join(MANIFEST_FILE),
            source,
        })?;
        let jpath = dir.join(MANIFEST_FILE);
        std::fs::write(&jpath, json).map_err(io(&jpath))?;
        Ok(())
    }

    /// Normalised score: 1.0 is the anomaly boundary.
    pub fn normalize(&self, score: f32) -> f32 {
        score / self.manifest.threshold.value
    }
}

fn fmt_dims(d: &[Option<i64>]) -> String {
    let parts: Vec<String> = d
        .iter()
        .map(|x| x.map(|n| n.to_string()).unwrap_or_else(|| "batch".into()))
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default bundle's manifest, naming `file` as its model.
    fn bundle_naming(dir: &Path, file: &str) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
        let raw = std::fs::read(src.join(MANIFEST_FILE)).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        v["onnx"]["file"] = serde_json::Value::String(file.into());
        std::fs::write(dir.join(MANIFEST_FILE), v.to_string()).unwrap();
    }

    fn refused(file: &str, dir: &Path, words: &[&str]) {
        bundle_naming(dir, file);
        let e = match Bundle::open(dir) {
            Ok(_) => panic!("{file:?} was accepted"),
            Err(e) => e.to_string(),
        };
        for w in words {
            assert!(e.contains(w), "{file:?}: {w:?} in {e}");
        }
    }

    #[test]
    fn a_model_file_outside_the_bundle_or_not_a_bounded_regular_file_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bundle");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(root.path().join("x"), b"not a model").unwrap();
        let outside = root.path().join("x");
        refused("../x", &dir, &["../x", "plain file name"]);
        refused(outside.to_str().unwrap(), &dir, &["plain file name"]);
        refused("/dev/zero", &dir, &["/dev/zero", "plain file name"]);
        refused("sub/model.onnx", &dir, &["plain file name"]);
        // Inside the folder, but a device, a FIFO (reading it would block
        // for good) or larger than the cap (sparse: no disk used).
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
        refused("zero", &dir, &["zero", "not a regular file"]);
        let fifo = std::process::Command::new("mkfifo")
            .arg(dir.join("fifo"))
            .status()
            .unwrap();
        assert!(fifo.success());
        refused("fifo", &dir, &["fifo", "not a regular file"]);
        let big = std::fs::File::create(dir.join("big.onnx")).unwrap();
        big.set_len(MAX_ONNX_BYTES + 1).unwrap();
        refused("big.onnx", &dir, &["big.onnx", "larger than"]);
    }
}
