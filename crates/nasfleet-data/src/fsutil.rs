//! Small file-system helpers shared by the fetchers.

use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};

/// Writes `bytes` to `path` atomically ([`nasfleet_util::write_atomic`]: a sibling temporary
/// file, fsynced and renamed), creating the directory, so that a crash or a concurrent
/// reader never sees a half-written file under the real name.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    nasfleet_util::write_atomic(path, bytes).map_err(io_err(path))
}

/// Writes `bytes` to `path` unless the file already holds exactly them; returns whether it
/// wrote. Keeps repeated preparation runs from touching files (and their mtimes).
pub(crate) fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    match std::fs::read(path) {
        Ok(existing) if existing == bytes => Ok(false),
        _ => write_atomically(path, bytes).map(|()| true),
    }
}

/// Where datasets and downloaded packages are cached: [`nasfleet_util::cache_dir`]
/// (`$NASFLEET_CACHE`, else `$XDG_CACHE_HOME/nasfleet`, else `$HOME/.cache/nasfleet`, else
/// `.cache/nasfleet` under the current directory), the same directory `scripts/setup.sh`
/// and every other crate use.
pub fn default_cache_dir() -> PathBuf {
    nasfleet_util::cache_dir()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cache_dir_is_the_workspace_one() {
        assert_eq!(super::default_cache_dir(), nasfleet_util::cache_dir());
    }
}
