//! The embedded mode (`nasfleet local`): the controller and N workers in one
//! process over the in-memory queue, with exactly the loops a Redis
//! deployment runs.

use std::path::PathBuf;
use std::sync::Arc;

use nasfleet_core::config::ExperimentConfig;
use nasfleet_core::strategy::SearchStrategy;
use nasfleet_queue::{Consumer, MemoryQueue};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::board::{Board, ControllerState};
use crate::controller::{run_controller, ControllerOptions, ControllerSummary};
use crate::error::{FleetError, Result};
use crate::settings::{FleetSettings, RunSettings};
use crate::shutdown::{shutdown_pair, Shutdown};
use crate::trainer_thread::TrainerSets;
use crate::worker::{run_worker, WorkerOptions};

/// Settings of an embedded run.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Run id.
    pub run: String,
    /// Run directory.
    pub run_dir: PathBuf,
    /// Continue the run in `run_dir` (its outstanding jobs are trained again,
    /// from their checkpoints in `work_dir` when there are any).
    pub resume: bool,
    /// Workers (each with its own trainer thread).
    pub workers: usize,
    /// Device label for trainers.
    pub device: String,
    /// Dataset directory for trainers.
    pub data_dir: Option<PathBuf>,
    /// Per-job checkpoint root.
    pub work_dir: Option<PathBuf>,
    /// Receives the controller's state after every step.
    pub progress: Option<watch::Sender<ControllerState>>,
}

/// Runs a whole search in this process. On `shutdown` the controller stops
/// after its current step and the workers ask their trainers to checkpoint.
pub async fn run_local(
    config: &ExperimentConfig,
    strategy: Box<dyn SearchStrategy>,
    trainers: Arc<TrainerSets>,
    opts: LocalOptions,
    shutdown: Shutdown,
) -> Result<ControllerSummary> {
    let queue = local_queue(config)?;
    run_local_on(queue, config, strategy, trainers, opts, shutdown).await
}

/// The in-memory queue an embedded run of `config` uses: made apart from
/// [`run_local_on`] so that a caller can watch it (the dashboard reads its
/// status: depth, in flight, workers and their progress).
pub fn local_queue(config: &ExperimentConfig) -> Result<MemoryQueue> {
    let settings = FleetSettings::from_run(&RunSettings::of(config))?;
    Ok(MemoryQueue::new(settings.queue_config())?)
}

/// [`run_local`] on a queue made by [`local_queue`].
pub async fn run_local_on(
    queue: MemoryQueue,
    config: &ExperimentConfig,
    strategy: Box<dyn SearchStrategy>,
    trainers: Arc<TrainerSets>,
    opts: LocalOptions,
    shutdown: Shutdown,
) -> Result<ControllerSummary> {
    // In one process the workers know the run's settings directly.
    let settings = FleetSettings::from_run(&RunSettings::of(config))?;
    if opts.workers == 0 {
        return Err(FleetError::Setting {
            field: "workers".into(),
            message: "must be at least 1".into(),
        });
    }
    let (stop_workers, worker_shutdown) = shutdown_pair();
    // Workers stop when the controller is done, or at once on a signal.
    let forward = {
        let mut ext = shutdown.clone();
        let trigger = stop_workers.clone();
        tokio::spawn(async move {
            ext.requested().await;
            trigger.trigger();
        })
    };
    let mut workers = JoinSet::new();
    for i in 0..opts.workers {
        let w = WorkerOptions {
            consumer: Consumer::new(&format!("local-{i}"), &opts.device)?,
            run: opts.run.clone(),
            settings: settings.clone(),
            max_jobs: None,
            idle_exit: None,
            work_dir: opts.work_dir.clone(),
            device: opts.device.clone(),
            data_dir: opts.data_dir.clone(),
        };
        workers.spawn(run_worker(queue.clone(), w, trainers.clone(), worker_shutdown.clone()));
    }
    let copts = ControllerOptions {
        run: opts.run.clone(),
        run_dir: opts.run_dir.clone(),
        resume: opts.resume,
        consumer: Consumer::new("local", "controller")?,
        block: settings.block,
        board: Board::Off,
        progress: opts.progress.clone(),
        probe: None,
    };
    let controller = run_controller(queue, config, strategy, copts, shutdown);
    tokio::pin!(controller);
    let result = loop {
        tokio::select! {
            r = &mut controller => break r,
            Some(w) = workers.join_next() => match w {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => break Err(e),
                Err(e) => break Err(FleetError::Thread(format!("a worker task failed: {e}"))),
            },
        }
    };
    stop_workers.trigger();
    forward.abort();
    while let Some(w) = workers.join_next().await {
        match w {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "a worker stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "a worker task failed"),
        }
    }
    result
}
