//! The worker loop: take a job, validate it, train it on the trainer thread
//! while heartbeating, and report exactly one way out.
//!
//! ```text
//! loop: alive → fetch (expired leases first, then block for a new job)
//!   invalid payload ─────────────────────────────► dead_letter(reason)
//!   train on the trainer thread, heartbeat every `heartbeat` with progress
//!     at a rung (early stopping): record_rung → continue | stop (the
//!       decision recorded once per (job, rung); a stale lease records nothing)
//!     ok or stopped early ────────────────────────► complete (idempotent)
//!     permanent error ────────────────────────────► dead_letter(trainer_permanent)
//!     retryable error / panic ────────────────────► abandon (spends a delivery)
//!     heartbeat says "not yours" ─► stop the trainer, drop the result
//!     SIGTERM ─► stop flag → trainer checkpoints → release (no delivery spent) → exit
//! ```
//!
//! Every queue call is retried through Redis outages (they are idempotent);
//! only errors no retry can fix (a refused permission, a missing function
//! library) end the loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nasfleet_core::early_stop::RungDecision;
use nasfleet_core::trainer::{JobResult, TrainError, TrainJob, TrainOutcome, JOB_FORMAT_VERSION};
use nasfleet_queue::{Completion, Consumer, JobQueue, Lease, QueueError, RunLifecycle, RungReply, RungRule};
use nasfleet_util::Backoff;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::{interval_at, sleep, sleep_until, Instant, MissedTickBehavior};
use tracing::{debug, info, warn, Instrument};

use crate::error::{is_fatal, FleetError, Result};
use crate::ids::now_ms;
use crate::settings::FleetSettings;
use crate::shutdown::Shutdown;
use crate::trainer_thread::{JobShared, RungAsk, RungHook, TrainerSets, TrainerThread};
use crate::validate::{reasons, validate_job_and_rule};

/// Everything a worker needs besides its queue and its trainers.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// This process incarnation's unique consumer ([`Consumer::local`]).
    pub consumer: Consumer,
    /// The run served.
    pub run: String,
    /// Timings and validation limits.
    pub settings: FleetSettings,
    /// Stop after handling this many jobs (`--max-children`).
    pub max_jobs: Option<u64>,
    /// Leave after waiting this long for a job (`--idle-exit`): an empty
    /// queue on a machine someone pays for.
    pub idle_exit: Option<Duration>,
    /// Per-job checkpoint directories live in `<work_dir>/<run>/<job id>/`;
    /// on storage shared by workers, a released job resumes anywhere.
    /// `None`: trainers get no checkpoint directory.
    pub work_dir: Option<PathBuf>,
    /// Device for trainers (`auto`, `cpu`, `cuda:N`); the loop only passes it on.
    pub device: String,
    /// Local dataset directory for trainers; the loop only passes it on.
    pub data_dir: Option<PathBuf>,
}

/// How each job handled by a worker ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkerReport {
    /// Jobs fetched.
    pub jobs: u64,
    /// Completed, and this worker's result is the job's outcome.
    pub completed: u64,
    /// Dead-lettered by this worker (invalid payload, over budget, permanent error).
    pub dead_lettered: u64,
    /// Someone else had recorded the job's outcome first; result dropped.
    pub duplicates: u64,
    /// The lease had been taken over; result dropped.
    pub lease_lost: u64,
    /// Aborted while training because a heartbeat found the job gone.
    pub aborted: u64,
    /// Given back after a retryable failure (a delivery spent).
    pub abandoned: u64,
    /// Given back on a stop request (no delivery spent).
    pub released: u64,
    /// Completed with status `stopped` (early stopping ended the child).
    pub stopped_early: u64,
    /// Rung decisions this worker asked the queue for (repeats included).
    pub rung_decisions: u64,
    /// Of those, answered with a decision recorded before (a resumed child).
    pub rung_repeats: u64,
    /// Left to expire: Redis was unreachable while shutting down.
    pub left_to_expire: u64,
    /// The loop ended on a stop request.
    pub stopped: bool,
    /// Why the worker left by itself, if it did (`run finished`, `run
    /// stopped`, `idle for 10m`, `max jobs`).
    pub left: Option<String>,
}

/// How one job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobEnd {
    Completed,
    DeadLettered,
    Duplicate,
    LeaseLost,
    Aborted,
    Abandoned,
    Released,
    LeftToExpire,
}

impl WorkerReport {
    fn record(&mut self, end: JobEnd) {
        let n = match end {
            JobEnd::Completed => &mut self.completed,
            JobEnd::DeadLettered => &mut self.dead_lettered,
            JobEnd::Duplicate => &mut self.duplicates,
            JobEnd::LeaseLost => &mut self.lease_lost,
            JobEnd::Aborted => &mut self.aborted,
            JobEnd::Abandoned => &mut self.abandoned,
            JobEnd::Released => &mut self.released,
            JobEnd::LeftToExpire => &mut self.left_to_expire,
        };
        *n += 1;
    }
}

/// Runs a worker until `shutdown` (or `max_jobs`). Returns what it did; an
/// error only for failures no retry can fix. `opts.settings` come resolved
/// and checked ([`FleetSettings::for_worker`], [`FleetSettings::from_run`]).
pub async fn run_worker<Q: JobQueue>(
    queue: Q,
    opts: WorkerOptions,
    trainers: Arc<TrainerSets>,
    shutdown: Shutdown,
) -> Result<WorkerReport> {
    let name = format!("train-{}", opts.consumer.name());
    // Thread names are cut at 15 bytes by Linux; the full name is in logs.
    let trainer = TrainerThread::spawn(&name, trainers)?;
    let span = tracing::info_span!("worker", run = %opts.run, worker = %opts.consumer);
    let mut w = Worker {
        queue,
        opts,
        trainer,
        shutdown,
        report: WorkerReport::default(),
    };
    w.run().instrument(span).await?;
    Ok(w.report)
}

struct Worker<Q> {
    queue: Q,
    opts: WorkerOptions,
    trainer: TrainerThread,
    shutdown: Shutdown,
    report: WorkerReport,
}

/// How often an idle worker removes finished jobs' checkpoint directories.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Pause between failed queue calls: 100 ms doubling to 10 s.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
}

impl<Q: JobQueue> Worker<Q> {
    async fn run(&mut self) -> Result<()> {
        info!(device = %self.opts.device, "worker started");
        let mut backoff = backoff();
        let mut shutdown = self.shutdown.clone();
        let mut idle_since = Instant::now();
        let mut last_sweep: Option<Instant> = None;
        let (mut seen_running, mut said_waiting) = (false, false);
        loop {
            if self.shutdown.is_requested() {
                self.report.stopped = true;
                break;
            }
            if self.opts.max_jobs.is_some_and(|m| self.report.jobs >= m) {
                info!(jobs = self.report.jobs, "max jobs reached");
                self.report.left = Some("max jobs".into());
                break;
            }
            if let Some(idle) = self.opts.idle_exit.filter(|d| idle_since.elapsed() >= *d) {
                info!(?idle, "no job came for the idle limit: leaving");
                self.report.left = Some(format!("idle for {idle:?}"));
                break;
            }
            let alive = tokio::select! {
                r = self.queue.worker_alive(&self.opts.consumer) => r,
                _ = shutdown.requested() => continue,
            };
            if let Err(e) = alive {
                if is_fatal(&e) {
                    return Err(e.into());
                }
                warn!(error = %e, "cannot reach the queue; retrying");
                self.pause(backoff.next_delay()).await;
                continue;
            }
            // Before taking a job: is the run still on? Once its controller
            // finished it, or an operator stopped it while this worker
            // served it, workers leave (exit 0) so that autoscalers can
            // release their machines. A worker started on a stopped run
            // waits for `controller start --resume` instead (within its
            // idle limit).
            match self.queue.lifecycle().await {
                Ok(l) if l == RunLifecycle::Finished || (l.is_over() && seen_running) => {
                    info!(lifecycle = %l, "the run is over: leaving");
                    self.sweep().await;
                    self.report.left = Some(format!("run {l}"));
                    break;
                }
                Ok(l) if l.is_over() => {
                    if !said_waiting {
                        info!(lifecycle = %l, "the run is stopped: waiting for its controller to resume it");
                        said_waiting = true;
                    }
                    self.pause(self.opts.settings.block).await;
                    continue;
                }
                Ok(_) => seen_running = true,
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => warn!(error = %e, "cannot read the run's lifecycle; going on"),
            }
            if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                self.sweep().await;
                last_sweep = Some(Instant::now());
            }
            // Not cancelled on a stop request: the queue would give a job
            // fetched for a caller that went away back in a background task,
            // which a process about to exit may never finish (the job would
            // then wait out its lease and spend a delivery). The fetch ends
            // within `block`; a job it brings after a stop is released here.
            let fetched = self.queue.fetch(&self.opts.consumer, self.opts.settings.block).await;
            if let Ok(Some(lease)) = &fetched {
                if self.shutdown.is_requested() {
                    info!(job_id = %lease.job_id, "stop requested: giving back the job just fetched");
                    self.report.jobs += 1;
                    let end = self.release(lease).await?;
                    self.report.record(end);
                    continue;
                }
            }
            match fetched {
                Ok(None) => backoff.reset(),
                Ok(Some(lease)) => {
                    backoff.reset();
                    self.report.jobs += 1;
                    let span = tracing::info_span!("job", job_id = %lease.job_id, deliveries = lease.deliveries);
                    let end = self.run_job(lease).instrument(span).await?;
                    self.report.record(end);
                    idle_since = Instant::now();
                }
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => {
                    warn!(error = %e, "fetch failed; retrying");
                    self.pause(backoff.next_delay()).await;
                }
            }
        }
        info!(report = ?self.report, "worker stopped");
        Ok(())
    }

    /// Sleeps `d` or until shutdown.
    async fn pause(&self, d: Duration) {
        let mut s = self.shutdown.clone();
        tokio::select! {
            _ = sleep(d) => {}
            _ = s.requested() => {}
        }
    }

    async fn run_job(&mut self, lease: Lease) -> Result<JobEnd> {
        let (job, early_stop) = match validate_job_and_rule(&lease.job_id, &self.opts.run, &lease.payload, &self.opts.settings) {
            Ok(v) => v,
            Err(rej) => {
                warn!(reason = rej.reason, detail = %rej.detail, "refusing the job");
                return self.dead_letter(&lease, rej.reason, &rej.detail).await;
            }
        };
        let ckpt = match self.checkpoint_dir(&job) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot create the job's checkpoint directory; giving the job back");
                return self.abandon(&lease).await;
            }
        };
        debug!(epochs = job.train.epochs, "training");
        let shared = Arc::new(JobShared::default());
        let started_ms = now_ms();
        let (asks_tx, mut asks) = tokio::sync::mpsc::unbounded_channel::<RungAsk>();
        let rule = early_stop.rung_rule();
        let hook = rule.map(|_| RungHook { rule: early_stop.clone(), asks: asks_tx });
        let mut reply = self.trainer.submit(job.clone(), shared.clone(), ckpt.clone(), hook)?;
        // The rung question being answered: the queue call and where the
        // answer goes. One at a time (the trainer waits for its answer).
        let mut rung: Option<(RungTask, RungAsk)> = None;
        let period = self.opts.settings.heartbeat;
        // A first heartbeat at once puts the job in this worker's state.
        let mut hb = Some(self.spawn_heartbeat(&lease, &job, &shared, started_ms));
        let mut tick = interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut lost = false;
        let mut stop_deadline: Option<Instant> = None;
        let mut shutdown = self.shutdown.clone();
        let result = loop {
            tokio::select! {
                r = &mut reply => {
                    break r.unwrap_or_else(|_| Err(TrainError::Retryable("the trainer thread went away".into())));
                }
                r = join_some(&mut hb) => {
                    hb = None;
                    match r {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => {
                            warn!("the lease is gone (another worker holds the job or it is finished): aborting");
                            lost = true;
                            shared.request_stop();
                        }
                        Ok(Err(e)) if is_fatal(&e) => return Err(e.into()),
                        Ok(Err(e)) => warn!(error = %e, "heartbeat failed; will try again"),
                        Err(e) => warn!(error = %e, "heartbeat task failed; will try again"),
                    }
                }
                _ = tick.tick(), if hb.is_none() && !lost => {
                    hb = Some(self.spawn_heartbeat(&lease, &job, &shared, started_ms));
                }
                Some(ask) = asks.recv(), if rung.is_none() => {
                    match (rule, lost) {
                        (Some(rule), false) => {
                            let task = self.spawn_rung(&lease, &ask, rule);
                            rung = Some((task, ask));
                        }
                        // Lost: the trainer is being stopped; dropping the
                        // question answers "continue".
                        _ => drop(ask),
                    }
                }
                r = join_rung(&mut rung) => {
                    let Some((_, ask)) = rung.take() else { continue };
                    let decision = match r {
                        Ok(Ok(Some(RungReply::Decided(rec)))) => {
                            self.report.rung_decisions += 1;
                            if !rec.first {
                                self.report.rung_repeats += 1;
                            }
                            info!(epoch = ask.epoch, score = rec.value, peers = rec.peers, decision = rec.decision.as_str(), repeated = !rec.first, "rung");
                            rec.decision
                        }
                        Ok(Ok(Some(RungReply::LeaseLost | RungReply::Finished))) => {
                            warn!(epoch = ask.epoch, "the lease is gone at a rung: aborting");
                            lost = true;
                            shared.request_stop();
                            RungDecision::Continue
                        }
                        // Shutting down and the queue did not answer: the
                        // stop flag ends the child; whoever resumes it asks again.
                        Ok(Ok(None)) => RungDecision::Continue,
                        Ok(Err(e)) => {
                            // No retry can fix it (a refused permission, a
                            // missing library): the loop ends; the trainer
                            // must not train on for nobody.
                            shared.request_stop();
                            return Err(e.into());
                        }
                        Err(e) => {
                            warn!(error = %e, "rung task failed; the child goes on and asks again when resumed");
                            RungDecision::Continue
                        }
                    };
                    let _ = ask.reply.send(decision);
                }
                _ = shutdown.requested(), if stop_deadline.is_none() => {
                    info!("stop requested: asking the trainer to checkpoint");
                    shared.request_stop();
                    stop_deadline = Some(Instant::now() + self.opts.settings.stop_grace);
                }
                _ = sleep_until(stop_deadline.unwrap_or_else(Instant::now)), if stop_deadline.is_some() => {
                    warn!(grace = ?self.opts.settings.stop_grace, "the trainer did not stop in time; giving the job back without waiting for it");
                    if let Some(h) = hb.take() {
                        h.abort();
                    }
                    if lost {
                        return Ok(JobEnd::Aborted);
                    }
                    return self.release(&lease).await;
                }
            }
        };
        if let Some(h) = hb.take() {
            // A late heartbeat is harmless either way; do not wait for it.
            h.abort();
        }
        if let Some((h, _)) = rung.take() {
            h.abort();
        }
        if lost {
            info!("dropped the result of a job that is no longer this worker's");
            return Ok(JobEnd::Aborted);
        }
        match result {
            Ok(outcome) => self.finish(&lease, &job, outcome, started_ms, ckpt).await,
            Err(TrainError::Preempted { epochs_done }) if shared.stop_requested() => {
                info!(epochs_done, "trainer checkpointed; releasing the job");
                self.release(&lease).await
            }
            Err(TrainError::Preempted { epochs_done }) => {
                warn!(epochs_done, "the trainer stopped without being asked; giving the job back");
                self.abandon(&lease).await
            }
            Err(TrainError::Retryable(msg)) => {
                warn!(error = %msg, "training failed (retryable); giving the job back");
                self.abandon(&lease).await
            }
            Err(TrainError::Permanent(msg)) => {
                warn!(error = %msg, "training failed permanently");
                let end = self.dead_letter(&lease, reasons::TRAINER_PERMANENT, &msg).await?;
                remove_dir(ckpt);
                Ok(end)
            }
        }
    }

    async fn finish(
        &mut self,
        lease: &Lease,
        job: &TrainJob,
        outcome: TrainOutcome,
        started_ms: u64,
        ckpt: Option<PathBuf>,
    ) -> Result<JobEnd> {
        if !outcome.reward.is_finite() {
            let msg = format!("the trainer returned reward {}", outcome.reward);
            warn!(error = %msg, "refusing to post a non-finite reward");
            let end = self.dead_letter(lease, reasons::INVALID_REWARD, &msg).await?;
            remove_dir(ckpt);
            return Ok(end);
        }
        let stopped_at = outcome.stopped_at;
        let result = JobResult {
            version: JOB_FORMAT_VERSION,
            job_id: job.job_id.clone(),
            reward: outcome.reward,
            metrics: outcome.metrics,
            worker: self.opts.consumer.name().to_owned(),
            started_ms,
            finished_ms: now_ms(),
            note: outcome.note,
            cost: outcome.cost,
            stopped_at,
            attempt: Some(lease.deliveries),
        };
        // Non-finite metrics (a diverged loss) serialise as null; the
        // controller reads metrics as opaque JSON and only trusts the reward.
        let json = serde_json::to_string(&result)
            .map_err(|e| FleetError::Thread(format!("cannot serialise a job result: {e}")))?;
        let q = self.queue.clone();
        let c = self.opts.consumer.clone();
        let l = lease.clone();
        let done = self
            .persist("complete", move || {
                let (q, c, l, json) = (q.clone(), c.clone(), l.clone(), json.clone());
                async move { q.complete(&c, &l, &json).await }
            })
            .await?;
        let end = match done {
            None => JobEnd::LeftToExpire,
            Some(c) => self.terminal(c, JobEnd::Completed),
        };
        if matches!(end, JobEnd::Completed | JobEnd::Duplicate) {
            remove_dir(ckpt);
        }
        if end == JobEnd::Completed {
            debug!(reward = result.reward, status = result.status(), "completed");
            if stopped_at.is_some() {
                self.report.stopped_early += 1;
            }
        }
        Ok(end)
    }

    fn terminal(&self, c: Completion, mine: JobEnd) -> JobEnd {
        match c {
            Completion::Recorded | Completion::AlreadyRecorded => mine,
            Completion::Duplicate => {
                info!("another worker recorded this job first; nothing applied");
                JobEnd::Duplicate
            }
            Completion::LeaseLost => {
                info!("the lease was taken over; nothing applied");
                JobEnd::LeaseLost
            }
        }
    }

    async fn dead_letter(&mut self, lease: &Lease, reason: &'static str, detail: &str) -> Result<JobEnd> {
        let (q, c, l, d) = (self.queue.clone(), self.opts.consumer.clone(), lease.clone(), detail.to_owned());
        let done = self
            .persist("dead_letter", move || {
                let (q, c, l, d) = (q.clone(), c.clone(), l.clone(), d.clone());
                async move { q.dead_letter(&c, &l, reason, &d).await }
            })
            .await?;
        Ok(match done {
            None => JobEnd::LeftToExpire,
            Some(c) => self.terminal(c, JobEnd::DeadLettered),
        })
    }

    async fn release(&mut self, lease: &Lease) -> Result<JobEnd> {
        let (q, c, l) = (self.queue.clone(), self.opts.consumer.clone(), lease.clone());
        let done = self
            .persist("release", move || {
                let (q, c, l) = (q.clone(), c.clone(), l.clone());
                async move { q.release(&c, &l).await }
            })
            .await?;
        Ok(match done {
            None => JobEnd::LeftToExpire,
            Some(true) => JobEnd::Released,
            Some(false) => JobEnd::LeaseLost,
        })
    }

    async fn abandon(&mut self, lease: &Lease) -> Result<JobEnd> {
        let (q, c, l) = (self.queue.clone(), self.opts.consumer.clone(), lease.clone());
        let done = self
            .persist("abandon", move || {
                let (q, c, l) = (q.clone(), c.clone(), l.clone());
                async move { q.abandon(&c, &l).await }
            })
            .await?;
        Ok(match done {
            None => JobEnd::LeftToExpire,
            Some(true) => JobEnd::Abandoned,
            Some(false) => JobEnd::LeaseLost,
        })
    }

    /// Calls `call` until it succeeds (every queue call is idempotent, so a
    /// retry after a lost reply is safe). Once shutdown is requested, a
    /// failing call is given up (`None`): the lease will expire and another
    /// worker redo the job, which beats outliving a preemption notice.
    async fn persist<T, F, Fut>(&self, op: &'static str, mut call: F) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, QueueError>>,
    {
        let mut backoff = backoff();
        loop {
            let r = if self.shutdown.is_requested() {
                match tokio::time::timeout(self.opts.settings.stop_grace, call()).await {
                    Ok(r) => r,
                    Err(_) => {
                        warn!(op, "the queue did not answer while shutting down; leaving the lease to expire");
                        return Ok(None);
                    }
                }
            } else {
                call().await
            };
            match r {
                Ok(v) => return Ok(Some(v)),
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) if self.shutdown.is_requested() => {
                    warn!(op, error = %e, "the queue is unreachable while shutting down; leaving the lease to expire");
                    return Ok(None);
                }
                Err(e) => {
                    warn!(op, error = %e, "queue call failed; retrying");
                    self.pause(backoff.next_delay()).await;
                }
            }
        }
    }

    fn spawn_heartbeat(
        &self,
        lease: &Lease,
        job: &TrainJob,
        shared: &JobShared,
        started_ms: u64,
    ) -> JoinHandle<std::result::Result<bool, QueueError>> {
        let last = shared.last();
        let progress = serde_json::json!({
            "job_id": job.job_id,
            "deliveries": lease.deliveries,
            "epochs": job.train.epochs,
            "epoch": last.as_ref().map(|m| m.epoch),
            "metrics": last,
            "started_ms": started_ms,
        })
        .to_string();
        debug!(%progress, "heartbeat");
        let (q, c, l) = (self.queue.clone(), self.opts.consumer.clone(), lease.clone());
        tokio::spawn(async move { q.heartbeat(&c, &l, &progress).await })
    }

    /// Asks the queue for the decision at a rung, retrying through outages
    /// (the call is idempotent: keyed by (job, epoch)). `Ok(None)`: shutting
    /// down and the queue did not answer within the grace.
    fn spawn_rung(&self, lease: &Lease, ask: &RungAsk, rule: RungRule) -> RungTask {
        let (q, c, l) = (self.queue.clone(), self.opts.consumer.clone(), lease.clone());
        let (epoch, value) = (ask.epoch, ask.value);
        let shutdown: Shutdown = self.shutdown.clone();
        let grace = self.opts.settings.stop_grace;
        tokio::spawn(async move {
            let mut backoff = backoff();
            loop {
                let call = q.record_rung(&c, &l, epoch, value, rule);
                let r = if shutdown.is_requested() {
                    match tokio::time::timeout(grace, call).await {
                        Ok(r) => r,
                        Err(_) => return Ok(None),
                    }
                } else {
                    call.await
                };
                match r {
                    Ok(v) => return Ok(Some(v)),
                    Err(e) if is_fatal(&e) => return Err(e),
                    Err(_) if shutdown.is_requested() => return Ok(None),
                    Err(e) => {
                        warn!(error = %e, epoch, "rung call failed; retrying");
                        sleep(backoff.next_delay()).await;
                    }
                }
            }
        })
    }

    /// Removes the checkpoint directories under `<work_dir>/<run>/` of jobs
    /// that have their outcome (finished, or dead-lettered — also by the
    /// queue itself, for `max_deliveries`, when no worker owned the job).
    /// A job still in flight elsewhere keeps its directory. Failures are
    /// logged: housekeeping never stops a worker.
    async fn sweep(&self) {
        let Some(root) = &self.opts.work_dir else { return };
        let dir = root.join(&self.opts.run);
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let jobs: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for job in jobs {
            match self.queue.is_finished(&job).await {
                Ok(true) => {
                    debug!(job_id = %job, "removing a finished job's checkpoint directory");
                    remove_dir(Some(dir.join(&job)));
                }
                Ok(false) => {}
                // Not a job id of this queue (someone else's directory): leave it.
                Err(QueueError::InvalidInput { .. }) => {}
                Err(e) => {
                    warn!(error = %e, "cannot check finished jobs; housekeeping again later");
                    return;
                }
            }
        }
    }

    fn checkpoint_dir(&self, job: &TrainJob) -> std::io::Result<Option<PathBuf>> {
        let Some(root) = &self.opts.work_dir else {
            return Ok(None);
        };
        // The job id was checked to be a plain file name by validate_job.
        let dir = root.join(&self.opts.run).join(&job.job_id);
        std::fs::create_dir_all(&dir)?;
        Ok(Some(dir))
    }
}

/// Awaits the heartbeat task if there is one; pends forever otherwise (so a
/// `select!` branch on it is simply idle).
async fn join_some<T>(h: &mut Option<JoinHandle<T>>) -> std::result::Result<T, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// A rung question's queue call: the reply, or `None` when shutting down
/// without one.
type RungTask = JoinHandle<std::result::Result<Option<RungReply>, QueueError>>;

/// Awaits the rung task if there is one; pends forever otherwise.
async fn join_rung<T>(
    r: &mut Option<(JoinHandle<T>, RungAsk)>,
) -> std::result::Result<T, tokio::task::JoinError> {
    match r {
        Some((h, _)) => h.await,
        None => std::future::pending().await,
    }
}

fn remove_dir(dir: Option<PathBuf>) {
    if let Some(d) = dir {
        if let Err(e) = std::fs::remove_dir_all(&d) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(dir = %d.display(), error = %e, "cannot remove a finished job's checkpoint directory");
            }
        }
    }
}
