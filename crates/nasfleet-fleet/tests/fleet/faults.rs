//! The fault scenarios of the queue spec, each against its own
//! `redis-server` (free loopback port, temp dir, AOF with fsync always),
//! killed by pid. Timings are scaled down: heartbeat 100 ms, lease 1 s.
//!
//! Each test sets up a [`Scenario`] and ends with the same two checks
//! ([`Scenario::assert_like_reference`]): every enqueued job has exactly
//! one outcome and one terminal event ([`assert_exactly_once`]), and the
//! run's history, update sequence and final strategy state equal an
//! uninterrupted in-process run with the same seed ([`reference`]) — so no
//! reward was lost, applied twice or applied out of order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nasfleet_core::config::TrainConfig;
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::space::cnn::CnnLayer;
use nasfleet_core::space::CnnArch;
use nasfleet_core::trainer::{JobSpec, JOB_FORMAT_VERSION};
use nasfleet_core::Architecture;
use nasfleet_fleet::fake::{CrashMode, FakeTrainerConfig};
use nasfleet_fleet::WorkerReport;
use nasfleet_queue::testing::TcpProxy;
use nasfleet_queue::{
    Completion, Consumer, EnqueueOutcome, JobQueue, Lease, QueueError, QueueStatus, RedisQueue, ResultEvent,
    RunLifecycle,
};

use crate::support::*;

pub(crate) fn report(node: &Node) -> WorkerReport {
    let out = node.stdout();
    let line = out.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("worker report {line:?}: {e}; log:\n{}", node.log()));
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {line}"));
    WorkerReport {
        jobs: n("jobs"),
        completed: n("completed"),
        dead_lettered: n("dead_lettered"),
        duplicates: n("duplicates"),
        lease_lost: n("lease_lost"),
        aborted: n("aborted"),
        abandoned: n("abandoned"),
        released: n("released"),
        left_to_expire: n("left_to_expire"),
        stopped_early: n("stopped_early"),
        rung_decisions: n("rung_decisions"),
        rung_repeats: n("rung_repeats"),
        stopped: v["stopped"].as_bool().unwrap_or(false),
        left: v["left"].as_str().map(str::to_owned),
    }
}

pub(crate) async fn status(q: &RedisQueue) -> QueueStatus {
    q.status(50).await.expect("status")
}

/// 1. kill -9 a worker mid-job → another worker finishes it; one outcome;
/// the reward is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_job_is_finished_by_another() {
    let sc = Scenario::start("fleet-kill-worker", config(8, 2, 4, 6)).await;
    let ctrl = sc.controller();
    let mut a = sc.worker_node(100, &[]);
    let a_name = a.consumer().await;
    let a_pid = a.pid();
    // Mid-job: A has finished epoch 1 of some job (of 6).
    sc.wait_trace("worker A is mid-job", |&(_, e, p)| p == a_pid && e == 1).await;
    a.kill9();
    let t = trace(&sc.trace);
    let (victim, last_epoch, _) = t.iter().rev().find(|(_, _, p)| *p == a_pid).cloned().unwrap();
    assert!(last_epoch < 5, "A finished {victim} before it was killed");
    let b = sc.worker_node(100, &[]);
    let b_name = b.consumer().await;
    ctrl.finish(120).await;
    let line = history(&sc.run_dir).into_iter().find(|l| l.job_id == victim).unwrap();
    assert_eq!(line.status, "ok");
    assert_eq!(line.worker, b_name, "the killed worker's job must be finished by the other");
    assert_ne!(line.worker, a_name);
    assert_eq!(line.attempt, Some(2), "the history records that the second delivery trained it");
    sc.assert_like_reference(8).await;
}

/// 2. SIGTERM → the trainer checkpoints, the job is released at once without
/// spending a delivery; ten preemptions in a row (with max_deliveries 3)
/// never dead-letter it; training resumes from the last checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_without_a_delivery_and_training_resumes() {
    let mut cfg = config(1, 1, 1, 30);
    // Only a release can hand the job to the next worker within the test's
    // patience: an expired lease would take a minute.
    cfg.fleet.lease_ms = 60_000;
    let sc = Scenario::start("fleet-sigterm", cfg).await;
    let ctrl = sc.controller();
    let work = sc.dir.path().join("work");
    let work_dir = ["--work-dir", work.to_str().unwrap()];
    for round in 0..10 {
        let mut w = sc.worker_node(100, &work_dir);
        sc.wait_trained_by("the new worker trains an epoch", w.pid()).await;
        w.signal("TERM");
        let code = w.exit(20).await;
        assert!(code.success(), "round {round}: worker exited with {code}; log:\n{}", w.log());
        let r = report(&w);
        assert_eq!((r.released, r.completed, r.stopped), (1, 0, true), "round {round}: {r:?}");
        let s = status(&sc.queue).await;
        assert_eq!(s.dead_total, 0, "round {round}: dead-lettered: {s:?}");
        assert_eq!(s.in_flight.len(), 1, "{s:?}");
        assert_eq!(s.in_flight[0].deliveries, 0, "round {round}: a release must not count as a delivery: {s:?}");
    }
    let last = sc.worker_node(100, &work_dir);
    ctrl.finish(60).await;
    drop(last);
    // Every epoch trained exactly once, in order, across eleven processes.
    let epochs: Vec<usize> = trace(&sc.trace).into_iter().map(|(_, e, _)| e).collect();
    assert_eq!(epochs, (0..30).collect::<Vec<_>>());
    let pids: std::collections::BTreeSet<u32> = trace(&sc.trace).into_iter().map(|(_, _, p)| p).collect();
    assert_eq!(pids.len(), 11, "each of the 11 workers trained part of the job");
    assert!(!work.join(&sc.run).join(sc.job_id(0)).exists(), "a finished job's checkpoint is removed");
    assert_eq!(history(&sc.run_dir)[0].attempt, Some(1), "releases are not attempts");
    sc.assert_like_reference(1).await;
}

/// 3. SIGSTOP a worker past its lease, then SIGCONT → the job is reassigned,
/// the stale worker's heartbeat fails and it aborts; counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_loses_its_lease_and_aborts() {
    let sc = Scenario::start("fleet-sigstop", config(1, 1, 1, 20)).await;
    let ctrl = sc.controller();
    let mut a = sc.worker_node(100, &[]);
    sc.wait_trained_by("A trains", a.pid()).await;
    a.signal("STOP");
    let b = sc.worker_node(100, &[]);
    let b_name = b.consumer().await;
    sc.wait_trained_by("B takes the expired lease and trains", b.pid()).await;
    let s = status(&sc.queue).await;
    assert_eq!(s.in_flight[0].owner, b_name, "{s:?}");
    a.signal("CONT");
    ctrl.finish(60).await;
    eventually("A notices", 20, || {
        let log = a.log();
        async move { log.contains("lease is gone") || log.contains("nothing applied") }
    })
    .await;
    a.signal("TERM");
    assert!(a.exit(20).await.success(), "{}", a.log());
    let r = report(&a);
    assert_eq!(r.completed, 0, "{r:?}");
    assert_eq!(r.aborted + r.lease_lost + r.duplicates, 1, "{r:?}");
    assert_eq!(history(&sc.run_dir)[0].worker, b_name);
    sc.assert_like_reference(1).await;
}

/// A queue that loses replies and heartbeats on purpose.
#[derive(Clone)]
struct Flaky<Q> {
    inner: Q,
    /// Heartbeats report success without reaching the queue (a stalled
    /// heartbeat path: the lease expires while the worker trains on).
    mute_heartbeats: bool,
    /// The first completion is applied, but its reply is lost.
    lose_first_reply: Arc<AtomicBool>,
}

impl<Q: JobQueue> JobQueue for Flaky<Q> {
    async fn enqueue(&self, job_id: &str, payload: &str) -> nasfleet_queue::Result<EnqueueOutcome> {
        self.inner.enqueue(job_id, payload).await
    }
    async fn fetch(&self, c: &Consumer, block: Duration) -> nasfleet_queue::Result<Option<Lease>> {
        self.inner.fetch(c, block).await
    }
    async fn heartbeat(&self, c: &Consumer, l: &Lease, p: &str) -> nasfleet_queue::Result<bool> {
        if self.mute_heartbeats {
            return Ok(true);
        }
        self.inner.heartbeat(c, l, p).await
    }
    async fn worker_alive(&self, c: &Consumer) -> nasfleet_queue::Result<()> {
        self.inner.worker_alive(c).await
    }
    async fn complete(&self, c: &Consumer, l: &Lease, r: &str) -> nasfleet_queue::Result<Completion> {
        let done = self.inner.complete(c, l, r).await?;
        if self.lose_first_reply.swap(false, Ordering::SeqCst) {
            return Err(QueueError::Task("reply lost (test)".into()));
        }
        Ok(done)
    }
    async fn release(&self, c: &Consumer, l: &Lease) -> nasfleet_queue::Result<bool> {
        self.inner.release(c, l).await
    }
    async fn abandon(&self, c: &Consumer, l: &Lease) -> nasfleet_queue::Result<bool> {
        self.inner.abandon(c, l).await
    }
    async fn dead_letter(&self, c: &Consumer, l: &Lease, reason: &str, e: &str) -> nasfleet_queue::Result<Completion> {
        self.inner.dead_letter(c, l, reason, e).await
    }
    async fn read_results(&self, c: &Consumer, max: usize, block: Duration) -> nasfleet_queue::Result<Vec<ResultEvent>> {
        self.inner.read_results(c, max, block).await
    }
    async fn ack_results(&self, ids: &[String]) -> nasfleet_queue::Result<u64> {
        self.inner.ack_results(ids).await
    }
    async fn status(&self, limit: usize) -> nasfleet_queue::Result<QueueStatus> {
        self.inner.status(limit).await
    }
    async fn is_finished(&self, job_id: &str) -> nasfleet_queue::Result<bool> {
        self.inner.is_finished(job_id).await
    }
    async fn lifecycle(&self) -> nasfleet_queue::Result<RunLifecycle> {
        self.inner.lifecycle().await
    }
    async fn set_lifecycle(&self, state: RunLifecycle) -> nasfleet_queue::Result<()> {
        self.inner.set_lifecycle(state).await
    }
    async fn requeue(&self, jobs: &[String]) -> nasfleet_queue::Result<Vec<nasfleet_queue::Requeued>> {
        self.inner.requeue(jobs).await
    }

    async fn record_rung(
        &self,
        c: &Consumer,
        l: &Lease,
        epoch: u32,
        value: f64,
        rule: nasfleet_queue::RungRule,
    ) -> nasfleet_queue::Result<nasfleet_queue::RungReply> {
        self.inner.record_rung(c, l, epoch, value, rule).await
    }
}

/// 4. A lost completion reply is retried and answered "already recorded";
/// a second worker finishing the same job gets "duplicate"; one result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_lost_reply_completions_are_applied_once() {
    let sc = Scenario::start("fleet-duplicate", config(1, 1, 1, 20)).await;
    let ctrl = sc.controller();
    // A: 20 epochs of 100 ms, heartbeats muted, so its lease expires after 1 s.
    let a_queue = Flaky {
        inner: sc.connect().await,
        mute_heartbeats: true,
        lose_first_reply: Arc::new(AtomicBool::new(false)),
    };
    let a = sc.worker_on(a_queue, "a", 100, Some(1));
    sc.wait_trace("A trains", |_| true).await;
    // B: fast, takes the expired lease, and its first completion reply is lost.
    let lose = Arc::new(AtomicBool::new(true));
    let b_queue = Flaky {
        inner: sc.connect().await,
        mute_heartbeats: false,
        lose_first_reply: lose.clone(),
    };
    let b = sc.worker_on(b_queue, "b", 10, None);
    let b_name = b.name.clone();
    ctrl.finish(60).await;
    assert!(!lose.load(Ordering::SeqCst), "B's reply was lost once");
    // A (max one job) trains its 20 epochs to the end after B finished, and
    // its completion is refused.
    let ra = within(30, a.handle).await.unwrap().unwrap();
    let rb = b.stop().await;
    assert_eq!((rb.completed, rb.duplicates), (1, 0), "B: {rb:?}");
    assert_eq!(ra.completed, 0, "A: {ra:?}");
    assert_eq!(ra.duplicates + ra.lease_lost, 1, "A: {ra:?}");
    assert_eq!(history(&sc.run_dir)[0].worker, b_name);
    sc.assert_like_reference(1).await;
}

fn layer(filters: u32) -> CnnLayer {
    CnnLayer {
        filter_height: 3,
        filter_width: 3,
        stride_height: 1,
        stride_width: 1,
        filters,
        inputs: vec![],
    }
}

fn job_payload(id: &str, run: &str, arch: serde_json::Value) -> serde_json::Value {
    serde_json::to_value(JobSpec {
        version: JOB_FORMAT_VERSION,
        job_id: id.into(),
        run: run.into(),
        arch,
        actions: vec![],
        policy_version: 0,
        train: TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        },
        reward: RewardConfig::default(),
        seed: 0,
        early_stop: Default::default(),
    })
    .unwrap()
}

/// 5. Malformed payloads (bad JSON, unknown fields, 10^6 layers, too many
/// layers, filter 0, a 2 MB payload, deep nesting, an unknown version) →
/// dead letters with precise reasons; the worker stays up and trains the
/// next, valid job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_dead_lettered_and_the_worker_goes_on() {
    let cfg = config(1, 1, 1, 1);
    let server = redis_server();
    let url = server.url();
    let run = "bad";
    let queue = connect(&url, run, &cfg).await;
    let arch = |layers: Vec<CnnLayer>| Architecture::Cnn(CnnArch { layers, max_pool_after: vec![] }).to_value();
    let id = |i: usize| format!("{run}-{i:06}");
    let mut cases: Vec<(String, &str, &str)> = Vec::new();
    cases.push((r#"{"version": 1, "job_id": "#.into(), "invalid_payload", "job JSON"));
    let mut unknown = job_payload(&id(1), run, arch(vec![layer(36)]));
    unknown["arch"]["layers"][0]["dilation"] = serde_json::json!(2);
    cases.push((unknown.to_string(), "invalid_architecture", "dilation"));
    let mut million = job_payload(&id(2), run, serde_json::json!("LAYERS"));
    million["arch"] = serde_json::json!("LAYERS");
    let million = million.to_string().replace(
        "\"LAYERS\"",
        &format!(r#"{{"version":1,"space":"cnn","layers":[{}{{}}],"max_pool_after":[]}}"#, "{},".repeat(999_999)),
    );
    cases.push((million, "payload_too_large", "at most 65536"));
    cases.push((job_payload(&id(3), run, arch(vec![layer(36); 100])).to_string(), "invalid_architecture", "layers"));
    cases.push((job_payload(&id(4), run, arch(vec![layer(0)])).to_string(), "invalid_architecture", "filters"));
    cases.push(("x".repeat(2 << 20), "payload_too_large", "2097152 bytes"));
    let deep = job_payload(&id(6), run, serde_json::json!("DEEP"))
        .to_string()
        .replace("\"DEEP\"", &format!("{}{}", "[".repeat(5000), "]".repeat(5000)));
    cases.push((deep, "invalid_payload", "recursion limit"));
    let mut version = job_payload(&id(7), run, arch(vec![layer(36)]));
    version["version"] = serde_json::json!(99);
    cases.push((version.to_string(), "unsupported_version", "version 99"));
    for (i, (payload, _, _)) in cases.iter().enumerate() {
        queue.enqueue(&id(i), payload).await.unwrap();
    }
    let valid = id(cases.len());
    queue
        .enqueue(&valid, &job_payload(&valid, run, arch(vec![layer(36), layer(48)])).to_string())
        .await
        .unwrap();
    let w = spawn_worker(queue.clone(), &cfg, run, "w", FakeTrainerConfig::default(), None);
    let me = Consumer::new("reader", "controller").unwrap();
    let mut events = Vec::new();
    while events.len() < cases.len() + 1 {
        events.extend(within(30, queue.read_results(&me, 100, Duration::from_millis(200))).await.unwrap());
    }
    let r = w.stop().await;
    assert_eq!((r.dead_lettered, r.completed), (cases.len() as u64, 1), "{r:?}");
    let s = status(&queue).await;
    assert_eq!(s.dead_total, cases.len() as u64);
    for (i, (_, reason, needle)) in cases.iter().enumerate() {
        let d = s.dead_letters.iter().find(|d| d.job_id == id(i)).unwrap_or_else(|| panic!("no dead letter for case {i}"));
        assert_eq!(d.reason, *reason, "case {i}: {}", d.error);
        assert!(d.error.contains(needle), "case {i}: {needle:?} not in {:?}", d.error);
    }
    let ok = events.iter().find(|e| e.job_id == valid).unwrap();
    assert!(matches!(&ok.outcome, nasfleet_queue::JobOutcome::Ok { .. }), "{ok:?}");
}

/// 6. A poison job (its trainer kills the worker process every time) is
/// dead-lettered after the delivery limit; the batch it belongs to does not
/// stall, and the rest of the run equals the uninterrupted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_job_is_dead_lettered_after_the_delivery_limit() {
    let crash = FakeTrainerConfig {
        crash_jobs: vec!["reference-000002".into()],
        crash: CrashMode::Panic,
        ..FakeTrainerConfig::default()
    };
    let sc = Scenario::start_with("fleet-poison", config(6, 2, 4, 2), crash).await;
    let ctrl = sc.controller();
    let poison = sc.job_id(2);
    let args = ["--crash-jobs", poison.as_str(), "--crash-mode", "exit"];
    let mut workers: Vec<Node> = (0..2).map(|_| sc.worker_node(20, &args)).collect();
    let mut crashes = 0;
    within(120, async {
        while !ctrl.handle.is_finished() {
            for w in workers.iter_mut() {
                if let Some(code) = w.try_exit() {
                    assert_eq!(code.code(), Some(101), "{}", w.log());
                    crashes += 1;
                    *w = sc.worker_node(20, &args);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    ctrl.finish(10).await;
    assert_eq!(crashes, sc.cfg.fleet.max_deliveries, "one crash per allowed delivery");
    let line = history(&sc.run_dir).into_iter().find(|l| l.job_id == poison).unwrap();
    assert_eq!((line.status.as_str(), line.reason.as_deref()), ("dead", Some("max_deliveries")));
    let s = status(&sc.queue).await;
    assert_eq!(s.dead_letters.len(), 1);
    assert_eq!(s.dead_letters[0].reason, "max_deliveries");
    sc.assert_like_reference(6).await;
}

/// 7. kill -9 redis-server with jobs in flight, restart it on the same
/// directory → controller and workers reconnect; every job ends once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_loses_nothing() {
    let mut sc = Scenario::start("fleet-redis-restart", config(12, 3, 6, 3)).await;
    let ctrl = sc.controller();
    let workers = sc.workers(2, 100).await;
    eventually("a few results", 30, || {
        let q = sc.queue.clone();
        async move { q.status(0).await.map(|s| s.results >= 3).unwrap_or(false) }
    })
    .await;
    sc.server.kill().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sc.server.restart().unwrap();
    ctrl.finish(120).await;
    stop_all(workers).await;
    sc.assert_like_reference(12).await;
}

/// 8. The controller killed at several points of a step (after the update,
/// after the history, after the checkpoint before enqueueing, mid-enqueue,
/// after acknowledging; during the initial enqueue; after the final
/// checkpoint before its acknowledgement) → after `--resume`
/// the update sequence equals an uninterrupted run; no reward lost or
/// applied twice; no job enqueued twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_killed_at_each_point_resumes_to_the_same_updates() {
    let mut sc = Scenario::start("fleet-controller-crash", config(12, 4, 8, 2)).await;
    // Step 0 enqueues 8 jobs, steps 1 and 2 apply a batch of 4 and propose
    // 4 more, step 3 applies the last batch and finishes.
    let points = [
        "updated:2",
        "history:2",
        "checkpointed:1",
        "enqueued:1:1",
        "acked:1",
        "checkpointed:0",
        "enqueued:0:3",
        "checkpointed:3",
    ];
    for (i, point) in points.iter().enumerate() {
        sc.use_run(&format!("crash{i}"), &format!("crash at {point}")).await;
        let workers = sc.workers(2, 20).await;
        let mut c = sc.controller_node(&["--crash-at", point]);
        let code = c.exit(60).await;
        assert_eq!(code.code(), Some(86), "{point}: {}", c.log());
        let mut c = sc.controller_node(&["--resume"]);
        let code = c.exit(60).await;
        assert!(code.success(), "{point}: resume failed: {}", c.log());
        stop_all(workers).await;
        sc.assert_like_reference(12).await;
    }
}

/// A controller killed with SIGKILL at an arbitrary moment and resumed with
/// `--resume` finishes with the same history as an uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_kill_9_and_resume_gives_the_same_history() {
    let sc = Scenario::start("fleet-controller-kill9", config(16, 2, 4, 2)).await;
    let workers = sc.workers(2, 30).await;
    let mut c = sc.controller_node(&[]);
    let hist = sc.run_dir.join("history.jsonl");
    eventually("some children applied", 60, || {
        let n = std::fs::read_to_string(&hist).map(|t| t.lines().count()).unwrap_or(0);
        async move { n >= 5 }
    })
    .await;
    c.kill9();
    let applied_before = history(&sc.run_dir).len();
    assert!(applied_before < 16, "killed too late to test anything");
    let mut c = sc.controller_node(&["--resume"]);
    assert!(c.exit(60).await.success(), "{}", c.log());
    stop_all(workers).await;
    sc.assert_like_reference(16).await;
}

/// The start of the network-cut tests: worker A reaches Redis through a
/// proxy (for the test to cut) and is training the only job; worker B,
/// connected directly, waits for work.
async fn a_behind_a_proxy_and_b(sc: &Scenario) -> (TcpProxy, InProcessWorker, InProcessWorker) {
    let proxy = TcpProxy::start(sc.server.addr()).await.unwrap();
    let a = sc.worker_on(sc.connect_to(&proxy.url()).await, "a", 100, None);
    sc.wait_trace("A trains", |_| true).await;
    let b = sc.worker("b", 100).await;
    (proxy, a, b)
}

/// 9a. A network cut between a worker and Redis shorter than the lease:
/// the worker keeps its job; nobody else trains it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_shorter_than_the_lease_keeps_the_job() {
    let mut cfg = config(1, 1, 1, 20);
    cfg.fleet.lease_ms = 4000;
    let sc = Scenario::start("fleet-cut-short", cfg).await;
    let ctrl = sc.controller();
    let (proxy, a, b) = a_behind_a_proxy_and_b(&sc).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    ctrl.finish(60).await;
    let a_name = a.name.clone();
    let (ra, rb) = (a.stop().await, b.stop().await);
    assert_eq!(ra.completed, 1, "A kept its job: {ra:?}");
    assert_eq!(rb.jobs, 0, "B never got it: {rb:?}");
    assert_eq!(history(&sc.run_dir)[0].worker, a_name);
    sc.assert_like_reference(1).await;
}

/// 9b. A cut longer than the lease: the job is reassigned; the cut-off
/// worker aborts (or is refused) when the network returns; counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_longer_than_the_lease_reassigns_once() {
    let sc = Scenario::start("fleet-cut-long", config(1, 1, 1, 30)).await;
    let ctrl = sc.controller();
    let (proxy, a, b) = a_behind_a_proxy_and_b(&sc).await;
    let b_name = b.name.clone();
    proxy.cut();
    eventually("B takes the job over", 20, || {
        let q = sc.queue.clone();
        let b_name = b_name.clone();
        async move { q.status(5).await.map(|s| s.in_flight.iter().any(|f| f.owner == b_name)).unwrap_or(false) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    ctrl.finish(60).await;
    let ra = a.stop().await;
    let rb = b.stop().await;
    assert_eq!(ra.completed, 0, "A: {ra:?}");
    assert_eq!(ra.aborted + ra.lease_lost + ra.duplicates, 1, "A: {ra:?}");
    assert_eq!(rb.completed, 1, "B: {rb:?}");
    assert_eq!(history(&sc.run_dir)[0].worker, b_name);
    sc.assert_like_reference(1).await;
}

/// SIGTERM to a worker whose trainer ignores the stop request: after the
/// stop grace the worker gives the job back anyway (no delivery spent) and
/// exits; another worker trains the job from the start; counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_that_ignores_sigterm_is_abandoned_after_the_grace() {
    let mut cfg = config(1, 1, 1, 20);
    cfg.fleet.stop_grace_ms = 300;
    cfg.fleet.lease_ms = 60_000;
    let sc = Scenario::start("fleet-ignore-sigterm", cfg).await;
    let ctrl = sc.controller();
    let mut a = sc.worker_node(100, &["--ignore-stop"]);
    sc.wait_trained_by("A trains", a.pid()).await;
    a.signal("TERM");
    assert!(a.exit(20).await.success(), "{}", a.log());
    assert!(a.log().contains("did not stop in time"), "{}", a.log());
    let r = report(&a);
    assert_eq!((r.released, r.completed), (1, 0), "{r:?}");
    let s = status(&sc.queue).await;
    assert_eq!(s.in_flight[0].deliveries, 0, "giving up on the trainer must not spend a delivery: {s:?}");
    let b = sc.worker_node(10, &[]);
    let b_name = b.consumer().await;
    ctrl.finish(60).await;
    assert_eq!(history(&sc.run_dir)[0].worker, b_name);
    sc.assert_like_reference(1).await;
}
