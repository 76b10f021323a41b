//! The real trainers a worker uses, by search space: the one place the
//! binary decides which trainer trains which job.
//!
//! `make_trainer` is called on the worker's trainer thread once per job
//! (see `nasfleet_fleet::trainer_thread`); a trainer that wants to keep a
//! dataset loaded between jobs keeps it in a thread-local on that thread.

use nasfleet_core::trainer::{TrainError, TrainJob, Trainer};
use nasfleet_core::Architecture;
use nasfleet_fleet::WorkerOptions;

/// The trainer for `job`'s search space.
pub fn make_trainer(job: &TrainJob, opts: &WorkerOptions) -> Result<Box<dyn Trainer>, TrainError> {
    let _ = opts;
    let space = match &job.arch {
        Architecture::Cnn(_) => "cnn",
        Architecture::RnnCell(_) => "rnn-cell",
        Architecture::Nb201(_) => "nb201",
    };
    Err(TrainError::Permanent(format!(
        "no trainer for space {space} in this build (dataset {:?})",
        job.train.dataset
    )))
}
