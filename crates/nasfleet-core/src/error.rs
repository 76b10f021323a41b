//! Errors of the core: every one names the field or token and the bound it broke,
//! because these messages are what a user (or a dead-letter entry) reads.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ArchError {
    #[error("expected {expected} tokens, found {found}")]
    TokenCount { expected: usize, found: usize },
    #[error("token {position} ({step}) is {value}, but that step has only {choices} choices")]
    TokenOutOfRange { position: usize, step: String, value: u32, choices: usize },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("invalid JSON at {path}: {message}")]
    Json { path: String, message: String },
    #[error("payload is {size} bytes, over the cap of {max} bytes")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("unsupported architecture format version {found} (this build reads version {supported})")]
    Version { found: u64, supported: u64 },
}

impl ArchError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ArchError::Invalid { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}: {field}: {message}")]
    Invalid { path: String, field: String, message: String },
}
