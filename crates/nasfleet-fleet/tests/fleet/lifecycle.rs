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
