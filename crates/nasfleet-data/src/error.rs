//! The one error type of the crate.
//!
//! Every variant that concerns a file carries its path, and every message says what was
//! expected and what was found, because the person reading it usually has a directory of
//! downloaded files and needs to know which one is bad and why.

use std::path::PathBuf;

/// Everything that can go wrong while finding, fetching, reading or preparing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused to read or write a file.
    #[error("file {}: {source}", path.display())]
    Io {
        /// The file (or directory).
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A file the dataset needs does not exist.
    #[error("file {}: not found (expected {what})", path.display())]
    Missing {
        /// Where the file was looked for.
        path: PathBuf,
        /// What the file should have held.
        what: String,
    },

    /// The file has no content (or only whitespace).
    #[error("file {}: empty (expected {what})", path.display())]
    Empty {
        /// The empty file.
        path: PathBuf,
        /// What the file should have held.
        what: String,
    },

    /// The file's leading magic number is not the one its format requires.
    #[error("file {}: wrong magic number 0x{found:08x}, expected 0x{expected:08x} ({what})", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number its format requires.
        expected: u32,
        /// The magic number it has.
        found: u32,
        /// What the file should have held.
        what: String,
    },

    /// The file ends before its header says it should.
    #[error("file {}: truncated: {detail}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// How many bytes were expected and how many there are.
        detail: String,
    },

    /// The file is readable but its content is not what the format allows.
    #[error("file {}: {detail}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the expected and the found value.
        detail: String,
    },

    /// An IDX image file and its label file disagree on the number of examples.
    #[error(
        "files {} and {}: {images} images but {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
        /// Images in the image file.
        images: usize,
        /// Labels in the label file.
        labels: usize,
    },

    /// A validation or test token that the training vocabulary does not know, in a corpus
    /// that has no `<unk>` to stand for it.
    #[error(
        "file {}, line {line}: token {token:?} does not occur in the training file, and the \
         training vocabulary has no <unk> to map it to",
        path.display()
    )]
    OutOfVocabulary {
        /// The validation or test file.
        path: PathBuf,
        /// The line of the token, from 1.
        line: usize,
        /// The unknown token.
        token: String,
    },

    /// A dataset does not satisfy a property it is known to have (class counts, sizes).
    #[error("{dataset} in {}: {detail}", dir.display())]
    Verification {
        /// The dataset's name.
        dataset: String,
        /// The directory holding its files.
        dir: PathBuf,
        /// The property that does not hold, with the numbers found.
        detail: String,
    },

    /// Every way of obtaining a dataset failed; one line per attempt says why.
    #[error("could not obtain {dataset}; every source failed:\n  - {}", attempts.join("\n  - "))]
    Fetch {
        /// The dataset's name (and destination).
        dataset: String,
        /// One line per source tried: the source and why it failed.
        attempts: Vec<String>,
    },

    /// A request that cannot be satisfied by the data (e.g. a split larger than the set).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// Attaches a path to an I/O error. Used everywhere a file is touched, so no `io::Error`
/// escapes the crate without saying which file it was about.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.into();
    move |source| DataError::Io { path, source }
}

/// Reads a whole file, turning "not found" into [`DataError::Missing`] so callers can tell a
/// typo in a directory name from a permissions problem.
pub(crate) fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DataError::Missing {
            path: path.to_path_buf(),
            what: what.to_string(),
        }),
        Err(source) => Err(DataError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
