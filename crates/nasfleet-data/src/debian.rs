//! Getting files out of Debian packages: the one registry these machines can always reach.
//!
//! Two routes, because installing needs root and extracting does not:
//! `apt-get install -y PKG` (root), or `apt-get download PKG && dpkg -x PKG_*.deb DIR`
//! (anyone; also the route for packages we must not install, like `r-cran-janeaustenr`,
//! which would pull in R). Failures come back as one-line strings because the callers
//! collect them into [`crate::DataError::Fetch`]'s list of attempts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs a command and returns its output, or a one-line description of why it failed.
fn run(cmd: &mut Command) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("{shown}: could not start: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The last few lines carry the reason (apt prints progress first).
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!("{shown}: {} ({})", out.status, tail.join(" | ")))
    }
}

/// Whether this process runs as root, asked of `id -u` (no `unsafe` `geteuid` call: the
/// workspace denies unsafe code). Anything unexpected counts as "not root".
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs an apt-get command; when apt does not know the package and we are root, refreshes
/// the package lists once and retries (a fresh machine has empty lists).
fn apt(args: &[&str], dir: Option<&Path>) -> Result<Output, String> {
    let make = || {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        if let Some(d) = dir {
            c.current_dir(d);
        }
        c
    };
    match run(&mut make()) {
        Ok(out) => Ok(out),
        Err(first) if is_root() && first.contains("Unable to locate package") => {
            run(Command::new("apt-get").args(["update", "-q"]))
                .map_err(|e| format!("{first}; then apt-get update failed: {e}"))?;
            run(&mut make())
        }
        Err(e) => Err(e),
    }
}

/// `apt-get install -y PACKAGE` (needs root).
pub fn apt_install(package: &str) -> Result<(), String> {
    apt(&["install", "-y", "-q", package], None).map(|_| ())
}

/// Downloads `PACKAGE`'s `.deb` without installing it and unpacks it under `into`
/// (`dpkg -x`), so `into` gains the package's `usr/...` tree. Returns the `.deb`'s file
/// name, which carries the package version.
pub fn download_and_extract(package: &str, into: &Path) -> Result<String, String> {
    let work = tempfile::tempdir().map_err(|e| format!("could not create a temp dir: {e}"))?;
    apt(&["download", "-q", package], Some(work.path()))?;
    let prefix = format!("{package}_");
    let deb: PathBuf = std::fs::read_dir(work.path())
        .map_err(|e| format!("{}: {e}", work.path().display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .ok_or_else(|| {
            format!(
                "apt-get download {package} succeeded but left no {prefix}*.deb in {}",
                work.path().display()
            )
        })?;
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(into))?;
    Ok(deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default())
}
