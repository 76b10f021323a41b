//! The real trainers a worker uses, by search space: the one place the
//! binary decides which trainer trains which job.
//!
//! `make_trainer` is called on the worker's trainer thread once per job
//! (see `nasfleet_fleet::trainer_thread`), and the returned trainer trains on
//! that same thread. The CNN and language-model trainers keep their dataset
//! on the device between jobs, so they live in thread-locals of that thread
//! and the per-job trainer is a thin handle onto them: the second child of a
//! worker does not reload Fashion-MNIST.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::path::PathBuf;

use nasfleet_core::trainer::{TrainContext, TrainError, TrainJob, TrainOutcome, Trainer};
use nasfleet_core::Architecture;
use nasfleet_fleet::WorkerOptions;
use nasfleet_nb201::TableTrainer;
use nasfleet_torch::cnn::CnnTrainer;
use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::rnn::LmTrainer;
use nasfleet_torch::tch::Device;

/// The trainer for `job`'s search space.
pub fn make_trainer(job: &TrainJob, opts: &WorkerOptions) -> Result<Box<dyn Trainer>, TrainError> {
    let data_dir = opts.data_dir.clone().unwrap_or_else(nasfleet_data::default_cache_dir);
    Ok(match &job.arch {
        Architecture::Cnn(_) => Box::new(ThreadLocal::<CnnTrainer> { key: (data_dir, device(&opts.device)?), _t: PhantomData }),
        Architecture::RnnCell(_) => Box::new(ThreadLocal::<LmTrainer> { key: (data_dir, device(&opts.device)?), _t: PhantomData }),
        Architecture::Nb201(_) => Box::new(TableTrainer::for_worker(opts.data_dir.as_deref())?),
    })
}

/// A device the worker was told to use but that is not there is this
/// worker's problem, not the job's: another worker may train it.
fn device(spec: &str) -> Result<Device, TrainError> {
    spec.parse::<DeviceSpec>()
        .and_then(DeviceSpec::resolve)
        .map_err(|e| TrainError::Retryable(format!("worker device: {e}")))
}

type Key = (PathBuf, Device);

/// A trainer kept in a thread-local of the trainer thread, rebuilt when the
/// data directory or device changes.
trait Cached: Trainer + Sized + 'static {
    fn build(key: &Key) -> Self;
    fn with<R>(f: impl FnOnce(&RefCell<Option<(Key, Self)>>) -> R) -> R;
}

thread_local! {
    static CNN: RefCell<Option<(Key, CnnTrainer)>> = const { RefCell::new(None) };
    static LM: RefCell<Option<(Key, LmTrainer)>> = const { RefCell::new(None) };
}

impl Cached for CnnTrainer {
    fn build(key: &Key) -> Self {
        CnnTrainer::new(key.0.clone(), key.1)
    }
    fn with<R>(f: impl FnOnce(&RefCell<Option<(Key, Self)>>) -> R) -> R {
        CNN.with(f)
    }
}

impl Cached for LmTrainer {
    fn build(key: &Key) -> Self {
        LmTrainer::new(key.0.clone(), key.1)
    }
    fn with<R>(f: impl FnOnce(&RefCell<Option<(Key, Self)>>) -> R) -> R {
        LM.with(f)
    }
}

struct ThreadLocal<T> {
    key: Key,
    _t: PhantomData<fn() -> T>,
}

impl<T: Cached> Trainer for ThreadLocal<T> {
    fn train(&mut self, job: &TrainJob, ctx: &mut dyn TrainContext) -> Result<TrainOutcome, TrainError> {
        T::with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(k, _)| *k != self.key) {
                *slot = Some((self.key.clone(), T::build(&self.key)));
            }
            match slot.as_mut() {
                Some((_, trainer)) => trainer.train(job, ctx),
                None => Err(TrainError::Retryable("trainer slot empty".into())),
            }
        })
    }
}
