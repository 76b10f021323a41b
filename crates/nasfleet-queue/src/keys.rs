//! Redis key names of one run.

use crate::error::{QueueError, Result};

/// Consumer group of the jobs stream.
pub const JOBS_GROUP: &str = "workers";
/// Consumer group of the results stream.
pub const RESULTS_GROUP: &str = "controller";

/// The keys of one run. `{run}` keeps its braces: it is a cluster hash tag, so
/// one run lives in one slot and multi-key functions are legal.
///
/// | key | type | role |
/// |---|---|---|
/// | `nasfleet:{run}:jobs` | stream, group `workers` | queue; entry = `job`, `payload` |
/// | `nasfleet:{run}:results` | stream, group `controller` | terminal events |
/// | `nasfleet:{run}:dead` | stream | dead letters |
/// | `nasfleet:{run}:outcome` | hash job → JSON | one outcome per job |
/// | `nasfleet:{run}:enqueued` | hash job → entry id | idempotent enqueue |
/// | `nasfleet:{run}:worker:<consumer>` | hash with TTL | live worker state |
/// | `nasfleet:{run}:controller` | hash | the controller's published progress ([`RedisBoard`](crate::RedisBoard)) |
/// | `nasfleet:{run}:settings` | string, JSON | the run's fleet settings, published by its controller, read by workers |
/// | `nasfleet:{run}:lifecycle` | string | `running`, `stopping`, `stopped`, `finished`: workers leave once it is not `running` |
/// | `nasfleet:{run}:rung:<epoch>` | hash job → `<decision> <score> <peers>` | early stopping: every child's score at that rung and its decision, written once per (job, rung) |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    run: String,
    /// Job stream.
    pub jobs: String,
    /// Results stream.
    pub results: String,
    /// Dead-letter stream.
    pub dead: String,
    /// Outcome hash.
    pub outcome: String,
    /// Enqueued-marker hash.
    pub enqueued: String,
    /// Prefix of worker-state keys (`nasfleet:{run}:worker:`).
    pub worker_prefix: String,
    /// The controller's state hash (what `status` shows beyond the queue).
    pub controller: String,
    /// The run's fleet settings (JSON), published by the controller.
    pub settings: String,
    /// The run's lifecycle ([`RunLifecycle`](crate::RunLifecycle)), a string.
    pub lifecycle: String,
}

impl Keys {
    /// Keys of run `run`: 1 to 64 ASCII letters, digits, `.`, `_` or `-`
    /// (no glob characters, so `SCAN MATCH` and ACL patterns stay exact).
    pub fn new(run: &str) -> Result<Self> {
        if run.is_empty() || run.len() > 64 {
            return Err(QueueError::invalid(
                "run id",
                format!("must be 1 to 64 bytes, got {}", run.len()),
            ));
        }
        if let Some(c) = run
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(QueueError::invalid(
                "run id",
                format!("{run:?} contains {c:?}; allowed: ASCII letters, digits, . _ -"),
            ));
        }
        let base = format!("nasfleet:{{{run}}}");
        Ok(Keys {
            run: run.to_owned(),
            jobs: format!("{base}:jobs"),
            results: format!("{base}:results"),
            dead: format!("{base}:dead"),
            outcome: format!("{base}:outcome"),
            enqueued: format!("{base}:enqueued"),
            worker_prefix: format!("{base}:worker:"),
            controller: format!("{base}:controller"),
            settings: format!("{base}:settings"),
            lifecycle: format!("{base}:lifecycle"),
        })
    }

    /// The run id.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The early-stopping rung hash of `epoch` (written by
    /// `nasfleet_worker_rung`).
    pub fn rung(&self, epoch: u32) -> String {
        format!("nasfleet:{{{}}}:rung:{epoch}", self.run)
    }

    /// The state key of worker `consumer`.
    pub fn worker(&self, consumer: &str) -> String {
        format!("{}{consumer}", self.worker_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_hash_tag_literally() {
        let k = Keys::new("r1").unwrap();
        assert_eq!(k.jobs, "nasfleet:{r1}:jobs");
        assert_eq!(k.results, "nasfleet:{r1}:results");
        assert_eq!(k.dead, "nasfleet:{r1}:dead");
        assert_eq!(k.outcome, "nasfleet:{r1}:outcome");
        assert_eq!(k.enqueued, "nasfleet:{r1}:enqueued");
        assert_eq!(k.worker("w-1"), "nasfleet:{r1}:worker:w-1");
        assert_eq!(k.controller, "nasfleet:{r1}:controller");
        assert_eq!(k.settings, "nasfleet:{r1}:settings");
        assert_eq!(k.lifecycle, "nasfleet:{r1}:lifecycle");
        assert_eq!(k.rung(3), "nasfleet:{r1}:rung:3");
    }

    #[test]
    fn run_ids_with_glob_or_brace_characters_are_rejected() {
        for bad in ["", "a*b", "a{b", "a}b", "a b", "a?b", &"x".repeat(65)] {
            let err = Keys::new(bad).unwrap_err();
            assert!(
                matches!(err, QueueError::InvalidInput { what: "run id", .. }),
                "{bad:?}: {err}"
            );
        }
    }
}
