//! The Docker engine for the container tests: is one running, `docker`
//! commands with their output, and the project's image built from the
//! repository's Dockerfile (see [`build_image`] for which binary).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The engine's version, or why there is none (the client's error).
pub fn engine() -> Result<String, String> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| format!("the docker client does not run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `docker args…`, panicking with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker client runs")
}

/// What building the image took.
pub struct Built {
    pub tag: String,
    pub seconds: f64,
    pub size_bytes: u64,
}

/// Builds `tag` with the repository's Dockerfile from a build context shaped
/// like the repository's, holding the binary these tests run (cargo's test
/// build of `lstm-ae`, stripped) where the Dockerfile expects the release
/// binary: the image is the Dockerfile's, the code is this checkout's, and
/// CI needs no second (release) build of every dependency. The local base
/// image comes first (deploy/docker/base-image.sh, a no-op when cached).
pub fn build_image(tag: &str) -> Built {
    let status = Command::new(root().join("deploy/docker/base-image.sh"))
        .status()
        .expect("deploy/docker/base-image.sh runs");
    assert!(status.success(), "deploy/docker/base-image.sh failed");
    let ctx = tempfile::tempdir().unwrap();
    let put = |rel: &str| {
        let to = ctx.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(rel), &to).unwrap_or_else(|e| panic!("{rel}: {e}"));
    };
    for rel in [
        "Dockerfile",
        ".dockerignore",
        ".local/onnxruntime/lib/libonnxruntime.so.1.32.0",
        "models/machine_temperature/model.onnx",
        "models/machine_temperature/manifest.json",
        "deploy/docker/serve.toml",
    ] {
        put(rel);
    }
    let bin = ctx.path().join("target/release/lstm-ae");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    let st = Command::new("strip")
        .arg("-o")
        .arg(&bin)
        .arg(env!("CARGO_BIN_EXE_lstm-ae"))
        .status()
        .expect("strip (binutils) runs");
    assert!(st.success(), "strip failed");
    let started = Instant::now();
    let out = Command::new("docker")
        .current_dir(ctx.path())
        .args(["build", "--quiet", "-t", tag, "."])
        .output()
        .expect("docker build runs");
    assert!(
        out.status.success(),
        "docker build failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seconds = started.elapsed().as_secs_f64();
    let size_bytes = docker(&["image", "inspect", "-f", "{{.Size}}", tag])
        .parse()
        .expect("image size");
    Built {
        tag: tag.into(),
        seconds,
        size_bytes,
    }
}

/// A container removed (killed if running) on drop.
pub struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", &self.0]);
    }
}
