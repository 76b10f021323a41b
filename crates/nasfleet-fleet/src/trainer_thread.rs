//! The dedicated thread a worker trains on.
//!
//! A trainer owns tensors, which must stay on one thread (`tch::Tensor` is
//! `Send` but not `Sync`), and its work is long and CPU/GPU-bound, which
//! must not run on the async runtime that heartbeats. So each worker has one
//! long-lived, named thread: it builds its [`TrainerSet`] *on that thread*
//! when the first job arrives and keeps it for its whole life (so a trainer
//! keeps its dataset on the device between jobs), receives plain jobs over a
//! channel, trains each with the set's trainer for it, and answers over a
//! oneshot channel.
//! The async side talks to a running trainer only through [`JobShared`]: a
//! stop flag and the latest epoch metrics; and, when the job has early
//! stopping on, through a [`RungHook`]: at the end of an epoch that is a
//! rung, the trainer thread sends the child's score (plain numbers) to the
//! worker loop and blocks until it answers continue or stop (the worker asks
//! the queue, which records the score and the decision atomically).
//!
//! A panic while building the set or training is caught and becomes a
//! retryable failure (the job goes back to the queue, spending a delivery);
//! the thread lives on for the next job (a panic while building the set
//! leaves it unbuilt, so the next job tries again).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use nasfleet_core::early_stop::{score, EarlyStopConfig, RungDecision};
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::trainer::{EpochMetrics, TrainContext, TrainError, TrainJob, TrainOutcome, Trainer};
use tokio::sync::{mpsc as tokio_mpsc, oneshot};

use crate::error::{FleetError, Result};

/// The trainers of one trainer thread: built on that thread, once, and kept
/// for its life, so that a trainer may keep state (a dataset on the device)
/// between jobs without thread-locals.
pub trait TrainerSet {
    /// The trainer for `job` (by its search space, typically). An error fails
    /// the job: [`TrainError::Permanent`] when no trainer of this set can
    /// train it, [`TrainError::Retryable`] when this worker cannot right now
    /// (its device is missing) but another might.
    fn trainer_for(&mut self, job: &TrainJob) -> std::result::Result<&mut dyn Trainer, TrainError>;
}

/// A single trainer is a set that trains every job itself.
impl<T: Trainer> TrainerSet for T {
    fn trainer_for(&mut self, _job: &TrainJob) -> std::result::Result<&mut dyn Trainer, TrainError> {
        Ok(self)
    }
}

/// Builds a trainer thread's [`TrainerSet`]; called on that thread, once.
/// Shared by every worker of a process (each thread gets its own set).
pub type TrainerSets = dyn Fn() -> Box<dyn TrainerSet> + Send + Sync;

/// What the worker loop and a running trainer share.
#[derive(Debug, Default)]
pub struct JobShared {
    stop: AtomicBool,
    // A std mutex: held for a push or a clone, never across an await, and
    // locked from a non-async thread.
    progress: Mutex<Vec<EpochMetrics>>,
}

impl JobShared {
    /// Asks the trainer to checkpoint and return [`TrainError::Preempted`].
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// True once a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Metrics of every epoch reported so far.
    pub fn progress(&self) -> Vec<EpochMetrics> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last epoch's metrics.
    pub fn last(&self) -> Option<EpochMetrics> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).last().cloned()
    }
}

/// A question from the trainer thread at a rung: the child's score at the
/// end of `epoch` (counted from 1); answered on `reply`.
#[derive(Debug)]
pub struct RungAsk {
    /// The epoch just finished (the rung).
    pub epoch: u32,
    /// The child's score there ([`nasfleet_core::early_stop::score`]).
    pub value: f64,
    /// Where the decision goes. Dropping it unanswered means continue.
    pub reply: oneshot::Sender<RungDecision>,
}

/// Early stopping for one job: its rule and the channel to the worker loop.
#[derive(Debug, Clone)]
pub struct RungHook {
    /// The job's `[early_stop]` section.
    pub rule: EarlyStopConfig,
    /// Where rung questions go.
    pub asks: tokio_mpsc::UnboundedSender<RungAsk>,
}

/// The [`TrainContext`] a trainer sees on the thread.
struct ThreadContext {
    shared: Arc<JobShared>,
    checkpoint_dir: Option<PathBuf>,
    hook: Option<RungHook>,
    reward: RewardConfig,
    epochs: usize,
}

impl TrainContext for ThreadContext {
    fn progress(&mut self, metrics: &EpochMetrics) {
        self.shared
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(metrics.clone());
    }

    fn should_stop(&self) -> bool {
        self.shared.stop_requested()
    }

    fn checkpoint_dir(&self) -> Option<&Path> {
        self.checkpoint_dir.as_deref()
    }

    fn epoch_end(&mut self, history: &[EpochMetrics]) -> RungDecision {
        let Some(hook) = &self.hook else { return RungDecision::Continue };
        // Epochs are counted by how many were trained, not by the label a
        // trainer gives them.
        let epoch = history.len();
        if !hook.rule.is_rung(epoch, self.epochs) {
            return RungDecision::Continue;
        }
        let Ok(epoch) = u32::try_from(epoch) else { return RungDecision::Continue };
        let (reply, answer) = oneshot::channel();
        let ask = RungAsk { epoch, value: score(&self.reward, history), reply };
        if hook.asks.send(ask).is_err() {
            // The worker gave up on the job (it is shutting down): its stop
            // flag makes the trainer checkpoint and return.
            return RungDecision::Continue;
        }
        answer.blocking_recv().unwrap_or(RungDecision::Continue)
    }
}

type Reply = std::result::Result<TrainOutcome, TrainError>;

struct Request {
    job: TrainJob,
    shared: Arc<JobShared>,
    checkpoint_dir: Option<PathBuf>,
    hook: Option<RungHook>,
    reply: oneshot::Sender<Reply>,
}

/// A worker's training thread. Dropping it lets the thread finish its
/// current job and exit; it is never joined (a trainer that ignores its stop
/// flag must not keep the process alive).
pub struct TrainerThread {
    tx: mpsc::Sender<Request>,
}

impl TrainerThread {
    /// Starts the thread `name`.
    pub fn spawn(name: &str, sets: Arc<TrainerSets>) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut set: Option<Box<dyn TrainerSet>> = None;
                for req in rx {
                    let job = req.job;
                    let mut ctx = ThreadContext {
                        shared: req.shared,
                        checkpoint_dir: req.checkpoint_dir,
                        hook: req.hook,
                        reward: job.reward.clone(),
                        epochs: job.train.epochs,
                    };
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        set.get_or_insert_with(|| sets()).trainer_for(&job)?.train(&job, &mut ctx)
                    }))
                    .unwrap_or_else(|panic| {
                        Err(TrainError::Retryable(format!(
                            "trainer panicked: {}",
                            nasfleet_util::panic_message(&*panic)
                        )))
                    });
                    // The worker may have given up on the job (shutdown).
                    let _ = req.reply.send(result);
                }
            })
            .map_err(|e| FleetError::Thread(format!("cannot start trainer thread {name}: {e}")))?;
        Ok(TrainerThread { tx })
    }

    /// Queues a job; the receiver yields the trainer's answer. With a
    /// `hook`, the trainer asks it at every rung.
    pub fn submit(
        &self,
        job: TrainJob,
        shared: Arc<JobShared>,
        checkpoint_dir: Option<PathBuf>,
        hook: Option<RungHook>,
    ) -> Result<oneshot::Receiver<Reply>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                job,
                shared,
                checkpoint_dir,
                hook,
                reply,
            })
            .map_err(|_| FleetError::Thread("the trainer thread has exited".into()))?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasfleet_core::config::TrainConfig;
    use nasfleet_core::reward::RewardConfig;
    use nasfleet_core::space::nb201::{Nb201Arch, Nb201Op};
    use nasfleet_core::Architecture;

    struct Panicky;
    impl Trainer for Panicky {
        fn train(&mut self, _: &TrainJob, ctx: &mut dyn TrainContext) -> Reply {
            ctx.progress(&EpochMetrics::default());
            panic!("boom");
        }
    }

    fn job() -> TrainJob {
        TrainJob {
            job_id: "j".into(),
            arch: Architecture::Nb201(Nb201Arch { ops: [Nb201Op::None; 6] }),
            train: TrainConfig::default(),
            reward: RewardConfig::default(),
            seed: 0,
        }
    }

    #[tokio::test]
    async fn a_panic_becomes_a_retryable_failure_and_the_thread_survives() {
        let sets: Arc<TrainerSets> = Arc::new(|| Box::new(Panicky) as Box<dyn TrainerSet>);
        let t = TrainerThread::spawn("test-trainer", sets).unwrap();
        for _ in 0..2 {
            let shared = Arc::new(JobShared::default());
            let r = t.submit(job(), shared.clone(), None, None).unwrap().await.unwrap();
            match r {
                Err(TrainError::Retryable(m)) => assert!(m.contains("boom"), "{m}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(shared.progress().len(), 1);
        }
    }
}
