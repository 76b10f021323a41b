//! Errors of the core: every one names the field or token and the bound it broke,
//! because these messages are what a user (or a dead-letter entry) reads.

use thiserror::Error;

/// Why a token sequence or an architecture (or its JSON) was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ArchError {
    /// A token sequence of the wrong length for its schema.
    #[error("expected {expected} tokens, found {found}")]
    TokenCount {
        /// Tokens the schema has.
        expected: usize,
        /// Tokens given.
        found: usize,
    },
    /// A token outside its step's range.
    #[error("token {position} ({step}) is {value}, but that step has only {choices} choices")]
    TokenOutOfRange {
        /// The token's index in the sequence (0-based).
        position: usize,
        /// The step it belongs to (for a skip bit: the step and the source layer).
        step: String,
        /// The token's value.
        value: u32,
        /// The step's number of choices; valid values are `0..choices`.
        choices: usize,
    },
    /// A field of an architecture or a space setting breaks a rule.
    #[error("{field}: {message}")]
    Invalid {
        /// The field's path, e.g. `layers[3].kernel_h`.
        field: String,
        /// What is wrong, with the bound it broke.
        message: String,
    },
    /// The JSON form does not parse or does not match the schema.
    #[error("invalid JSON at {path}: {message}")]
    Json {
        /// Where: the JSON path of the offending field, or a line and column.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The JSON form is larger than [`ArchLimits::max_payload_bytes`](crate::ArchLimits::max_payload_bytes).
    #[error("payload is {size} bytes, over the cap of {max} bytes")]
    PayloadTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The cap in bytes.
        max: usize,
    },
    /// The JSON form has a `version` this build does not read.
    #[error("unsupported architecture format version {found} (this build reads version {supported})")]
    Version {
        /// The version in the payload.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
}

impl ArchError {
    /// An [`ArchError::Invalid`] naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ArchError::Invalid { field: field.into(), message: message.into() }
    }
}

/// Why an experiment configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TOML does not parse, or has an unknown key or a wrongly typed value.
    #[error("config {path}: {message}")]
    Parse {
        /// The config file (or the name given to text parsed from memory).
        path: String,
        /// The TOML parser's message, naming the key.
        message: String,
    },
    /// The values parse but break a rule that spans fields or bounds.
    #[error("config {path}: {field}: {message}")]
    Invalid {
        /// The config file.
        path: String,
        /// The offending key, e.g. `search.batch`.
        field: String,
        /// What is wrong.
        message: String,
    },
}
