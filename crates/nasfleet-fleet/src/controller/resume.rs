//! The controller's durable state in its run directory: starting a run,
//! writing a checkpoint, and reading one back to resume.
//!
//! Resuming refuses a run directory without a checkpoint, a config other
//! than the run's own copy, another run's checkpoint or another strategy's.
//! It restores the strategy, cuts `history.jsonl` / `updates.jsonl` back to
//! the lengths the checkpoint recorded (lines written after it are written
//! again), and rebuilds the batch book: every outstanding job is re-enqueued
//! (the queue ignores the ones it has or that finished), and every result
//! not acknowledged is re-read.

use std::path::Path;

use base64::Engine as _;
use nasfleet_core::config::ExperimentConfig;
use nasfleet_core::strategy::SearchStrategy;
use nasfleet_queue::JobQueue;
use tracing::info;

use super::batches::Book;
use super::outcome::{EpochTally, Received, Tally};
use crate::error::{FleetError, Result};
use crate::rundir::{files, read_checkpoint, write_atomic, Best, Checkpoint, JsonLines, CHECKPOINT_FORMAT};

/// The append-only files of a run.
#[derive(Debug)]
pub(super) struct RunLog {
    /// One line per finished child.
    pub(super) history: JsonLines,
    /// One line per applied batch.
    pub(super) updates: JsonLines,
}

/// A run directory opened for a controller.
#[derive(Debug)]
pub(super) struct Opened {
    /// Jobs and batches.
    pub(super) book: Book<Received>,
    /// Totals and the best child.
    pub(super) tally: Tally,
    /// The run's files.
    pub(super) log: RunLog,
    /// Continued from a checkpoint (false: a new run).
    pub(super) resumed: bool,
}

/// Opens `dir` for run `run`: starts it, or resumes it (restoring
/// `strategy`) when `resume` is set.
pub(super) async fn open<Q: JobQueue>(
    queue: &Q,
    cfg: &ExperimentConfig,
    strategy: &mut dyn SearchStrategy,
    run: &str,
    dir: &Path,
    resume: bool,
) -> Result<Opened> {
    std::fs::create_dir_all(dir).map_err(|e| FleetError::io("run directory", dir, e))?;
    let config_text = cfg.to_toml();
    let (total, m) = (cfg.search.architectures, cfg.search.batch.max(1) as u64);
    if resume {
        let ck = read_back(dir, run, &config_text, strategy)?;
        info!(
            issued = ck.issued,
            next_batch = ck.next_batch,
            outstanding = ck.outstanding.len(),
            "resuming from the checkpoint"
        );
        restore(dir, ck, total, m)
    } else {
        start(queue, dir, run, &config_text).await?;
        Ok(Opened {
            book: Book::new(total, m),
            tally: Tally::default(),
            log: RunLog {
                history: JsonLines::create("history", dir.join(files::HISTORY))?,
                updates: JsonLines::create("updates", dir.join(files::UPDATES))?,
            },
            resumed: false,
        })
    }
}

/// Checks that a new run may start in `dir` and writes its config.
async fn start<Q: JobQueue>(queue: &Q, dir: &Path, run: &str, config_text: &str) -> Result<()> {
    if dir.join(files::CHECKPOINT).exists() {
        return Err(FleetError::Refused(format!(
            "{} already holds a run (checkpoint.json): resume it with --resume, or choose another run",
            dir.display()
        )));
    }
    let st = queue.status(1).await?;
    if st.enqueued > 0 || st.outcomes > 0 {
        return Err(FleetError::Refused(format!(
            "run {run:?} already has {} job(s) in the queue: resume it with --resume (same run directory), \
             or choose another run",
            st.enqueued
        )));
    }
    write_atomic("run config", &dir.join(files::CONFIG), config_text.as_bytes())?;
    let _ = std::fs::remove_file(dir.join(files::BEST));
    Ok(())
}

/// Reads `dir`'s checkpoint, checks it belongs to this run, config and
/// strategy, and restores `strategy` from it.
fn read_back(dir: &Path, run: &str, config_text: &str, strategy: &mut dyn SearchStrategy) -> Result<Checkpoint> {
    let ckpt_path = dir.join(files::CHECKPOINT);
    if !ckpt_path.exists() {
        return Err(FleetError::Refused(format!(
            "{} has no checkpoint: nothing to resume (start the run without --resume)",
            dir.display()
        )));
    }
    let saved_path = dir.join(files::CONFIG);
    let saved = std::fs::read_to_string(&saved_path).map_err(|e| FleetError::io("run config", &saved_path, e))?;
    if saved != config_text {
        return Err(FleetError::Refused(format!(
            "the config differs from the run's own copy {}: resume with that file (--config {})",
            saved_path.display(),
            saved_path.display()
        )));
    }
    let ck = read_checkpoint(&ckpt_path)?;
    if ck.run != run {
        return Err(FleetError::Refused(format!(
            "{} is the checkpoint of run {:?}, not {run:?}",
            ckpt_path.display(),
            ck.run
        )));
    }
    if ck.strategy != strategy.name() {
        return Err(FleetError::Refused(format!(
            "{} holds a {} strategy, the config asks for {}",
            ckpt_path.display(),
            ck.strategy,
            strategy.name()
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&ck.strategy_state)
        .map_err(|e| FleetError::Checkpoint {
            path: ckpt_path.clone(),
            message: format!("strategy_state is not base64: {e}"),
        })?;
    strategy.restore(&bytes)?;
    Ok(ck)
}

/// The book, tally and files at the checkpoint's position.
fn restore(dir: &Path, ck: Checkpoint, total: u64, m: u64) -> Result<Opened> {
    let book = Book::resume(total, m, ck.issued, ck.next_batch, ck.outstanding).map_err(|message| {
        FleetError::Checkpoint {
            path: dir.join(files::CHECKPOINT),
            message,
        }
    })?;
    Ok(Opened {
        book,
        tally: Tally {
            rewarded: ck.rewarded,
            failed: ck.failed,
            best: ck.best,
            dead: ck.dead.into_iter().map(|o| (o.seq, o)).collect(),
            epochs: EpochTally {
                stopped: ck.stopped,
                trained: ck.epochs_trained,
                saved: ck.epochs_saved,
                train_ms: ck.train_ms,
            },
        },
        log: RunLog {
            history: JsonLines::reopen("history", dir.join(files::HISTORY), ck.history_bytes)?,
            updates: JsonLines::reopen("updates", dir.join(files::UPDATES), ck.updates_bytes)?,
        },
        resumed: true,
    })
}

/// Everything a controller must keep to resume exactly where it is.
pub(super) struct Position<'a> {
    /// Run id.
    pub(super) run: &'a str,
    /// Strategy name.
    pub(super) strategy: &'a str,
    /// The strategy's own checkpoint.
    pub(super) strategy_state: &'a [u8],
    /// Jobs and batches.
    pub(super) book: &'a Book<Received>,
    /// The run's files.
    pub(super) log: &'a RunLog,
    /// Totals and the best child.
    pub(super) tally: &'a Tally,
}

impl Position<'_> {
    /// The checkpoint of this position.
    pub(super) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            run: self.run.to_owned(),
            strategy: self.strategy.to_owned(),
            strategy_state: base64::engine::general_purpose::STANDARD.encode(self.strategy_state),
            issued: self.book.issued(),
            next_batch: self.book.next_batch(),
            outstanding: self.book.outstanding().cloned().collect(),
            history_bytes: self.log.history.len(),
            updates_bytes: self.log.updates.len(),
            rewarded: self.tally.rewarded,
            failed: self.tally.failed,
            best: self.tally.best.clone(),
            finished: self.book.is_finished(),
            dead: self.tally.dead.values().cloned().collect(),
            stopped: self.tally.epochs.stopped,
            epochs_trained: self.tally.epochs.trained,
            epochs_saved: self.tally.epochs.saved,
            train_ms: self.tally.epochs.train_ms,
        }
    }

    /// Writes the checkpoint into `dir`, atomically.
    pub(super) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(files::CHECKPOINT);
        let bytes =
            serde_json::to_vec(&self.checkpoint()).map_err(|e| FleetError::io("checkpoint", &path, std::io::Error::other(e)))?;
        write_atomic("checkpoint", &path, &bytes)
    }
}

/// Writes `best.json` into `dir` (nothing when there is no best child yet).
pub(super) fn write_best(dir: &Path, best: Option<&Best>) -> Result<()> {
    let Some(best) = best else {
        return Ok(());
    };
    let path = dir.join(files::BEST);
    let mut text = serde_json::to_string_pretty(best).map_err(|e| FleetError::io("best", &path, std::io::Error::other(e)))?;
    text.push('\n');
    write_atomic("best", &path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::outcome::Outcome;
    use crate::rundir::{read_lines, Outstanding};
    use nasfleet_core::config::StrategyKind;
    use nasfleet_core::strategy::{build_pure_strategy, Feedback};
    use nasfleet_queue::testing::TempDir;
    use nasfleet_queue::{MemoryQueue, QueueConfig};

    fn config(kind: StrategyKind) -> ExperimentConfig {
        let mut c = ExperimentConfig::default();
        c.search.strategy = kind;
        c.search.seed = 3;
        c.search.architectures = 7;
        c.search.batch = 2;
        c.search.max_in_flight = 4;
        c
    }

    fn queue() -> MemoryQueue {
        MemoryQueue::new(QueueConfig::default()).unwrap()
    }

    fn strategy(cfg: &ExperimentConfig) -> Box<dyn SearchStrategy> {
        build_pure_strategy(cfg).unwrap()
    }

    async fn open_run(cfg: &ExperimentConfig, s: &mut dyn SearchStrategy, run: &str, dir: &Path, resume: bool) -> Result<Opened> {
        open(&queue(), cfg, s, run, dir, resume).await
    }

    fn refusal(r: Result<Opened>) -> String {
        match r {
            Err(FleetError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// A run of `cfg` in `dir` that issued 4 jobs, applied batch 0 (two
    /// history lines, one update line) and checkpointed; returns the
    /// checkpoint and the strategy state it holds.
    async fn checkpointed_run(cfg: &ExperimentConfig, dir: &Path) -> (Checkpoint, Vec<u8>) {
        let mut s = strategy(cfg);
        let mut o = open_run(cfg, s.as_mut(), "r", dir, false).await.unwrap();
        assert!(!o.resumed);
        for p in s.propose(4).unwrap() {
            o.book.issue(p.actions, p.arch.to_value(), p.policy_version);
        }
        for seq in 0..2 {
            let outcome = Outcome::Dead { reason: "x".into(), error: "y".into() };
            o.book.record(seq, format!("ev-{seq}"), Received { by: "w".into(), outcome });
        }
        let batch = o.book.take_ready().unwrap();
        let fb: Vec<Feedback> = batch.jobs.iter().map(|d| Feedback { actions: d.job.actions.clone(), reward: 0.5 }).collect();
        s.update(&fb).unwrap();
        o.log.history.append(&["one", "two"]).unwrap();
        o.log.updates.append(&["u0"]).unwrap();
        for seq in 4..6 {
            o.book.issue(vec![seq as u32], serde_json::Value::Null, 1);
        }
        o.tally = Tally { rewarded: 2, failed: 0, best: None, ..Tally::default() };
        o.tally.dead.insert(1, Outstanding { seq: 1, actions: vec![1], arch: serde_json::Value::Null, policy_version: 0 });
        let state = s.checkpoint().unwrap();
        let pos = Position { run: "r", strategy: s.name(), strategy_state: &state, book: &o.book, log: &o.log, tally: &o.tally };
        pos.save(dir).unwrap();
        let ck = pos.checkpoint();
        // Written after the checkpoint: a resume drops them.
        o.log.history.append(&["three"]).unwrap();
        o.log.updates.append(&["u1"]).unwrap();
        (ck, state)
    }

    #[tokio::test]
    async fn a_new_run_writes_its_config_and_starts_empty() {
        let dir = TempDir::new("nasfleet-resume-new").unwrap();
        let cfg = config(StrategyKind::Random);
        std::fs::write(dir.path().join(files::BEST), "stale").unwrap();
        let o = open_run(&cfg, strategy(&cfg).as_mut(), "r", dir.path(), false).await.unwrap();
        assert!(!o.resumed);
        assert_eq!((o.book.issued(), o.book.next_batch(), o.book.total(), o.book.batch_size()), (0, 0, 7, 2));
        assert_eq!(o.tally, Tally::default());
        assert!(o.log.history.is_empty() && o.log.updates.is_empty());
        assert_eq!(std::fs::read_to_string(dir.path().join(files::CONFIG)).unwrap(), cfg.to_toml());
        assert!(!dir.path().join(files::BEST).exists(), "a stale best.json is removed");
    }

    #[tokio::test]
    async fn a_new_run_is_refused_over_a_checkpoint_or_a_queue_with_jobs() {
        let dir = TempDir::new("nasfleet-resume-refuse-start").unwrap();
        let cfg = config(StrategyKind::Random);
        checkpointed_run(&cfg, dir.path()).await;
        let m = refusal(open_run(&cfg, strategy(&cfg).as_mut(), "r", dir.path(), false).await);
        assert!(m.contains("--resume") && m.contains("checkpoint.json"), "{m}");

        let other = TempDir::new("nasfleet-resume-refuse-queue").unwrap();
        let q = queue();
        q.enqueue("r-000000", "{}").await.unwrap();
        let r = open(&q, &cfg, strategy(&cfg).as_mut(), "r", other.path(), false).await;
        let m = refusal(r);
        assert!(m.contains("already has 1 job(s)"), "{m}");
        assert!(!other.path().join(files::CONFIG).exists());
    }

    #[tokio::test]
    async fn resuming_is_refused_without_a_matching_checkpoint() {
        let dir = TempDir::new("nasfleet-resume-refuse").unwrap();
        let cfg = config(StrategyKind::Random);
        let m = refusal(open_run(&cfg, strategy(&cfg).as_mut(), "r", dir.path(), true).await);
        assert!(m.contains("no checkpoint"), "{m}");
        checkpointed_run(&cfg, dir.path()).await;
        let mut changed = cfg.clone();
        changed.search.seed += 1;
        let m = refusal(open_run(&changed, strategy(&changed).as_mut(), "r", dir.path(), true).await);
        assert!(m.contains("config differs"), "{m}");
        let m = refusal(open_run(&cfg, strategy(&cfg).as_mut(), "other", dir.path(), true).await);
        assert!(m.contains("checkpoint of run \"r\", not \"other\""), "{m}");
        let mut evo = strategy(&config(StrategyKind::Evolution));
        let m = refusal(open_run(&cfg, evo.as_mut(), "r", dir.path(), true).await);
        assert!(m.contains("holds a random strategy, the config asks for evolution"), "{m}");
    }

    #[tokio::test]
    async fn resuming_restores_the_position_and_cuts_the_logs_back() {
        let dir = TempDir::new("nasfleet-resume-exact").unwrap();
        let cfg = config(StrategyKind::Random);
        let (ck, state) = checkpointed_run(&cfg, dir.path()).await;
        assert_eq!((ck.issued, ck.next_batch, ck.finished), (6, 1, false));
        let mut s = strategy(&cfg);
        let o = open_run(&cfg, s.as_mut(), "r", dir.path(), true).await.unwrap();
        assert!(o.resumed);
        assert_eq!(s.checkpoint().unwrap(), state, "the strategy is restored");
        assert_eq!((o.book.issued(), o.book.next_batch()), (6, 1));
        // The jobs to re-enqueue: every outstanding one, with its action tokens.
        let out: Vec<_> = o.book.outstanding().cloned().collect();
        assert_eq!(out.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![2, 3, 4, 5]);
        assert_eq!(out, ck.outstanding);
        assert_eq!((o.tally.rewarded, o.tally.failed, o.tally.best.clone()), (2, 0, None));
        assert_eq!(o.tally.dead.keys().copied().collect::<Vec<_>>(), vec![1], "the dead-lettered children");
        assert_eq!(read_lines::<String>("history", &dir.path().join(files::HISTORY)).unwrap(), ["one", "two"]);
        assert_eq!(read_lines::<String>("updates", &dir.path().join(files::UPDATES)).unwrap(), ["u0"]);
        assert_eq!((o.log.history.len(), o.log.updates.len()), (ck.history_bytes, ck.updates_bytes));
        // The same position checkpoints to the same file.
        let pos = Position { run: "r", strategy: s.name(), strategy_state: &state, book: &o.book, log: &o.log, tally: &o.tally };
        assert_eq!(pos.checkpoint(), ck);
    }

    #[tokio::test]
    async fn a_checkpoint_that_does_not_add_up_is_refused() {
        let dir = TempDir::new("nasfleet-resume-corrupt").unwrap();
        let cfg = config(StrategyKind::Random);
        let (mut ck, _) = checkpointed_run(&cfg, dir.path()).await;
        ck.outstanding.remove(1);
        write_atomic("checkpoint", &dir.path().join(files::CHECKPOINT), &serde_json::to_vec(&ck).unwrap()).unwrap();
        match open_run(&cfg, strategy(&cfg).as_mut(), "r", dir.path(), true).await {
            Err(FleetError::Checkpoint { message, .. }) => assert!(message.contains("outstanding"), "{message}"),
            other => panic!("{other:?}"),
        }
        ck.strategy_state = "not base64!".into();
        write_atomic("checkpoint", &dir.path().join(files::CHECKPOINT), &serde_json::to_vec(&ck).unwrap()).unwrap();
        match open_run(&cfg, strategy(&cfg).as_mut(), "r", dir.path(), true).await {
            Err(FleetError::Checkpoint { message, .. }) => assert!(message.contains("base64"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn best_json_is_written_only_once_there_is_a_best_child() {
        let dir = TempDir::new("nasfleet-resume-best").unwrap();
        write_best(dir.path(), None).unwrap();
        assert!(!dir.path().join(files::BEST).exists());
        let best = Best { job_id: "r-000001".into(), reward: 0.5, arch: serde_json::json!({"a": 1}), policy_version: 2 };
        write_best(dir.path(), Some(&best)).unwrap();
        let back: Best = serde_json::from_str(&std::fs::read_to_string(dir.path().join(files::BEST)).unwrap()).unwrap();
        assert_eq!(back, best);
    }
}
