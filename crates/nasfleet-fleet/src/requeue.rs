//! Putting dead letters back after a fix (`nasfleet controller requeue`).
//!
//! A child is dead-lettered when its job can never succeed as things are:
//! an invalid payload, a trainer bug, a poison job that crashed every
//! worker. Once the cause is fixed (a new worker build, a bigger device),
//! the operator puts the dead letters back: the queue removes each job's
//! dead outcome and letters and adds its payload again as a new entry
//! (`JobQueue::requeue`, one atomic call). The controller already applied
//! those children as failures; when a requeued child finishes, it applies
//! its result as a *late child* (history, totals, best child — not the
//! strategy's update; see `controller::outcome::settle_late`), exactly once.
//! A run whose controller has exited is continued with `nasfleet
//! controller start --resume`: it waits for the requeued children before
//! finishing again. A finished run becomes `running` again when children
//! are requeued, so that workers stay for them.

use std::collections::BTreeSet;

use nasfleet_queue::{JobQueue, Requeued, RunLifecycle};

use crate::error::Result;

/// Most dead letters one `requeue` without job ids reads.
pub const MAX_DEAD_LETTERS: usize = 100_000;

/// What `requeue` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequeueReport {
    /// Each job asked for (or each dead letter, when none was named), with
    /// the queue's answer, in order.
    pub jobs: Vec<(String, Requeued)>,
    /// The run's lifecycle before: a `finished` run with children back in
    /// the queue is `running` again (so workers take them); a `stopped` or
    /// `stopping` one stays as the operator left it. Either way its
    /// controller must be resumed to collect the requeued children.
    pub lifecycle: RunLifecycle,
}

impl RequeueReport {
    /// How many jobs are back in the queue.
    pub fn requeued(&self) -> usize {
        self.jobs.iter().filter(|(_, r)| matches!(r, Requeued::Requeued { .. })).count()
    }
}

/// Requeues `job_ids`, or, when empty, every dead letter of the run whose
/// reason is `reason` (any reason when `None`).
pub async fn requeue<Q: JobQueue>(queue: &Q, job_ids: &[String], reason: Option<&str>) -> Result<RequeueReport> {
    let jobs: Vec<String> = if job_ids.is_empty() {
        let status = queue.status(MAX_DEAD_LETTERS).await?;
        let mut seen = BTreeSet::new();
        // Oldest first, each job once.
        status
            .dead_letters
            .into_iter()
            .rev()
            .filter(|d| reason.is_none_or(|r| d.reason == r))
            .filter_map(|d| seen.insert(d.job_id.clone()).then_some(d.job_id))
            .collect()
    } else {
        job_ids.to_vec()
    };
    let lifecycle = queue.lifecycle().await?;
    let answers = if jobs.is_empty() { Vec::new() } else { queue.requeue(&jobs).await? };
    let report = RequeueReport { jobs: jobs.into_iter().zip(answers).collect(), lifecycle };
    if report.requeued() > 0 && lifecycle == RunLifecycle::Finished {
        // Workers leave a finished run; these children need them.
        queue.set_lifecycle(RunLifecycle::Running).await?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasfleet_queue::{Consumer, MemoryQueue, QueueConfig};
    use std::time::Duration;

    async fn dead(q: &MemoryQueue, job: &str, reason: &str) {
        q.enqueue(job, "{}").await.unwrap();
        let w = Consumer::new("h", "cpu").unwrap();
        let lease = q.fetch(&w, Duration::ZERO).await.unwrap().unwrap();
        q.dead_letter(&w, &lease, reason, "x").await.unwrap();
    }

    #[tokio::test]
    async fn without_job_ids_every_dead_letter_of_the_reason_is_requeued() {
        let q = MemoryQueue::new(QueueConfig::default()).unwrap();
        dead(&q, "a", "trainer_error").await;
        dead(&q, "b", "invalid_payload").await;
        dead(&q, "c", "trainer_error").await;
        let r = requeue(&q, &[], Some("trainer_error")).await.unwrap();
        let names: Vec<&str> = r.jobs.iter().map(|(j, _)| j.as_str()).collect();
        assert_eq!(names, ["a", "c"], "oldest first, only the reason asked");
        assert_eq!((r.requeued(), r.lifecycle), (2, RunLifecycle::Running));
        q.set_lifecycle(RunLifecycle::Finished).await.unwrap();
        let r = requeue(&q, &[], None).await.unwrap();
        assert!(matches!(&r.jobs[..], [(b, Requeued::Requeued { .. })] if b == "b"), "{r:?}");
        assert_eq!(r.lifecycle, RunLifecycle::Finished);
        assert_eq!(q.lifecycle().await.unwrap(), RunLifecycle::Running, "a finished run with work is running again");
        let r = requeue(&q, &[], None).await.unwrap();
        assert!(r.jobs.is_empty(), "nothing dead any more");
        let r = requeue(&q, &["a".to_owned(), "zzz".to_owned()], None).await.unwrap();
        assert_eq!(r.jobs.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>(), ["pending", "unknown"]);
    }
}
