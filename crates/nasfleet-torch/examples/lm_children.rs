//! Trains K recurrent-cell children with the real trainer and reports what
//! they cost and reach: the tool behind the Austen demo configs' sizing (not
//! a test).
//!
//! ```text
//! lm_children --config FILE [--children K] [--workers W] [--threads T]
//!             [--device cpu|cuda:N|auto] [--data-dir DIR] [--seed S]
//!             [--epochs E] [--cell CELL.json]
//! ```
//! Children are sampled uniformly from the config's cell space (or one cell
//! is read from `--cell`) and trained with the config's `[train]` recipe by W
//! worker threads that each own an `LmTrainer`, as workers in one process
//! do. One JSON line per child, then a summary line, on stdout; per-epoch
//! progress on stderr.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nasfleet_core::trainer::{BasicContext, TrainJob};
use nasfleet_core::{ArchLimits, Architecture};
use nasfleet_torch::rnn::{LmDataset, LmTrainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod common;

use common::{arg, num, ChildrenArgs};

fn main() {
    if let Err(e) = run() {
        eprintln!("lm_children: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ChildrenArgs { cfg, workers, threads, seed, device, data_dir } = ChildrenArgs::parse(&args)?;
    let archs: Vec<Architecture> = match arg(&args, "--cell") {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?;
            vec![Architecture::from_json(&bytes, &ArchLimits::default()).map_err(|e| format!("{p}: {e}"))?]
        }
        None => {
            let k: usize = num(&args, "--children", 8)?;
            let space = cfg.space();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..k).map(|_| space.decode(&space.schema(1).sample_uniform(&mut rng)).map_err(|e| e.to_string())).collect::<Result<_, _>>()?
        }
    };

    // Load (and for Austen prepare) the corpus once, before the clock starts.
    let dataset = LmDataset::resolve(&cfg.train.dataset, cfg.train.lm.char_level)?;
    let corpus = LmTrainer::new(&data_dir, device).corpus(dataset).map_err(|e| e.to_string())?;

    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (next, results, archs, cfg, data_dir, corpus) =
                (next.clone(), results.clone(), archs.clone(), cfg.clone(), data_dir.clone(), corpus.clone());
            std::thread::Builder::new()
                .name(format!("lm-worker-{w}"))
                .spawn(move || {
                    let mut trainer = LmTrainer::new(data_dir, device).with_cpu_threads(threads);
                    trainer.insert_corpus(dataset, (*corpus).clone());
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(arch) = archs.get(i) else { break };
                        let job = TrainJob {
                            job_id: format!("child-{i}"),
                            arch: arch.clone(),
                            train: cfg.train.clone(),
                            reward: cfg.reward.clone(),
                            seed: seed.wrapping_add(i as u64),
                        };
                        let t0 = Instant::now();
                        let mut ctx = BasicContext { verbose: true, ..Default::default() };
                        let out = trainer.train_lm(&job, &mut ctx);
                        let secs = t0.elapsed().as_secs_f64();
                        let line = match &out {
                            Ok(r) => serde_json::json!({
                                "child": i, "worker": w, "seconds": secs, "params": r.params, "hidden": r.hidden,
                                "reward": r.outcome.reward,
                                "best_valid_perplexity": r.best_valid_perplexity,
                                "valid_bits_per_char": r.valid_bits_per_char(),
                                "test_perplexity": r.test_perplexity,
                                "valid_perplexity": r.outcome.metrics.iter().map(|m| m.valid_perplexity).collect::<Vec<_>>(),
                                "epoch_seconds": r.outcome.metrics.iter().map(|m| m.seconds).collect::<Vec<_>>(),
                                "note": r.outcome.note,
                            }),
                            Err(e) => serde_json::json!({"child": i, "worker": w, "seconds": secs, "error": e.to_string()}),
                        };
                        println!("{line}");
                        if let Ok(mut r) = results.lock() {
                            r.push(line);
                        }
                    }
                })
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    for h in handles {
        h.join().map_err(|_| "a worker thread panicked".to_string())?;
    }
    let total = started.elapsed().as_secs_f64();
    let results = results.lock().map_err(|_| "results lock poisoned")?.clone();
    let mut ppl: Vec<f64> = results.iter().filter_map(|r| r["best_valid_perplexity"].as_f64()).collect();
    ppl.sort_by(f64::total_cmp);
    let mut secs: Vec<f64> = results.iter().filter_map(|r| r["seconds"].as_f64()).collect();
    secs.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "summary": true,
            "dataset": dataset.name(),
            "device": format!("{device:?}"),
            "children": results.len(),
            "failed": results.iter().filter(|r| r.get("error").is_some()).count(),
            "diverged": results.iter().filter(|r| r["note"].as_str().is_some_and(|n| n.contains("diverged"))).count(),
            "workers": workers,
            "threads": threads,
            "total_seconds": total,
            "children_per_hour": results.len() as f64 * 3600.0 / total,
            "median_child_seconds": secs.get(secs.len() / 2),
            "best_valid_perplexity": ppl.first(),
            "median_valid_perplexity": ppl.get(ppl.len() / 2),
        })
    );
    Ok(())
}
