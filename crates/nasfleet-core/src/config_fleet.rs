//! `[fleet]`: timings and limits of the job queue, the workers and the
//! embedded mode (owned by the `nasfleet-fleet` crate).
//!
//! The defaults suit real GPU children that train for minutes: a lease of
//! five minutes rides out a Redis restart or a short network cut without
//! handing jobs to a second worker, and workers heartbeat every 30 s. Tests
//! scale everything down (heartbeat 100 ms, lease 1 s).
//!
//! Durations are integer milliseconds, so a value read from TOML is exactly
//! the value used.

use serde::{Deserialize, Serialize};

/// The `[fleet]` section: the one place its defaults are written
/// ([`Default`]) and checked ([`FleetConfig::check`]). The controller
/// publishes it for its run's workers (see `nasfleet_fleet::settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// A worker that has not heartbeaten for this long loses its job to the
    /// next worker that asks (measured on the Redis server's clock).
    pub lease_ms: u64,
    /// How often a worker extends its lease and reports progress. Keep it
    /// well under the lease (a quarter or less).
    pub heartbeat_ms: u64,
    /// Deliveries before a job is dead-lettered as `max_deliveries` (a job
    /// that crashes its worker every time). Graceful preemptions do not count.
    pub max_deliveries: u32,
    /// How long one blocking fetch (worker) or result read (controller) waits
    /// before looking again (to notice a shutdown, refresh worker state).
    pub block_ms: u64,
    /// After a stop request (SIGTERM), how long a worker waits for its
    /// trainer to checkpoint before it gives the job back anyway and exits.
    /// Under the shortest preemption notice you expect (GCP: 30 s).
    pub stop_grace_ms: u64,
    /// How long one queue call keeps retrying while Redis is unreachable.
    pub retry_for_ms: u64,
    /// Largest job payload a worker accepts; checked before parsing.
    pub max_payload_bytes: usize,
    /// Worker-side cap on a CNN child's trainable parameters (`None`: none).
    pub max_params: Option<u64>,
    /// Worker-side cap on a CNN child's forward FLOPs per image (`None`: none).
    pub max_flops: Option<u64>,
    /// Workers of the embedded mode (`nasfleet local`).
    pub workers: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            lease_ms: 300_000,
            heartbeat_ms: 30_000,
            max_deliveries: 5,
            block_ms: 5_000,
            stop_grace_ms: 25_000,
            retry_for_ms: 120_000,
            max_payload_bytes: 64 * 1024,
            // Far above the paper's largest child (37.4M parameters, under a
            // TFLOP per image) and far below what would exhaust a GPU host.
            max_params: Some(1_000_000_000),
            max_flops: Some(1_000_000_000_000),
            workers: 1,
        }
    }
}

impl FleetConfig {
    /// Cross-field checks; the message names the field and the bound.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((format!("fleet.{f}"), m));
        if self.lease_ms == 0 {
            return bad("lease_ms", "must be at least 1".into());
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms >= self.lease_ms {
            return bad(
                "heartbeat_ms",
                format!("{} must be at least 1 and below lease_ms ({})", self.heartbeat_ms, self.lease_ms),
            );
        }
        if self.max_deliveries == 0 {
            return bad("max_deliveries", "must be at least 1".into());
        }
        if self.block_ms == 0 {
            return bad("block_ms", "must be at least 1".into());
        }
        if self.max_payload_bytes == 0 {
            return bad("max_payload_bytes", "must be at least 1".into());
        }
        if self.workers == 0 {
            return bad("workers", "must be at least 1".into());
        }
        Ok(())
    }
}
