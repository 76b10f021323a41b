//! [`FleetSettings`]: the `[fleet]` section of an experiment config as
//! durations, and what the queue backends are built from.
//!
//! Workers get no experiment config (a job carries everything needed to
//! train it), so the binary builds their settings from command-line flags
//! whose defaults are [`FleetConfig::default`]; the controller and the
//! embedded mode take them from the config file.

use std::time::Duration;

use nasfleet_core::config::FleetConfig;
use nasfleet_core::ArchLimits;
use nasfleet_queue::{QueueConfig, RedisQueueConfig};

use crate::error::{FleetError, Result};

/// Timings and limits of one fleet process.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetSettings {
    /// Lease without a heartbeat before a job is handed to another worker.
    pub lease: Duration,
    /// Heartbeat period of a busy worker.
    pub heartbeat: Duration,
    /// Deliveries before a job is dead-lettered as `max_deliveries`.
    pub max_deliveries: u32,
    /// Longest wait of one fetch / result read.
    pub block: Duration,
    /// How long a worker waits for its trainer to checkpoint after SIGTERM.
    pub stop_grace: Duration,
    /// How long one Redis call keeps retrying through an outage.
    pub retry_for: Duration,
    /// Job payload size cap, checked before parsing.
    pub max_payload_bytes: usize,
    /// Worker-side cap on a CNN child's parameters.
    pub max_params: Option<u64>,
    /// Worker-side cap on a CNN child's forward FLOPs per image.
    pub max_flops: Option<u64>,
    /// Structural bounds every architecture must satisfy.
    pub arch_limits: ArchLimits,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings::from_config(&FleetConfig::default())
    }
}

impl FleetSettings {
    /// The settings of a `[fleet]` section.
    pub fn from_config(c: &FleetConfig) -> Self {
        FleetSettings {
            lease: Duration::from_millis(c.lease_ms),
            heartbeat: Duration::from_millis(c.heartbeat_ms),
            max_deliveries: c.max_deliveries,
            block: Duration::from_millis(c.block_ms),
            stop_grace: Duration::from_millis(c.stop_grace_ms),
            retry_for: Duration::from_millis(c.retry_for_ms),
            max_payload_bytes: c.max_payload_bytes,
            max_params: c.max_params,
            max_flops: c.max_flops,
            arch_limits: ArchLimits::default(),
        }
    }

    /// Rejects combinations the loops cannot work with.
    pub fn check(&self) -> Result<()> {
        let bad = |field: &'static str, message: String| Err(FleetError::Setting { field, message });
        if self.lease < Duration::from_millis(1) {
            return bad("lease", format!("{:?} is below 1 ms", self.lease));
        }
        if self.heartbeat.is_zero() || self.heartbeat >= self.lease {
            return bad(
                "heartbeat",
                format!("{:?} must be above zero and below the lease ({:?})", self.heartbeat, self.lease),
            );
        }
        if self.max_deliveries == 0 {
            return bad("max_deliveries", "must be at least 1".into());
        }
        if self.block.is_zero() {
            return bad("block", "must be above zero".into());
        }
        if self.max_payload_bytes == 0 {
            return bad("max_payload_bytes", "must be at least 1".into());
        }
        Ok(())
    }

    /// The queue's settings. A worker's state outlives three of its refresh
    /// periods (an idle worker refreshes once per fetch, a busy one once per
    /// heartbeat), so a live worker never blinks out of `status`.
    pub fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            lease: self.lease,
            max_deliveries: self.max_deliveries,
            worker_ttl: (self.block.max(self.heartbeat) * 3).max(Duration::from_secs(1)),
        }
    }

    /// A Redis queue configuration for `url` and `run` with these settings.
    pub fn redis_config(&self, url: &str, run: &str) -> RedisQueueConfig {
        let mut c = RedisQueueConfig::new(url, run);
        c.queue = self.queue_config();
        c.retry_for = self.retry_for;
        c
    }
}

/// Parses a duration like `300ms`, `30s`, `5m`, `2h` (a bare number is
/// seconds) for command-line flags.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 500ms, 30s, 5m, 2h)"))?;
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s, m or h)")),
    };
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=30.0 * 24.0 * 3600.0).contains(&secs) {
        return Err(format!("{s:?} is out of range (0 to 30 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_consistent() {
        let s = FleetSettings::default();
        s.check().unwrap();
        assert_eq!(s.lease, Duration::from_secs(300));
        s.queue_config().validate().unwrap();
        assert!(s.queue_config().worker_ttl > s.heartbeat);
    }

    #[test]
    fn bad_settings_are_named() {
        let s = FleetSettings {
            heartbeat: Duration::from_secs(400),
            ..FleetSettings::default()
        };
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("heartbeat"), "{e}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "x", "5d", "-1s", "1e40h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
