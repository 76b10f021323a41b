//! The controller loop: keep `max_in_flight` jobs outstanding, apply the
//! strategy's update once per batch of m results, checkpoint before
//! acknowledging, stop after `search.architectures` children.
//!
//! # Determinism
//!
//! Jobs get sequence numbers in issue order; job `s` is `<run>-<s:06>`.
//! Batch `k` is jobs `k·m .. k·m+m−1`, applied once *all* of them have a
//! terminal outcome, in sequence order; dead-lettered jobs (and results that
//! fail validation) are left out of the feedback and reported, and a batch
//! whose jobs all failed applies no update but still advances. The
//! controller proposes `max(max_in_flight, m)` jobs at the start (capped by
//! the total) and `m` more after each batch. So the sequence of strategy
//! calls — and with a seeded strategy every architecture and update — does
//! not depend on worker timing, on crashes, or on how many workers there are.
//!
//! # One step
//!
//! ```text
//! read results ─► validate, keep until their batch is complete
//! batch k complete ─► update ─► history lines ─► propose m ─► checkpoint
//!                                     (atomic) ─► enqueue (idempotent) ─► ack batch k's results
//! ```
//!
//! # Late children
//!
//! A dead-lettered child that an operator puts back (`nasfleet controller
//! requeue`) finishes after its batch was applied without it. Its result is
//! applied on its own (`driver::apply_late`): a `late: true` history line,
//! the totals and the best child, then a checkpoint, then the event's
//! acknowledgement — never the strategy (the update it belonged to is made;
//! REINFORCE is on-policy). The checkpoint lists the children applied as
//! dead; a result of a job not on that list is ignored, so each late child
//! counts once. Requeued before its batch was applied, the child's result
//! simply replaces its dead letter in the batch. A finished run waits for
//! requeued children before finishing again.
//!
//! A crash anywhere is recovered by `--resume`: the checkpoint has the
//! strategy, the next batch, the issued count and the outstanding jobs with
//! their actions, and the lengths of `history.jsonl` / `updates.jsonl`. The
//! resumed controller cuts those files back, re-enqueues every outstanding
//! job (the queue ignores ones it has or that finished), re-reads every
//! result it had not acknowledged, ignores results of jobs already applied
//! or never issued, and goes on exactly as an uninterrupted run would.
//!
//! Results are untrusted (a worker can post anything for a job it holds):
//! the job id must be one this run issued, the result a well-formed
//! [`JobResult`](nasfleet_core::trainer::JobResult) of this format version
//! under 1 MiB naming that job, the reward finite and inside the reward
//! rule's range. A result that fails counts as failed, like a dead letter.
//!
//! # Layout
//!
//! * `batches` — the batch book, pure: issue order, which outcomes arrived,
//!   which batch is complete, which events to ignore.
//! * `outcome` — results read as typed `JobResult`s and validated; a complete
//!   batch settled into feedback, history lines and the best child.
//! * `pareto` — the run's Pareto fronts (`pareto.json`), bounded in memory.
//! * `resume` — the run directory: starting, checkpointing, resuming.
//! * `calls` — the queue calls, retried through outages with one back-off.
//! * `strategy` — the strategy, its long calls run off the async runtime.
//! * `driver` — the loop sequencing all of the above.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nasfleet_core::config::ExperimentConfig;
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::strategy::SearchStrategy;
use nasfleet_queue::{Consumer, JobQueue, Keys};
use tokio::sync::watch;
use tracing::Instrument;

use crate::board::{Board, ControllerState};
use crate::error::{FleetError, Result};
use crate::rundir::Best;
use crate::shutdown::Shutdown;

mod batches;
mod calls;
mod driver;
mod outcome;
mod pareto;
mod resume;
mod strategy;

/// Largest result JSON the controller parses.
pub const MAX_RESULT_BYTES: usize = 1 << 20;

/// A durable step of the controller, reported to a [`Probe`].
///
/// `step` 0 is the initial proposal; step `k + 1` applies batch `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// The strategy applied the batch's update (nothing durable yet).
    Updated {
        /// Step.
        step: u64,
    },
    /// The batch's history lines are on disk.
    HistoryWritten {
        /// Step.
        step: u64,
    },
    /// The checkpoint of the step is on disk.
    Checkpointed {
        /// Step.
        step: u64,
    },
    /// The `index`-th new job of the step is enqueued.
    Enqueued {
        /// Step.
        step: u64,
        /// 0-based index among the step's new jobs.
        index: usize,
    },
    /// The step's results are acknowledged.
    Acked {
        /// Step.
        step: u64,
    },
    /// Late children's history lines are on disk (not checkpointed yet).
    LateWritten,
    /// The checkpoint recording late children is on disk (their events
    /// not acknowledged yet).
    LateCheckpointed,
}

/// Called at every [`Point`]; fault tests use it to crash the controller at
/// a precise place, operators could use it for tracing.
pub type Probe = Arc<dyn Fn(Point) + Send + Sync>;

/// Everything a controller needs besides its queue, config and strategy.
#[derive(Clone)]
pub struct ControllerOptions {
    /// Run id (namespaces the queue keys and the job ids).
    pub run: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Continue from the run directory's checkpoint instead of starting.
    pub resume: bool,
    /// The controller's consumer on the results stream.
    pub consumer: Consumer,
    /// Longest wait of one result read.
    pub block: Duration,
    /// Where to publish the state for `status`.
    pub board: Board,
    /// Receives the state after every step (the embedded mode's progress line).
    pub progress: Option<watch::Sender<ControllerState>>,
    /// See [`Probe`].
    pub probe: Option<Probe>,
}

impl std::fmt::Debug for ControllerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerOptions")
            .field("run", &self.run)
            .field("run_dir", &self.run_dir)
            .field("resume", &self.resume)
            .field("consumer", &self.consumer)
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

/// How a controller run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerSummary {
    /// The final published state.
    pub state: ControllerState,
    /// The best child.
    pub best: Option<Best>,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Every child was applied (false: stopped on request; resume it).
    pub finished: bool,
}

/// Runs the controller until the run is finished or `shutdown` is requested.
pub async fn run_controller<Q: JobQueue>(
    queue: Q,
    config: &ExperimentConfig,
    strategy: Box<dyn SearchStrategy>,
    opts: ControllerOptions,
    shutdown: Shutdown,
) -> Result<ControllerSummary> {
    Keys::new(&opts.run)?;
    if config.train.lm.evaluate_test {
        // Every child would be dead-lettered by the workers: say it once.
        return Err(FleetError::Refused(
            "train.lm.evaluate_test = true: a search scores its children on validation data only; remove it \
             (`nasfleet train` reports the test set of the architecture a search found)"
                .into(),
        ));
    }
    let span = tracing::info_span!("controller", run = %opts.run);
    async move {
        let (mut c, resumed) = driver::Controller::open(queue, config, strategy, opts, shutdown).await?;
        c.run(resumed).await
    }
    .instrument(span)
    .await
}

/// The range a reward rule can produce: accuracies are fractions (any power
/// of one stays in [0, 1]); `c / ppl²` with ppl ≥ 1 stays in [0, c].
pub fn reward_range(r: &RewardConfig) -> (f64, f64) {
    match r {
        RewardConfig::Accuracy { .. } => (0.0, 1.0),
        RewardConfig::Perplexity { c } => (0.0, c.abs()),
    }
}
