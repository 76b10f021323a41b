//! The fleet settings of a run, resolved in one place.
//!
//! The defaults live once, in [`FleetConfig::default`] (the `[fleet]` section
//! of an experiment config), and are checked once, by [`FleetConfig::check`].
//! [`FleetSettings`] is that section as durations plus the run's
//! architecture limits: what the loops and the queue backends are built from.
//!
//! Who decides what:
//! - the controller and the embedded mode read the config file
//!   ([`FleetSettings::from_config`]); the controller then publishes the run's
//!   settings ([`RunSettings`]) beside its queue;
//! - a worker resolves [`FleetSettings::for_worker`]: its flags override its
//!   environment (`NASFLEET_LEASE`, ...; the binary's flags read both) which
//!   override the run's published settings which override the defaults. The
//!   run-wide settings (lease, heartbeat, deliveries: what makes a job change
//!   hands) come from the run alone when it has published them — a worker
//!   whose flag disagrees is refused with a message — so that the workers of
//!   one run cannot disagree. Worker-local settings (stop grace, retry window,
//!   payload and cost caps) may differ per worker.

use std::time::Duration;

use nasfleet_core::config::FleetConfig;
use nasfleet_core::ArchLimits;
use nasfleet_queue::{QueueConfig, RedisQueueConfig};
use serde::{Deserialize, Serialize};

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
        FleetSettings::convert(&FleetConfig::default(), ArchLimits::default())
    }
}

/// Version of the [`RunSettings`] JSON.
pub const RUN_SETTINGS_VERSION: u32 = 1;

/// What a controller publishes beside its queue for the run's workers: its
/// config's `[fleet]` and `[limits]` sections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// [`RUN_SETTINGS_VERSION`].
    pub version: u32,
    /// The run's `[fleet]` section.
    pub fleet: FleetConfig,
    /// The run's architecture limits (`[limits]`).
    pub limits: ArchLimits,
}

impl RunSettings {
    /// The settings of an experiment config.
    pub fn of(config: &nasfleet_core::ExperimentConfig) -> Self {
        RunSettings {
            version: RUN_SETTINGS_VERSION,
            fleet: config.fleet.clone(),
            limits: config.limits.clone(),
        }
    }

    /// As published (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses published settings; the message says what is wrong.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let probe: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match probe.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(RUN_SETTINGS_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "version {v}; this worker reads version {RUN_SETTINGS_VERSION} (run the same nasfleet version as the controller)"
                ))
            }
            None => return Err("no version field".into()),
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| format!("at {}: {}", e.path(), e.inner()))
    }
}

/// A worker's own settings from its flags and environment; `None` leaves
/// the run's (or the default) value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerOverrides {
    /// Run-wide: lease.
    pub lease: Option<Duration>,
    /// Run-wide: heartbeat period.
    pub heartbeat: Option<Duration>,
    /// Run-wide: deliveries before a dead letter.
    pub max_deliveries: Option<u32>,
    /// Worker-local: grace for the checkpoint after SIGTERM.
    pub stop_grace: Option<Duration>,
    /// Worker-local: retry window of one Redis call.
    pub retry_for: Option<Duration>,
    /// Worker-local: payload size cap.
    pub max_payload_bytes: Option<usize>,
    /// Worker-local: parameter cap (`Some(0)`: none).
    pub max_params: Option<u64>,
    /// Worker-local: FLOPs cap (`Some(0)`: none).
    pub max_flops: Option<u64>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl FleetSettings {
    /// The settings of a `[fleet]` section with default architecture limits,
    /// after [`FleetConfig::check`].
    pub fn from_config(c: &FleetConfig) -> Result<Self> {
        Self::checked(c, ArchLimits::default())
    }

    /// The settings of a published run (its `[fleet]` and `[limits]`).
    pub fn from_run(run: &RunSettings) -> Result<Self> {
        Self::checked(&run.fleet, run.limits.clone())
    }

    fn checked(c: &FleetConfig, limits: ArchLimits) -> Result<Self> {
        c.check().map_err(|(field, message)| FleetError::Setting { field, message })?;
        Ok(Self::convert(c, limits))
    }

    fn convert(c: &FleetConfig, arch_limits: ArchLimits) -> Self {
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
            arch_limits,
        }
    }

    /// A worker's settings: `overrides` (its flags and environment) over the
    /// run's published settings (`run`, when there are any) over the
    /// defaults. With a published run, a run-wide override that differs from
    /// the run's value is refused.
    pub fn for_worker(run: Option<&RunSettings>, overrides: &WorkerOverrides) -> Result<Self> {
        let mut c = run.map(|r| r.fleet.clone()).unwrap_or_default();
        let limits = run.map(|r| r.limits.clone()).unwrap_or_default();
        let run_wide: [(&str, Option<u64>, &mut u64); 2] = [
            ("lease", overrides.lease.map(ms), &mut c.lease_ms),
            ("heartbeat", overrides.heartbeat.map(ms), &mut c.heartbeat_ms),
        ];
        for (flag, want, have) in run_wide {
            let Some(want) = want else { continue };
            if run.is_some() && want != *have {
                return Err(disagree(flag, &format!("{want} ms"), &format!("{have} ms")));
            }
            *have = want;
        }
        if let Some(want) = overrides.max_deliveries {
            if run.is_some() && want != c.max_deliveries {
                return Err(disagree("max-deliveries", &want.to_string(), &c.max_deliveries.to_string()));
            }
            c.max_deliveries = want;
        }
        if let Some(v) = overrides.stop_grace {
            c.stop_grace_ms = ms(v);
        }
        if let Some(v) = overrides.retry_for {
            c.retry_for_ms = ms(v);
        }
        if let Some(v) = overrides.max_payload_bytes {
            c.max_payload_bytes = v;
        }
        if let Some(v) = overrides.max_params {
            c.max_params = (v > 0).then_some(v);
        }
        if let Some(v) = overrides.max_flops {
            c.max_flops = (v > 0).then_some(v);
        }
        Self::checked(&c, limits)
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
        self.apply_to(&mut c);
        c
    }

    /// Sets the queue timings of `c` (URL, run and TLS files stay).
    pub fn apply_to(&self, c: &mut RedisQueueConfig) {
        c.queue = self.queue_config();
        c.retry_for = self.retry_for;
    }
}

fn disagree(flag: &str, want: &str, have: &str) -> FleetError {
    FleetError::Setting {
        field: format!("--{flag}"),
        message: format!(
            "{want} disagrees with the run's {have}, published by its controller (all workers of a run use the \
             controller's [fleet] settings): drop the flag, or change the config and restart the controller"
        ),
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
        assert_eq!(FleetSettings::from_config(&FleetConfig::default()).unwrap(), s);
        assert_eq!(s.lease, Duration::from_secs(300));
        s.queue_config().validate().unwrap();
        assert!(s.queue_config().worker_ttl > s.heartbeat);
    }

    #[test]
    fn bad_settings_are_named() {
        let c = FleetConfig { heartbeat_ms: 400_000, ..FleetConfig::default() };
        let e = FleetSettings::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("fleet.heartbeat_ms"), "{e}");
        let o = WorkerOverrides { heartbeat: Some(Duration::from_secs(400)), ..Default::default() };
        let e = FleetSettings::for_worker(None, &o).unwrap_err().to_string();
        assert!(e.contains("heartbeat"), "{e}");
    }

    fn run() -> RunSettings {
        let mut fleet = FleetConfig { lease_ms: 60_000, heartbeat_ms: 5_000, max_deliveries: 3, ..FleetConfig::default() };
        fleet.max_params = Some(1000);
        let limits = ArchLimits { max_layers: 12, ..ArchLimits::default() };
        RunSettings { version: RUN_SETTINGS_VERSION, fleet, limits }
    }

    #[test]
    fn a_worker_takes_the_runs_settings_and_its_own_local_ones() {
        let r = run();
        let s = FleetSettings::for_worker(Some(&r), &WorkerOverrides::default()).unwrap();
        assert_eq!(s, FleetSettings::from_run(&r).unwrap());
        assert_eq!((s.lease, s.heartbeat, s.max_deliveries), (Duration::from_secs(60), Duration::from_secs(5), 3));
        assert_eq!(s.arch_limits.max_layers, 12, "the run's limits reach the worker");
        let local = WorkerOverrides {
            stop_grace: Some(Duration::from_secs(7)),
            max_params: Some(0),
            max_flops: Some(99),
            // Agreeing with the run is fine.
            lease: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let s = FleetSettings::for_worker(Some(&r), &local).unwrap();
        assert_eq!((s.stop_grace, s.max_params, s.max_flops), (Duration::from_secs(7), None, Some(99)));
        // Without a published run, flags over defaults.
        let s = FleetSettings::for_worker(None, &WorkerOverrides { lease: Some(Duration::from_secs(9)), heartbeat: Some(Duration::from_secs(1)), ..Default::default() }).unwrap();
        assert_eq!((s.lease, s.heartbeat, s.max_deliveries), (Duration::from_secs(9), Duration::from_secs(1), FleetConfig::default().max_deliveries));
    }

    #[test]
    fn a_worker_may_not_disagree_with_its_run() {
        let r = run();
        for (o, flag) in [
            (WorkerOverrides { lease: Some(Duration::from_secs(61)), ..Default::default() }, "--lease"),
            (WorkerOverrides { heartbeat: Some(Duration::from_secs(1)), ..Default::default() }, "--heartbeat"),
            (WorkerOverrides { max_deliveries: Some(9), ..Default::default() }, "--max-deliveries"),
        ] {
            let e = FleetSettings::for_worker(Some(&r), &o).unwrap_err().to_string();
            assert!(e.contains(flag) && e.contains("disagrees"), "{e}");
        }
    }

    #[test]
    fn published_settings_round_trip_and_other_versions_are_named() {
        let r = run();
        assert_eq!(RunSettings::from_json(&r.to_json()).unwrap(), r);
        let other = r.to_json().replace("\"version\":1", "\"version\":2");
        let e = RunSettings::from_json(&other).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        let e = RunSettings::from_json(r#"{"version":1,"fleet":{"lease_ms":"x"},"limits":{}}"#).unwrap_err();
        assert!(e.contains("fleet.lease_ms"), "{e}");
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
