//! The run's lifecycle through Redis: `controller stop` then `--resume`
//! continues exactly as an uninterrupted run; workers leave (exit 0) when
//! the run is over or their queue stays empty; nothing of a finished or
//! dead-lettered child stays in the work directory.

use std::time::Duration;

use nasfleet_fleet::fake::{fake_trainers, CrashMode, FakeTrainerConfig};
use nasfleet_fleet::{request_stop, run_worker, shutdown_pair, FleetSettings, WorkerOptions, WorkerReport};
use nasfleet_queue::{Consumer, JobQueue, RunLifecycle};

use crate::support::*;

/// Waits for an in-process worker to leave by itself (no stop request).
async fn left_by_itself(w: InProcessWorker) -> WorkerReport {
    let r = within(60, w.handle).await.expect("worker task").expect("worker");
    assert!(!r.stopped, "the worker was stopped, it did not leave: {r:?}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_stop_then_resume_continues_like_an_uninterrupted_run() {
    let sc = Scenario::start("fleet-stop", config(16, 2, 4, 2)).await;
    let workers = sc.workers(2, 30).await;
    let mut c = sc.controller_node(&[]);
    let hist = sc.run_dir.join("history.jsonl");
    eventually("some children applied", 60, || {
        let n = std::fs::read_to_string(&hist).map(|t| t.lines().count()).unwrap_or(0);
        async move { n >= 4 }
    })
    .await;
    // What `nasfleet controller stop` does.
    let l = request_stop(&sc.queue, Duration::from_secs(60), Duration::from_millis(20)).await.unwrap();
    assert_eq!(l, RunLifecycle::Stopped, "the controller confirms");
    assert!(c.exit(60).await.success(), "{}", c.log());
    let state: serde_json::Value = serde_json::from_str(c.stdout().lines().last().unwrap_or_default()).unwrap();
    assert_eq!(state["state"], "stopped", "{state}");
    let applied = state["applied"].as_u64().unwrap();
    assert!(applied < 16, "stopped too late to test anything: {state}");
    for w in workers {
        let r = left_by_itself(w).await;
        assert!(r.left.as_deref().is_some_and(|l| l.starts_with("run stop")), "{r:?}");
    }
    // No job was issued after the stop: what is not applied yet is in the
    // queue or its results, waiting for the resume.
    let s = sc.queue.status(100).await.unwrap();
    assert!(s.enqueued < 16, "{s:?}");

    let workers = sc.workers(2, 30).await;
    let mut c = sc.controller_node(&["--resume"]);
    assert!(c.exit(60).await.success(), "{}", c.log());
    assert_eq!(sc.queue.lifecycle().await.unwrap(), RunLifecycle::Finished);
    for w in workers {
        let r = left_by_itself(w).await;
        assert_eq!(r.left.as_deref(), Some("run finished"), "{r:?}");
    }
    sc.assert_like_reference(16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_leave_when_the_run_is_over_or_their_queue_stays_empty() {
    let sc = Scenario::start("fleet-leave", config(4, 2, 2, 1)).await;
    let workers = sc.workers(2, 10).await;
    sc.controller().finish(60).await;
    for w in workers {
        let r = left_by_itself(w).await;
        assert_eq!(r.left.as_deref(), Some("run finished"), "{r:?}");
    }
    // A worker process started on a finished run leaves at once, exit 0.
    let mut late = sc.worker_node(10, &[]);
    assert!(late.exit(30).await.success(), "{}", late.log());
    assert!(late.log().contains("the run is over"), "{}", late.log());
    sc.assert_like_reference(4).await;

    // On a run nobody feeds, --idle-exit lets a worker go.
    let mut idle = Node::worker(sc.dir.path(), &sc.url, "nobody", &sc.cfg, &["--idle-exit-ms", "300"]);
    assert!(idle.exit(30).await.success(), "{}", idle.log());
    let r: serde_json::Value = serde_json::from_str(idle.stdout().lines().last().unwrap_or_default()).unwrap();
    assert!(r["left"].as_str().is_some_and(|l| l.starts_with("idle")), "{r}");
    assert_eq!(r["jobs"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_checkpoint_directory_outlives_its_child() {
    let cfg = config(6, 2, 2, 3);
    // Jobs 1 and 4 fail retryably every time, after writing a checkpoint of
    // their first epoch: the queue dead-letters them at a fetch, after
    // max_deliveries, when no worker owns them. (A job a worker
    // dead-letters itself has its directory removed at once.)
    let sc = Scenario::start("fleet-housekeeping", cfg.clone()).await;
    let work = sc.dir.path().join("work");
    let (first, second) = (sc.job_id(1), sc.job_id(4));
    let worker = |host: &str, fake: FakeTrainerConfig, queue| {
        let (stop, shutdown) = shutdown_pair();
        let opts = WorkerOptions {
            consumer: Consumer::new(host, "cpu").unwrap(),
            run: sc.run.clone(),
            settings: FleetSettings::from_config(&cfg.fleet).unwrap(),
            max_jobs: None,
            idle_exit: None,
            work_dir: Some(work.clone()),
            device: "cpu".into(),
            data_dir: None,
        };
        (stop, tokio::spawn(run_worker(queue, opts, fake_trainers(fake), shutdown)))
    };
    let crash = FakeTrainerConfig { crash_jobs: vec![first.clone(), second.clone()], crash: CrashMode::Retryable, ..sc.fake(10) };
    let (_s1, a) = worker("a", crash.clone(), sc.connect().await);
    let (_s2, b) = worker("b", crash, sc.connect().await);
    let summary = within(60, sc.controller().handle).await.unwrap().unwrap();
    assert!(summary.finished);
    for h in [a, b] {
        let r = within(60, h).await.unwrap().unwrap();
        assert_eq!(r.left.as_deref(), Some("run finished"), "{r:?}");
    }
    let history = history(&sc.run_dir);
    let status = |job: &str| history.iter().find(|l| l.job_id == job).map(|l| l.status.clone());
    for job in [&first, &second] {
        assert_eq!(status(job).as_deref(), Some("dead"), "{job}");
        assert!(sc.queue.is_finished(job).await.unwrap());
    }
    let left: Vec<String> = std::fs::read_dir(work.join(&sc.run))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "checkpoint directories left behind: {left:?}");
}

/// `nasfleet controller requeue` after a fix: two children a broken worker
/// build dead-lettered come back; the resumed controller applies each one's
/// result once, as a late child, through crashes right after the late
/// history line and right after its checkpoint. The strategy never sees
/// them: the rest of the run equals the uninterrupted one with the same
/// failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_dead_letters_come_back_as_late_children_exactly_once() {
    let broken = |jobs: Vec<String>| FakeTrainerConfig { crash_jobs: jobs, crash: CrashMode::Permanent, ..FakeTrainerConfig::default() };
    let cfg = config(8, 2, 4, 1);
    let sc = Scenario::start_with("fleet-requeue", cfg.clone(), broken(vec!["reference-000001".into(), "reference-000005".into()])).await;
    let dead = vec![sc.job_id(1), sc.job_id(5)];
    let w = spawn_worker(sc.connect().await, &cfg, &sc.run, "broken", FakeTrainerConfig { step: Duration::from_millis(10), ..broken(dead.clone()) }, None);
    let summary = sc.controller().finish(60).await;
    assert_eq!((summary.state.rewarded, summary.state.failed), (6, 2));
    left_by_itself(w).await;
    assert_eq!(project(&sc.run_dir), sc.expected, "the first life equals the reference");

    // What `nasfleet controller requeue --run t` does.
    let r = nasfleet_fleet::requeue(&sc.queue, &[], None).await.unwrap();
    let names: Vec<&str> = r.jobs.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(names, dead.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!((r.requeued(), r.lifecycle), (2, RunLifecycle::Finished));
    assert_eq!(sc.queue.lifecycle().await.unwrap(), RunLifecycle::Running, "workers may stay for them");
    assert_eq!(sc.queue.status(10).await.unwrap().dead_total, 0);

    // The fixed build trains them; the resumed controller dies right after
    // the late history line, then right after the checkpoint, then finishes.
    let fixed = sc.worker("fixed", 10).await;
    for crash in ["late-history", "late-checkpointed"] {
        let mut c = sc.controller_node(&["--resume", "--crash-at", crash]);
        assert_eq!(c.exit(60).await.code(), Some(86), "{crash}: {}", c.log());
    }
    let mut c = sc.controller_node(&["--resume"]);
    assert!(c.exit(60).await.success(), "{}", c.log());
    let state: serde_json::Value = serde_json::from_str(c.stdout().lines().last().unwrap_or_default()).unwrap();
    assert_eq!((state["state"].as_str(), state["rewarded"].as_u64(), state["failed"].as_u64()), (Some("finished"), Some(8), Some(0)), "{state}");
    assert_eq!(sc.queue.lifecycle().await.unwrap(), RunLifecycle::Finished);
    let r = left_by_itself(fixed).await;
    assert_eq!(r.completed, 2, "{r:?}");

    // Exactly once: the first life untouched, one late line per child.
    let lines = history(&sc.run_dir);
    assert_eq!(lines.len(), 10, "8 children + 2 late results");
    let after = project(&sc.run_dir);
    assert_eq!(after.history[..8], sc.expected.history[..], "the applied lines are untouched");
    assert_eq!((after.updates, after.strategy_state), (sc.expected.updates.clone(), sc.expected.strategy_state.clone()), "the strategy never saw them");
    for (line, job) in lines[8..].iter().zip(&dead) {
        assert_eq!((&line.job_id, line.status.as_str(), line.late), (job, "ok", true));
        let first = lines.iter().find(|l| &l.job_id == job).unwrap();
        assert_eq!((first.status.as_str(), first.late, first.batch), ("dead", false, line.batch));
        assert!(line.reward.is_some_and(|r| (0.0..=1.0).contains(&r)), "{line:?}");
    }
    let best_reward = lines.iter().filter_map(|l| l.reward).fold(f64::MIN, f64::max);
    let best: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sc.run_dir.join("best.json")).unwrap()).unwrap();
    assert_eq!(best["reward"].as_f64(), Some(best_reward), "best.json counts the late children");
    let s = sc.queue.status(100).await.unwrap();
    // Two jobs had two lives: 10 terminal events, 8 outcomes.
    assert_eq!((s.outcomes, s.results, s.depth, s.in_flight_total, s.dead_total), (8, 10, 0, 0, 0), "{s:?}");
}

/// A child requeued before its batch was applied: its result replaces its
/// dead letter in the batch, so it reaches the strategy like any child and
/// no late line is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_requeued_before_its_batch_is_applied_joins_the_batch() {
    let dir = nasfleet_queue::testing::TempDir::new("fleet-requeue-early").unwrap();
    let run_dir = dir.path().join("run");
    let cfg = config(2, 2, 2, 1);
    let q = nasfleet_queue::MemoryQueue::new(nasfleet_queue::QueueConfig::default()).unwrap();
    let ctrl = spawn_controller(q.clone(), &cfg, "m", &run_dir, false, nasfleet_fleet::Board::Off);
    let w = Consumer::new("manual", "cpu").unwrap();
    let fetch = || async { within(30, q.fetch(&w, Duration::from_secs(20))).await.unwrap().expect("a job") };
    let (first, second) = (fetch().await, fetch().await);
    q.dead_letter(&w, &first, "trainer_error", "a broken worker build").await.unwrap();
    let answers = q.requeue(std::slice::from_ref(&first.job_id)).await.unwrap();
    assert!(matches!(answers[..], [nasfleet_queue::Requeued::Requeued { .. }]), "{answers:?}");
    let again = fetch().await;
    assert_eq!((again.job_id.as_str(), again.deliveries), (first.job_id.as_str(), 1));
    let result = |lease: &nasfleet_queue::Lease, reward: f64| {
        serde_json::to_string(&nasfleet_core::trainer::JobResult {
            version: nasfleet_core::trainer::JOB_FORMAT_VERSION,
            job_id: lease.job_id.clone(),
            reward,
            metrics: Vec::new(),
            worker: w.name().into(),
            started_ms: 1,
            finished_ms: 2,
            note: None,
            cost: None,
            stopped_at: None,
            attempt: None,
        })
        .unwrap()
    };
    q.complete(&w, &again, &result(&again, 0.75)).await.unwrap();
    q.complete(&w, &second, &result(&second, 0.5)).await.unwrap();
    let summary = ctrl.finish(60).await;
    assert_eq!((summary.state.rewarded, summary.state.failed), (2, 0));
    let lines = history(&run_dir);
    let got: Vec<_> = lines.iter().map(|l| (l.status.as_str(), l.reward, l.late)).collect();
    assert_eq!(got, [("ok", Some(0.75), false), ("ok", Some(0.5), false)]);
    let updates: Vec<nasfleet_fleet::rundir::UpdateLine> =
        nasfleet_fleet::rundir::read_lines("updates", &run_dir.join("updates.jsonl")).unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].rewards, [0.75, 0.5], "the strategy saw the requeued child");
}
