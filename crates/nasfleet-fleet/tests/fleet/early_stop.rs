//! Asynchronous early stopping through the whole fleet, with the fake
//! trainer (a child's accuracy at epoch e is `reward · e / epochs`).
//!
//! * In process (memory queue, several children in flight): stopped children
//!   end at rungs with the reward of their last intermediate accuracy, and
//!   the controller's epoch accounting adds up.
//! * Fault scenarios (Redis, worker processes) with one child in flight, so
//!   that children reach each rung in issue order and the decisions are
//!   those of an uninterrupted in-process run: a worker killed (kill -9),
//!   preempted (SIGTERM) or stopped past its lease (SIGSTOP) right after a
//!   `stop` was recorded at a rung and before acting on it; and a rung
//!   call whose reply is lost, retried. Each ends like
//!   the uninterrupted run (history, updates, strategy state) with exactly
//!   one outcome per job, and the queue's rung hashes hold exactly one
//!   decision per (child, rung) that agrees with the history.

use std::collections::BTreeMap;

use nasfleet_core::early_stop::{EarlyStopConfig, EarlyStopRule};
use nasfleet_core::strategy::build_pure_strategy;
use nasfleet_core::ExperimentConfig;
use nasfleet_fleet::fake::{fake_trainers, FakeTrainerConfig};
use nasfleet_fleet::rundir::HistoryLine;
use nasfleet_fleet::{run_local, shutdown_pair};
use nasfleet_queue::testing::TempDir;
use nasfleet_queue::RedisQueue;

use crate::faults::report;
use crate::support::*;

const EPOCHS: usize = 4;

/// ASHA with rungs at 1 and 2 (eta 2) over 4-epoch children, deciding from
/// the first peer on.
fn asha() -> EarlyStopConfig {
    EarlyStopConfig { rule: EarlyStopRule::Asha, min_epochs: 1, eta: 2, min_peers: 1, ..EarlyStopConfig::default() }
}

fn stopping_config(total: u64, batch: usize, in_flight: usize) -> ExperimentConfig {
    let mut c = config(total, batch, in_flight, EPOCHS);
    c.early_stop = asha();
    c
}

/// Checks what every stopped history line must satisfy and returns
/// (stopped children, epochs saved).
fn check_stopped(history: &[HistoryLine], rule: &EarlyStopConfig) -> (u64, u64) {
    let rungs = rule.rungs(EPOCHS);
    let (mut stopped, mut saved) = (0, 0);
    for h in history {
        let metrics = h.metrics.as_array().map(Vec::len).unwrap_or_default();
        match h.stopped_at {
            Some(at) => {
                assert_eq!(h.status, "stopped", "{h:?}");
                assert!(rungs.contains(&at), "stopped at {at}, not a rung {rungs:?}: {h:?}");
                assert_eq!(metrics, at, "a stopped child reports the epochs it trained: {h:?}");
                let last = h.metrics[at - 1]["valid_accuracy"].as_f64().unwrap();
                assert_eq!(h.reward, Some(last), "its reward is its last intermediate accuracy: {h:?}");
                stopped += 1;
                saved += (EPOCHS - at) as u64;
            }
            None if h.status == "ok" => assert_eq!(metrics, EPOCHS, "{h:?}"),
            None => {}
        }
    }
    (stopped, saved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_children_end_at_rungs_and_the_controller_counts_the_epochs_saved() {
    let cfg = stopping_config(24, 3, 6);
    let dir = TempDir::new("nasfleet-early-stop-local").unwrap();
    let opts = local_opts(&dir, 3, false);
    let fake = FakeTrainerConfig { step: std::time::Duration::from_millis(5), ..FakeTrainerConfig::default() };
    let s = within(60, run_local(&cfg, build_pure_strategy(&cfg).unwrap(), fake_trainers(fake), opts, shutdown_pair().1))
        .await
        .unwrap();
    assert!(s.finished);
    let h = history(&dir.path().join("run"));
    assert_eq!(h.len(), 24);
    let (stopped, saved) = check_stopped(&h, &cfg.early_stop);
    assert!(stopped > 0, "ASHA with eta 2 stops someone among 24 children");
    assert_eq!((s.state.stopped, s.state.epochs_saved), (stopped, saved));
    let trained: u64 = h.iter().map(|l| l.metrics.as_array().map(Vec::len).unwrap_or_default() as u64).sum();
    assert_eq!(s.state.epochs_trained, trained);
    assert_eq!(trained + saved, 24 * EPOCHS as u64, "every planned epoch is trained or saved");
    // The summary line shows it.
    let line = nasfleet_fleet::status::early_stop_line(&s.state).unwrap();
    assert!(line.contains(&format!("{stopped} of 24 rewarded children stopped")), "{line}");
}

/// Every (job, rung) decision in the queue's rung hashes; each job's first
/// `stop` must be where its history line says it stopped.
async fn rung_decisions(q: &RedisQueue) -> BTreeMap<(String, usize), String> {
    let client = redis::Client::open(q.config().url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut out = BTreeMap::new();
    for epoch in 1..EPOCHS {
        let key = q.keys().rung(epoch as u32);
        let m: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&key).query_async(&mut c).await.unwrap();
        for (job, rec) in m {
            let d = rec.split(' ').next().unwrap().to_owned();
            assert!(d == "continue" || d == "stop", "{key} {job}: {rec}");
            out.insert((job, epoch), d);
        }
    }
    out
}

async fn assert_decisions_agree(sc: &Scenario) {
    let decisions = rung_decisions(&sc.queue).await;
    for h in history(&sc.run_dir) {
        let first_stop = (1..EPOCHS).find(|e| decisions.get(&(h.job_id.clone(), *e)).map(String::as_str) == Some("stop"));
        assert_eq!(h.stopped_at, first_stop, "{}: history and the recorded decisions disagree", h.job_id);
        if let Some(at) = first_stop {
            // Nothing was decided for it past the rung it stopped at.
            assert!(!decisions.keys().any(|(j, e)| *j == h.job_id && *e > at), "{} decided past its stop", h.job_id);
        }
    }
}

/// Waits for the first `stop` in the rung trace written by process `pid`;
/// returns the job.
async fn wait_stop_by(sc: &Scenario, rung_trace: &std::path::Path, pid: u32) -> String {
    let mut job = String::new();
    eventually("a stop decision heard by the worker", 60, || {
        let found = std::fs::read_to_string(rung_trace).unwrap_or_default().lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[2] == "stop" && f[3] == pid.to_string()).then(|| f[0].to_owned())
        });
        if let Some(j) = &found {
            job = j.clone();
        }
        async move { found.is_some() }
    })
    .await;
    let _ = sc;
    job
}

/// A worker process that pauses 3 s after every `stop` decision, with a
/// shared checkpoint directory, tracing decisions to `rung_trace`.
fn pausing_worker(sc: &Scenario, rung_trace: &std::path::Path) -> Node {
    let work = sc.dir.path().join("work");
    sc.worker_node(
        20,
        &["--work-dir", work.to_str().unwrap(), "--rung-trace", rung_trace.to_str().unwrap(), "--rung-pause-ms", "3000"],
    )
}

/// A worker process resuming from the shared checkpoint directory.
fn plain_worker(sc: &Scenario) -> Node {
    let work = sc.dir.path().join("work");
    sc.worker_node(20, &["--work-dir", work.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_right_after_a_stop_decision_is_not_decided_twice() {
    let sc = Scenario::start("fleet-early-stop-kill", stopping_config(8, 1, 1)).await;
    let rung_trace = sc.dir.path().join("rungs");
    let ctrl = sc.controller();
    let mut a = pausing_worker(&sc, &rung_trace);
    let victim = wait_stop_by(&sc, &rung_trace, a.pid()).await;
    a.kill9();
    // The next worker claims the expired lease, resumes the child from its
    // checkpoint and hears the recorded decision again.
    let mut b = plain_worker(&sc);
    ctrl.finish(120).await;
    let line = history(&sc.run_dir).into_iter().find(|l| l.job_id == victim).unwrap();
    assert_eq!(line.status, "stopped", "{line:?}");
    b.signal("TERM");
    b.exit(20).await;
    let r = report(&b);
    assert!(r.rung_repeats >= 1, "the resumed child was answered from the record: {r:?}");
    assert_decisions_agree(&sc).await;
    sc.assert_like_reference(8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_preempted_right_after_a_stop_decision_posts_it_once() {
    let sc = Scenario::start("fleet-early-stop-term", stopping_config(8, 1, 1)).await;
    let rung_trace = sc.dir.path().join("rungs");
    let ctrl = sc.controller();
    let mut a = pausing_worker(&sc, &rung_trace);
    let victim = wait_stop_by(&sc, &rung_trace, a.pid()).await;
    // SIGTERM while the trainer holds a recorded stop: the child's training
    // is over, so the worker posts it (once) and leaves.
    a.signal("TERM");
    let code = a.exit(30).await;
    assert!(code.success(), "{code}; log:\n{}", a.log());
    let r = report(&a);
    assert_eq!((r.stopped_early, r.stopped), (1, true), "{r:?}");
    let b = plain_worker(&sc);
    ctrl.finish(120).await;
    drop(b);
    let line = history(&sc.run_dir).into_iter().find(|l| l.job_id == victim).unwrap();
    assert_eq!(line.status, "stopped", "{line:?}");
    assert_decisions_agree(&sc).await;
    sc.assert_like_reference(8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_worker_past_its_lease_at_a_rung_changes_nothing() {
    let sc = Scenario::start("fleet-early-stop-stale", stopping_config(8, 1, 1)).await;
    let rung_trace = sc.dir.path().join("rungs");
    let ctrl = sc.controller();
    let mut a = pausing_worker(&sc, &rung_trace);
    let victim = wait_stop_by(&sc, &rung_trace, a.pid()).await;
    a.signal("STOP");
    // Past the 1 s lease, another worker takes the child over and finishes
    // the run; then the stale worker wakes up holding its old decision.
    let b = plain_worker(&sc);
    eventually("the child is finished by the other worker", 60, || {
        let q = sc.queue.clone();
        let v = victim.clone();
        async move { nasfleet_queue::JobQueue::is_finished(&q, &v).await.unwrap_or(false) }
    })
    .await;
    a.signal("CONT");
    ctrl.finish(120).await;
    a.signal("TERM");
    a.exit(30).await;
    let r = report(&a);
    // It finished earlier children; the one it held when stopped is
    // dropped (aborted on its heartbeat, or refused as a duplicate).
    assert_eq!(r.stopped_early, 0, "the stale worker's stopped child is not the outcome: {r:?}");
    assert_eq!(r.aborted + r.duplicates + r.lease_lost, 1, "{r:?}");
    drop(b);
    assert_decisions_agree(&sc).await;
    sc.assert_like_reference(8).await;
}

/// A queue whose first `lose` rung calls are applied but answer with an
/// error, as a reply lost on the network would.
#[derive(Clone)]
struct LoseRungReplies<Q> {
    inner: Q,
    lose: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

mod delegate {
    use super::LoseRungReplies;
    use nasfleet_queue::{
        Completion, Consumer, EnqueueOutcome, JobQueue, Lease, QueueError, QueueStatus, ResultEvent, RunLifecycle,
        RungReply, RungRule,
    };
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    type R<T> = nasfleet_queue::Result<T>;

    impl<Q: JobQueue> JobQueue for LoseRungReplies<Q> {
        async fn enqueue(&self, j: &str, p: &str) -> R<EnqueueOutcome> {
            self.inner.enqueue(j, p).await
        }
        async fn fetch(&self, c: &Consumer, b: Duration) -> R<Option<Lease>> {
            self.inner.fetch(c, b).await
        }
        async fn heartbeat(&self, c: &Consumer, l: &Lease, p: &str) -> R<bool> {
            self.inner.heartbeat(c, l, p).await
        }
        async fn worker_alive(&self, c: &Consumer) -> R<()> {
            self.inner.worker_alive(c).await
        }
        async fn complete(&self, c: &Consumer, l: &Lease, r: &str) -> R<Completion> {
            self.inner.complete(c, l, r).await
        }
        async fn release(&self, c: &Consumer, l: &Lease) -> R<bool> {
            self.inner.release(c, l).await
        }
        async fn abandon(&self, c: &Consumer, l: &Lease) -> R<bool> {
            self.inner.abandon(c, l).await
        }
        async fn dead_letter(&self, c: &Consumer, l: &Lease, r: &str, e: &str) -> R<Completion> {
            self.inner.dead_letter(c, l, r, e).await
        }
        async fn read_results(&self, c: &Consumer, m: usize, b: Duration) -> R<Vec<ResultEvent>> {
            self.inner.read_results(c, m, b).await
        }
        async fn ack_results(&self, ids: &[String]) -> R<u64> {
            self.inner.ack_results(ids).await
        }
        async fn status(&self, limit: usize) -> R<QueueStatus> {
            self.inner.status(limit).await
        }
        async fn is_finished(&self, j: &str) -> R<bool> {
            self.inner.is_finished(j).await
        }
        async fn lifecycle(&self) -> R<RunLifecycle> {
            self.inner.lifecycle().await
        }
        async fn set_lifecycle(&self, s: RunLifecycle) -> R<()> {
            self.inner.set_lifecycle(s).await
        }
        async fn requeue(&self, jobs: &[String]) -> R<Vec<nasfleet_queue::Requeued>> {
            self.inner.requeue(jobs).await
        }
        async fn record_rung(&self, c: &Consumer, l: &Lease, e: u32, v: f64, rule: RungRule) -> R<RungReply> {
            let reply = self.inner.record_rung(c, l, e, v, rule).await?;
            let lost = self.lose.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if lost {
                return Err(QueueError::Task("rung reply lost (test)".into()));
            }
            Ok(reply)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rung_reply_lost_on_the_way_is_retried_without_a_second_decision() {
    let sc = Scenario::start("fleet-early-stop-lost-reply", stopping_config(8, 1, 1)).await;
    let ctrl = sc.controller();
    let lose = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(4));
    let q = LoseRungReplies { inner: sc.connect().await, lose: lose.clone() };
    let w = sc.worker_on(q, "w", 10, None);
    ctrl.finish(120).await;
    let r = w.stop().await;
    // The first question's reply was lost four times in a row (retries
    // included); the fifth call was answered from the record.
    assert_eq!(lose.load(std::sync::atomic::Ordering::SeqCst), 0, "four replies were lost");
    assert!(r.rung_repeats >= 1, "the retry was answered from the record: {r:?}");
    assert_decisions_agree(&sc).await;
    sc.assert_like_reference(8).await;
}
