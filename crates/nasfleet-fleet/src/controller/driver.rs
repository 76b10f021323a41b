//! The controller's async loop: ties the queue, the strategy, the batch
//! book, the board and the run directory together. The decisions live
//! elsewhere — which batch is next and which events count in
//! [`batches`](super::batches), what a result is worth in
//! [`outcome`](super::outcome), what is durable in [`resume`](super::resume)
//! — this file only sequences them (see the step in the module
//! documentation of [`controller`](super)).

use nasfleet_core::config::ExperimentConfig;
use nasfleet_core::strategy::SearchStrategy;
use nasfleet_core::trainer::{JobResult, JobSpec, JOB_FORMAT_VERSION};
use nasfleet_queue::{JobQueue, ResultEvent, RunLifecycle};
use nasfleet_util::Backoff;
use tracing::{debug, info, warn};

use super::batches::{Admission, Book, ReadyBatch};
use super::calls::{Calls, Reader};
use super::outcome::{settle, settle_late, Outcome, Received, Tally};
use super::pareto::ParetoBook;
use super::resume::{self, write_best, Position, RunLog};
use super::strategy::StrategyCell;
use super::{reward_range, ControllerOptions, ControllerSummary, Point};
use crate::board::{worth_retrying, ControllerState};
use crate::settings::RunSettings;
use crate::error::{FleetError, Result};
use crate::ids::{child_seed, job_id, now_ms, parse_seq};
use crate::rundir::{Outstanding, UpdateLine};
use crate::shutdown::Shutdown;

/// A running controller.
pub(super) struct Controller<Q> {
    calls: Calls<Q>,
    cfg: ExperimentConfig,
    opts: ControllerOptions,
    strategy: StrategyCell,
    book: Book<Received>,
    log: RunLog,
    tally: Tally,
    /// Children per hour for the published state (not checkpointed: a
    /// resumed controller measures afresh).
    rate: std::sync::Mutex<RateMeter>,
    /// Late children received and not applied yet (see [`Late`]).
    late: Vec<Late>,
    /// The Pareto fronts of the rewarded children (`pareto.json`).
    pareto: ParetoBook,
}

/// The result of a requeued child whose batch was applied without it
/// (it had been dead-lettered): applied on its own, exactly once — its
/// event is acknowledged only after the checkpoint that records it, and the
/// checkpoint no longer lists the job among the dead ones, so a re-read
/// event is ignored.
#[derive(Debug)]
struct Late {
    seq: u64,
    event_id: String,
    by: String,
    result: JobResult,
}

/// Children applied per hour over the last [`RateMeter::WINDOW`].
#[derive(Debug, Default)]
pub(super) struct RateMeter {
    samples: std::collections::VecDeque<(std::time::Instant, u64)>,
}

impl RateMeter {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    /// Records that `applied` children are applied now; the rate since the
    /// oldest sample in the window, once children were applied since.
    pub(super) fn record(&mut self, applied: u64) -> Option<f64> {
        self.record_at(std::time::Instant::now(), applied)
    }

    fn record_at(&mut self, now: std::time::Instant, applied: u64) -> Option<f64> {
        self.samples.push_back((now, applied));
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > Self::WINDOW) {
            self.samples.pop_front();
        }
        let &(t0, a0) = self.samples.front()?;
        let hours = now.duration_since(t0).as_secs_f64() / 3600.0;
        (applied > a0 && hours > 0.0).then(|| (applied - a0) as f64 / hours)
    }
}

/// Warns about settings that work, but not as the operator may expect.
fn warn_about(cfg: &ExperimentConfig) {
    let m = cfg.search.batch.max(1);
    if cfg.search.max_in_flight < m {
        warn!(
            max_in_flight = cfg.search.max_in_flight,
            batch = m,
            "max_in_flight is below the batch size; keeping one batch in flight"
        );
    }
}

impl<Q: JobQueue> Controller<Q> {
    /// Opens the run directory (starting or resuming); the flag says whether
    /// it resumed.
    pub(super) async fn open(
        queue: Q,
        cfg: &ExperimentConfig,
        mut strategy: Box<dyn SearchStrategy>,
        opts: ControllerOptions,
        shutdown: Shutdown,
    ) -> Result<(Self, bool)> {
        warn_about(cfg);
        let opened = resume::open(&queue, cfg, strategy.as_mut(), &opts.run, &opts.run_dir, opts.resume).await?;
        // After open: a resumed history is cut back to its checkpoint.
        let pareto = if opened.resumed {
            let book = ParetoBook::rebuild(&cfg.reward, &opts.run_dir)?;
            book.write(&opts.run_dir)?;
            book
        } else {
            let _ = std::fs::remove_file(opts.run_dir.join(crate::rundir::files::PARETO));
            ParetoBook::new(&cfg.reward)
        };
        let c = Controller {
            calls: Calls { queue, shutdown },
            cfg: cfg.clone(),
            opts,
            strategy: StrategyCell::new(strategy),
            book: opened.book,
            log: opened.log,
            tally: opened.tally,
            rate: std::sync::Mutex::new(RateMeter::default()),
            late: Vec::new(),
            pareto,
        };
        Ok((c, opened.resumed))
    }

    /// Runs until every batch is applied or shutdown is requested.
    pub(super) async fn run(&mut self, resumed: bool) -> Result<ControllerSummary> {
        if !self.publish_settings().await? || !self.calls.set_lifecycle(RunLifecycle::Running).await? {
            return Ok(self.stopped().await);
        }
        if !self.begin(resumed).await? {
            return Ok(self.stopped().await);
        }
        self.publish("running").await;
        let mut reader = Reader::new(self.opts.consumer.clone(), self.read_max(), self.opts.block);
        loop {
            if self.book.is_finished() && self.late.is_empty() && !self.awaiting_requeued().await? {
                return self.done(&reader).await;
            }
            if self.calls.shutdown.is_requested() {
                return Ok(self.stopped().await);
            }
            if self.calls.stop_requested().await? {
                info!("stop requested (nasfleet controller stop): no more jobs are issued");
                let summary = self.stopped().await;
                // Workers leave once they see it; a failure here leaves the
                // run `stopping`, which they also leave on.
                self.calls.set_lifecycle(RunLifecycle::Stopped).await?;
                return Ok(summary);
            }
            let events = self.calls.read(&mut reader).await?;
            let ack_now: Vec<String> = events.into_iter().filter_map(|ev| self.receive(ev)).collect();
            if !ack_now.is_empty() && !self.calls.ack(&ack_now).await? {
                return Ok(self.stopped().await);
            }
            while let Some(batch) = self.book.take_ready() {
                if !self.apply(batch).await? {
                    return Ok(self.stopped().await);
                }
            }
            if !self.apply_late().await? {
                return Ok(self.stopped().await);
            }
        }
    }

    /// Whether a dead-lettered child was requeued and its result is still
    /// to come (only asked once every batch is applied: the run then waits
    /// for it instead of finishing).
    async fn awaiting_requeued(&self) -> Result<bool> {
        let run = &self.opts.run;
        self.calls.awaiting_requeued(self.tally.dead.keys().map(|&seq| job_id(run, seq))).await
    }

    /// Publishes the run's fleet settings on the board before any job is
    /// issued (workers of the run take them from there). An unreachable Redis
    /// is waited out for `[fleet] retry_for_ms`, as every queue call is; a
    /// refused permission ends the start. `Ok(false)`: stopped on request.
    async fn publish_settings(&mut self) -> Result<bool> {
        let settings = RunSettings::of(&self.cfg);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(self.cfg.fleet.retry_for_ms);
        let mut backoff = Backoff::new(std::time::Duration::from_millis(100), std::time::Duration::from_secs(10));
        loop {
            match self.opts.board.publish_settings(&settings).await {
                Ok(()) => return Ok(true),
                Err(e) if worth_retrying(&e) && tokio::time::Instant::now() < deadline => {
                    warn!(error = %e, "cannot publish the run's settings yet; retrying");
                }
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = self.calls.shutdown.requested() => return Ok(false),
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// Jobs kept outstanding: `max_in_flight`, at least one batch.
    fn in_flight(&self) -> u64 {
        (self.cfg.search.max_in_flight as u64).max(self.book.batch_size())
    }

    fn read_max(&self) -> usize {
        self.in_flight().clamp(1, 1000) as usize
    }

    /// Step 0: the first proposals, or the re-enqueueing of a resumed run's
    /// outstanding jobs. `Ok(false)`: stopped on request.
    async fn begin(&mut self, resumed: bool) -> Result<bool> {
        if resumed {
            write_best(&self.opts.run_dir, self.tally.best.as_ref())?;
            let outstanding: Vec<u64> = self.book.outstanding().map(|o| o.seq).collect();
            info!(jobs = outstanding.len(), "re-enqueueing outstanding jobs (idempotent)");
            for seq in outstanding {
                if !self.enqueue(seq).await? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let n = self.book.first_issue(self.in_flight());
        info!(
            total = self.book.total(),
            batch = self.book.batch_size(),
            in_flight = n,
            strategy = %self.strategy.name(),
            "starting the search"
        );
        let new = self.propose(n).await?;
        self.save_checkpoint()?;
        self.probe(Point::Checkpointed { step: 0 });
        for (index, seq) in new.into_iter().enumerate() {
            if !self.enqueue(seq).await? {
                return Ok(false);
            }
            self.probe(Point::Enqueued { step: 0, index });
        }
        Ok(true)
    }

    /// Takes in one result event; returns its id when it should be
    /// acknowledged at once (nothing of ours depends on it).
    fn receive(&mut self, ev: ResultEvent) -> Option<String> {
        let Some(seq) = parse_seq(&self.opts.run, &ev.job_id) else {
            warn!(job_id = %ev.job_id, by = %ev.by, "ignoring a result for a job id this run never issues");
            return Some(ev.id);
        };
        match self.book.admit(seq, &ev.id) {
            Admission::NotIssued => {
                warn!(job_id = %ev.job_id, by = %ev.by, "ignoring a result for a job this run has not issued");
                Some(ev.id)
            }
            Admission::Applied => self.receive_late(seq, ev),
            // The same event, re-read after a lost reply.
            Admission::Held => None,
            Admission::Duplicate => {
                // A job requeued after its dead letter arrived but before its
                // batch was applied: its result replaces the dead letter.
                let dead_held = matches!(self.book.held(seq), Some(Received { outcome: Outcome::Dead { .. }, .. }));
                if dead_held {
                    let outcome = Outcome::judge(&ev.job_id, ev.outcome.clone(), reward_range(&self.cfg.reward));
                    if matches!(outcome, Outcome::Rewarded(_)) {
                        info!(job_id = %ev.job_id, by = %ev.by, "a requeued child's result replaces its dead letter");
                        return self.book.supersede(seq, ev.id, Received { by: ev.by, outcome });
                    }
                }
                warn!(job_id = %ev.job_id, by = %ev.by, "ignoring a second result event for a job");
                Some(ev.id)
            }
            Admission::New => {
                let outcome = Outcome::judge(&ev.job_id, ev.outcome, reward_range(&self.cfg.reward));
                match &outcome {
                    Outcome::Rewarded(_) => {}
                    Outcome::Dead { reason, error } => warn!(job_id = %ev.job_id, %reason, %error, "job dead-lettered"),
                    Outcome::Invalid { detail } => {
                        warn!(job_id = %ev.job_id, by = %ev.by, %detail, "invalid result: the child counts as failed")
                    }
                }
                self.book.record(seq, ev.id, Received { by: ev.by, outcome });
                None
            }
        }
    }

    /// An event of a job whose batch is applied: a late child's result
    /// (kept for [`apply_late`](Self::apply_late); `None`), or one to
    /// ignore and acknowledge at once (a re-read after a restart).
    fn receive_late(&mut self, seq: u64, ev: ResultEvent) -> Option<String> {
        if !self.tally.dead.contains_key(&seq) {
            debug!(job_id = %ev.job_id, "result of a job already applied (re-read after a restart)");
            return Some(ev.id);
        }
        if let Some(held) = self.late.iter().find(|l| l.seq == seq) {
            // The same event re-read after a lost reply is acknowledged with
            // the one held; any other is a second result.
            return (held.event_id != ev.id).then_some(ev.id);
        }
        match Outcome::judge(&ev.job_id, ev.outcome, reward_range(&self.cfg.reward)) {
            Outcome::Rewarded(result) => {
                info!(job_id = %ev.job_id, by = %ev.by, reward = result.reward, "a requeued child finished (late child)");
                self.late.push(Late { seq, event_id: ev.id, by: ev.by, result });
                None
            }
            // The job's first dead letter re-read after a restart, or a
            // requeued child that failed again (it stays dead; it may be
            // requeued again).
            Outcome::Dead { reason, .. } => {
                debug!(job_id = %ev.job_id, %reason, "dead letter of a job already applied as dead");
                Some(ev.id)
            }
            Outcome::Invalid { detail } => {
                warn!(job_id = %ev.job_id, by = %ev.by, %detail, "invalid result of a requeued child: it stays dead");
                Some(ev.id)
            }
        }
    }

    /// Applies the late children received (history lines, totals, best
    /// child), checkpoints, then acknowledges their events. `Ok(false)`:
    /// stopped on request (the checkpoint is written; a resumed controller
    /// ignores the re-read events).
    async fn apply_late(&mut self) -> Result<bool> {
        if self.late.is_empty() {
            return Ok(true);
        }
        let applied_ms = now_ms();
        let m = self.book.batch_size();
        let mut lines = Vec::with_capacity(self.late.len());
        let mut acks = Vec::with_capacity(self.late.len());
        let before = self.tally.best.clone();
        for late in std::mem::take(&mut self.late) {
            let Some(job) = self.tally.dead.remove(&late.seq) else { continue };
            self.tally.epochs.add(&late.result, self.cfg.train.epochs);
            let (line, best) = settle_late(&self.opts.run, job, late.seq / m, late.by, late.result, self.tally.best.take(), applied_ms);
            self.tally.best = best;
            self.tally.rewarded += 1;
            self.tally.failed = self.tally.failed.saturating_sub(1);
            lines.push(line);
            acks.push(late.event_id);
        }
        self.log.history.append(&lines)?;
        if self.pareto.add(&lines) {
            self.pareto.write(&self.opts.run_dir)?;
        }
        self.probe(Point::LateWritten);
        self.save_checkpoint()?;
        self.probe(Point::LateCheckpointed);
        if self.tally.best != before {
            write_best(&self.opts.run_dir, self.tally.best.as_ref())?;
        }
        info!(children = lines.len(), best = self.tally.best.as_ref().map(|b| b.reward), "applied late children");
        if !self.calls.ack(&acks).await? {
            return Ok(false);
        }
        self.publish(if self.book.is_finished() { "finished" } else { "running" }).await;
        Ok(true)
    }

    /// Applies a complete batch (step `index + 1`). `Ok(false)`: stopped on
    /// request before finishing the step (the checkpoint is written; resume
    /// completes it).
    async fn apply(&mut self, batch: ReadyBatch<Received>) -> Result<bool> {
        let step = batch.index + 1;
        let settled = settle(&self.opts.run, batch, self.tally.best.clone(), now_ms(), self.cfg.train.epochs);
        let b = settled.batch;
        let stats = if settled.feedback.is_empty() {
            warn!(batch = b, "every job of the batch failed: no update");
            None
        } else {
            let n = settled.feedback.len() as u64;
            let s = self.strategy.update(settled.feedback).await?;
            self.tally.rewarded += n;
            Some(s)
        };
        self.tally.failed += settled.failed;
        self.tally.dead.extend(settled.dead.into_iter().map(|o| (o.seq, o)));
        self.tally.epochs.merge(settled.epochs);
        self.probe(Point::Updated { step });
        self.log.history.append(&settled.lines)?;
        if self.pareto.add(&settled.lines) {
            self.pareto.write(&self.opts.run_dir)?;
        }
        let policy_version = self.strategy.policy_version()?;
        let policy = if stats.is_some() { self.strategy.policy_view()? } else { None };
        let (jobs, rewards) = settled.rewarded.into_iter().unzip();
        self.log.updates.append(&[UpdateLine { batch: b, jobs, rewards, policy_version, stats: stats.clone(), policy }])?;
        self.probe(Point::HistoryWritten { step });
        let improved = settled.best != self.tally.best;
        self.tally.best = settled.best;
        let new = self.propose(self.book.refill()).await?;
        self.save_checkpoint()?;
        self.probe(Point::Checkpointed { step });
        if improved {
            write_best(&self.opts.run_dir, self.tally.best.as_ref())?;
        }
        info!(
            batch = b,
            policy_version,
            mean_reward = stats.as_ref().map(|s| s.mean_reward),
            failed = settled.failed,
            best = self.tally.best.as_ref().map(|b| b.reward),
            applied = self.tally.applied(),
            total = self.book.total(),
            "applied a batch"
        );
        for (index, seq) in new.into_iter().enumerate() {
            if !self.enqueue(seq).await? {
                return Ok(false);
            }
            self.probe(Point::Enqueued { step, index });
        }
        if !self.calls.ack(&settled.acks).await? {
            return Ok(false);
        }
        self.probe(Point::Acked { step });
        self.publish(if self.book.is_finished() { "finished" } else { "running" }).await;
        Ok(true)
    }

    /// Proposes `n` jobs and records them as outstanding; returns their seqs.
    async fn propose(&mut self, n: u64) -> Result<Vec<u64>> {
        let proposals = self.strategy.propose(n).await?;
        Ok(proposals
            .into_iter()
            .map(|p| self.book.issue(p.actions, p.arch.to_value(), p.policy_version))
            .collect())
    }

    fn save_checkpoint(&self) -> Result<()> {
        let state = self.strategy.checkpoint()?;
        Position {
            run: &self.opts.run,
            strategy: self.strategy.name(),
            strategy_state: &state,
            book: &self.book,
            log: &self.log,
            tally: &self.tally,
        }
        .save(&self.opts.run_dir)
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
            early_stop: self.cfg.early_stop.clone(),
        };
        serde_json::to_string(&spec).map_err(|e| FleetError::Thread(format!("cannot serialise a job: {e}")))
    }

    /// Enqueues job `seq` (idempotent). `Ok(false)`: stopped on request.
    async fn enqueue(&self, seq: u64) -> Result<bool> {
        let Some(o) = self.book.job(seq) else {
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
        self.calls.enqueue(&job_id(&self.opts.run, seq), &payload).await
    }

    fn probe(&self, p: Point) {
        if let Some(probe) = &self.opts.probe {
            probe(p);
        }
    }

    fn state(&self, label: &str) -> ControllerState {
        let best = self.tally.best.as_ref();
        ControllerState {
            run: self.opts.run.clone(),
            strategy: self.strategy.name().to_owned(),
            state: label.to_owned(),
            total: self.book.total(),
            issued: self.book.issued(),
            applied: self.tally.applied(),
            rewarded: self.tally.rewarded,
            failed: self.tally.failed,
            batch: self.book.batch_size(),
            max_in_flight: self.in_flight(),
            policy_version: self.strategy.policy_version().unwrap_or(0),
            best_reward: best.map(|b| b.reward),
            best_job: best.map(|b| b.job_id.clone()),
            best_arch: best.map(|b| b.arch.clone()),
            updated_ms: now_ms(),
            children_per_hour: self.rate.lock().unwrap_or_else(|p| p.into_inner()).record(self.tally.applied()),
            stopped: self.tally.epochs.stopped,
            epochs_trained: self.tally.epochs.trained,
            epochs_saved: self.tally.epochs.saved,
            train_seconds: self.tally.epochs.train_ms as f64 / 1000.0,
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
            applied = self.tally.applied(),
            total = self.book.total(),
            "controller stopped; continue with --resume"
        );
        let state = self.publish("stopped").await;
        self.summary(state, false)
    }

    async fn done(&mut self, reader: &Reader) -> Result<ControllerSummary> {
        // Events still pending: of applied jobs (acknowledged), or a late
        // child's result that arrived since the last read (applied).
        loop {
            let events = self.calls.leftovers(reader).await;
            if events.is_empty() {
                break;
            }
            let acks: Vec<String> = events.into_iter().filter_map(|ev| self.receive(ev)).collect();
            if !self.calls.ack(&acks).await? || !self.apply_late().await? {
                return Ok(self.stopped().await);
            }
        }
        info!(
            rewarded = self.tally.rewarded,
            failed = self.tally.failed,
            best = self.tally.best.as_ref().map(|b| b.reward),
            "search finished"
        );
        let state = self.publish("finished").await;
        // Workers leave once they see it. Best effort: a run whose lifecycle
        // could not be set is finished all the same (workers then stay until
        // stopped or idle).
        if let Err(e) = self.calls.queue.set_lifecycle(RunLifecycle::Finished).await {
            warn!(error = %e, "cannot mark the run finished; workers will not leave by themselves");
        }
        Ok(self.summary(state, true))
    }

    fn summary(&self, state: ControllerState, finished: bool) -> ControllerSummary {
        ControllerSummary {
            state,
            best: self.tally.best.clone(),
            run_dir: self.opts.run_dir.clone(),
            finished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateMeter;
    use std::time::{Duration, Instant};

    #[test]
    fn the_rate_is_over_the_recent_window() {
        let t = Instant::now();
        let mut m = RateMeter::default();
        assert_eq!(m.record_at(t, 0), None, "no rate from one sample");
        assert_eq!(m.record_at(t + Duration::from_secs(60), 0), None, "nothing applied yet");
        let r = m.record_at(t + Duration::from_secs(120), 4).unwrap();
        assert!((r - 120.0).abs() < 1e-9, "4 children in 2 minutes: {r}");
        // An hour later the early samples have left the window: only the
        // recent pace counts.
        m.record_at(t + Duration::from_secs(3600), 60);
        let r = m.record_at(t + Duration::from_secs(3660), 61).unwrap();
        assert!((r - 60.0).abs() < 1e-9, "1 child a minute recently: {r}");
    }
}
