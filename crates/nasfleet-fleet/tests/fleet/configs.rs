//! Every shipped config (`config/*.toml`) runs on workers started with only
//! the queue, the run, a device and a data directory: the settings its
//! controller publishes resolve into a worker's settings, and the children
//! it issues pass a worker's validation under them.

use std::path::PathBuf;

use nasfleet_core::config::StrategyKind;
use nasfleet_core::strategy::build_pure_strategy;
use nasfleet_core::trainer::{JobSpec, JOB_FORMAT_VERSION};
use nasfleet_core::ExperimentConfig;
use nasfleet_fleet::ids::{child_seed, job_id};
use nasfleet_fleet::{validate_job, FleetSettings, RunSettings, WorkerOverrides};

fn shipped() -> Vec<(String, ExperimentConfig)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = ExperimentConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.file_name().unwrap().to_string_lossy().into_owned(), cfg));
        }
    }
    assert!(out.len() >= 5, "the shipped configs: {out:?}", out = out.iter().map(|(n, _)| n).collect::<Vec<_>>());
    out
}

#[test]
fn a_worker_with_only_the_run_serves_every_shipped_config() {
    for (name, cfg) in shipped() {
        // What the controller publishes, as a worker reads it back.
        let published = RunSettings::from_json(&RunSettings::of(&cfg).to_json()).unwrap();
        let settings = FleetSettings::for_worker(Some(&published), &WorkerOverrides::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(settings, FleetSettings::from_run(&RunSettings::of(&cfg)).unwrap(), "{name}");
        // Children as its controller would issue them (uniform samples of
        // its space, the deepest the schedule reaches included).
        let mut sampling = cfg.clone();
        sampling.search.strategy = StrategyKind::Random;
        let mut strategy = build_pure_strategy(&sampling).unwrap();
        let run = "r";
        for (seq, p) in strategy.propose(20).unwrap().into_iter().enumerate() {
            let seq = seq as u64;
            let spec = JobSpec {
                version: JOB_FORMAT_VERSION,
                job_id: job_id(run, seq),
                run: run.into(),
                arch: p.arch.to_value(),
                actions: p.actions,
                policy_version: p.policy_version,
                train: cfg.train.clone(),
                reward: cfg.reward.clone(),
                seed: child_seed(cfg.search.seed, seq),
                early_stop: cfg.early_stop.clone(),
            };
            let payload = serde_json::to_string(&spec).unwrap();
            if let Err(r) = validate_job(&spec.job_id, run, &payload, &settings) {
                panic!("{name}: a worker refuses child {seq} ({}): {}", r.reason, r.detail);
            }
        }
    }
}
