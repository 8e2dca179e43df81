//! The linters and validators `scripts/setup.sh --test` installs into
//! `.local/venv` (kubernetes-validate, hadolint, the venv's python with
//! jsonschema and PyYAML), found by path so that a test never silently uses
//! another copy; a missing one fails the test with the command that installs it.

#![allow(dead_code)]

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.local/venv/bin/<name>`; panics naming the set-up step when missing.
pub fn venv_tool(name: &str) -> PathBuf {
    let p = root().join(".local/venv/bin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh --test (it installs kubernetes-validate and hadolint into .local/venv)",
        p.display()
    );
    p
}
