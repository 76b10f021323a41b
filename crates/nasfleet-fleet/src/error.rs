//! The one error type of the crate.

use std::path::PathBuf;

use nasfleet_core::strategy::StrategyError;
use nasfleet_queue::QueueError;

/// Why a controller, worker or status call stopped.
///
/// Expected events of a fleet (a lost lease, a dead-lettered job, Redis
/// restarting) are not errors: the loops handle them and carry on. An error
/// means the loop cannot continue without a human (bad configuration, a
/// refused permission, a disk that cannot be written).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A queue call failed in a way retrying will not fix.
    #[error("queue: {0}")]
    Queue(#[from] QueueError),

    /// A file of the run directory could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the file is (`checkpoint`, `history`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// The controller checkpoint is unreadable or belongs to another run.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// The search strategy refused a call.
    #[error("search strategy: {0}")]
    Strategy(#[from] StrategyError),

    /// Starting or resuming was refused (the run exists, the config changed...).
    #[error("{0}")]
    Refused(String),

    /// A setting is out of range.
    #[error("invalid setting {field}: {message}")]
    Setting {
        /// The setting (config key or flag).
        field: String,
        /// Why.
        message: String,
    },

    /// A thread or task of the fleet died.
    #[error("{0}")]
    Thread(String),

    /// The run's board (controller state, published settings) could not be
    /// read or written, or holds something unreadable.
    #[error("run board: {0}")]
    Board(String),
}

impl FleetError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FleetError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// True for queue errors that retrying cannot fix (a refused permission, a
/// missing function library, a rejected argument, a reply this client does
/// not understand): a loop stops on them instead of retrying forever.
pub(crate) fn is_fatal(e: &QueueError) -> bool {
    matches!(
        e,
        QueueError::PermissionDenied { .. }
            | QueueError::Functions { .. }
            | QueueError::InvalidInput { .. }
            | QueueError::Tls(_)
            | QueueError::Protocol { .. }
    )
}

/// Short alias.
pub type Result<T, E = FleetError> = std::result::Result<T, E>;
