//! Stopping a run from outside (`nasfleet controller stop`): the run's
//! lifecycle in the queue goes to `stopping`; its controller, which reads
//! it every step, stops issuing jobs, checkpoints and sets `stopped`;
//! workers finish the child in hand and leave (exit 0) once they see
//! either. `nasfleet controller start --resume` continues the run exactly
//! as if it had never stopped (results posted meanwhile wait in the
//! results stream) and sets it `running` again.

use std::time::Duration;

use nasfleet_queue::{JobQueue, RunLifecycle};
use tokio::time::Instant;

use crate::error::Result;

/// Asks the run's controller to stop, then waits up to `wait` (polling
/// every `poll`) for it to confirm. Returns the lifecycle seen last:
/// `Stopped` (confirmed), `Stopping` (no controller confirmed in time: it
/// is not running, or is busy; it will stop at its next step, and workers
/// leave either way), or `Finished` (the run had already ended; nothing is
/// changed).
pub async fn request_stop<Q: JobQueue>(queue: &Q, wait: Duration, poll: Duration) -> Result<RunLifecycle> {
    match queue.lifecycle().await? {
        l @ (RunLifecycle::Finished | RunLifecycle::Stopped) => return Ok(l),
        RunLifecycle::Running | RunLifecycle::Stopping => queue.set_lifecycle(RunLifecycle::Stopping).await?,
    }
    let end = Instant::now() + wait;
    loop {
        let l = queue.lifecycle().await?;
        if l != RunLifecycle::Stopping || Instant::now() >= end {
            return Ok(l);
        }
        tokio::time::sleep(poll.min(end - Instant::now())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasfleet_queue::{MemoryQueue, QueueConfig};

    fn queue() -> MemoryQueue {
        MemoryQueue::new(QueueConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn a_stop_is_confirmed_by_the_controller_or_left_pending() {
        let q = queue();
        // Nobody confirms: the request stays, workers leave on it.
        let l = request_stop(&q, Duration::from_millis(30), Duration::from_millis(5)).await.unwrap();
        assert_eq!(l, RunLifecycle::Stopping);
        // A controller confirms.
        let confirming = {
            let q = q.clone();
            tokio::spawn(async move {
                while q.lifecycle().await.unwrap() != RunLifecycle::Stopping {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                q.set_lifecycle(RunLifecycle::Stopped).await.unwrap();
            })
        };
        q.set_lifecycle(RunLifecycle::Running).await.unwrap();
        let l = request_stop(&q, Duration::from_secs(30), Duration::from_millis(5)).await.unwrap();
        assert_eq!(l, RunLifecycle::Stopped);
        confirming.await.unwrap();
    }

    #[tokio::test]
    async fn a_finished_run_is_left_alone() {
        let q = queue();
        q.set_lifecycle(RunLifecycle::Finished).await.unwrap();
        let l = request_stop(&q, Duration::from_secs(30), Duration::from_millis(5)).await.unwrap();
        assert_eq!(l, RunLifecycle::Finished);
        assert_eq!(q.lifecycle().await.unwrap(), RunLifecycle::Finished);
    }
}
