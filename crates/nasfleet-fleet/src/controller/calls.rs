//! The controller's queue calls. Every call is idempotent, so each is
//! retried through outages (Redis restarting, a lost connection) with one
//! back-off, until it succeeds, fails in a way retrying cannot fix, or
//! shutdown is requested.

use std::future::Future;
use std::time::Duration;

use nasfleet_queue::{Consumer, EnqueueOutcome, JobQueue, QueueError, ResultEvent, RunLifecycle};
use nasfleet_util::Backoff;
use tracing::{debug, warn};

use crate::error::{is_fatal, Result};
use crate::shutdown::Shutdown;

/// The pause between retries: 100 ms, doubling up to 10 s.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
}

/// The queue and the shutdown request that interrupts waiting on it.
pub(super) struct Calls<Q> {
    pub(super) queue: Q,
    pub(super) shutdown: Shutdown,
}

/// Reads results, pausing after failures.
pub(super) struct Reader {
    consumer: Consumer,
    max: usize,
    block: Duration,
    backoff: Backoff,
}

impl Reader {
    /// Reads up to `max` events at a time for `consumer`, waiting up to `block`.
    pub(super) fn new(consumer: Consumer, max: usize, block: Duration) -> Self {
        Reader { consumer, max, block, backoff: backoff() }
    }
}

impl<Q: JobQueue> Calls<Q> {
    /// Retries `call` until it succeeds (`Some`), fails for good (`Err`) or
    /// shutdown is requested (`None`).
    async fn retry<T, F, Fut>(&self, op: &'static str, mut call: F) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, QueueError>>,
    {
        let mut backoff = backoff();
        let mut shutdown = self.shutdown.clone();
        loop {
            match call().await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => {
                    warn!(op, error = %e, "queue call failed; retrying");
                    if self.shutdown.is_requested() {
                        return Ok(None);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = shutdown.requested() => return Ok(None),
                    }
                }
            }
        }
    }

    /// Enqueues a job (the queue ignores one it has or that finished).
    /// `Ok(false)`: stopped on request.
    pub(super) async fn enqueue(&self, id: &str, payload: &str) -> Result<bool> {
        let r = self.retry("enqueue", move || self.queue.enqueue(id, payload)).await?;
        match r {
            None => Ok(false),
            Some(EnqueueOutcome::Enqueued { .. }) => Ok(true),
            Some(other) => {
                debug!(job_id = %id, outcome = ?other, "already known to the queue");
                Ok(true)
            }
        }
    }

    /// Sets the run's lifecycle. `Ok(false)`: stopped on request.
    pub(super) async fn set_lifecycle(&self, state: RunLifecycle) -> Result<bool> {
        Ok(self.retry("set_lifecycle", move || self.queue.set_lifecycle(state)).await?.is_some())
    }

    /// True when an operator asked the run to stop (`nasfleet controller
    /// stop`). A failed read is not a stop request: it is logged and the
    /// next step asks again.
    pub(super) async fn stop_requested(&self) -> Result<bool> {
        match self.queue.lifecycle().await {
            Ok(l) => Ok(l == RunLifecycle::Stopping),
            Err(e) if is_fatal(&e) => Err(e.into()),
            Err(e) => {
                warn!(error = %e, "cannot read the run's lifecycle; asking again next step");
                Ok(false)
            }
        }
    }

    /// Acknowledges result events. `Ok(false)`: stopped on request (they
    /// will be re-read and ignored after a resume).
    pub(super) async fn ack(&self, ids: &[String]) -> Result<bool> {
        Ok(self.retry("ack_results", move || self.queue.ack_results(ids)).await?.is_some())
    }

    /// One read of result events. Empty when none came, when shutdown was
    /// requested, or after a failed read (having paused first).
    pub(super) async fn read(&self, r: &mut Reader) -> Result<Vec<ResultEvent>> {
        let mut shutdown = self.shutdown.clone();
        let read = tokio::select! {
            read = self.queue.read_results(&r.consumer, r.max, r.block) => read,
            _ = shutdown.requested() => return Ok(Vec::new()),
        };
        match read {
            Ok(events) => {
                r.backoff.reset();
                Ok(events)
            }
            Err(e) if is_fatal(&e) => Err(e.into()),
            Err(e) => {
                warn!(error = %e, "reading results failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(r.backoff.next_delay()) => {}
                    _ = shutdown.requested() => {}
                }
                Ok(Vec::new())
            }
        }
    }

    /// One non-blocking read of the result events still there when the run
    /// is over: events of applied jobs left pending by a predecessor that
    /// crashed between its last checkpoint and its acknowledgement, or a
    /// late child's result. Best-effort: empty after a failure (they would
    /// only be re-read by a resumed controller).
    pub(super) async fn leftovers(&self, r: &Reader) -> Vec<ResultEvent> {
        match self.queue.read_results(&r.consumer, r.max, Duration::ZERO).await {
            Ok(events) => events,
            Err(e) => {
                warn!(error = %e, "cannot read leftover results");
                Vec::new()
            }
        }
    }

    /// True while a dead-lettered job (`job_ids`) is back in the queue
    /// (`nasfleet controller requeue`) without an outcome: its late result
    /// is still to come. A failed read counts as waiting (asked again next
    /// step).
    pub(super) async fn awaiting_requeued(&self, job_ids: impl Iterator<Item = String>) -> Result<bool> {
        for id in job_ids {
            match self.queue.is_finished(&id).await {
                Ok(true) => {}
                Ok(false) => return Ok(true),
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => {
                    warn!(error = %e, "cannot check a requeued job; asking again next step");
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}
