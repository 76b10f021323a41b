//! The file side of every checkpoint this crate writes, in one place: the
//! CNN child's safetensors weights and JSON manifest ([`crate::cnn::checkpoint`])
//! and the language-model child's framed file (`rnn::checkpoint`).
//!
//! - Writes go through [`nasfleet_util::write_atomic_with`]: a temporary file
//!   in the same directory, fsynced, renamed over the target, the directory
//!   fsynced. After a crash the target holds the old or the new content,
//!   never a mix. The directory is created first.
//! - A read of a file that does not exist is `Ok(None)`, so "no checkpoint
//!   yet" is not an error; any other failure is.
//! - Every error names the file it concerns.
//!
//! What goes into the files (formats, versions, identities) stays with each
//! kind of checkpoint. The controller's checkpoint is bytes
//! (`SearchStrategy::checkpoint`); whoever stores them owns that file.

use std::io;
use std::path::{Path, PathBuf};

/// A checkpoint file that could not be written or read, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub(crate) struct FileError {
    /// The file (or, when it could not be created, its directory).
    pub(crate) path: PathBuf,
    /// What the operating system (or the writer) said.
    #[source]
    pub(crate) source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError { path: path.to_path_buf(), source }
}

fn create_parent(path: &Path) -> Result<(), FileError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(at(dir)),
        _ => Ok(()),
    }
}

/// Replaces `path` atomically with `bytes`, creating its directory.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    create_parent(path)?;
    nasfleet_util::write_atomic(path, bytes).map_err(at(path))
}

/// Replaces `path` atomically with what `write` puts into the temporary path
/// it is given (for writers that want a path, such as
/// `Tensor::write_safetensors`), creating the directory.
pub(crate) fn write_with(path: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> Result<(), FileError> {
    create_parent(path)?;
    nasfleet_util::write_atomic_with(path, write).map_err(at(path))
}

/// The bytes of `path`; `Ok(None)` when there is no such file.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_create_the_directory_replace_and_reads_tell_absence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job").join("x.ckpt");
        assert!(read(&path).unwrap().is_none());
        write(&path, b"one").unwrap();
        write_with(&path, |tmp| std::fs::write(tmp, b"two")).unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some(&b"two"[..]));

        let err = write_with(&path, |_| Err(io::Error::other("disk full"))).unwrap_err();
        assert!(err.to_string().contains("x.ckpt") && err.to_string().contains("disk full"), "{err}");
        assert_eq!(read(&path).unwrap().as_deref(), Some(&b"two"[..]), "a failed write leaves the old file");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["x.ckpt"], "no temporary file is left behind");

        // A directory where the file should be: an error naming it.
        let err = read(dir.path()).unwrap_err();
        assert_eq!(err.path, dir.path());
    }
}
