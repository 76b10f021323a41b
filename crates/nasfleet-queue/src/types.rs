//! Plain data exchanged with a queue backend: identities, leases, outcomes,
//! configuration and the inspection snapshot. No I/O here.

use std::time::Duration;

use crate::error::{QueueError, Result};

/// Dead-letter reason used by the queue itself when a job was delivered more
/// often than [`QueueConfig::max_deliveries`] (a crash-looping, "poison" job).
pub const REASON_MAX_DELIVERIES: &str = "max_deliveries";

/// Longest accepted job id, in bytes.
pub const MAX_JOB_ID_LEN: usize = 256;
/// Longest accepted consumer name, in bytes.
pub const MAX_CONSUMER_NAME_LEN: usize = 200;
/// Longest accepted dead-letter reason, in bytes.
pub const MAX_REASON_LEN: usize = 64;
/// Longest progress JSON a heartbeat may carry, in bytes.
pub const MAX_PROGRESS_LEN: usize = 64 * 1024;
/// Error texts of dead letters are cut to this many bytes (a backtrace must not
/// bloat the dead-letter stream).
pub const MAX_ERROR_TEXT_LEN: usize = 4096;

/// Longest wait a `fetch` or `read_results` call honours; longer requests are
/// cut to this (a worker should come back now and then anyway, e.g. to notice
/// a shutdown).
pub const MAX_BLOCK: Duration = Duration::from_secs(3600);
/// Most result events one `read_results` call may ask for.
pub const MAX_READ: usize = 10_000;
/// Longest lease or worker TTL accepted.
pub const MAX_LEASE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Timing and limits shared by every backend.
///
/// The lease is the time a worker may go without a heartbeat before its job is
/// handed to someone else. Keep it long relative to Redis outages (a restart
/// with AOF keeps counting idle time from the original delivery, so an outage
/// longer than the lease expires every lease at once) and heartbeat every
/// `lease / 4` or so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Lease length (pending-entry idle time after which a job is reclaimed).
    pub lease: Duration,
    /// Deliveries allowed before a job is dead-lettered as `max_deliveries`.
    pub max_deliveries: u32,
    /// How long a worker's state outlives its last heartbeat.
    pub worker_ttl: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lease: Duration::from_secs(300),
            max_deliveries: 5,
            worker_ttl: Duration::from_secs(300),
        }
    }
}

impl QueueConfig {
    /// Rejects values the queue cannot work with (zero lease, zero deliveries,
    /// sub-millisecond durations, which Redis cannot express, durations over
    /// [`MAX_LEASE`]).
    pub fn validate(&self) -> Result<()> {
        if self.lease < Duration::from_millis(1) || self.lease > MAX_LEASE {
            return Err(QueueError::invalid(
                "queue config",
                format!(
                    "lease must be between 1 ms and 30 days, got {:?}",
                    self.lease
                ),
            ));
        }
        if self.max_deliveries == 0 {
            return Err(QueueError::invalid(
                "queue config",
                "max_deliveries must be at least 1",
            ));
        }
        if self.worker_ttl < Duration::from_millis(1) || self.worker_ttl > MAX_LEASE {
            return Err(QueueError::invalid(
                "queue config",
                format!(
                    "worker_ttl must be between 1 ms and 30 days, got {:?}",
                    self.worker_ttl
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn lease_ms(&self) -> u64 {
        duration_ms(self.lease)
    }

    pub(crate) fn worker_ttl_ms(&self) -> u64 {
        duration_ms(self.worker_ttl)
    }
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Who is calling: one worker (or controller) process incarnation.
///
/// The name is the consumer name in the Redis consumer groups and the suffix of
/// the worker-state key. It must be unique per process incarnation (pitfall 7):
/// a restarted worker reusing a name would "own" the jobs its predecessor held
/// and never finish them. [`Consumer::new`] makes `host-<uuid>` names.
/// Use one name through one queue handle (clones included): the Redis backend
/// remembers per handle which leases a name holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Consumer {
    name: String,
    host: String,
    device: String,
}

impl Consumer {
    /// A fresh, unique consumer: `<host>-<uuid v4>`. `host` and `device` are
    /// free text shown in the worker state (`device` e.g. `cuda:0`, `cpu`).
    pub fn new(host: &str, device: &str) -> Result<Self> {
        let mut prefix: String = host
            .chars()
            .map(|c| if is_name_char(c) { c } else { '_' })
            .take(64)
            .collect();
        if prefix.is_empty() {
            prefix.push_str("host");
        }
        let name = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        Self::with_name(&name, host, device)
    }

    /// A fresh, unique consumer for this machine ([`local_hostname`]).
    pub fn local(device: &str) -> Result<Self> {
        Self::new(&local_hostname(), device)
    }

    /// A consumer with a chosen name (e.g. a stable `controller`). The name may
    /// hold ASCII letters, digits and `.` `_` `-` `:` `@`, 1 to
    /// [`MAX_CONSUMER_NAME_LEN`] bytes.
    pub fn with_name(name: &str, host: &str, device: &str) -> Result<Self> {
        if name.is_empty() || name.len() > MAX_CONSUMER_NAME_LEN {
            return Err(QueueError::invalid(
                "consumer name",
                format!(
                    "must be 1 to {MAX_CONSUMER_NAME_LEN} bytes, got {}",
                    name.len()
                ),
            ));
        }
        if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
            return Err(QueueError::invalid(
                "consumer name",
                format!("{name:?} contains {c:?}; allowed: ASCII letters, digits, . _ - : @"),
            ));
        }
        check_text("consumer host", host, 255)?;
        check_text("consumer device", device, 255)?;
        Ok(Consumer {
            name: name.to_owned(),
            host: host.to_owned(),
            device: device.to_owned(),
        })
    }

    /// The consumer-group name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host, as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The device, as given.
    pub fn device(&self) -> &str {
        &self.device
    }
}

impl std::fmt::Display for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

/// This machine's host name (`/proc/sys/kernel/hostname`, `/etc/hostname`,
/// `$HOSTNAME`), or `localhost` when none can be read.
pub fn local_hostname() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(path) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_owned();
            }
        }
    }
    match std::env::var("HOSTNAME") {
        Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => "localhost".to_owned(),
    }
}

/// Free text without control characters, at most `max` bytes.
pub(crate) fn check_text(what: &'static str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(QueueError::invalid(
            what,
            format!("{} bytes, at most {max} allowed", s.len()),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(QueueError::invalid(
            what,
            format!("contains control character {c:?}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_job_id(job_id: &str) -> Result<()> {
    if job_id.is_empty() {
        return Err(QueueError::invalid("job id", "must not be empty"));
    }
    check_text("job id", job_id, MAX_JOB_ID_LEN)
}

/// A stream entry id, `<ms>-<seq>`: what leases and result events carry.
pub(crate) fn check_entry_id(what: &'static str, id: &str) -> Result<()> {
    let ok = match id.split_once('-') {
        Some((ms, seq)) => ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok(),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(QueueError::invalid(
            what,
            format!("{id:?} is not a stream entry id (<ms>-<seq>)"),
        ))
    }
}

pub(crate) fn check_max(max: usize) -> Result<()> {
    if max == 0 || max > MAX_READ {
        return Err(QueueError::invalid(
            "max",
            format!("must be 1 to {MAX_READ}, got {max}"),
        ));
    }
    Ok(())
}

pub(crate) fn clamp_block(block: Duration) -> Duration {
    block.min(MAX_BLOCK)
}

pub(crate) fn check_reason(reason: &str) -> Result<()> {
    if reason.is_empty() || reason.len() > MAX_REASON_LEN {
        return Err(QueueError::invalid(
            "dead-letter reason",
            format!("must be 1 to {MAX_REASON_LEN} bytes, got {}", reason.len()),
        ));
    }
    if let Some(c) = reason
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(QueueError::invalid(
            "dead-letter reason",
            format!("{reason:?} contains {c:?}; use a snake_case token like `invalid_payload`"),
        ));
    }
    Ok(())
}

pub(crate) fn check_progress(progress: &str) -> Result<()> {
    if progress.len() > MAX_PROGRESS_LEN {
        return Err(QueueError::invalid(
            "progress",
            format!(
                "{} bytes, at most {MAX_PROGRESS_LEN} allowed",
                progress.len()
            ),
        ));
    }
    Ok(())
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_text(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A job handed to one consumer, valid while its lease lasts.
///
/// Keep it until the job reaches a terminal call ([`complete`], [`dead_letter`])
/// or is given back ([`release`]); pass it to every [`heartbeat`].
///
/// [`complete`]: crate::JobQueue::complete
/// [`dead_letter`]: crate::JobQueue::dead_letter
/// [`release`]: crate::JobQueue::release
/// [`heartbeat`]: crate::JobQueue::heartbeat
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The job id given to `enqueue`.
    pub job_id: String,
    /// The stream entry id (`<ms>-<seq>`); identifies this job in the queue.
    pub entry_id: String,
    /// The payload given to `enqueue`, byte for byte. Untrusted: validate it.
    pub payload: String,
    /// How many times this job has been delivered, this delivery included
    /// (1 on the first delivery; releases do not count).
    pub deliveries: u64,
}

/// What [`enqueue`](crate::JobQueue::enqueue) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Added now.
    Enqueued {
        /// The new stream entry.
        entry_id: String,
    },
    /// Already in the queue (enqueued earlier, not finished yet); nothing added.
    AlreadyEnqueued {
        /// The existing stream entry.
        entry_id: String,
    },
    /// Already has an outcome (finished or dead); nothing added.
    AlreadyFinished,
}

/// What [`requeue`](crate::JobQueue::requeue) did with one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requeued {
    /// The dead letter was removed and the job is back in the queue as a
    /// new entry, with its delivery count starting afresh.
    Requeued {
        /// The new stream entry.
        entry_id: String,
    },
    /// The job finished with a result: nothing to put back.
    Finished,
    /// The job has no outcome yet (queued or in flight): nothing to put back.
    Pending,
    /// The run never had this job.
    Unknown,
}

impl Requeued {
    /// A short word for operators (`requeued`, `finished`, `pending`, `unknown`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Requeued::Requeued { .. } => "requeued",
            Requeued::Finished => "finished",
            Requeued::Pending => "pending",
            Requeued::Unknown => "unknown",
        }
    }
}

/// What a terminal call ([`complete`](crate::JobQueue::complete),
/// [`dead_letter`](crate::JobQueue::dead_letter)) did.
///
/// In every case the worker is done with the job and takes the next one; only
/// `Recorded` and `AlreadyRecorded` mean *its* result is the job's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// This call recorded the outcome.
    Recorded,
    /// This consumer had already recorded the outcome with this lease (a retry
    /// after a lost reply); nothing changed.
    AlreadyRecorded,
    /// Someone else recorded the job's outcome first; nothing was applied.
    Duplicate,
    /// The lease was lost (it expired and another consumer claimed the job,
    /// which has not finished yet); nothing was applied.
    LeaseLost,
}

impl Completion {
    /// True when this consumer's outcome is the job's outcome.
    pub fn is_mine(self) -> bool {
        matches!(self, Completion::Recorded | Completion::AlreadyRecorded)
    }
}

// ---------------------------------------------------------------------------
// Early stopping: a child's score at a rung and the recorded decision.
// ---------------------------------------------------------------------------

pub use nasfleet_util::rung::{RungDecision, RungRule};

/// Highest epoch a rung may be at.
pub const MAX_RUNG_EPOCH: u32 = 100_000;

/// A child's score at one rung and the decision recorded for it, as
/// [`JobQueue::record_rung`](crate::JobQueue::record_rung) returns it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RungRecord {
    /// The decision: the same for every call about this (job, epoch).
    pub decision: RungDecision,
    /// The score recorded (the first call's; NaN and infinities are stored
    /// as the most negative / positive finite double).
    pub value: f64,
    /// How many other children's scores were at the rung when it was decided.
    pub peers: u64,
    /// True when this call recorded it; false when it had been recorded
    /// before (a resumed child, a retried call).
    pub first: bool,
}

/// The answer of [`JobQueue::record_rung`](crate::JobQueue::record_rung).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RungReply {
    /// The decision for this (job, epoch), recorded now or before.
    Decided(RungRecord),
    /// This consumer does not hold the job's lease any more (it expired and
    /// was claimed, or was given back): nothing recorded; stop working on it.
    LeaseLost,
    /// The job already has its outcome: nothing recorded; stop working on it.
    Finished,
}

/// The score as stored: finite, so that Lua's `tonumber` and Rust read the
/// same double (NaN is the worst score).
pub(crate) fn rung_value(v: f64) -> f64 {
    if v.is_nan() {
        f64::MIN
    } else {
        v.clamp(f64::MIN, f64::MAX)
    }
}

pub(crate) fn check_rung_epoch(epoch: u32) -> Result<()> {
    if epoch == 0 || epoch > MAX_RUNG_EPOCH {
        return Err(QueueError::invalid(
            "rung epoch",
            format!("must be 1 to {MAX_RUNG_EPOCH}, got {epoch}"),
        ));
    }
    Ok(())
}

/// Where a run stands, as its controller (or an operator) last set it.
/// Workers read it before taking each job and leave once the run is not
/// [`Running`](RunLifecycle::Running) any more, so that autoscalers can
/// release their machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunLifecycle {
    /// Jobs are issued and trained (also: never set).
    Running,
    /// `nasfleet controller stop` asked the controller to stop issuing and
    /// checkpoint; workers finish the child in hand and leave.
    Stopping,
    /// The controller stopped on request; `controller start --resume`
    /// continues the run.
    Stopped,
    /// Every child of the run is done.
    Finished,
}

impl RunLifecycle {
    /// Its name on the wire (`running`, `stopping`, `stopped`, `finished`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunLifecycle::Running => "running",
            RunLifecycle::Stopping => "stopping",
            RunLifecycle::Stopped => "stopped",
            RunLifecycle::Finished => "finished",
        }
    }

    /// Parses [`as_str`](RunLifecycle::as_str)'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Stopping, Self::Stopped, Self::Finished]
            .into_iter()
            .find(|l| l.as_str() == s)
    }

    /// True once workers should leave (anything but running).
    pub fn is_over(self) -> bool {
        self != RunLifecycle::Running
    }
}

impl std::fmt::Display for RunLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Completed; `result` is the worker's JSON, byte for byte (untrusted).
    Ok {
        /// The result JSON.
        result: String,
    },
    /// Dead-lettered.
    Dead {
        /// Machine-readable reason (`max_deliveries`, `invalid_payload`, ...).
        reason: String,
        /// Human-readable detail.
        error: String,
    },
}

/// One terminal event on the results stream, for the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultEvent {
    /// The results-stream entry id: pass it to
    /// [`ack_results`](crate::JobQueue::ack_results) after checkpointing.
    pub id: String,
    /// The job id.
    pub job_id: String,
    /// How it ended.
    pub outcome: JobOutcome,
    /// The consumer that recorded it.
    pub by: String,
}

/// A delivered, unfinished job (an entry of the pending list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Job id.
    pub job_id: String,
    /// Stream entry id.
    pub entry_id: String,
    /// Consumer holding it.
    pub owner: String,
    /// Milliseconds since its last delivery or heartbeat; at or above the lease
    /// it is claimable by anyone.
    pub idle_ms: u64,
    /// Deliveries so far.
    pub deliveries: u64,
}

/// A worker's self-reported state (kept alive by heartbeats, expires by TTL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerState {
    /// Consumer name.
    pub consumer: String,
    /// Host.
    pub host: String,
    /// Device.
    pub device: String,
    /// The job it is working on, if any.
    pub job_id: Option<String>,
    /// Its last progress JSON, if working on a job.
    pub progress: Option<String>,
    /// Milliseconds since its last heartbeat.
    pub seen_ago_ms: u64,
}

/// An entry of the dead-letter stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Dead-letter stream entry id.
    pub id: String,
    /// Job id.
    pub job_id: String,
    /// Machine-readable reason.
    pub reason: String,
    /// Detail.
    pub error: String,
    /// Deliveries at the time.
    pub deliveries: u64,
    /// The job's payload.
    pub payload: String,
    /// The consumer that dead-lettered it.
    pub consumer: String,
}

/// A snapshot for operators (`nasfleet status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStatus {
    /// Jobs waiting, never delivered.
    pub depth: u64,
    /// Jobs delivered and unfinished (including released and expired ones).
    pub in_flight_total: u64,
    /// Up to `limit` of them, oldest entry first.
    pub in_flight: Vec<InFlight>,
    /// Workers whose state has not expired, sorted by consumer name.
    pub workers: Vec<WorkerState>,
    /// Up to `limit` dead letters, newest first.
    pub dead_letters: Vec<DeadLetter>,
    /// All dead letters ever.
    pub dead_total: u64,
    /// Entries on the results stream (never trimmed: all terminal events).
    pub results: u64,
    /// Jobs with an outcome.
    pub outcomes: u64,
    /// Jobs ever enqueued.
    pub enqueued: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_are_unique_and_valid() {
        let a = Consumer::new("gpu host #7", "cuda:0").unwrap();
        let b = Consumer::new("gpu host #7", "cuda:0").unwrap();
        assert_ne!(a.name(), b.name());
        assert!(a.name().starts_with("gpu_host__7-"), "{}", a.name());
        assert_eq!((a.host(), a.device()), ("gpu host #7", "cuda:0"));
        assert!(Consumer::new("", "cpu")
            .unwrap()
            .name()
            .starts_with("host-"));
        assert!(Consumer::with_name("a b", "h", "d").is_err());
        assert!(Consumer::with_name("", "h", "d").is_err());
        assert!(Consumer::with_name("ok", "h\n", "d").is_err());
    }

    #[test]
    fn config_bounds_are_enforced() {
        assert!(QueueConfig::default().validate().is_ok());
        for bad in [
            QueueConfig {
                lease: Duration::ZERO,
                ..QueueConfig::default()
            },
            QueueConfig {
                lease: Duration::MAX,
                ..QueueConfig::default()
            },
            QueueConfig {
                max_deliveries: 0,
                ..QueueConfig::default()
            },
            QueueConfig {
                worker_ttl: Duration::from_micros(10),
                ..QueueConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn entry_ids_reasons_and_text_are_checked() {
        assert!(check_entry_id("id", "1700000000000-3").is_ok());
        for bad in ["", "1", "a-1", "1-b", "-1", "1-", "1-2-3"] {
            assert!(check_entry_id("id", bad).is_err(), "{bad:?}");
        }
        assert!(check_reason("invalid_payload").is_ok());
        assert!(check_reason("Invalid").is_err());
        assert!(check_reason(&"a".repeat(65)).is_err());
        assert_eq!(truncate_text("héllo", 2), "h");
        assert_eq!(clamp_block(Duration::MAX), MAX_BLOCK);
        assert!(check_max(0).is_err() && check_max(MAX_READ + 1).is_err() && check_max(1).is_ok());
    }
}
