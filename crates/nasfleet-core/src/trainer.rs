//! The trainer interface and the job wire types: what travels from the
//! controller to a worker and back.
//!
//! A job carries everything needed to train it (architecture, recipe, reward
//! rule, dataset name, seed), so a worker needs no configuration beyond the
//! queue address and its local data paths. Wire types tolerate unknown fields
//! (newer controllers may add some); the architecture inside is parsed
//! strictly by [`crate::Architecture::from_value`] because it is a contract.
//!
//! Trainers run on a dedicated thread that owns their tensors; they talk to
//! the worker loop only through [`TrainContext`] (plain data).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arch::Architecture;
use crate::config::TrainConfig;
use crate::cost::ArchCost;
use crate::early_stop::{EarlyStopConfig, RungDecision};
use crate::reward::RewardConfig;

/// Version of the [`JobSpec`] payload; a worker refuses another.
pub const JOB_FORMAT_VERSION: u32 = 1;

/// The queue payload of one child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// [`JOB_FORMAT_VERSION`].
    pub version: u32,
    /// The job's id (`<run>-<issue index>`), also its checkpoint directory name.
    pub job_id: String,
    /// The run it belongs to.
    pub run: String,
    /// The architecture's versioned JSON form; validated by the worker.
    pub arch: serde_json::Value,
    /// The controller's action tokens (so the reward can be matched back).
    pub actions: Vec<u32>,
    /// The policy version that sampled it.
    pub policy_version: u64,
    /// The training recipe (`[train]` of the run's config).
    pub train: TrainConfig,
    /// How the child's metrics become its reward (`[reward]`).
    pub reward: RewardConfig,
    /// Seed of this child's training (weights init, data order, augmentation).
    pub seed: u64,
    /// Early stopping (`[early_stop]`); absent in jobs of older controllers,
    /// which means off.
    #[serde(default)]
    pub early_stop: EarlyStopConfig,
}

/// Metrics of one finished epoch, reported as progress and kept in history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Mean training loss of the epoch (NaN when it diverged).
    pub train_loss: f64,
    /// Validation accuracy in [0, 1] (image children).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_accuracy: Option<f64>,
    /// Validation perplexity (language-model children).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_perplexity: Option<f64>,
    /// Wall-clock seconds the epoch took.
    pub seconds: f64,
}

impl EpochMetrics {
    /// One human-readable line: `epoch   3  loss 0.4123 valid_acc 0.8530  (0.5s)`.
    pub fn line(&self) -> String {
        let acc = self.valid_accuracy.map(|a| format!(" valid_acc {a:.4}")).unwrap_or_default();
        let ppl = self.valid_perplexity.map(|p| format!(" valid_ppl {p:.2}")).unwrap_or_default();
        format!("epoch {:>3}  loss {:.4}{acc}{ppl}  ({:.1}s)", self.epoch, self.train_loss, self.seconds)
    }
}

/// What a worker posts for a finished child (the queue's result JSON).
///
/// The controller treats it as untrusted input: it checks the version, that
/// `job_id` is the job the result was recorded for, and that the reward is
/// finite and inside the reward rule's range. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// Format version of this result: [`JOB_FORMAT_VERSION`] when written by
    /// this build; a controller refuses (counts as failed) any other.
    pub version: u32,
    /// The job this result is for (must equal the job it was recorded under).
    pub job_id: String,
    /// The child's reward, computed by the job's reward rule. Sent as a JSON
    /// number and read back bit for bit (`float_roundtrip`).
    pub reward: f64,
    /// One entry per finished epoch. A non-finite value (a diverged loss)
    /// travels as JSON `null`; `train_loss` and `seconds` read it back as NaN.
    #[serde(deserialize_with = "epochs_allowing_null")]
    pub metrics: Vec<EpochMetrics>,
    /// The worker (queue consumer name) that trained it.
    pub worker: String,
    /// When training started, Unix milliseconds (the worker's clock).
    pub started_ms: u64,
    /// When training finished, Unix milliseconds (the worker's clock).
    pub finished_ms: u64,
    /// Why the reward is what it is when training did not go normally
    /// (e.g. "diverged: loss is NaN at epoch 3").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The child's size (parameters, FLOPs per image) as its trainer counted
    /// it for the job's dataset, when its space has one (CNN, NB201): what
    /// the run's Pareto front (`pareto.json`) plots accuracy against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<ArchCost>,
    /// Status `stopped`: early stopping ended the child after this epoch
    /// (counted from 1); its reward comes from the epochs it trained. Absent
    /// for a child that trained every epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<usize>,
    /// Which delivery of the job trained it: 1 the first, more after a
    /// worker vanished or gave it back mid-training. Absent in results of
    /// older workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u64>,
}

impl JobResult {
    /// `stopped` when early stopping ended the child, else `ok`.
    pub fn status(&self) -> &'static str {
        if self.stopped_at.is_some() {
            "stopped"
        } else {
            "ok"
        }
    }
}

/// Reads [`JobResult::metrics`]: serde_json writes a non-finite `f64` as
/// `null`, so the required numbers of an epoch accept `null` (as NaN).
fn epochs_allowing_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<EpochMetrics>, D::Error> {
    #[derive(Deserialize)]
    struct Wire {
        epoch: usize,
        train_loss: Option<f64>,
        #[serde(default)]
        valid_accuracy: Option<f64>,
        #[serde(default)]
        valid_perplexity: Option<f64>,
        seconds: Option<f64>,
    }
    let nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
    Ok(Vec::<Wire>::deserialize(d)?
        .into_iter()
        .map(|w| EpochMetrics {
            epoch: w.epoch,
            train_loss: nan(w.train_loss),
            valid_accuracy: w.valid_accuracy,
            valid_perplexity: w.valid_perplexity,
            seconds: nan(w.seconds),
        })
        .collect())
}

/// A job after validation: what a trainer receives.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainJob {
    /// The job's id.
    pub job_id: String,
    /// The validated architecture.
    pub arch: Architecture,
    /// The training recipe.
    pub train: TrainConfig,
    /// The reward rule.
    pub reward: RewardConfig,
    /// Seed of the training.
    pub seed: u64,
}

/// A trainer's answer for a child that trained to the end (or diverged).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    /// The child's reward (finite).
    pub reward: f64,
    /// Every epoch's metrics.
    pub metrics: Vec<EpochMetrics>,
    /// Why the reward is what it is when training did not go normally.
    pub note: Option<String>,
    /// The child's size, when its space has one ([`JobResult::cost`]).
    pub cost: Option<ArchCost>,
    /// Early stopping ended the child after this epoch (see
    /// [`TrainContext::epoch_end`]); `None` when it trained every epoch.
    pub stopped_at: Option<usize>,
}

/// Why a child did not produce a reward. The queue treats the kinds
/// differently: permanent → dead letter at once; retryable → back to the
/// queue (spends a delivery); preempted → released without spending one.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TrainError {
    /// Invalid architecture, over budget, unknown dataset: retrying cannot help.
    #[error("permanent: {0}")]
    Permanent(String),
    /// Infrastructure trouble (out of memory on a busy GPU, I/O): another
    /// attempt may succeed.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Stopped on request (SIGTERM); the last checkpoint is on disk.
    #[error("preempted after epoch {epochs_done}")]
    Preempted {
        /// Epochs finished (and checkpointed) before the stop.
        epochs_done: usize,
    },
}

/// What the worker loop offers a running trainer.
pub trait TrainContext {
    /// Called after every epoch; the worker forwards it in its heartbeats.
    fn progress(&mut self, metrics: &EpochMetrics);
    /// True once the worker has been asked to stop (preemption notice): the
    /// trainer checkpoints and returns [`TrainError::Preempted`].
    fn should_stop(&self) -> bool;
    /// Where to keep per-epoch checkpoints of this job (None: do not).
    fn checkpoint_dir(&self) -> Option<&Path>;
    /// Called after every finished epoch with every epoch so far (the last
    /// is the one just finished), after [`progress`](Self::progress) and the
    /// epoch's checkpoint; and, on a resumed child, once with the epochs of
    /// its checkpoint before it trains on (the decision recorded for its last
    /// epoch may not have been acted on before the preemption). On
    /// [`RungDecision::Stop`] the trainer returns at once with the reward of
    /// the epochs so far and `stopped_at` set. May block (the worker asks the
    /// queue). Default: continue (no early stopping).
    fn epoch_end(&mut self, history: &[EpochMetrics]) -> RungDecision {
        let _ = history;
        RungDecision::Continue
    }
}

/// A trainer for one or more search spaces.
pub trait Trainer: Send {
    /// Trains `job` to the end (resuming from `ctx`'s checkpoint directory
    /// when it holds one) and returns its reward, or why there is none.
    fn train(&mut self, job: &TrainJob, ctx: &mut dyn TrainContext) -> Result<TrainOutcome, TrainError>;
}

/// A simple context for one-off training (`nasfleet train`, tests).
#[derive(Debug, Default)]
pub struct BasicContext {
    /// Where the trainer keeps per-epoch checkpoints (None: nowhere).
    pub checkpoint_dir: Option<PathBuf>,
    /// Every epoch reported so far.
    pub history: Vec<EpochMetrics>,
    /// Print one line per epoch to stderr.
    pub verbose: bool,
}

impl TrainContext for BasicContext {
    fn progress(&mut self, m: &EpochMetrics) {
        if self.verbose {
            eprintln!("{}", m.line());
        }
        self.history.push(m.clone());
    }
    fn should_stop(&self) -> bool {
        false
    }
    fn checkpoint_dir(&self) -> Option<&Path> {
        self.checkpoint_dir.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_result_with_a_diverged_loss_reads_back() {
        let r = JobResult {
            version: JOB_FORMAT_VERSION,
            job_id: "r-000001".into(),
            reward: 0.75,
            metrics: vec![EpochMetrics { epoch: 1, train_loss: f64::NAN, valid_accuracy: Some(f64::INFINITY), valid_perplexity: None, seconds: 0.5 }],
            worker: "w".into(),
            started_ms: 1,
            finished_ms: 2,
            note: Some("diverged".into()),
            cost: None,
            stopped_at: None,
            attempt: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""train_loss":null"#), "{text}");
        let back: JobResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back.reward, 0.75);
        assert!(back.metrics[0].train_loss.is_nan());
        assert_eq!((back.metrics[0].valid_accuracy, back.metrics[0].seconds), (None, 0.5));
        assert_eq!((back.job_id.as_str(), back.note.as_deref()), ("r-000001", Some("diverged")));
        // Unknown fields are tolerated; a missing reward is not.
        let extra = text.replacen('{', r#"{"from_the_future":1,"#, 1);
        assert!(serde_json::from_str::<JobResult>(&extra).is_ok());
        let no_reward = text.replace(r#""reward":0.75,"#, "");
        assert!(serde_json::from_str::<JobResult>(&no_reward).is_err(), "{no_reward}");
    }
}
