//! The one interface every backend implements, and a runtime-chosen backend.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::memory::MemoryQueue;
use crate::redis_queue::RedisQueue;
use crate::types::{Completion, Consumer, EnqueueOutcome, Lease, QueueStatus, Requeued, ResultEvent, RunLifecycle};
use crate::types::{RungReply, RungRule};

/// A durable job queue with leases, as seen by the controller and the workers.
///
/// Payloads and results are opaque strings (JSON by convention); the queue
/// never parses them. Every method is idempotent with respect to the state it
/// changes, which is what lets the Redis backend retry across reconnects.
///
/// The worker loop, in short:
/// ```text
/// loop {
///     let Some(lease) = q.fetch(&me, block).await? else { continue };
///     // heartbeat every lease/4; a `false` means: abort, the job is someone else's
///     // on success:            q.complete(&me, &lease, result).await?
///     // on permanent failure:  q.dead_letter(&me, &lease, "invalid_payload", msg).await?
///     // on SIGTERM:            checkpoint, then q.release(&me, &lease).await?
///     // on a retryable error:  q.abandon(&me, &lease).await? (counts the delivery)
///     // if the process dies:   nothing — the lease expires and someone else claims it
/// }
/// ```
///
/// The methods return `impl Future + Send` so that generic loops can be spawned
/// on a multi-threaded runtime.
pub trait JobQueue: Clone + Send + Sync + 'static {
    /// Adds a job unless it is already queued or finished.
    ///
    /// Checks the job's outcome first ([`EnqueueOutcome::AlreadyFinished`]),
    /// then the `enqueued` marker ([`EnqueueOutcome::AlreadyEnqueued`]); so a
    /// controller re-enqueuing everything it believes outstanding after a crash
    /// never creates a second copy. `job_id`: 1 to 256 bytes, no control
    /// characters.
    fn enqueue(
        &self,
        job_id: &str,
        payload: &str,
    ) -> impl Future<Output = Result<EnqueueOutcome>> + Send;

    /// Takes a job for `consumer`, waiting up to `block` for one to arrive
    /// (`Duration::ZERO`: do not wait). `Ok(None)` when none came.
    ///
    /// Order: a job whose lease expired (idle ≥ lease) is reclaimed first — its
    /// delivery count goes up by one, and if that exceeds `max_deliveries` it is
    /// dead-lettered (`max_deliveries`) instead of returned; otherwise a new job.
    /// The returned lease lasts `lease` from now; heartbeat to extend it.
    ///
    /// Cancel-safe: dropping the future never loses a job (the Redis backend
    /// finishes the read in a background task and releases what it got).
    fn fetch(
        &self,
        consumer: &Consumer,
        block: Duration,
    ) -> impl Future<Output = Result<Option<Lease>>> + Send;

    /// Extends the lease if `consumer` still owns the job, and records the
    /// worker's state (host, device, job, `progress_json`, last seen; expires
    /// after `worker_ttl`).
    ///
    /// `Ok(false)`: the job is no longer this consumer's (the lease expired and
    /// someone claimed it, or it was finished) — stop working on it at once and
    /// do not complete it. `progress_json` is opaque, at most 64 KiB.
    fn heartbeat(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        progress_json: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Records an idle worker's state (host, device, last seen) so that status
    /// lists it while it waits for work. Call it as often as `heartbeat`.
    fn worker_alive(&self, consumer: &Consumer) -> impl Future<Output = Result<()>> + Send;

    /// Records the job's successful outcome, if nobody did before, and removes
    /// the job from the queue; the controller gets an `ok` result event.
    ///
    /// Checks ownership itself: a consumer whose lease was taken over gets
    /// [`Completion::LeaseLost`] (or [`Completion::Duplicate`] once the new
    /// holder finished) and nothing is applied. A retry of a call whose reply
    /// was lost gets [`Completion::AlreadyRecorded`].
    fn complete(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        result_json: &str,
    ) -> impl Future<Output = Result<Completion>> + Send;

    /// Gives the job back after a graceful preemption (SIGTERM): it becomes
    /// claimable at once and this delivery is not counted, so a job preempted
    /// any number of times is never dead-lettered for it. Checkpoint *before*
    /// releasing. `Ok(false)`: this consumer did not own it any more (nothing
    /// to give back). Either way, stop working on it.
    fn release(
        &self,
        consumer: &Consumer,
        lease: &Lease,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Gives the job back after a *retryable* failure (the trainer crashed,
    /// ran out of memory, lost its device): it becomes claimable at once and,
    /// unlike [`release`](JobQueue::release), this delivery counts, so a job
    /// that fails every time is dead-lettered as `max_deliveries` after the
    /// limit instead of looping — without waiting out a lease per attempt.
    /// `Ok(false)`: this consumer did not own it any more.
    fn abandon(
        &self,
        consumer: &Consumer,
        lease: &Lease,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Fails the job permanently: no retry. Records a `dead` outcome, appends
    /// a dead letter (reason, error text, delivery count, payload) and a `dead`
    /// result event. `reason` is a snake_case token (`invalid_payload`,
    /// `over_budget`); `error_text` is cut to 4 KiB. Same ownership and
    /// idempotency rules as [`complete`](JobQueue::complete).
    fn dead_letter(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        reason: &str,
        error_text: &str,
    ) -> impl Future<Output = Result<Completion>> + Send;

    /// Controller: up to `max` result events. The first calls of a handle
    /// return every event delivered before but never acknowledged (by any
    /// consumer of the `controller` group — e.g. a crashed predecessor); once
    /// those are exhausted, new events, waiting up to `block` for one.
    ///
    /// Events may repeat after a crash (at-least-once): apply each job id once.
    /// Acknowledge with [`ack_results`](JobQueue::ack_results) only after the
    /// controller's checkpoint that includes them is durable.
    fn read_results(
        &self,
        consumer: &Consumer,
        max: usize,
        block: Duration,
    ) -> impl Future<Output = Result<Vec<ResultEvent>>> + Send;

    /// Controller: acknowledges result events (by [`ResultEvent::id`]) so they
    /// are not re-read after a restart. Returns how many were pending.
    fn ack_results(&self, ids: &[String]) -> impl Future<Output = Result<u64>> + Send;

    /// Operator snapshot; `limit` caps the in-flight and dead-letter lists.
    fn status(&self, limit: usize) -> impl Future<Output = Result<QueueStatus>> + Send;

    /// True once the job has its outcome (completed or dead-lettered): its
    /// checkpoint directory is garbage.
    fn is_finished(&self, job_id: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The run's lifecycle as last set; [`RunLifecycle::Running`] when it was
    /// never set.
    fn lifecycle(&self) -> impl Future<Output = Result<RunLifecycle>> + Send;

    /// Controller or operator: sets the run's lifecycle.
    fn set_lifecycle(&self, state: RunLifecycle) -> impl Future<Output = Result<()>> + Send;

    /// Operator, after a fix: puts dead-lettered jobs back in the queue.
    ///
    /// For each job whose outcome is a dead letter, atomically: the outcome
    /// and the job's dead letters are removed and its payload (from its
    /// latest dead letter) is added as a new entry, with the delivery count
    /// starting afresh. Jobs that finished with a result, that have no
    /// outcome yet, or that the run never had are left alone and reported
    /// ([`Requeued`]), one answer per id, in order. The job's earlier `dead`
    /// result event stays in the results stream: the controller already
    /// applied it, and takes the job's new result as a *late* child.
    fn requeue(&self, job_ids: &[String]) -> impl Future<Output = Result<Vec<Requeued>>> + Send;
    // --- Early stopping -------------------------------------------------

    /// Worker, at the end of an epoch that is a rung: records the child's
    /// score `value` (higher is better) at rung `epoch` and returns the
    /// decision `rule` takes against the scores other children recorded at
    /// that rung before ([`nasfleet_util::rung::decide`]), in one atomic
    /// step. Keyed by (job, epoch): a repeated call — a resumed child, a
    /// retried call after a lost reply — gets the decision recorded the
    /// first time (with `first: false`), whatever its `value`, so a rung
    /// decides once per child. Same ownership rule as
    /// [`heartbeat`](JobQueue::heartbeat): a consumer that lost the lease
    /// gets [`RungReply::LeaseLost`] and nothing is recorded; a finished job
    /// gets [`RungReply::Finished`]. Does not extend the lease.
    fn record_rung(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        epoch: u32,
        value: f64,
        rule: RungRule,
    ) -> impl Future<Output = Result<RungReply>> + Send;
}

/// A backend chosen at run time (embedded single-machine mode or Redis),
/// for binaries that decide from their configuration.
#[derive(Clone, Debug)]
pub enum AnyQueue {
    /// In-process.
    Memory(MemoryQueue),
    /// Redis.
    Redis(RedisQueue),
}

impl From<MemoryQueue> for AnyQueue {
    fn from(q: MemoryQueue) -> Self {
        AnyQueue::Memory(q)
    }
}

impl From<RedisQueue> for AnyQueue {
    fn from(q: RedisQueue) -> Self {
        AnyQueue::Redis(q)
    }
}

macro_rules! dispatch {
    ($self:ident, $q:ident => $call:expr) => {
        match $self {
            AnyQueue::Memory($q) => $call.await,
            AnyQueue::Redis($q) => $call.await,
        }
    };
}

impl JobQueue for AnyQueue {
    async fn enqueue(&self, job_id: &str, payload: &str) -> Result<EnqueueOutcome> {
        dispatch!(self, q => q.enqueue(job_id, payload))
    }

    async fn fetch(&self, consumer: &Consumer, block: Duration) -> Result<Option<Lease>> {
        dispatch!(self, q => q.fetch(consumer, block))
    }

    async fn heartbeat(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        progress_json: &str,
    ) -> Result<bool> {
        dispatch!(self, q => q.heartbeat(consumer, lease, progress_json))
    }

    async fn worker_alive(&self, consumer: &Consumer) -> Result<()> {
        dispatch!(self, q => q.worker_alive(consumer))
    }

    async fn complete(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        result_json: &str,
    ) -> Result<Completion> {
        dispatch!(self, q => q.complete(consumer, lease, result_json))
    }

    async fn release(&self, consumer: &Consumer, lease: &Lease) -> Result<bool> {
        dispatch!(self, q => q.release(consumer, lease))
    }

    async fn abandon(&self, consumer: &Consumer, lease: &Lease) -> Result<bool> {
        dispatch!(self, q => q.abandon(consumer, lease))
    }

    async fn dead_letter(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        reason: &str,
        error_text: &str,
    ) -> Result<Completion> {
        dispatch!(self, q => q.dead_letter(consumer, lease, reason, error_text))
    }

    async fn read_results(
        &self,
        consumer: &Consumer,
        max: usize,
        block: Duration,
    ) -> Result<Vec<ResultEvent>> {
        dispatch!(self, q => q.read_results(consumer, max, block))
    }

    async fn ack_results(&self, ids: &[String]) -> Result<u64> {
        dispatch!(self, q => q.ack_results(ids))
    }

    async fn status(&self, limit: usize) -> Result<QueueStatus> {
        dispatch!(self, q => q.status(limit))
    }

    async fn is_finished(&self, job_id: &str) -> Result<bool> {
        dispatch!(self, q => q.is_finished(job_id))
    }

    async fn lifecycle(&self) -> Result<RunLifecycle> {
        dispatch!(self, q => q.lifecycle())
    }

    async fn set_lifecycle(&self, state: RunLifecycle) -> Result<()> {
        dispatch!(self, q => q.set_lifecycle(state))
    }

    async fn requeue(&self, job_ids: &[String]) -> Result<Vec<Requeued>> {
        dispatch!(self, q => q.requeue(job_ids))
    }

    async fn record_rung(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        epoch: u32,
        value: f64,
        rule: RungRule,
    ) -> Result<RungReply> {
        dispatch!(self, q => q.record_rung(consumer, lease, epoch, value, rule))
    }
}
