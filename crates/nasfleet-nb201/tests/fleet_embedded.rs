//! The table trainer inside the real embedded fleet (`nasfleet local`'s
//! loops: controller, in-memory queue, several workers on their trainer
//! threads): jobs travel as JSON with `train.dataset = "nb201-table"` and
//! the `[train.table]` section, rewards come back and are applied, exactly
//! as with a trained child.

use std::sync::Arc;
use std::time::Duration;

use nasfleet_core::config::StrategyKind;
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::strategy::build_pure_strategy;
use nasfleet_core::{Architecture, ExperimentConfig, SpaceKind};
use nasfleet_fleet::{run_local, shutdown_pair, LocalOptions, TrainerSet, TrainerSets};
use nasfleet_nb201::{Table, TableCache, TableTrainer, WorkerTable};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_runs_on_the_table_through_the_embedded_fleet() {
    let dir = std::env::temp_dir().join(format!("nasfleet-nb201-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Every cell; value = 40 + the sum of its NASLib op indices times 2.5,
    // so the optimum (all 4s) is 100 and nothing ties with it.
    let mut csv = String::from("arch,accuracy\n");
    for i in 0..nasfleet_nb201::CELLS {
        let t: [u8; 6] = std::array::from_fn(|k| ((i / 5usize.pow(5 - k as u32)) % 5) as u8);
        let v = 40.0 + 2.5 * t.iter().map(|&d| f64::from(d)).sum::<f64>();
        csv.push_str(&format!("\"{t:?}\",{v}\n").replace(['[', ']'], ""));
    }
    let table_path = dir.join("table.csv");
    std::fs::write(&table_path, csv).unwrap();
    let table = Table::load(&table_path, None).unwrap();

    let mut cfg = ExperimentConfig::default();
    cfg.search.space = SpaceKind::Nb201;
    cfg.search.strategy = StrategyKind::Evolution;
    cfg.search.seed = 3;
    cfg.search.architectures = 48;
    cfg.search.batch = 4;
    cfg.search.max_in_flight = 8;
    cfg.evolution.population = 8;
    cfg.evolution.sample_size = 3;
    cfg.reward = RewardConfig::accuracy(1, 2.0);
    cfg.train.dataset = "nb201-table".into();
    cfg.train.table.path = Some(table_path.clone());
    cfg.train.table.simulated_seconds = 0.005;

    // One cache for the process, one trainer per trainer thread: as a worker does it.
    let cache = TableCache::new();
    let worker_cache = cache.clone();
    let trainers: Arc<TrainerSets> = Arc::new(move || {
        Box::new(TableTrainer::with_cache(
            WorkerTable::File(dir_missing()),
            worker_cache.clone(),
        )) as Box<dyn TrainerSet>
    });
    let opts = LocalOptions {
        run: "nb201-table".into(),
        run_dir: dir.join("run"),
        resume: false,
        workers: 3,
        device: "cpu".into(),
        data_dir: None,
        work_dir: None,
        progress: None,
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        run_local(
            &cfg,
            build_pure_strategy(&cfg).unwrap(),
            trainers,
            opts,
            shutdown_pair().1,
        ),
    )
    .await
    .expect("the run finishes")
    .unwrap();

    assert!(summary.finished);
    assert_eq!(summary.state.applied, 48);
    assert_eq!(summary.state.rewarded, 48, "every lookup succeeded");
    // The job's path was used (the worker's own file does not exist), and
    // read once for all 48 children and 3 workers.
    assert_eq!(cache.len(), 1);
    // The best reward is (value / 100)² of the best architecture's value.
    let best_arch = Architecture::from_value(
        summary.state.best_arch.clone().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let Architecture::Nb201(best_arch) = best_arch else {
        panic!("not an nb201 architecture")
    };
    let value = table.value(&best_arch).unwrap();
    let reward = summary.state.best_reward.unwrap();
    assert!(
        (reward - (value / 100.0).powi(2)).abs() < 1e-12,
        "{reward} vs {value}"
    );
    // Evolution on this additive table climbs above the table's median (70).
    assert!(value > table.median(), "best {value}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A worker-side table path that does not exist: the job's own path must win.
fn dir_missing() -> std::path::PathBuf {
    std::env::temp_dir().join("nasfleet-nb201-no-such-table.anb")
}
