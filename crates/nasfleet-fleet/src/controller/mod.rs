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
//! A crash anywhere is recovered by `--resume`: the checkpoint has the
//! strategy, the next batch, the issued count and the outstanding jobs with
//! their actions, and the lengths of `history.jsonl` / `updates.jsonl`. The
//! resumed controller cuts those files back, re-enqueues every outstanding
//! job (the queue ignores ones it has or that finished), re-reads every
//! result it had not acknowledged, ignores results of jobs already applied
//! or never issued, and goes on exactly as an uninterrupted run would.
//!
//! Results are untrusted (a worker can post anything for a job it holds):
//! the job id must be one this run issued, the reward finite and inside the
//! reward rule's range, the result well-formed JSON under 1 MiB.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use nasfleet_core::config::ExperimentConfig;
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::strategy::{Feedback, Proposal, SearchStrategy, UpdateStats};
use nasfleet_core::trainer::{JobSpec, JOB_FORMAT_VERSION};
use nasfleet_queue::{Consumer, EnqueueOutcome, JobOutcome, JobQueue, Keys, QueueError, ResultEvent};
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};

use crate::board::{Board, ControllerState};
use crate::error::{is_fatal, FleetError, Result};
use crate::ids::{child_seed, job_id, now_ms, parse_seq};
use crate::rundir::{
    files, read_checkpoint, write_atomic, Best, Checkpoint, HistoryLine, JsonLines, Outstanding, UpdateLine,
    CHECKPOINT_FORMAT,
};
use crate::shutdown::Shutdown;

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
    let span = tracing::info_span!("controller", run = %opts.run);
    async move {
        let mut c = Controller::open(queue, config, strategy, opts, shutdown).await?;
        c.run().await
    }
    .instrument(span)
    .await
}

struct Received {
    event_id: String,
    by: String,
    kind: ReceivedKind,
}

enum ReceivedKind {
    Ok {
        reward: f64,
        metrics: serde_json::Value,
        started_ms: Option<u64>,
        finished_ms: Option<u64>,
        note: Option<String>,
    },
    Dead {
        reason: String,
        error: String,
    },
    Invalid {
        detail: String,
    },
}

struct Controller<Q> {
    queue: Q,
    cfg: ExperimentConfig,
    opts: ControllerOptions,
    shutdown: Shutdown,
    // In a Mutex only so that the controller is Sync (its futures hold
    // `&self` across awaits and strategies are not Sync); never contended:
    // calls take the strategy out with `get_mut`.
    strategy: std::sync::Mutex<Option<Box<dyn SearchStrategy>>>,
    strategy_name: String,
    total: u64,
    m: u64,
    in_flight: u64,
    reward_range: (f64, f64),
    issued: u64,
    next_batch: u64,
    outstanding: BTreeMap<u64, Outstanding>,
    received: BTreeMap<u64, Received>,
    history: JsonLines,
    updates: JsonLines,
    rewarded: u64,
    failed: u64,
    best: Option<Best>,
    finished: bool,
    resumed: bool,
}

/// The range a reward rule can produce: accuracies are fractions (any power
/// of one stays in [0, 1]); `c / ppl²` with ppl ≥ 1 stays in [0, c].
pub fn reward_range(r: &RewardConfig) -> (f64, f64) {
    match r {
        RewardConfig::Accuracy { .. } => (0.0, 1.0),
        RewardConfig::Perplexity { c } => (0.0, c.abs()),
    }
}

impl<Q: JobQueue> Controller<Q> {
    async fn open(
        queue: Q,
        cfg: &ExperimentConfig,
        mut strategy: Box<dyn SearchStrategy>,
        opts: ControllerOptions,
        shutdown: Shutdown,
    ) -> Result<Self> {
        let dir = opts.run_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| FleetError::io("run directory", &dir, e))?;
        let config_text = cfg.to_toml();
        let ckpt_path = dir.join(files::CHECKPOINT);
        let m = cfg.search.batch.max(1) as u64;
        let total = cfg.search.architectures;
        let in_flight = (cfg.search.max_in_flight as u64).max(m);
        if (cfg.search.max_in_flight as u64) < m {
            warn!(
                max_in_flight = cfg.search.max_in_flight,
                batch = m,
                "max_in_flight is below the batch size; keeping one batch in flight"
            );
        }
        let hard = nasfleet_core::ArchLimits::default();
        let l = &cfg.limits;
        if l.max_layers > hard.max_layers
            || l.max_filters > hard.max_filters
            || l.max_kernel > hard.max_kernel
            || l.max_stride > hard.max_stride
            || l.max_cell_base > hard.max_cell_base
        {
            warn!(
                "[limits] are above the built-in limits fleet workers validate jobs against ({hard:?}); \
                 children beyond those will be dead-lettered as invalid_architecture"
            );
        }
        let strategy_name = strategy.name().to_owned();
        let restored = if opts.resume {
            if !ckpt_path.exists() {
                return Err(FleetError::Refused(format!(
                    "{} has no checkpoint: nothing to resume (start the run without --resume)",
                    dir.display()
                )));
            }
            let saved_path = dir.join(files::CONFIG);
            let saved =
                std::fs::read_to_string(&saved_path).map_err(|e| FleetError::io("run config", &saved_path, e))?;
            if saved != config_text {
                return Err(FleetError::Refused(format!(
                    "the config differs from the run's own copy {}: resume with that file (--config {})",
                    saved_path.display(),
                    saved_path.display()
                )));
            }
            let ck = read_checkpoint(&ckpt_path)?;
            if ck.run != opts.run {
                return Err(FleetError::Refused(format!(
                    "{} is the checkpoint of run {:?}, not {:?}",
                    ckpt_path.display(),
                    ck.run,
                    opts.run
                )));
            }
            if ck.strategy != strategy_name {
                return Err(FleetError::Refused(format!(
                    "{} holds a {} strategy, the config asks for {strategy_name}",
                    ckpt_path.display(),
                    ck.strategy
                )));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&ck.strategy_state)
                .map_err(|e| FleetError::Checkpoint {
                    path: ckpt_path.clone(),
                    message: format!("strategy_state is not base64: {e}"),
                })?;
            strategy.restore(&bytes)?;
            info!(
                issued = ck.issued,
                next_batch = ck.next_batch,
                outstanding = ck.outstanding.len(),
                "resuming from the checkpoint"
            );
            Some(ck)
        } else {
            if ckpt_path.exists() {
                return Err(FleetError::Refused(format!(
                    "{} already holds a run (checkpoint.json): resume it with --resume, or choose another run",
                    dir.display()
                )));
            }
            let st = queue.status(1).await?;
            if st.enqueued > 0 || st.outcomes > 0 {
                return Err(FleetError::Refused(format!(
                    "run {:?} already has {} job(s) in the queue: resume it with --resume (same run directory), \
                     or choose another run",
                    opts.run, st.enqueued
                )));
            }
            write_atomic("run config", &dir.join(files::CONFIG), config_text.as_bytes())?;
            let _ = std::fs::remove_file(dir.join(files::BEST));
            None
        };
        let (history, updates) = match &restored {
            Some(ck) => (
                JsonLines::reopen("history", dir.join(files::HISTORY), ck.history_bytes)?,
                JsonLines::reopen("updates", dir.join(files::UPDATES), ck.updates_bytes)?,
            ),
            None => (
                JsonLines::create("history", dir.join(files::HISTORY))?,
                JsonLines::create("updates", dir.join(files::UPDATES))?,
            ),
        };
        let mut c = Controller {
            queue,
            cfg: cfg.clone(),
            shutdown,
            strategy: std::sync::Mutex::new(Some(strategy)),
            strategy_name,
            total,
            m,
            in_flight,
            reward_range: reward_range(&cfg.reward),
            issued: 0,
            next_batch: 0,
            outstanding: BTreeMap::new(),
            received: BTreeMap::new(),
            history,
            updates,
            rewarded: 0,
            failed: 0,
            best: None,
            finished: false,
            resumed: restored.is_some(),
            opts,
        };
        if let Some(ck) = restored {
            c.issued = ck.issued;
            c.next_batch = ck.next_batch;
            c.outstanding = ck.outstanding.into_iter().map(|o| (o.seq, o)).collect();
            c.rewarded = ck.rewarded;
            c.failed = ck.failed;
            c.best = ck.best;
            c.finished = ck.finished;
        }
        Ok(c)
    }

    async fn run(&mut self) -> Result<ControllerSummary> {
        if self.resumed {
            self.write_best()?;
            let outstanding: Vec<u64> = self.outstanding.keys().copied().collect();
            info!(jobs = outstanding.len(), "re-enqueueing outstanding jobs (idempotent)");
            for seq in outstanding {
                if !self.enqueue(seq).await? {
                    return Ok(self.stopped().await);
                }
            }
        } else {
            let n = self.in_flight.min(self.total);
            info!(
                total = self.total,
                batch = self.m,
                in_flight = n,
                strategy = %self.strategy_name,
                "starting the search"
            );
            let new = self.propose(n).await?;
            self.save_checkpoint()?;
            self.probe(Point::Checkpointed { step: 0 });
            for (index, seq) in new.into_iter().enumerate() {
                if !self.enqueue(seq).await? {
                    return Ok(self.stopped().await);
                }
                self.probe(Point::Enqueued { step: 0, index });
            }
        }
        self.publish("running").await;
        let read_max = self.in_flight.clamp(1, 1000) as usize;
        let mut backoff = Duration::from_millis(100);
        let mut shutdown = self.shutdown.clone();
        loop {
            if self.finished {
                return Ok(self.done().await);
            }
            if self.shutdown.is_requested() {
                return Ok(self.stopped().await);
            }
            let read = tokio::select! {
                r = self.queue.read_results(&self.opts.consumer, read_max, self.opts.block) => r,
                _ = shutdown.requested() => continue,
            };
            let events = match read {
                Ok(ev) => {
                    backoff = Duration::from_millis(100);
                    ev
                }
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => {
                    warn!(error = %e, "reading results failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.requested() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            let mut ack_now = Vec::new();
            for ev in events {
                if let Some(id) = self.receive(ev) {
                    ack_now.push(id);
                }
            }
            if !ack_now.is_empty() && !self.ack(&ack_now).await? {
                return Ok(self.stopped().await);
            }
            while let Some(b) = self.ready_batch() {
                if !self.apply(b).await? {
                    return Ok(self.stopped().await);
                }
            }
        }
    }

    fn batch_range(&self, b: u64) -> std::ops::Range<u64> {
        let start = b.saturating_mul(self.m);
        start..start.saturating_add(self.m).min(self.total)
    }

    /// The next batch, if every one of its jobs has an outcome.
    fn ready_batch(&self) -> Option<u64> {
        if self.finished {
            return None;
        }
        let b = self.next_batch;
        let r = self.batch_range(b);
        if r.is_empty() {
            return None;
        }
        (r.end <= self.issued && r.clone().all(|s| self.received.contains_key(&s))).then_some(b)
    }

    /// Takes in one result event; returns its id when it should be
    /// acknowledged at once (nothing of ours depends on it).
    fn receive(&mut self, ev: ResultEvent) -> Option<String> {
        let Some(seq) = parse_seq(&self.opts.run, &ev.job_id) else {
            warn!(job_id = %ev.job_id, by = %ev.by, "ignoring a result for a job id this run never issues");
            return Some(ev.id);
        };
        if seq >= self.issued {
            warn!(job_id = %ev.job_id, by = %ev.by, "ignoring a result for a job this run has not issued");
            return Some(ev.id);
        }
        if seq / self.m < self.next_batch {
            debug!(job_id = %ev.job_id, "result of a job already applied (re-read after a restart)");
            return Some(ev.id);
        }
        if let Some(prev) = self.received.get(&seq) {
            if prev.event_id == ev.id {
                return None; // the same event, re-read after a lost reply
            }
            warn!(job_id = %ev.job_id, by = %ev.by, "ignoring a second result event for a job");
            return Some(ev.id);
        }
        let kind = match ev.outcome {
            JobOutcome::Ok { result } => self.parse_result(&ev.job_id, &result),
            JobOutcome::Dead { reason, error } => {
                warn!(job_id = %ev.job_id, %reason, %error, "job dead-lettered");
                ReceivedKind::Dead { reason, error }
            }
        };
        if let ReceivedKind::Invalid { detail } = &kind {
            warn!(job_id = %ev.job_id, by = %ev.by, %detail, "invalid result: the child counts as failed");
        }
        self.received.insert(
            seq,
            Received {
                event_id: ev.id,
                by: ev.by,
                kind,
            },
        );
        None
    }

    fn parse_result(&self, job: &str, text: &str) -> ReceivedKind {
        let invalid = |detail: String| ReceivedKind::Invalid { detail };
        if text.len() > MAX_RESULT_BYTES {
            return invalid(format!("result is {} bytes, at most {MAX_RESULT_BYTES} accepted", text.len()));
        }
        let v: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return invalid(format!("result is not JSON: {e}")),
        };
        if v.get("job_id").and_then(|j| j.as_str()) != Some(job) {
            return invalid(format!("result names job {}, not {job}", v.get("job_id").unwrap_or(&serde_json::Value::Null)));
        }
        let Some(reward) = v.get("reward").and_then(|r| r.as_f64()) else {
            return invalid("result has no numeric reward".into());
        };
        let (lo, hi) = self.reward_range;
        if !reward.is_finite() || reward < lo || reward > hi {
            return invalid(format!("reward {reward} is outside [{lo}, {hi}]"));
        }
        ReceivedKind::Ok {
            reward,
            metrics: v.get("metrics").cloned().unwrap_or(serde_json::Value::Null),
            started_ms: v.get("started_ms").and_then(|x| x.as_u64()),
            finished_ms: v.get("finished_ms").and_then(|x| x.as_u64()),
            note: v.get("note").and_then(|x| x.as_str()).map(str::to_owned),
        }
    }

    /// Applies batch `b`. `Ok(false)`: stopped on request before finishing
    /// the step (the checkpoint is written; resume completes it).
    async fn apply(&mut self, b: u64) -> Result<bool> {
        let step = b + 1;
        let mut feedback = Vec::new();
        let mut rewarded_jobs = Vec::new();
        let mut lines = Vec::new();
        let mut acks = Vec::new();
        let applied_ms = now_ms();
        let mut best = self.best.clone();
        let mut failed = 0;
        for seq in self.batch_range(b) {
            let (Some(out), Some(rec)) = (self.outstanding.remove(&seq), self.received.remove(&seq)) else {
                return Err(FleetError::Thread(format!("internal: job {seq} of batch {b} is not complete")));
            };
            acks.push(rec.event_id);
            let id = job_id(&self.opts.run, seq);
            let mut line = HistoryLine {
                job_id: id.clone(),
                seq,
                batch: b,
                status: String::new(),
                reward: None,
                arch: out.arch.clone(),
                actions: out.actions.clone(),
                policy_version: out.policy_version,
                metrics: serde_json::Value::Null,
                worker: rec.by,
                started_ms: None,
                finished_ms: None,
                applied_ms,
                reason: None,
                detail: None,
            };
            match rec.kind {
                ReceivedKind::Ok {
                    reward,
                    metrics,
                    started_ms,
                    finished_ms,
                    note,
                } => {
                    feedback.push(Feedback {
                        actions: out.actions.clone(),
                        reward,
                    });
                    rewarded_jobs.push((id.clone(), reward));
                    let better = match &best {
                        None => true,
                        Some(b) => reward > b.reward,
                    };
                    if better {
                        best = Some(Best {
                            job_id: id,
                            reward,
                            arch: out.arch,
                            policy_version: out.policy_version,
                        });
                    }
                    line.status = "ok".into();
                    line.reward = Some(reward);
                    line.metrics = metrics;
                    line.started_ms = started_ms;
                    line.finished_ms = finished_ms;
                    line.detail = note;
                }
                ReceivedKind::Dead { reason, error } => {
                    failed += 1;
                    line.status = "dead".into();
                    line.reason = Some(reason);
                    line.detail = Some(error);
                }
                ReceivedKind::Invalid { detail } => {
                    failed += 1;
                    line.status = "invalid".into();
                    line.reason = Some("invalid_result".into());
                    line.detail = Some(detail);
                }
            }
            lines.push(line);
        }
        let stats: Option<UpdateStats> = if feedback.is_empty() {
            warn!(batch = b, "every job of the batch failed: no update");
            None
        } else {
            let n = feedback.len() as u64;
            let s = self.call_strategy(move |s| s.update(&feedback)).await??;
            self.rewarded += n;
            Some(s)
        };
        self.failed += failed;
        self.probe(Point::Updated { step });
        self.history.append(&lines)?;
        let policy_version = self.with_strategy(|s| s.policy_version())?;
        self.updates.append(&[UpdateLine {
            batch: b,
            jobs: rewarded_jobs.iter().map(|(j, _)| j.clone()).collect(),
            rewards: rewarded_jobs.iter().map(|(_, r)| *r).collect(),
            policy_version,
            stats: stats.clone(),
        }])?;
        self.probe(Point::HistoryWritten { step });
        let improved = best != self.best;
        self.best = best;
        self.next_batch = b + 1;
        let n = self.m.min(self.total - self.issued);
        let new = self.propose(n).await?;
        self.finished = self.batch_range(self.next_batch).is_empty();
        self.save_checkpoint()?;
        self.probe(Point::Checkpointed { step });
        if improved {
            self.write_best()?;
        }
        info!(
            batch = b,
            policy_version,
            mean_reward = stats.as_ref().map(|s| s.mean_reward),
            failed,
            best = self.best.as_ref().map(|b| b.reward),
            applied = self.applied(),
            total = self.total,
            "applied a batch"
        );
        for (index, seq) in new.into_iter().enumerate() {
            if !self.enqueue(seq).await? {
                return Ok(false);
            }
            self.probe(Point::Enqueued { step, index });
        }
        if !self.ack(&acks).await? {
            return Ok(false);
        }
        self.probe(Point::Acked { step });
        self.publish(if self.finished { "finished" } else { "running" }).await;
        Ok(true)
    }

    fn applied(&self) -> u64 {
        self.rewarded + self.failed
    }

    fn with_strategy<T>(&self, f: impl FnOnce(&dyn SearchStrategy) -> T) -> Result<T> {
        let guard = self.strategy.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_deref()
            .map(f)
            .ok_or_else(|| FleetError::Thread("the search strategy was lost to a panic".into()))
    }

    /// Runs a strategy call off the async runtime (the RL policy's calls
    /// block on its own thread; they must not stall heartbeats or reads).
    async fn call_strategy<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn SearchStrategy) -> T + Send + 'static,
    ) -> Result<T> {
        let slot = self.strategy.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut s = slot
            .take()
            .ok_or_else(|| FleetError::Thread("the search strategy was lost to a panic".into()))?;
        let (s, r) = tokio::task::spawn_blocking(move || {
            let r = f(s.as_mut());
            (s, r)
        })
        .await
        .map_err(|e| FleetError::Thread(format!("the search strategy panicked: {e}")))?;
        *self.strategy.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(s);
        Ok(r)
    }

    /// Proposes `n` jobs and records them as outstanding; returns their seqs.
    async fn propose(&mut self, n: u64) -> Result<Vec<u64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let proposals: Vec<Proposal> = self.call_strategy(move |s| s.propose(n as usize)).await??;
        if proposals.len() as u64 != n {
            return Err(FleetError::Thread(format!(
                "the strategy proposed {} architectures, {n} were asked for",
                proposals.len()
            )));
        }
        let mut seqs = Vec::with_capacity(proposals.len());
        for p in proposals {
            let seq = self.issued;
            self.issued += 1;
            self.outstanding.insert(
                seq,
                Outstanding {
                    seq,
                    actions: p.actions,
                    arch: p.arch.to_value(),
                    policy_version: p.policy_version,
                },
            );
            seqs.push(seq);
        }
        Ok(seqs)
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        let state = self.with_strategy(|s| s.checkpoint())??;
        let ck = Checkpoint {
            format: CHECKPOINT_FORMAT,
            run: self.opts.run.clone(),
            strategy: self.strategy_name.clone(),
            strategy_state: base64::engine::general_purpose::STANDARD.encode(state),
            issued: self.issued,
            next_batch: self.next_batch,
            outstanding: self.outstanding.values().cloned().collect(),
            history_bytes: self.history.len(),
            updates_bytes: self.updates.len(),
            rewarded: self.rewarded,
            failed: self.failed,
            best: self.best.clone(),
            finished: self.finished,
        };
        let bytes = serde_json::to_vec(&ck)
            .map_err(|e| FleetError::io("checkpoint", self.opts.run_dir.join(files::CHECKPOINT), std::io::Error::other(e)))?;
        write_atomic("checkpoint", &self.opts.run_dir.join(files::CHECKPOINT), &bytes)
    }

    fn write_best(&self) -> Result<()> {
        let Some(best) = &self.best else {
            return Ok(());
        };
        let mut text = serde_json::to_string_pretty(best)
            .map_err(|e| FleetError::io("best", self.opts.run_dir.join(files::BEST), std::io::Error::other(e)))?;
        text.push('\n');
        write_atomic("best", &self.opts.run_dir.join(files::BEST), text.as_bytes())
    }

    fn payload(&self, o: &Outstanding) -> Result<String> {
        let spec = JobSpec {
            version: JOB_FORMAT_VERSION,
            job_id: job_id(&self.opts.run, o.seq),
            run: self.opts.run.clone(),
            arch: o.arch.clone(),
            actions: o.actions.clone(),
            policy_version: o.policy_version,
            train: self.cfg.train.clone(),
            reward: self.cfg.reward.clone(),
            seed: child_seed(self.cfg.search.seed, o.seq),
        };
        serde_json::to_string(&spec).map_err(|e| FleetError::Thread(format!("cannot serialise a job: {e}")))
    }

    /// Enqueues job `seq` (idempotent). `Ok(false)`: stopped on request.
    async fn enqueue(&self, seq: u64) -> Result<bool> {
        let Some(o) = self.outstanding.get(&seq) else {
            return Ok(true);
        };
        let payload = self.payload(o)?;
        if payload.len() > self.cfg.fleet.max_payload_bytes {
            warn!(
                bytes = payload.len(),
                cap = self.cfg.fleet.max_payload_bytes,
                "a job payload is above fleet.max_payload_bytes: workers with that cap will dead-letter it"
            );
        }
        let id = job_id(&self.opts.run, seq);
        let r = self
            .retry("enqueue", || {
                let (q, id, p) = (self.queue.clone(), id.clone(), payload.clone());
                async move { q.enqueue(&id, &p).await }
            })
            .await?;
        match r {
            None => Ok(false),
            Some(EnqueueOutcome::Enqueued { .. }) => Ok(true),
            Some(other) => {
                debug!(job_id = %id, outcome = ?other, "already known to the queue");
                Ok(true)
            }
        }
    }

    /// Acknowledges result events. `Ok(false)`: stopped on request (they
    /// will be re-read and ignored after a resume).
    async fn ack(&self, ids: &[String]) -> Result<bool> {
        let r = self
            .retry("ack_results", || {
                let (q, ids) = (self.queue.clone(), ids.to_vec());
                async move { q.ack_results(&ids).await }
            })
            .await?;
        Ok(r.is_some())
    }

    /// Retries an idempotent queue call through outages until it succeeds,
    /// fails for good, or shutdown is requested (`None`).
    async fn retry<T, F, Fut>(&self, op: &'static str, mut call: F) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, QueueError>>,
    {
        let mut backoff = Duration::from_millis(100);
        let mut shutdown = self.shutdown.clone();
        loop {
            match call().await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => {
                    warn!(op, error = %e, "queue call failed; retrying");
                    if self.shutdown.is_requested() {
                        return Ok(None);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.requested() => return Ok(None),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn probe(&self, p: Point) {
        if let Some(probe) = &self.opts.probe {
            probe(p);
        }
    }

    fn state(&self, label: &str) -> ControllerState {
        ControllerState {
            run: self.opts.run.clone(),
            strategy: self.strategy_name.clone(),
            state: label.to_owned(),
            total: self.total,
            issued: self.issued,
            applied: self.applied(),
            rewarded: self.rewarded,
            failed: self.failed,
            batch: self.m,
            max_in_flight: self.in_flight,
            policy_version: self.with_strategy(|s| s.policy_version()).unwrap_or(0),
            best_reward: self.best.as_ref().map(|b| b.reward),
            best_job: self.best.as_ref().map(|b| b.job_id.clone()),
            best_arch: self.best.as_ref().map(|b| b.arch.clone()),
            updated_ms: now_ms(),
        }
    }

    async fn publish(&self, label: &str) -> ControllerState {
        let s = self.state(label);
        self.opts.board.publish(&s).await;
        if let Some(tx) = &self.opts.progress {
            tx.send_replace(s.clone());
        }
        s
    }

    async fn stopped(&self) -> ControllerSummary {
        info!(
            applied = self.applied(),
            total = self.total,
            "controller stopped; continue with --resume"
        );
        let state = self.publish("stopped").await;
        self.summary(state, false)
    }

    async fn done(&self) -> ControllerSummary {
        self.drain_applied().await;
        info!(
            rewarded = self.rewarded,
            failed = self.failed,
            best = self.best.as_ref().map(|b| b.reward),
            "search finished"
        );
        let state = self.publish("finished").await;
        self.summary(state, true)
    }

    /// Acknowledges result events left pending by a predecessor that
    /// crashed between its last checkpoint and its acknowledgement (all of
    /// them are of applied jobs). Best-effort: they would only be re-read.
    async fn drain_applied(&self) {
        let max = self.in_flight.clamp(1, 1000) as usize;
        loop {
            let ids: Vec<String> = match self.queue.read_results(&self.opts.consumer, max, Duration::ZERO).await {
                Ok(ev) if !ev.is_empty() => ev.into_iter().map(|e| e.id).collect(),
                Ok(_) => return,
                Err(e) => {
                    warn!(error = %e, "cannot read leftover results");
                    return;
                }
            };
            if let Err(e) = self.queue.ack_results(&ids).await {
                warn!(error = %e, "cannot acknowledge leftover results");
                return;
            }
        }
    }

    fn summary(&self, state: ControllerState, finished: bool) -> ControllerSummary {
        ControllerSummary {
            state,
            best: self.best.clone(),
            run_dir: self.opts.run_dir.clone(),
            finished,
        }
    }
}
