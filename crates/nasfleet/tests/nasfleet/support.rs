//! What every module runs the binary with.

use std::path::PathBuf;
use std::process::Command;

/// Runs `nasfleet ARGS`: (success, stdout, stderr).
pub(crate) fn nasfleet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nasfleet")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A shipped config file.
pub(crate) fn config_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config").join(name)
}

/// Writes `text` to `name` in this test process's scratch directory for
/// `module` (tests run in parallel: names must differ per test).
pub(crate) fn tmp(module: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nasfleet-{module}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
