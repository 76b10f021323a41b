//! The two choices the binary makes for a run, side by side: which search
//! strategy proposes children (`search.strategy`), and which trainer trains
//! a child (by its search space). Everything below the binary receives them
//! as parameters (`Box<dyn SearchStrategy>`, [`TrainerSets`]) and never knows
//! which one runs.

use std::path::PathBuf;
use std::sync::Arc;

use nasfleet_core::config::{ExperimentConfig, StrategyKind};
use nasfleet_core::strategy::{build_pure_strategy, SearchStrategy, StrategyError};
use nasfleet_core::trainer::{TrainError, TrainJob, Trainer};
use nasfleet_core::Architecture;
use nasfleet_fleet::{TrainerSet, TrainerSets};
use nasfleet_nb201::TableTrainer;
use nasfleet_torch::cnn::CnnTrainer;
use nasfleet_torch::controller::RlStrategy;
use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::rnn::LmTrainer;
use nasfleet_torch::tch::Device;

/// The strategy `cfg.search.strategy` names, for `cfg.space()`, seeded with
/// `cfg.search.seed`: the LSTM controller (`rl`, on its own thread) or one of
/// the core's pure strategies (`random`, `evolution`, `local`).
pub(crate) fn strategy(cfg: &ExperimentConfig) -> Result<Box<dyn SearchStrategy>, StrategyError> {
    match cfg.search.strategy {
        StrategyKind::Rl => Ok(Box::new(RlStrategy::new(cfg)?)),
        StrategyKind::Random | StrategyKind::Evolution | StrategyKind::Local => build_pure_strategy(cfg),
    }
}

/// The real trainers of one worker's trainer thread, by search space.
///
/// Built on the trainer thread (see `nasfleet_fleet::trainer_thread`) and
/// kept for its life; each trainer is created on its first job and keeps its
/// dataset on the device between jobs, so the second child of a worker does
/// not reload Fashion-MNIST.
pub(crate) struct Trainers {
    data_dir: PathBuf,
    worker_data_dir: Option<PathBuf>,
    device: String,
    cnn: Option<CnnTrainer>,
    lm: Option<LmTrainer>,
    table: Option<TableTrainer>,
}

impl Trainers {
    /// Trainers that read datasets from `data_dir` (default: the cache
    /// directory) and train on `device` (`auto`, `cpu`, `cuda:N`).
    pub(crate) fn new(data_dir: Option<PathBuf>, device: &str) -> Self {
        Trainers {
            data_dir: data_dir.clone().unwrap_or_else(nasfleet_data::default_cache_dir),
            worker_data_dir: data_dir,
            device: device.to_owned(),
            cnn: None,
            lm: None,
            table: None,
        }
    }

    /// One set per trainer thread, for the fleet's worker loop.
    pub(crate) fn per_thread(data_dir: Option<PathBuf>, device: &str) -> Arc<TrainerSets> {
        let device = device.to_owned();
        Arc::new(move || Box::new(Trainers::new(data_dir.clone(), &device)) as Box<dyn TrainerSet>)
    }

    /// A device the worker was told to use but that is not there is this
    /// worker's problem, not the job's: another worker may train it.
    fn device(&self) -> Result<Device, TrainError> {
        self.device
            .parse::<DeviceSpec>()
            .and_then(DeviceSpec::resolve)
            .map_err(|e| TrainError::Retryable(format!("worker device: {e}")))
    }
}

impl TrainerSet for Trainers {
    fn trainer_for(&mut self, job: &TrainJob) -> Result<&mut dyn Trainer, TrainError> {
        Ok(match &job.arch {
            Architecture::Cnn(_) => match self.cnn {
                Some(ref mut t) => t,
                None => {
                    let device = self.device()?;
                    self.cnn.insert(CnnTrainer::new(self.data_dir.clone(), device))
                }
            },
            Architecture::RnnCell(_) => match self.lm {
                Some(ref mut t) => t,
                None => {
                    let device = self.device()?;
                    self.lm.insert(LmTrainer::new(self.data_dir.clone(), device))
                }
            },
            Architecture::Nb201(_) => match self.table {
                Some(ref mut t) => t,
                None => self.table.insert(TableTrainer::for_worker(self.worker_data_dir.as_deref())?),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_chooses_the_strategy_and_bad_settings_are_reported() {
        let mut cfg = ExperimentConfig::default();
        cfg.search.space = nasfleet_core::SpaceKind::Nb201;
        for (kind, name) in [
            (StrategyKind::Rl, "rl"),
            (StrategyKind::Random, "random"),
            (StrategyKind::Evolution, "evolution"),
            (StrategyKind::Local, "local"),
        ] {
            cfg.search.strategy = kind;
            let mut s = strategy(&cfg).unwrap();
            assert_eq!(s.name(), name);
            assert_eq!(s.propose(4).unwrap().len(), 4);
            assert_eq!(s.samples_drawn(), 4);
        }
        cfg.search.strategy = StrategyKind::Rl;
        cfg.controller.lr = -1.0;
        let err = strategy(&cfg).err().expect("refused");
        assert!(matches!(err, StrategyError::Config(_)) && err.to_string().contains("controller.lr"), "{err}");
    }

    fn cnn_arch() -> Architecture {
        let mut cfg = ExperimentConfig::default();
        cfg.search.strategy = StrategyKind::Random;
        build_pure_strategy(&cfg).unwrap().propose(1).unwrap().remove(0).arch
    }

    #[test]
    fn a_missing_device_is_the_workers_problem_not_the_jobs() {
        let mut set = Trainers::new(None, "cuda:99");
        let job = TrainJob {
            job_id: "j".into(),
            arch: cnn_arch(),
            train: Default::default(),
            reward: Default::default(),
            seed: 0,
        };
        match set.trainer_for(&job) {
            Err(TrainError::Retryable(m)) => assert!(m.contains("device"), "{m}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("cuda:99 exists?"),
        }
    }
}
