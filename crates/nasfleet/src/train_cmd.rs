//! `nasfleet train`: one architecture, trained end to end with the config's
//! recipe, outside any fleet (the paper's final training of the best child).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nasfleet_core::trainer::{EpochMetrics, TrainContext, TrainError, TrainJob};
use nasfleet_core::{Architecture, ExperimentConfig};
use nasfleet_fleet::{on_signals, Shutdown};
use nasfleet_torch::cnn::CnnTrainer;
use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::export::{CnnChild, LmChild};
use nasfleet_torch::rnn::LmTrainer;
use serde_json::json;

use crate::cli::TrainArgs;

pub(crate) fn run(args: TrainArgs) -> Result<()> {
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
    // Ctrl-C / SIGTERM stop the training at the next step (after the last
    // epoch's checkpoint, with --checkpoint-dir): a runtime thread watches
    // the signals while this thread trains.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the signal watcher")?;
    let stop = {
        let _in_runtime = rt.enter();
        on_signals().context("installing signal handlers")?
    };
    // --save-weights reads the final weights from the last epoch's
    // checkpoint: the user's --checkpoint-dir, else a temporary directory
    // beside the weights file, removed at the end.
    let scratch = match (&args.save_weights, &args.checkpoint_dir) {
        (Some(w), None) => Some(Scratch::beside(w)?),
        _ => None,
    };
    let ckpt_dir = args.checkpoint_dir.clone().or_else(|| scratch.as_ref().map(|s| s.0.clone()));
    let mut ctx = Progress::new(cfg.train.epochs, ckpt_dir.clone(), stop);
    eprintln!(
        "training {} on {} for {} epochs ({:?})",
        args.arch.display(),
        cfg.train.dataset,
        cfg.train.epochs,
        device
    );
    let total = cfg.train.epochs;
    let failed = |e: TrainError| match e {
        TrainError::Preempted { epochs_done } => match &args.checkpoint_dir {
            Some(dir) => anyhow::anyhow!(
                "stopped after {epochs_done} of {total} epochs; the checkpoint in {} resumes from there: run the same command again",
                dir.display()
            ),
            None => anyhow::anyhow!(
                "stopped after {epochs_done} of {total} epochs; nothing was kept (--checkpoint-dir DIR keeps every epoch and resumes)"
            ),
        },
        e => anyhow::anyhow!("training failed: {e}"),
    };
    let mut report = match &arch {
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
    ctx.finish();
    rt.shutdown_timeout(Duration::from_millis(100));
    if let (Some(path), Some(dir)) = (&args.save_weights, &ckpt_dir) {
        save_weights(&arch, &cfg, &data_dir, dir, path)?;
        eprintln!("weights: {}", path.display());
        report["weights"] = json!(path.display().to_string());
    }
    drop(scratch);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// A scratch checkpoint directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    /// `.NAME.ckpt-PID` beside `weights`; fails early when the weights'
    /// directory does not exist (before any training).
    fn beside(weights: &Path) -> Result<Scratch> {
        let parent = match weights.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.is_empty() || !parent.is_dir() {
            bail!("--save-weights {}: no such directory to write it in", weights.display());
        }
        let dir = parent.join(format!(".{name}.ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the final weights of the child checkpointed in `dir` to `path`
/// (atomically), named for the exported PyTorch module.
fn save_weights(arch: &Architecture, cfg: &ExperimentConfig, data_dir: &Path, dir: &Path, path: &Path) -> Result<()> {
    let epochs = cfg.train.epochs;
    let (file, done) = match arch {
        Architecture::Cnn(a) => {
            let (input, classes) = CnnTrainer::new(data_dir, nasfleet_torch::tch::Device::Cpu)
                .input_shape(&cfg.train)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (child, done) = CnnChild::from_checkpoint(dir, a, input, classes)
                .map_err(|e| anyhow::anyhow!("cannot save the weights: {e}"))?;
            (child.weights().map_err(|e| anyhow::anyhow!("{e}"))?, done)
        }
        Architecture::RnnCell(a) => {
            let (child, done) =
                LmChild::from_checkpoint(dir, a).map_err(|e| anyhow::anyhow!("cannot save the weights: {e}"))?;
            (child.weights().map_err(|e| anyhow::anyhow!("{e}"))?, done)
        }
        Architecture::Nb201(_) => bail!("NAS-Bench-201 cells have no weights"),
    };
    if done != epochs {
        bail!("no weights saved: the last checkpoint holds {done} of {epochs} epochs (the child diverged; see the note)");
    }
    file.write(path).map_err(|e| anyhow::anyhow!("cannot write the weights: {e}"))
}

/// An architecture file, or a record holding one under "arch" (a run's
/// best.json, a history.jsonl line).
pub(crate) fn read_arch(bytes: &[u8], cfg: &ExperimentConfig) -> Result<Architecture> {
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

/// The training's progress on stderr, and its stop switch. Every epoch is a
/// plain line (what a log file or a pipe gets); on a terminal a bar below
/// them is redrawn in place: epochs done, the best validation figure so
/// far, seconds per epoch and the time left.
struct Progress {
    tty: bool,
    total: usize,
    checkpoint_dir: Option<PathBuf>,
    stop: Shutdown,
    /// Best validation accuracy (max) or perplexity (min) so far.
    best: Option<(&'static str, f64)>,
    /// Seconds of the epochs trained by this process (not restored ones).
    seconds: Vec<f64>,
    bar_shown: bool,
}

impl Progress {
    fn new(total: usize, checkpoint_dir: Option<PathBuf>, stop: Shutdown) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            total,
            checkpoint_dir,
            stop,
            best: None,
            seconds: Vec::new(),
            bar_shown: false,
        }
    }

    /// Ends the bar's line so that what follows starts on its own.
    fn finish(&mut self) {
        if self.bar_shown {
            eprintln!();
            self.bar_shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error ends the run too: its message must not land on the bar.
        self.finish();
    }
}

impl TrainContext for Progress {
    fn progress(&mut self, m: &EpochMetrics) {
        self.best = match (m.valid_accuracy, m.valid_perplexity, self.best) {
            (Some(a), _, Some((k, b))) if k == "valid_acc" => Some((k, b.max(a))),
            (Some(a), _, _) => Some(("valid_acc", a)),
            (None, Some(p), Some((k, b))) if k == "valid_ppl" => Some((k, b.min(p))),
            (None, Some(p), _) => Some(("valid_ppl", p)),
            (None, None, b) => b,
        };
        self.seconds.push(m.seconds);
        if self.tty {
            // Clear the bar, print the epoch's line in its place, redraw the bar.
            eprint!("\r\x1b[2K{}\n{}", m.line(), bar(m.epoch, self.total, self.best, &self.seconds));
            self.bar_shown = true;
        } else {
            eprintln!("{}", m.line());
        }
    }

    fn should_stop(&self) -> bool {
        self.stop.is_requested()
    }

    fn checkpoint_dir(&self) -> Option<&Path> {
        self.checkpoint_dir.as_deref()
    }
}

/// `[########------------]  8/20 epochs | best valid_acc 0.8720 | 0.5 s/epoch | 6 s left`
fn bar(done: usize, total: usize, best: Option<(&str, f64)>, seconds: &[f64]) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH).min(WIDTH);
    let mut line = format!("[{}{}] {done:>w$}/{total} epochs", "#".repeat(filled), "-".repeat(WIDTH - filled), w = total.to_string().len());
    match best {
        Some((k, v)) if k == "valid_ppl" => line += &format!(" | best {k} {v:.2}"),
        Some((k, v)) => line += &format!(" | best {k} {v:.4}"),
        None => {}
    }
    if !seconds.is_empty() {
        let per = seconds.iter().sum::<f64>() / seconds.len() as f64;
        let left = per * total.saturating_sub(done) as f64;
        line += &format!(" | {per:.1} s/epoch | {} left", human_seconds(left));
    }
    line
}

fn human_seconds(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..=99 => format!("{s} s"),
        100..=5999 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_epochs_best_rate_and_time_left() {
        assert_eq!(
            bar(8, 20, Some(("valid_acc", 0.872)), &[0.5, 0.5]),
            "[########------------]  8/20 epochs | best valid_acc 0.8720 | 0.5 s/epoch | 6 s left"
        );
        assert_eq!(
            bar(3, 3, Some(("valid_ppl", 85.123)), &[700.0]),
            "[####################] 3/3 epochs | best valid_ppl 85.12 | 700.0 s/epoch | 0 s left"
        );
        // A resumed run with nothing trained yet in this process.
        assert_eq!(bar(0, 4, None, &[]), "[--------------------] 0/4 epochs");
        assert_eq!(human_seconds(4000.0), "66m40s");
        assert_eq!(human_seconds(90_000.0), "25h00m");
    }

    #[test]
    fn the_best_figure_follows_its_direction() {
        let mut p = Progress::new(3, None, Shutdown::never());
        p.tty = false;
        for (acc, ppl) in [(Some(0.5), None), (Some(0.4), None)] {
            p.progress(&EpochMetrics { valid_accuracy: acc, valid_perplexity: ppl, ..Default::default() });
        }
        assert_eq!(p.best, Some(("valid_acc", 0.5)));
        let mut p = Progress::new(3, None, Shutdown::never());
        p.tty = false;
        for ppl in [120.0, 90.0, 95.0] {
            p.progress(&EpochMetrics { valid_perplexity: Some(ppl), ..Default::default() });
        }
        assert_eq!(p.best, Some(("valid_ppl", 90.0)));
    }
}
