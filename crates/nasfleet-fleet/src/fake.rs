//! A deterministic stand-in trainer for tests and the fleet benchmark
//! (feature `fake-trainer`, which the `nasfleet` binary never enables).
//!
//! The reward is a pure function of the architecture (the core's synthetic
//! CNN reward, or a hash for the other spaces), so any run with the same
//! seed and the same sequence of strategy calls sees the same rewards,
//! whichever worker trains which child and however often it is retried.
//! Each epoch sleeps `step`, reports progress and writes a checkpoint (the
//! epochs done and their metrics) to the job's checkpoint directory, from
//! which a later attempt resumes. Switches make it crash on chosen jobs or
//! ignore stop requests.
//!
//! Early stopping: after every epoch it asks [`TrainContext::epoch_end`]
//! (and, resumed, once for its checkpointed epochs); a stopped child's
//! reward is its last intermediate accuracy (the fake's reward rule is the
//! identity). `rung_trace` logs each decision it hears and `rung_pause`
//! holds it right after a stop decision, before acting on it, so that a
//! fault test can kill, stop or preempt the process exactly there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nasfleet_core::cost::arch_cost;
use nasfleet_core::early_stop::RungDecision;
use nasfleet_core::strategy::SyntheticCnnReward;
use nasfleet_core::trainer::{EpochMetrics, TrainContext, TrainError, TrainJob, TrainOutcome, Trainer};
use nasfleet_core::Architecture;
use serde::{Deserialize, Serialize};

use crate::trainer_thread::{TrainerSet, TrainerSets};

/// How a crashing job fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CrashMode {
    /// The trainer panics (the worker turns it into a retryable failure).
    #[default]
    Panic,
    /// The trainer returns a retryable error.
    Retryable,
    /// The trainer returns a permanent error.
    Permanent,
    /// The whole process exits at once (a segfault, the OOM killer).
    Exit,
}

impl std::str::FromStr for CrashMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "panic" => Ok(CrashMode::Panic),
            "retryable" => Ok(CrashMode::Retryable),
            "permanent" => Ok(CrashMode::Permanent),
            "exit" => Ok(CrashMode::Exit),
            other => Err(format!("unknown crash mode {other:?} (panic, retryable, permanent, exit)")),
        }
    }
}

/// Settings of the fake trainer.
#[derive(Clone, Debug, Default)]
pub struct FakeTrainerConfig {
    /// Time per epoch (epochs come from the job's recipe).
    pub step: Duration,
    /// Jobs that crash after their first epoch, every time.
    pub crash_jobs: Vec<String>,
    /// How they crash.
    pub crash: CrashMode,
    /// Never honour a stop request.
    pub ignore_stop: bool,
    /// Appends `<job id> <epoch> <pid>` per finished epoch (shared by processes).
    pub trace: Option<PathBuf>,
    /// Appends `<job id> <epochs trained> <continue|stop> <pid>` per answer
    /// of [`TrainContext::epoch_end`] (every epoch; at a non-rung it is
    /// `continue` without asking the queue; shared by processes).
    pub rung_trace: Option<PathBuf>,
    /// Sleeps this long right after a `stop` decision, before acting on it
    /// (not interruptible by a stop request): the decision is recorded in
    /// the queue, the child not yet ended.
    pub rung_pause: Duration,
}

/// The fake trainer.
#[derive(Clone, Debug)]
pub struct FakeTrainer {
    cfg: FakeTrainerConfig,
}

impl FakeTrainer {
    /// A trainer with `cfg`.
    pub fn new(cfg: FakeTrainerConfig) -> Self {
        FakeTrainer { cfg }
    }
}

/// One fake trainer per trainer thread.
pub fn fake_trainers(cfg: FakeTrainerConfig) -> Arc<TrainerSets> {
    Arc::new(move || Box::new(FakeTrainer::new(cfg.clone())) as Box<dyn TrainerSet>)
}

/// The fake reward of an architecture, in [0, 1].
pub fn fake_reward(arch: &Architecture) -> f64 {
    match arch {
        Architecture::Cnn(a) => SyntheticCnnReward::default().reward(a),
        other => {
            // FNV-1a of the canonical JSON, top 53 bits as a fraction.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in other.to_json().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            (h >> 11) as f64 / (1u64 << 53) as f64
        }
    }
}

const CHECKPOINT_FILE: &str = "fake-checkpoint.json";

#[derive(Serialize, Deserialize, Default)]
struct FakeCheckpoint {
    metrics: Vec<EpochMetrics>,
}

fn load(dir: Option<&Path>) -> FakeCheckpoint {
    dir.and_then(|d| std::fs::read(d.join(CHECKPOINT_FILE)).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save(dir: Option<&Path>, ck: &FakeCheckpoint) -> Result<(), TrainError> {
    let Some(d) = dir else { return Ok(()) };
    let bytes = serde_json::to_vec(ck).map_err(|e| TrainError::Retryable(format!("checkpoint: {e}")))?;
    // The temporary name is unique per process and write: after a lease
    // takeover two attempts may share the directory.
    nasfleet_util::write_atomic(&d.join(CHECKPOINT_FILE), &bytes)
        .map_err(|e| TrainError::Retryable(format!("checkpoint in {}: {e}", d.display())))
}

impl FakeTrainer {
    /// Sleeps `step`, waking every 5 ms to look at the stop flag; true if a
    /// stop was requested (and is honoured).
    fn sleep_step(&self, ctx: &dyn TrainContext) -> bool {
        let end = Instant::now() + self.cfg.step;
        loop {
            if !self.cfg.ignore_stop && ctx.should_stop() {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(5)));
        }
    }

    fn crash(&self, job: &str) -> Result<TrainOutcome, TrainError> {
        let msg = format!("fake crash of job {job}");
        match self.cfg.crash {
            CrashMode::Panic => panic!("{msg}"),
            CrashMode::Retryable => Err(TrainError::Retryable(msg)),
            CrashMode::Permanent => Err(TrainError::Permanent(msg)),
            CrashMode::Exit => {
                eprintln!("{msg}: exiting the process");
                std::process::exit(101);
            }
        }
    }

    /// Asks the context at the end of an epoch; logs the answer and pauses
    /// when configured (the trainer cannot tell a rung from another epoch:
    /// the context decides that; a test knows its rungs).
    fn epoch_end(&self, job: &str, ctx: &mut dyn TrainContext, history: &[EpochMetrics]) -> RungDecision {
        let d = ctx.epoch_end(history);
        if let Some(p) = &self.cfg.rung_trace {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(p) {
                let _ = writeln!(f, "{job} {} {} {}", history.len(), d.as_str(), std::process::id());
            }
        }
        if d == RungDecision::Stop && !self.cfg.rung_pause.is_zero() {
            std::thread::sleep(self.cfg.rung_pause);
        }
        d
    }

    fn trace(&self, job: &str, epoch: usize) {
        if let Some(p) = &self.cfg.trace {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(p) {
                let _ = writeln!(f, "{job} {epoch} {}", std::process::id());
            }
        }
    }
}

impl Trainer for FakeTrainer {
    fn train(&mut self, job: &TrainJob, ctx: &mut dyn TrainContext) -> Result<TrainOutcome, TrainError> {
        let reward = fake_reward(&job.arch);
        let epochs = job.train.epochs.max(1);
        let dir = ctx.checkpoint_dir().map(Path::to_path_buf);
        let mut ck = load(dir.as_deref());
        ck.metrics.truncate(epochs);
        for m in &ck.metrics {
            ctx.progress(m);
        }
        let crashes = self.cfg.crash_jobs.iter().any(|j| j == &job.job_id);
        let stopped = |metrics: Vec<EpochMetrics>| {
            let last = metrics.last().and_then(|m| m.valid_accuracy).unwrap_or(0.0);
            Ok(TrainOutcome { reward: last, stopped_at: Some(metrics.len()), metrics, note: None, cost: arch_cost(&job.arch, (1, 28, 28), 10) })
        };
        // Resumed: the decision of the last checkpointed epoch may have been
        // recorded (as a stop) but not acted on.
        if !ck.metrics.is_empty() && ck.metrics.len() < epochs
            && self.epoch_end(&job.job_id, ctx, &ck.metrics) == RungDecision::Stop
        {
            return stopped(ck.metrics);
        }
        for epoch in ck.metrics.len()..epochs {
            if self.sleep_step(ctx) {
                return Err(TrainError::Preempted { epochs_done: epoch });
            }
            let acc = reward * (epoch + 1) as f64 / epochs as f64;
            let m = EpochMetrics {
                epoch,
                train_loss: 1.0 - acc,
                valid_accuracy: Some(acc),
                valid_perplexity: None,
                seconds: self.cfg.step.as_secs_f64(),
            };
            ck.metrics.push(m.clone());
            save(dir.as_deref(), &ck)?;
            ctx.progress(&m);
            self.trace(&job.job_id, epoch);
            if crashes {
                return self.crash(&job.job_id);
            }
            if self.epoch_end(&job.job_id, ctx, &ck.metrics) == RungDecision::Stop {
                return stopped(ck.metrics);
            }
        }
        // A crashing job crashes on every attempt, even one resumed from a
        // checkpoint that left nothing to train.
        if crashes {
            return self.crash(&job.job_id);
        }
        Ok(TrainOutcome {
            reward,
            metrics: ck.metrics,
            note: None,
            // Sized as for Fashion-MNIST (1×28×28, 10 classes).
            cost: arch_cost(&job.arch, (1, 28, 28), 10),
            stopped_at: None,
        })
    }
}
