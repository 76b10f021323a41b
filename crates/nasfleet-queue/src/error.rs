//! The one error type of the crate.

use std::time::Duration;

/// Everything a queue call can fail with.
///
/// Expected outcomes (a lost lease, a duplicate completion, an empty queue) are
/// *not* errors: they are variants of the return types. An error means the call
/// did not happen as asked and the caller should log it and decide (usually:
/// retry later or stop).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// An argument was rejected before anything was sent.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which argument (`job id`, `consumer name`, ...).
        what: &'static str,
        /// Why, precisely.
        reason: String,
    },

    /// The Redis user may not run this call (ACL `NOPERM`, or a command inside
    /// a function that the user's ACL does not allow).
    #[error("permission denied for {op}: {detail}")]
    PermissionDenied {
        /// The queue operation.
        op: &'static str,
        /// The server's message.
        detail: String,
    },

    /// Redis stayed unreachable (or kept timing out) for the whole retry window.
    #[error("redis unavailable during {op} after retrying for {waited:?}: {source}")]
    Unavailable {
        /// The queue operation.
        op: &'static str,
        /// How long the call kept retrying.
        waited: Duration,
        /// The last connection error.
        #[source]
        source: redis::RedisError,
    },

    /// Redis answered with an error that retrying will not fix.
    #[error("redis error during {op}: {source}")]
    Redis {
        /// The queue operation.
        op: &'static str,
        /// The error.
        #[source]
        source: redis::RedisError,
    },

    /// Redis answered something this client does not understand (usually a
    /// function library of another version, or keys edited by hand).
    #[error("unexpected reply to {op}: {detail}")]
    Protocol {
        /// The queue operation.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },

    /// The `nasfleet` function library is absent or of another version, and
    /// this user may not (re)load it. An admin must run
    /// [`RedisQueue::load_functions`](crate::RedisQueue::load_functions).
    #[error("redis function library `nasfleet` {problem}; load it as an admin user (RedisQueue::load_functions): {detail}")]
    Functions {
        /// `is not loaded` / `has version X, this client needs Y`.
        problem: String,
        /// The server's message when loading was refused.
        detail: String,
    },

    /// A TLS certificate or key file could not be read.
    #[error("TLS setup: {0}")]
    Tls(String),

    /// The background task that runs a blocking fetch died (a panic).
    #[error("background fetch task failed: {0}")]
    Task(String),
}

impl QueueError {
    /// True for [`QueueError::PermissionDenied`].
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, QueueError::PermissionDenied { .. })
    }

    /// True when waiting and calling again may succeed (Redis unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable { .. })
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        QueueError::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn protocol(op: &'static str, detail: impl Into<String>) -> Self {
        QueueError::Protocol {
            op,
            detail: detail.into(),
        }
    }
}

/// Short alias used throughout the crate.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;
