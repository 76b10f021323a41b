//! In-process backend: the same state machine as the Redis functions, over
//! plain collections behind one `std::sync::Mutex`.
//!
//! Used by the embedded single-machine mode (many workers as tasks of one
//! process) and by tests. Nothing survives the process, so there are no lost
//! replies and no reconnects; what it must reproduce faithfully is the lease
//! and delivery-count semantics, which is why it mirrors the Redis stream
//! model (entry ids, a group cursor, a pending list) rather than a simpler
//! queue. The conformance suite runs the same tests against both.
//!
//! A std mutex, not an async one: every critical section is short and never
//! awaits, and waiting for work happens outside it on a [`Notify`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::error::{QueueError, Result};
use crate::queue::JobQueue;
use crate::types::{
    check_entry_id, check_job_id, check_max, check_progress, check_reason, clamp_block,
    duration_ms, truncate_text, Completion, Consumer, DeadLetter, EnqueueOutcome, InFlight,
    JobOutcome, Lease, QueueConfig, QueueStatus, Requeued, ResultEvent, RunLifecycle, WorkerState, MAX_ERROR_TEXT_LEN,
    REASON_MAX_DELIVERIES,
};
use crate::types::{check_rung_epoch, rung_value, RungDecision, RungRecord, RungReply, RungRule};
use nasfleet_util::rung::decide;

/// A millisecond clock for leases and worker TTLs. Must never go backwards.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since an arbitrary, fixed origin.
    fn now_ms(&self) -> u64;
}

/// The real clock: milliseconds since the clock was created ([`Instant`]).
#[derive(Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> u64 {
        duration_ms(self.origin.elapsed())
    }
}

/// A clock that moves only when told to: tests expire leases without sleeping.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at 0 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(duration_ms(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// The in-process queue. Cheap to clone; clones share the queue.
#[derive(Clone)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

struct Inner {
    config: QueueConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Woken on enqueue and release (new or claimable jobs).
    jobs_ready: Notify,
    /// Woken when a result event is appended.
    results_ready: Notify,
}

impl fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    seq: u64,
    /// The job stream: entry seq → job. Entries leave only when terminal.
    jobs: BTreeMap<u64, JobEntry>,
    /// Group cursor: the last entry handed out by a "new job" read.
    last_delivered: u64,
    /// Pending list of the `workers` group.
    pending: BTreeMap<u64, Pending>,
    outcome: HashMap<String, OutcomeRecord>,
    enqueued: HashMap<String, u64>,
    results: BTreeMap<u64, ResultRecord>,
    results_last_delivered: u64,
    /// Pending list of the `controller` group: seq → owner.
    results_pending: BTreeMap<u64, String>,
    results_cursors: HashMap<String, ResultsCursor>,
    dead: Vec<(u64, DeadLetter)>,
    workers: HashMap<String, WorkerRecord>,
    lifecycle: Option<RunLifecycle>,
    /// Early stopping: rung epoch → job → its record (the `rung:<epoch>`
    /// hashes of the Redis backend).
    rungs: HashMap<u32, HashMap<String, StoredRung>>,
}

/// One child's entry at a rung.
#[derive(Clone, Copy)]
struct StoredRung {
    decision: RungDecision,
    value: f64,
    peers: u64,
}

struct JobEntry {
    job_id: String,
    payload: String,
}

struct Pending {
    owner: String,
    /// Clock time of the last delivery or heartbeat. Signed: a release sets it
    /// a full lease in the past, which may be before the clock's origin.
    delivered_at: i64,
    deliveries: u64,
}

struct OutcomeRecord {
    by: String,
    entry: u64,
    /// A dead letter (what [`JobQueue::requeue`] may put back).
    dead: bool,
}

struct ResultRecord {
    job_id: String,
    outcome: JobOutcome,
    by: String,
}

#[derive(Clone, Copy)]
enum ResultsCursor {
    /// Still re-reading pending events with ids above this one.
    Pending(u64),
    /// Reading new events.
    New,
}

struct WorkerRecord {
    host: String,
    device: String,
    job_id: Option<String>,
    progress: Option<String>,
    last_seen: i64,
    expires_at: i64,
}

fn entry_id(seq: u64) -> String {
    format!("0-{seq}")
}

fn parse_entry_id(what: &'static str, id: &str) -> Result<u64> {
    check_entry_id(what, id)?;
    id.strip_prefix("0-")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| {
            QueueError::invalid(what, format!("{id:?} is not an entry id of this queue"))
        })
}

fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Ownership check shared by complete / dead_letter.
enum Terminal {
    Go { seq: u64, deliveries: u64 },
    Done(Completion),
}

impl MemoryQueue {
    /// A queue on the real monotonic clock.
    pub fn new(config: QueueConfig) -> Result<Self> {
        Self::with_clock(config, Arc::new(MonotonicClock::default()))
    }

    /// A queue on the given clock (tests: [`ManualClock`]).
    pub fn with_clock(config: QueueConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        Ok(MemoryQueue {
            inner: Arc::new(Inner {
                config,
                clock,
                state: Mutex::new(State::default()),
                jobs_ready: Notify::new(),
                results_ready: Notify::new(),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated
        // in a way later calls would misread worse than stopping would, and a
        // poisoned queue would take every worker task down with it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> i64 {
        to_i64(self.inner.clock.now_ms())
    }

    fn lease_ms(&self) -> i64 {
        to_i64(self.inner.config.lease_ms())
    }

    /// One non-blocking fetch attempt (expired lease first, then a new job).
    fn try_fetch(&self, consumer: &str) -> Option<Lease> {
        let now = self.now();
        let lease = self.lease_ms();
        let max = u64::from(self.inner.config.max_deliveries);
        let mut st = self.lock();
        let expired: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.delivered_at) >= lease)
            .map(|(seq, _)| *seq)
            .collect();
        let mut dead_lettered = false;
        for seq in expired {
            let deliveries = match st.pending.get_mut(&seq) {
                Some(p) => {
                    p.owner = consumer.to_owned();
                    p.delivered_at = now;
                    p.deliveries += 1;
                    p.deliveries
                }
                None => continue,
            };
            let Some(entry) = st.jobs.get(&seq) else {
                st.pending.remove(&seq);
                continue;
            };
            let (job_id, payload) = (entry.job_id.clone(), entry.payload.clone());
            if deliveries > max {
                let error = format!("delivered {deliveries} times, limit {max}");
                record_dead(
                    &mut st,
                    consumer,
                    seq,
                    &job_id,
                    &payload,
                    deliveries,
                    REASON_MAX_DELIVERIES,
                    &error,
                );
                dead_lettered = true;
                continue;
            }
            if st.outcome.contains_key(&job_id) {
                st.pending.remove(&seq);
                st.jobs.remove(&seq);
                continue;
            }
            drop(st);
            if dead_lettered {
                self.inner.results_ready.notify_waiters();
            }
            return Some(Lease {
                job_id,
                entry_id: entry_id(seq),
                payload,
                deliveries,
            });
        }
        let next = st
            .jobs
            .range(st.last_delivered + 1..)
            .next()
            .map(|(seq, e)| (*seq, e.job_id.clone(), e.payload.clone()));
        let lease = next.map(|(seq, job_id, payload)| {
            st.last_delivered = seq;
            st.pending.insert(
                seq,
                Pending {
                    owner: consumer.to_owned(),
                    delivered_at: now,
                    deliveries: 1,
                },
            );
            Lease {
                job_id,
                entry_id: entry_id(seq),
                payload,
                deliveries: 1,
            }
        });
        drop(st);
        if dead_lettered {
            self.inner.results_ready.notify_waiters();
        }
        lease
    }

    fn touch_worker<'a>(
        &self,
        st: &'a mut State,
        consumer: &Consumer,
        now: i64,
    ) -> &'a mut WorkerRecord {
        let expires_at = now.saturating_add(to_i64(self.inner.config.worker_ttl_ms()));
        let rec = st
            .workers
            .entry(consumer.name().to_owned())
            .or_insert_with(|| WorkerRecord {
                host: String::new(),
                device: String::new(),
                job_id: None,
                progress: None,
                last_seen: now,
                expires_at,
            });
        if rec.expires_at <= now {
            // Expired state is gone, as a Redis key with a TTL would be.
            rec.job_id = None;
            rec.progress = None;
        }
        rec.host = consumer.host().to_owned();
        rec.device = consumer.device().to_owned();
        rec.last_seen = now;
        rec.expires_at = expires_at;
        rec
    }

    fn clear_worker_job(st: &mut State, consumer: &str, now: i64) {
        if let Some(rec) = st.workers.get_mut(consumer) {
            if rec.expires_at > now {
                rec.job_id = None;
                rec.progress = None;
                rec.last_seen = now;
            }
        }
    }

    fn terminal_checks(st: &State, consumer: &Consumer, lease: &Lease) -> Result<Terminal> {
        let seq = parse_entry_id("lease entry id", &lease.entry_id)?;
        if let Some(rec) = st.outcome.get(&lease.job_id) {
            return Ok(Terminal::Done(
                if rec.by == consumer.name() && rec.entry == seq {
                    Completion::AlreadyRecorded
                } else {
                    Completion::Duplicate
                },
            ));
        }
        let Some(p) = st.pending.get(&seq) else {
            return Ok(Terminal::Done(Completion::LeaseLost));
        };
        if p.owner != consumer.name() {
            return Ok(Terminal::Done(Completion::LeaseLost));
        }
        let Some(entry) = st.jobs.get(&seq) else {
            return Ok(Terminal::Done(Completion::LeaseLost));
        };
        if entry.job_id != lease.job_id {
            return Err(QueueError::invalid(
                "lease",
                format!(
                    "entry {} does not hold job {}",
                    lease.entry_id, lease.job_id
                ),
            ));
        }
        Ok(Terminal::Go {
            seq,
            deliveries: p.deliveries,
        })
    }

    /// Makes an owned pending entry claimable at once (idle = lease); with
    /// `keep_delivery`, gives back the delivery the lease spent.
    fn give_back(&self, consumer: &Consumer, lease: &Lease, keep_delivery: bool) -> Result<bool> {
        let seq = parse_entry_id("lease entry id", &lease.entry_id)?;
        let now = self.now();
        let lease_ms = self.lease_ms();
        let mut st = self.lock();
        let given = match st.pending.get_mut(&seq) {
            Some(p) if p.owner == consumer.name() => {
                p.delivered_at = now.saturating_sub(lease_ms);
                if keep_delivery {
                    // min(): a retried release must not give back a second delivery.
                    p.deliveries = p.deliveries.min(lease.deliveries.saturating_sub(1));
                }
                true
            }
            _ => false,
        };
        if given {
            Self::clear_worker_job(&mut st, consumer.name(), now);
        }
        drop(st);
        if given {
            self.inner.jobs_ready.notify_waiters();
        }
        Ok(given)
    }

    fn results_claim_pending(st: &mut State, consumer: &str, after: u64, max: usize) -> Vec<u64> {
        let ids: Vec<u64> = st
            .results_pending
            .range(after + 1..)
            .take(max)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &ids {
            st.results_pending.insert(*seq, consumer.to_owned());
        }
        ids
    }

    fn try_read_results(&self, consumer: &str, max: usize) -> Vec<ResultEvent> {
        let mut st = self.lock();
        let cursor = *st
            .results_cursors
            .entry(consumer.to_owned())
            .or_insert(ResultsCursor::Pending(0));
        let seqs = match cursor {
            ResultsCursor::Pending(after) => {
                let ids = Self::results_claim_pending(&mut st, consumer, after, max);
                let next = match ids.last() {
                    Some(last) if ids.len() == max => ResultsCursor::Pending(*last),
                    _ => ResultsCursor::New,
                };
                st.results_cursors.insert(consumer.to_owned(), next);
                ids
            }
            ResultsCursor::New => Vec::new(),
        };
        let seqs = if seqs.is_empty() {
            let ids: Vec<u64> = st
                .results
                .range(st.results_last_delivered + 1..)
                .take(max)
                .map(|(seq, _)| *seq)
                .collect();
            if let Some(last) = ids.last() {
                st.results_last_delivered = *last;
            }
            for seq in &ids {
                st.results_pending.insert(*seq, consumer.to_owned());
            }
            ids
        } else {
            seqs
        };
        seqs.iter()
            .filter_map(|seq| {
                st.results.get(seq).map(|r| ResultEvent {
                    id: entry_id(*seq),
                    job_id: r.job_id.clone(),
                    outcome: r.outcome.clone(),
                    by: r.by.clone(),
                })
            })
            .collect()
    }
}

/// Dead-letters pending entry `seq` (already checked by the caller). Returns
/// true when this call recorded the outcome.
#[allow(clippy::too_many_arguments)]
fn record_dead(
    st: &mut State,
    consumer: &str,
    seq: u64,
    job_id: &str,
    payload: &str,
    deliveries: u64,
    reason: &str,
    error: &str,
) -> bool {
    let first = !st.outcome.contains_key(job_id);
    if first {
        st.outcome.insert(
            job_id.to_owned(),
            OutcomeRecord {
                by: consumer.to_owned(),
                entry: seq,
                dead: true,
            },
        );
        st.seq += 1;
        let dead_seq = st.seq;
        st.dead.push((
            dead_seq,
            DeadLetter {
                id: entry_id(dead_seq),
                job_id: job_id.to_owned(),
                reason: reason.to_owned(),
                error: error.to_owned(),
                deliveries,
                payload: payload.to_owned(),
                consumer: consumer.to_owned(),
            },
        ));
        push_result(
            st,
            job_id,
            JobOutcome::Dead {
                reason: reason.to_owned(),
                error: error.to_owned(),
            },
            consumer,
        );
    }
    st.pending.remove(&seq);
    st.jobs.remove(&seq);
    first
}

fn push_result(st: &mut State, job_id: &str, outcome: JobOutcome, by: &str) {
    st.seq += 1;
    let seq = st.seq;
    st.results.insert(
        seq,
        ResultRecord {
            job_id: job_id.to_owned(),
            outcome,
            by: by.to_owned(),
        },
    );
}

/// Waits for `notify` until `deadline`; false when the deadline passed.
async fn wait_until(
    notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    deadline: tokio::time::Instant,
) -> bool {
    tokio::time::timeout_at(deadline, notified).await.is_ok()
}

impl JobQueue for MemoryQueue {
    async fn enqueue(&self, job_id: &str, payload: &str) -> Result<EnqueueOutcome> {
        check_job_id(job_id)?;
        let mut st = self.lock();
        if st.outcome.contains_key(job_id) {
            return Ok(EnqueueOutcome::AlreadyFinished);
        }
        if let Some(seq) = st.enqueued.get(job_id) {
            return Ok(EnqueueOutcome::AlreadyEnqueued {
                entry_id: entry_id(*seq),
            });
        }
        st.seq += 1;
        let seq = st.seq;
        st.jobs.insert(
            seq,
            JobEntry {
                job_id: job_id.to_owned(),
                payload: payload.to_owned(),
            },
        );
        st.enqueued.insert(job_id.to_owned(), seq);
        drop(st);
        self.inner.jobs_ready.notify_waiters();
        Ok(EnqueueOutcome::Enqueued {
            entry_id: entry_id(seq),
        })
    }

    async fn fetch(&self, consumer: &Consumer, block: Duration) -> Result<Option<Lease>> {
        let deadline = tokio::time::Instant::now() + clamp_block(block);
        loop {
            // Register for wake-ups before looking, so an enqueue between the
            // look and the wait is not missed.
            let notified = self.inner.jobs_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(lease) = self.try_fetch(consumer.name()) {
                return Ok(Some(lease));
            }
            if !wait_until(notified, deadline).await {
                return Ok(self.try_fetch(consumer.name()));
            }
        }
    }

    async fn heartbeat(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        progress_json: &str,
    ) -> Result<bool> {
        check_progress(progress_json)?;
        let seq = parse_entry_id("lease entry id", &lease.entry_id)?;
        let now = self.now();
        let mut st = self.lock();
        let owned = match st.pending.get_mut(&seq) {
            Some(p) if p.owner == consumer.name() => {
                p.delivered_at = now;
                true
            }
            _ => false,
        };
        let rec = self.touch_worker(&mut st, consumer, now);
        if owned {
            rec.job_id = Some(lease.job_id.clone());
            rec.progress = Some(progress_json.to_owned());
        } else {
            rec.job_id = None;
            rec.progress = None;
        }
        Ok(owned)
    }

    async fn worker_alive(&self, consumer: &Consumer) -> Result<()> {
        let now = self.now();
        let mut st = self.lock();
        self.touch_worker(&mut st, consumer, now);
        Ok(())
    }

    async fn complete(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        result_json: &str,
    ) -> Result<Completion> {
        let now = self.now();
        let mut st = self.lock();
        let seq = match Self::terminal_checks(&st, consumer, lease)? {
            Terminal::Done(c) => return Ok(c),
            Terminal::Go { seq, .. } => seq,
        };
        st.outcome.insert(
            lease.job_id.clone(),
            OutcomeRecord {
                by: consumer.name().to_owned(),
                entry: seq,
                dead: false,
            },
        );
        push_result(
            &mut st,
            &lease.job_id,
            JobOutcome::Ok {
                result: result_json.to_owned(),
            },
            consumer.name(),
        );
        st.pending.remove(&seq);
        st.jobs.remove(&seq);
        Self::clear_worker_job(&mut st, consumer.name(), now);
        drop(st);
        self.inner.results_ready.notify_waiters();
        Ok(Completion::Recorded)
    }

    async fn release(&self, consumer: &Consumer, lease: &Lease) -> Result<bool> {
        self.give_back(consumer, lease, true)
    }

    async fn abandon(&self, consumer: &Consumer, lease: &Lease) -> Result<bool> {
        self.give_back(consumer, lease, false)
    }

    async fn dead_letter(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        reason: &str,
        error_text: &str,
    ) -> Result<Completion> {
        check_reason(reason)?;
        let error_text = truncate_text(error_text, MAX_ERROR_TEXT_LEN);
        let now = self.now();
        let mut st = self.lock();
        let (seq, deliveries) = match Self::terminal_checks(&st, consumer, lease)? {
            Terminal::Done(c) => return Ok(c),
            Terminal::Go { seq, deliveries } => (seq, deliveries),
        };
        let payload = st
            .jobs
            .get(&seq)
            .map(|e| e.payload.clone())
            .unwrap_or_default();
        if !record_dead(
            &mut st,
            consumer.name(),
            seq,
            &lease.job_id,
            &payload,
            deliveries,
            reason,
            error_text,
        ) {
            return Ok(Completion::Duplicate);
        }
        Self::clear_worker_job(&mut st, consumer.name(), now);
        drop(st);
        self.inner.results_ready.notify_waiters();
        Ok(Completion::Recorded)
    }

    async fn read_results(
        &self,
        consumer: &Consumer,
        max: usize,
        block: Duration,
    ) -> Result<Vec<ResultEvent>> {
        check_max(max)?;
        let deadline = tokio::time::Instant::now() + clamp_block(block);
        loop {
            let notified = self.inner.results_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let events = self.try_read_results(consumer.name(), max);
            if !events.is_empty() {
                return Ok(events);
            }
            if !wait_until(notified, deadline).await {
                return Ok(self.try_read_results(consumer.name(), max));
            }
        }
    }

    async fn ack_results(&self, ids: &[String]) -> Result<u64> {
        let seqs = ids
            .iter()
            .map(|id| parse_entry_id("result id", id))
            .collect::<Result<Vec<u64>>>()?;
        let mut st = self.lock();
        Ok(seqs
            .iter()
            .filter(|seq| st.results_pending.remove(seq).is_some())
            .count() as u64)
    }

    async fn is_finished(&self, job_id: &str) -> Result<bool> {
        check_job_id(job_id)?;
        Ok(self.lock().outcome.contains_key(job_id))
    }

    async fn lifecycle(&self) -> Result<RunLifecycle> {
        Ok(self.lock().lifecycle.unwrap_or(RunLifecycle::Running))
    }

    async fn set_lifecycle(&self, state: RunLifecycle) -> Result<()> {
        self.lock().lifecycle = Some(state);
        Ok(())
    }

    async fn requeue(&self, job_ids: &[String]) -> Result<Vec<Requeued>> {
        for job_id in job_ids {
            check_job_id(job_id)?;
        }
        let mut st = self.lock();
        let mut answers = Vec::with_capacity(job_ids.len());
        for job_id in job_ids {
            let answer = match st.outcome.get(job_id.as_str()).map(|o| o.dead) {
                Some(false) => Requeued::Finished,
                None if st.enqueued.contains_key(job_id.as_str()) => Requeued::Pending,
                None => Requeued::Unknown,
                Some(true) => {
                    // The latest dead letter holds the payload; a job whose
                    // dead letters were all trimmed away cannot be rebuilt.
                    let Some(payload) = st.dead.iter().rev().find(|(_, d)| &d.job_id == job_id).map(|(_, d)| d.payload.clone()) else {
                        answers.push(Requeued::Unknown);
                        continue;
                    };
                    st.outcome.remove(job_id.as_str());
                    st.dead.retain(|(_, d)| &d.job_id != job_id);
                    st.seq += 1;
                    let seq = st.seq;
                    st.jobs.insert(seq, JobEntry { job_id: job_id.clone(), payload });
                    st.enqueued.insert(job_id.clone(), seq);
                    Requeued::Requeued { entry_id: entry_id(seq) }
                }
            };
            answers.push(answer);
        }
        drop(st);
        self.inner.jobs_ready.notify_waiters();
        Ok(answers)
    }

    async fn record_rung(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        epoch: u32,
        value: f64,
        rule: RungRule,
    ) -> Result<RungReply> {
        check_rung_epoch(epoch)?;
        let mut st = self.lock();
        // The checks of complete(), in the same order as the Lua.
        match Self::terminal_checks(&st, consumer, lease)? {
            Terminal::Done(Completion::AlreadyRecorded | Completion::Duplicate) => {
                return Ok(RungReply::Finished)
            }
            Terminal::Done(_) => return Ok(RungReply::LeaseLost),
            Terminal::Go { .. } => {}
        }
        let rung = st.rungs.entry(epoch).or_default();
        if let Some(r) = rung.get(&lease.job_id) {
            return Ok(RungReply::Decided(RungRecord {
                decision: r.decision,
                value: r.value,
                peers: r.peers,
                first: false,
            }));
        }
        let value = rung_value(value);
        let peers: Vec<f64> = rung.values().map(|r| r.value).collect();
        let stored = StoredRung {
            decision: decide(rule, value, &peers),
            value,
            peers: peers.len() as u64,
        };
        rung.insert(lease.job_id.clone(), stored);
        Ok(RungReply::Decided(RungRecord {
            decision: stored.decision,
            value,
            peers: stored.peers,
            first: true,
        }))
    }

    async fn status(&self, limit: usize) -> Result<QueueStatus> {
        let now = self.now();
        let st = self.lock();
        let in_flight = st
            .pending
            .iter()
            .take(limit)
            .map(|(seq, p)| InFlight {
                job_id: st
                    .jobs
                    .get(seq)
                    .map(|e| e.job_id.clone())
                    .unwrap_or_else(|| entry_id(*seq)),
                entry_id: entry_id(*seq),
                owner: p.owner.clone(),
                idle_ms: u64::try_from(now.saturating_sub(p.delivered_at)).unwrap_or(0),
                deliveries: p.deliveries,
            })
            .collect();
        let mut workers: Vec<WorkerState> = st
            .workers
            .iter()
            .filter(|(_, w)| w.expires_at > now)
            .map(|(name, w)| WorkerState {
                consumer: name.clone(),
                host: w.host.clone(),
                device: w.device.clone(),
                job_id: w.job_id.clone(),
                progress: w.progress.clone(),
                seen_ago_ms: u64::try_from(now.saturating_sub(w.last_seen)).unwrap_or(0),
            })
            .collect();
        workers.sort_by(|a, b| a.consumer.cmp(&b.consumer));
        let in_flight_total = st.pending.len() as u64;
        Ok(QueueStatus {
            depth: (st.jobs.len() as u64).saturating_sub(in_flight_total),
            in_flight_total,
            in_flight,
            workers,
            dead_letters: st
                .dead
                .iter()
                .rev()
                .take(limit)
                .map(|(_, d)| d.clone())
                .collect(),
            dead_total: st.dead.len() as u64,
            results: st.results.len() as u64,
            outcomes: st.outcome.len() as u64,
            enqueued: st.enqueued.len() as u64,
        })
    }
}
