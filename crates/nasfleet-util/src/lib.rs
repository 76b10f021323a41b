//! Small helpers that every nasfleet crate shares, written once.
//!
//! This crate depends on nothing but `std`, so that the bottom crates (core,
//! data, queue) can use it without pulling anything in:
//!
//! - [`cache_dir`]: the one rule for where datasets, the NB201 table and
//!   worker checkpoints live by default (the same rule as `scripts/setup.sh`).
//! - [`write_atomic`] / [`write_atomic_with`]: write to a temporary file in the
//!   same directory, fsync, rename over the target, fsync the directory; a
//!   reader never sees half a file.
//! - [`Backoff`]: the exponential pause between retries of a failed call.
//! - [`panic_message`]: the text of a caught panic.
//! - [`rung`]: the early-stopping decision at a rung (median, ASHA), shared
//!   by the core's config, the in-memory queue and (mirrored) the Redis
//!   function library.

pub mod rung;

use std::any::Any;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The nasfleet cache directory: `$NASFLEET_CACHE`, else
/// `$XDG_CACHE_HOME/nasfleet`, else `$HOME/.cache/nasfleet`, else
/// `.cache/nasfleet` under the current directory. Empty variables count as
/// unset. `scripts/setup.sh` follows the same rule, so the torch venv,
/// datasets, the NB201 table and worker checkpoints end up side by side.
pub fn cache_dir() -> PathBuf {
    cache_dir_from(|k| std::env::var_os(k))
}

/// [`cache_dir`] with the environment given as a lookup (for tests).
pub fn cache_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let non_empty = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("NASFLEET_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("nasfleet");
    }
    match non_empty("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("nasfleet"),
        None => PathBuf::from(".cache").join("nasfleet"),
    }
}

/// Writes `bytes` to `path` atomically: see [`write_atomic_with`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

/// Replaces `path` atomically with what `write` puts into the temporary path
/// it is given (in the same directory, so the rename cannot cross file
/// systems). The temporary file is fsynced, renamed over `path`, and the
/// directory fsynced, so after a crash `path` holds either the old or the new
/// content, never a mix. On any error the temporary file is removed and
/// `path` is untouched. The parent directory must exist.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write(&tmp)
        .and_then(|()| File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_parent(path)
}

/// Fsyncs the directory holding `path`, so that a rename into it is durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// Exponential pause between retries: `first`, doubling up to `max`.
///
/// It only computes delays; the caller sleeps (blocking or async) and decides
/// when to give up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A back-off starting at `first` and doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max, next: first.min(max) }
    }

    /// The pause before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}

/// The text of a caught panic's payload (`&str` or `String`; anything else
/// is described as such).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn cache_dir_follows_the_setup_script() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
        };
        assert_eq!(cache_dir_from(env(&[("NASFLEET_CACHE", "/c"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])), PathBuf::from("/c"));
        assert_eq!(cache_dir_from(env(&[("NASFLEET_CACHE", ""), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])), PathBuf::from("/x/nasfleet"));
        assert_eq!(cache_dir_from(env(&[("HOME", "/h")])), PathBuf::from("/h/.cache/nasfleet"));
        assert_eq!(cache_dir_from(env(&[])), PathBuf::from(".cache/nasfleet"));
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let err = write_atomic_with(&p, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"two", "a failed write leaves the old content");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![OsString::from("state.json")]);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn panic_text_of_both_payload_kinds() {
        let a = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(a.as_ref()), "plain");
        let b = std::panic::catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        assert_eq!(panic_message(b.as_ref()), "formatted 7");
        let c = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(panic_message(c.as_ref()), "non-string panic payload");
    }
}
