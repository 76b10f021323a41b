//! `nasfleet train`: one architecture, trained end to end with the config's
//! recipe, outside any fleet (the paper's final training of the best child).

use anyhow::{bail, Context, Result};
use nasfleet_core::trainer::{BasicContext, TrainError, TrainJob};
use nasfleet_core::{Architecture, ExperimentConfig};
use nasfleet_torch::cnn::CnnTrainer;
use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::rnn::LmTrainer;
use serde_json::json;

use crate::cli::TrainArgs;

pub fn run(args: TrainArgs) -> Result<()> {
    let mut cfg = ExperimentConfig::load(&args.config)?;
    if let Some(e) = args.epochs {
        if e == 0 {
            bail!("--epochs must be at least 1");
        }
        cfg.train.epochs = e;
    }
    let bytes = std::fs::read(&args.arch).with_context(|| format!("cannot read {}", args.arch.display()))?;
    let arch = read_arch(&bytes, &cfg)
        .with_context(|| format!("{} is not a valid architecture", args.arch.display()))?;
    let device = args.device.parse::<DeviceSpec>().and_then(DeviceSpec::resolve).map_err(anyhow::Error::msg)?;
    let data_dir = args.data_dir.clone().unwrap_or_else(nasfleet_data::default_cache_dir);
    let mut ctx = BasicContext { checkpoint_dir: args.checkpoint_dir.clone(), verbose: true, ..Default::default() };
    eprintln!(
        "training {} on {} for {} epochs ({:?})",
        args.arch.display(),
        cfg.train.dataset,
        cfg.train.epochs,
        device
    );
    let failed = |e: TrainError| anyhow::anyhow!("training failed: {e}");
    let report = match &arch {
        Architecture::Cnn(_) => {
            let job = job(&arch, &cfg, args.seed);
            // The final training reports the test set too.
            let r = CnnTrainer::new(&data_dir, device).train_final(&job, &mut ctx).map_err(failed)?;
            let accs: Vec<f64> = r.outcome.metrics.iter().filter_map(|m| m.valid_accuracy).collect();
            json!({
                "dataset": cfg.train.dataset,
                "reward": r.outcome.reward,
                "params": r.cost.params,
                "flops_per_image": r.cost.flops,
                "final_valid_accuracy": accs.last(),
                "best_valid_accuracy": accs.iter().copied().fold(None, |b: Option<f64>, a| Some(b.map_or(a, |b| b.max(a)))),
                "test_accuracy": r.test_accuracy,
                "test_images": r.test_images,
                "note": r.outcome.note,
                "epochs": r.outcome.metrics,
            })
        }
        Architecture::RnnCell(_) => {
            // The final training reports the test set too.
            cfg.train.lm.evaluate_test = true;
            let job = job(&arch, &cfg, args.seed);
            let r = LmTrainer::new(&data_dir, device).train_lm(&job, &mut ctx).map_err(failed)?;
            json!({
                "dataset": r.dataset,
                "reward": r.outcome.reward,
                "params": r.params,
                "hidden": r.hidden,
                "best_valid_perplexity": r.best_valid_perplexity,
                "test_perplexity": r.test_perplexity,
                "valid_bits_per_char": r.valid_bits_per_char(),
                "test_bits_per_char": r.test_bits_per_char(),
                "note": r.outcome.note,
                "epochs": r.outcome.metrics,
            })
        }
        Architecture::Nb201(_) => bail!(
            "NAS-Bench-201 cells are looked up in a table, not trained: use `nasfleet local --config config/nb201.toml` or `nasfleet bench search`"
        ),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// An architecture file, or a record holding one under "arch" (a run's
/// best.json, a history.jsonl line).
fn read_arch(bytes: &[u8], cfg: &ExperimentConfig) -> Result<Architecture> {
    if bytes.len() > cfg.limits.max_payload_bytes {
        // from_json names the cap.
        return Ok(Architecture::from_json(bytes, &cfg.limits)?);
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).context("invalid JSON")?;
    let value = match value {
        serde_json::Value::Object(mut m) if !m.contains_key("space") && m.contains_key("arch") => {
            m.remove("arch").unwrap_or_default()
        }
        other => other,
    };
    Ok(Architecture::from_value(value, &cfg.limits)?)
}

fn job(arch: &Architecture, cfg: &ExperimentConfig, seed: u64) -> TrainJob {
    TrainJob { job_id: "train".into(), arch: arch.clone(), train: cfg.train.clone(), reward: cfg.reward.clone(), seed }
}

fn print_report(r: &serde_json::Value) {
    let show = |k: &str| r.get(k).filter(|v| !v.is_null()).map(|v| format!("{k}: {v}"));
    let keys = [
        "dataset",
        "reward",
        "final_valid_accuracy",
        "best_valid_accuracy",
        "test_accuracy",
        "test_images",
        "params",
        "flops_per_image",
        "hidden",
        "best_valid_perplexity",
        "test_perplexity",
        "valid_bits_per_char",
        "test_bits_per_char",
        "note",
    ];
    for line in keys.iter().filter_map(|k| show(k)) {
        println!("{line}");
    }
}

