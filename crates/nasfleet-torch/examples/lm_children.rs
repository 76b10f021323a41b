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
//! is read from `--cell`: then its test perplexity is reported too) and trained with the config's `[train]` recipe by W
//! worker threads that each own an `LmTrainer`, as workers in one process
//! do. One JSON line per child, then a summary line, on stdout; per-epoch
//! progress on stderr.

use nasfleet_core::trainer::BasicContext;
use nasfleet_core::{ArchLimits, Architecture};
use nasfleet_torch::rnn::{LmDataset, LmTrainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod common;

use common::{arg, num, train_children, ChildrenArgs};

fn main() {
    if let Err(e) = run() {
        eprintln!("lm_children: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ChildrenArgs { mut cfg, workers, threads, seed, device, data_dir } = ChildrenArgs::parse(&args)?;
    // One given cell is a found cell's final training: it reports the test
    // set too (as `nasfleet train` does); sampled children never see it.
    cfg.train.lm.evaluate_test = arg(&args, "--cell").is_some();
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

    let (results, total) = train_children(
        &archs,
        &cfg,
        seed,
        workers,
        || {
            let mut trainer = LmTrainer::new(&data_dir, device).with_cpu_threads(threads);
            trainer.insert_corpus(dataset, (*corpus).clone());
            trainer
        },
        |trainer, job| {
            let r = trainer.train_lm(job, &mut BasicContext { verbose: true, ..Default::default() }).map_err(|e| e.to_string())?;
            Ok(serde_json::json!({
                "params": r.params, "hidden": r.hidden,
                "reward": r.outcome.reward,
                "best_valid_perplexity": r.best_valid_perplexity,
                "valid_bits_per_char": r.valid_bits_per_char(),
                "test_perplexity": r.test_perplexity,
                "valid_perplexity": r.outcome.metrics.iter().map(|m| m.valid_perplexity).collect::<Vec<_>>(),
                "epoch_seconds": r.outcome.metrics.iter().map(|m| m.seconds).collect::<Vec<_>>(),
                "note": r.outcome.note,
            }))
        },
    )?;
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
