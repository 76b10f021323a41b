//! The embedded mode and the controller's own guarantees, in process over
//! the in-memory queue (no Redis needed).

use std::time::Duration;

use nasfleet_core::pareto::{ParetoFronts, ParetoPoint};
use nasfleet_core::strategy::build_pure_strategy;
use nasfleet_core::trainer::JobSpec;
use nasfleet_fleet::fake::{fake_trainers, fake_reward, FakeTrainerConfig};
use nasfleet_fleet::rundir::files;
use nasfleet_fleet::{run_local, shutdown_pair, Board, FleetError, FleetSettings, LocalOptions};
use nasfleet_queue::testing::TempDir;
use nasfleet_queue::{Consumer, JobQueue, MemoryQueue};
use tokio::sync::watch;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_sequence_does_not_depend_on_workers_or_timing() {
    let cfg = config(20, 3, 5, 2);
    let expected = reference(&cfg, FakeTrainerConfig::default()).await;
    assert_eq!(expected.history.len(), 20);
    assert_eq!(expected.updates.len(), 7, "ceil(20 / 3) batches");
    for (workers, step_ms) in [(1, 0), (4, 3)] {
        let dir = TempDir::new("nasfleet-local").unwrap();
        let fake = FakeTrainerConfig {
            step: Duration::from_millis(step_ms),
            ..FakeTrainerConfig::default()
        };
        let s = within(
            60,
            run_local(&cfg, build_pure_strategy(&cfg).unwrap(), fake_trainers(fake), local_opts(&dir, workers, false), shutdown_pair().1),
        )
        .await
        .unwrap();
        assert!(s.finished);
        assert_eq!(s.state.applied, 20);
        let run_dir = dir.path().join("run");
        assert_eq!(project(&run_dir), expected, "{workers} workers, {step_ms} ms per epoch");
        // Each reward is the fake trainer's function of the architecture, and
        // best.json holds the best of them.
        let h = history(&run_dir);
        let best = h.iter().map(|l| l.reward.unwrap()).fold(f64::MIN, f64::max);
        for l in &h {
            let arch = nasfleet_core::Architecture::from_value(l.arch.clone(), &Default::default()).unwrap();
            assert_eq!(l.reward, Some(fake_reward(&arch)));
            assert!(l.metrics.as_array().is_some_and(|m| m.len() == 2), "{:?}", l.metrics);
        }
        let best_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join(files::BEST)).unwrap()).unwrap();
        assert_eq!(best_json["reward"].as_f64(), Some(best));
        assert_eq!(s.best.unwrap().reward, best);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_local_run_resumes_to_the_uninterrupted_result() {
    let cfg = config(16, 2, 4, 3);
    let expected = reference(&cfg, FakeTrainerConfig::default()).await;
    let dir = TempDir::new("nasfleet-local-resume").unwrap();
    let fake = FakeTrainerConfig {
        step: Duration::from_millis(20),
        ..FakeTrainerConfig::default()
    };
    let (tx, mut rx) = watch::channel(Default::default());
    let (stop, shutdown) = shutdown_pair();
    let opts = LocalOptions {
        progress: Some(tx),
        ..local_opts(&dir, 2, false)
    };
    let run = tokio::spawn({
        let (cfg, fake) = (cfg.clone(), fake.clone());
        async move { run_local(&cfg, build_pure_strategy(&cfg).unwrap(), fake_trainers(fake), opts, shutdown).await }
    });
    within(30, rx.wait_for(|s: &nasfleet_fleet::ControllerState| s.applied >= 6)).await.unwrap();
    stop.trigger();
    let first = within(30, run).await.unwrap().unwrap();
    assert!(!first.finished, "stopped early on purpose");
    assert!(first.state.applied < 16);
    let second = within(
        60,
        run_local(&cfg, build_pure_strategy(&cfg).unwrap(), fake_trainers(fake), local_opts(&dir, 3, true), shutdown_pair().1),
    )
    .await
    .unwrap();
    assert!(second.finished);
    assert_eq!(project(&dir.path().join("run")), expected);

    // pareto.json, kept incrementally across the stop and the resume, is
    // the front of every rewarded child of the history.
    let run_dir = dir.path().join("run");
    let points: Vec<ParetoPoint> = history(&run_dir)
        .iter()
        .filter(|l| l.status == "ok")
        .map(|l| {
            let accs: Vec<f64> = l.metrics.as_array().unwrap().iter().map(|m| m["valid_accuracy"].as_f64().unwrap()).collect();
            let cost = l.cost.expect("the fake trainer sizes CNN children");
            ParetoPoint { arch: l.arch.to_string(), accuracy: cfg.reward.accuracy_of(&accs).unwrap(), params: cost.params, flops: cost.flops }
        })
        .collect();
    assert_eq!(points.len(), 16);
    let saved: ParetoFronts = serde_json::from_str(&std::fs::read_to_string(run_dir.join(files::PARETO)).unwrap()).unwrap();
    assert_eq!(saved, ParetoFronts::of_points(&points));
    assert!(!saved.params.is_empty() && saved.params.windows(2).all(|w| w[0].params < w[1].params && w[0].accuracy < w[1].accuracy));
}

#[tokio::test]
async fn starting_over_a_run_or_resuming_with_another_config_is_refused() {
    let cfg = config(4, 2, 2, 1);
    let dir = TempDir::new("nasfleet-refusals").unwrap();
    let fake = FakeTrainerConfig::default();
    // A search may not look at the test set.
    let mut peeking = cfg.clone();
    peeking.train.lm.evaluate_test = true;
    let e = run_local(&peeking, build_pure_strategy(&peeking).unwrap(), fake_trainers(fake.clone()), local_opts(&dir, 1, false), shutdown_pair().1)
        .await
        .unwrap_err();
    assert!(matches!(&e, FleetError::Refused(m) if m.contains("evaluate_test")), "{e}");
    // Nothing to resume yet.
    let e = run_local(&cfg, build_pure_strategy(&cfg).unwrap(), fake_trainers(fake.clone()), local_opts(&dir, 1, true), shutdown_pair().1)
        .await
        .unwrap_err();
    assert!(matches!(&e, FleetError::Refused(m) if m.contains("no checkpoint")), "{e}");
    within(30, run_local(&cfg, build_pure_strategy(&cfg).unwrap(), fake_trainers(fake.clone()), local_opts(&dir, 1, false), shutdown_pair().1))
        .await
        .unwrap();
    // A second start over the same run directory.
    let e = run_local(&cfg, build_pure_strategy(&cfg).unwrap(), fake_trainers(fake.clone()), local_opts(&dir, 1, false), shutdown_pair().1)
        .await
        .unwrap_err();
    assert!(matches!(&e, FleetError::Refused(m) if m.contains("--resume")), "{e}");
    // Resuming with a changed config.
    let mut other = cfg.clone();
    other.search.seed += 1;
    let e = run_local(&other, build_pure_strategy(&other).unwrap(), fake_trainers(fake.clone()), local_opts(&dir, 1, true), shutdown_pair().1)
        .await
        .unwrap_err();
    assert!(matches!(&e, FleetError::Refused(m) if m.contains("config differs")), "{e}");
    // Resuming a finished run is a no-op that reports it finished.
    let s = run_local(&cfg, build_pure_strategy(&cfg).unwrap(), fake_trainers(fake), local_opts(&dir, 1, true), shutdown_pair().1)
        .await
        .unwrap();
    assert!(s.finished);
    assert_eq!(s.state.applied, 4);
}

/// A rogue worker posts results the controller must not trust; a result of
/// another run's job is ignored. The invalid children count as failed.
#[tokio::test]
async fn untrusted_results_are_validated() {
    let cfg = config(4, 4, 4, 1);
    let dir = TempDir::new("nasfleet-untrusted").unwrap();
    let queue = MemoryQueue::new(FleetSettings::from_config(&cfg.fleet).unwrap().queue_config()).unwrap();
    let run_dir = dir.path().join("run");
    let ctrl = spawn_controller(queue.clone(), &cfg, "r", &run_dir, false, Board::memory());
    let rogue = Consumer::new("rogue", "cpu").unwrap();
    let mut leases = Vec::new();
    eventually("four jobs enqueued", 10, || {
        let q = queue.clone();
        async move { q.status(0).await.unwrap().enqueued == 4 }
    })
    .await;
    queue.enqueue("other-000000", "{}").await.unwrap();
    while leases.len() < 5 {
        if let Some(l) = queue.fetch(&rogue, Duration::from_millis(100)).await.unwrap() {
            leases.push(l);
        }
    }
    let result = |job: &str, reward: serde_json::Value| {
        serde_json::json!({"version": 1, "job_id": job, "reward": reward, "metrics": [], "worker": "rogue",
                           "started_ms": 0, "finished_ms": 0})
        .to_string()
    };
    for l in &leases {
        let text = match l.job_id.as_str() {
            "r-000000" => result("r-000000", serde_json::json!(5.0)),
            "r-000001" => result("r-000001", serde_json::Value::Null),
            "r-000002" => result("r-000003", serde_json::json!(0.5)),
            "r-000003" => {
                let spec: JobSpec = serde_json::from_str(&l.payload).unwrap();
                assert_eq!(spec.run, "r");
                result("r-000003", serde_json::json!(0.25))
            }
            _ => result(&l.job_id, serde_json::json!(1.0)),
        };
        queue.complete(&rogue, l, &text).await.unwrap();
    }
    let s = ctrl.finish(30).await;
    assert_eq!((s.state.rewarded, s.state.failed), (1, 3));
    let h = history(&run_dir);
    let got: Vec<(&str, Option<f64>)> = h.iter().map(|l| (l.status.as_str(), l.reward)).collect();
    assert_eq!(got, vec![("invalid", None), ("invalid", None), ("invalid", None), ("ok", Some(0.25))]);
    assert!(h[0].detail.as_deref().unwrap().contains("outside [0, 1]"), "{:?}", h[0].detail);
    assert!(h[1].detail.as_deref().unwrap().contains("no numeric reward"), "{:?}", h[1].detail);
    assert!(h[2].detail.as_deref().unwrap().contains("names job"), "{:?}", h[2].detail);
}
