//! Trains K CNN children with the real trainer and reports what they cost:
//! the tool behind the Fashion-MNIST demo's sizing and the GPU throughput
//! measurements (not a test).
//!
//! ```text
//! cnn_children --config FILE [--children K] [--workers W] [--threads T]
//!              [--device cpu|cuda:N|auto] [--data-dir DIR] [--seed S]
//!              [--mixed] [--epochs E] [--panel panel.json]
//! ```
//! Children are sampled uniformly from the config's CNN space, at the depth
//! the config's schedule gives the i-th sample (or taken from a
//! `bench_cnn_step prepare` panel), and trained with the config's `[train]`
//! recipe by W worker threads that each own a `CnnTrainer` — as workers in
//! one process do. `--threads` sets each worker's libtorch intra-op threads
//! on the CPU (default 1, see `CnnTrainer::with_cpu_threads`). One JSON line
//! per child, then a summary line, on stdout.


use nasfleet_core::trainer::{BasicContext, Trainer};
use nasfleet_core::{ArchLimits, Architecture};
use nasfleet_torch::cnn::CnnTrainer;
use nasfleet_torch::tch;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod common;

use common::{arg, num, train_children, ChildrenArgs};

fn main() {
    if let Err(e) = run() {
        eprintln!("cnn_children: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ChildrenArgs { mut cfg, workers, threads, seed, device, data_dir } = ChildrenArgs::parse(&args)?;
    if args.iter().any(|a| a == "--mixed") {
        cfg.train.image.mixed_precision = true;
    }
    tch::set_num_threads(i32::try_from(threads).map_err(|_| format!("--threads {threads} is too large"))?);
    tch::set_num_interop_threads(1);

    let archs: Vec<Architecture> = match arg(&args, "--panel") {
        Some(p) => {
            let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(p).map_err(|e| format!("{p}: {e}"))?)
                .map_err(|e| format!("{p}: {e}"))?;
            meta["archs"]
                .as_array()
                .ok_or(format!("{p}: no archs"))?
                .iter()
                .map(|a| Architecture::from_value(a.clone(), &ArchLimits::default()).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?
        }
        None => {
            let k: usize = num(&args, "--children", 8)?;
            let space = cfg.space();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..k)
                .map(|i| {
                    let tokens = space.schema(space.layers_at(i as u64)).sample_uniform(&mut rng);
                    space.decode(&tokens).map_err(|e| e.to_string())
                })
                .collect::<Result<_, _>>()?
        }
    };

    let (results, total) = train_children(
        &archs,
        &cfg,
        seed,
        workers,
        || CnnTrainer::new(&data_dir, device).with_cpu_threads(threads),
        |trainer, job| {
            let Architecture::Cnn(arch) = &job.arch else { return Err("not a CNN architecture".into()) };
            let cost = trainer.child_cost(arch, &job.train).ok();
            let o = trainer.train(job, &mut BasicContext::default()).map_err(|e| e.to_string())?;
            Ok(serde_json::json!({
                "layers": arch.layers.len(),
                "params": cost.map(|c| c.params), "flops": cost.map(|c| c.flops),
                "reward": o.reward,
                "best_valid_accuracy": o.metrics.iter().filter_map(|m| m.valid_accuracy).fold(0.0, f64::max),
                "epoch_seconds": o.metrics.iter().map(|m| m.seconds).collect::<Vec<_>>(),
                "valid_accuracy": o.metrics.iter().map(|m| m.valid_accuracy).collect::<Vec<_>>(),
                "note": o.note,
            }))
        },
    )?;
    let best = results.iter().filter_map(|r| r["best_valid_accuracy"].as_f64()).fold(0.0, f64::max);
    let mut secs: Vec<f64> = results.iter().filter_map(|r| r["seconds"].as_f64()).collect();
    secs.sort_by(f64::total_cmp);
    let mut epoch_secs: Vec<f64> =
        results.iter().flat_map(|r| r["epoch_seconds"].as_array().cloned().unwrap_or_default()).filter_map(|v| v.as_f64()).collect();
    epoch_secs.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "summary": true,
            "dataset": cfg.train.dataset,
            "device": format!("{device:?}"),
            "mixed_precision": cfg.train.image.mixed_precision,
            "children": results.len(),
            "failed": results.iter().filter(|r| r.get("error").is_some()).count(),
            "workers": workers,
            "threads": threads,
            "total_seconds": total,
            "children_per_hour": results.len() as f64 * 3600.0 / total,
            "median_child_seconds": secs.get(secs.len() / 2),
            "median_epoch_seconds": epoch_secs.get(epoch_secs.len() / 2),
            "best_valid_accuracy": best,
        })
    );
    Ok(())
}
