//! Command-line handling shared by the examples (`mod common;` in each).
//! Each example uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use nasfleet_core::ExperimentConfig;
use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::tch::Device;

/// The value after `key`, if any.
pub(crate) fn arg<'a>(args: &'a [String], key: &str) -> Option<&'a str> {
    args.iter().position(|a| a == key).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// The number after `key`, or `default` when the key is absent.
pub(crate) fn num<T: std::str::FromStr>(args: &[String], key: &str, default: T) -> Result<T, String> {
    match arg(args, key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{key} {v:?} is not a number")),
    }
}

/// What `cnn_children` and `lm_children` both take: `--config FILE
/// [--workers W] [--threads T] [--seed S] [--device D] [--data-dir DIR]
/// [--epochs E]` (the config's `train.epochs` replaced by E).
pub(crate) struct ChildrenArgs {
    pub(crate) cfg: ExperimentConfig,
    pub(crate) workers: usize,
    pub(crate) threads: usize,
    pub(crate) seed: u64,
    pub(crate) device: Device,
    pub(crate) data_dir: PathBuf,
}

impl ChildrenArgs {
    pub(crate) fn parse(args: &[String]) -> Result<ChildrenArgs, String> {
        let config = arg(args, "--config").ok_or("--config FILE is required")?;
        let mut cfg = ExperimentConfig::load(std::path::Path::new(config)).map_err(|e| e.to_string())?;
        cfg.train.epochs = num(args, "--epochs", cfg.train.epochs)?;
        Ok(ChildrenArgs {
            workers: num(args, "--workers", 1)?,
            threads: num(args, "--threads", 1)?,
            seed: num(args, "--seed", cfg.search.seed)?,
            device: arg(args, "--device").unwrap_or("cpu").parse::<DeviceSpec>()?.resolve()?,
            data_dir: arg(args, "--data-dir").map(PathBuf::from).unwrap_or_else(nasfleet_data::default_cache_dir),
            cfg,
        })
    }
}

/// Trains every architecture of `archs` as a child (job `child-i`, seed
/// `seed + i`, the config's recipe and reward) on `workers` threads that
/// each own what `make` builds — as workers in one process do — taking
/// children in order from a shared counter. `train` returns a child's JSON
/// fields; `child`, `worker` and `seconds` are added, and an error becomes
/// `{"error": ...}`. One JSON line per child on stdout as it finishes;
/// returns all of them and the wall time.
pub(crate) fn train_children<S>(
    archs: &[nasfleet_core::Architecture],
    cfg: &ExperimentConfig,
    seed: u64,
    workers: usize,
    make: impl Fn() -> S + Sync,
    train: impl Fn(&mut S, &nasfleet_core::trainer::TrainJob) -> Result<serde_json::Value, String> + Sync,
) -> Result<(Vec<serde_json::Value>, f64), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|scope| -> Result<(), String> {
        let handles = (0..workers)
            .map(|w| {
                let (next, results, make, train) = (&next, &results, &make, &train);
                std::thread::Builder::new()
                    .name(format!("child-worker-{w}"))
                    .spawn_scoped(scope, move || {
                        let mut state = make();
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(arch) = archs.get(i) else { break };
                            let job = nasfleet_core::trainer::TrainJob {
                                job_id: format!("child-{i}"),
                                arch: arch.clone(),
                                train: cfg.train.clone(),
                                reward: cfg.reward.clone(),
                                seed: seed.wrapping_add(i as u64),
                            };
                            let t0 = std::time::Instant::now();
                            let fields = train(&mut state, &job).unwrap_or_else(|e| serde_json::json!({ "error": e }));
                            let mut line = serde_json::json!({ "child": i, "worker": w, "seconds": t0.elapsed().as_secs_f64() });
                            if let (Some(l), serde_json::Value::Object(f)) = (line.as_object_mut(), fields) {
                                l.extend(f);
                            }
                            println!("{line}");
                            if let Ok(mut r) = results.lock() {
                                r.push(line);
                            }
                        }
                    })
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        for h in handles {
            h.join().map_err(|_| "a worker thread panicked".to_string())?;
        }
        Ok(())
    })?;
    let total = started.elapsed().as_secs_f64();
    let results = results.into_inner().map_err(|_| "results lock poisoned")?;
    Ok((results, total))
}
