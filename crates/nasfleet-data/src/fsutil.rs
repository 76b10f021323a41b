//! Small file-system helpers shared by the fetchers.

use std::path::{Path, PathBuf};

use crate::error::{io_err, DataError, Result};

/// Writes `bytes` to `path` via a sibling temporary file and a rename, so that a crash or a
/// concurrent reader never sees a half-written file under the real name.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Writes `bytes` to `path` unless the file already holds exactly them; returns whether it
/// wrote. Keeps repeated preparation runs from touching files (and their mtimes).
pub(crate) fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    match std::fs::read(path) {
        Ok(existing) if existing == bytes => Ok(false),
        _ => write_atomically(path, bytes).map(|()| true),
    }
}

/// Where downloaded packages are cached: `$NASFLEET_CACHE`, else `$HOME/.cache/nasfleet`,
/// else `.cache/nasfleet` under the current directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NASFLEET_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("nasfleet"),
        None => PathBuf::from(".cache").join("nasfleet"),
    }
}
