//! Experiment configuration: plain data with `Default`s equal to the paper's
//! values, read from TOML. Unknown keys are errors that name the key (a typo
//! in a config must not silently fall back to a default), and the resolved
//! config is saved next to every run.

use serde::{Deserialize, Serialize};
use std::path::Path;

pub use crate::config_fleet::FleetConfig;
pub use crate::config_image::ImageTrainConfig;
pub use crate::config_lm::{LmOptimizer, LmTrainConfig};
pub use crate::config_table::TableTrainConfig;
use crate::early_stop::EarlyStopConfig;
use crate::error::ConfigError;
use crate::limits::ArchLimits;
use crate::reward::RewardConfig;
use crate::space::{CellSpace, CnnSpace, Space, SpaceKind};

/// Which search strategy proposes the architectures (`search.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// The paper's LSTM controller trained with REINFORCE.
    Rl,
    /// Uniform random search (the paper's control experiment 2).
    Random,
    /// Regularised (aging) evolution.
    Evolution,
    /// Local search (White et al. 2020): hill-climbing over one-edit
    /// neighbours of the best so far, restarting at random on a local optimum.
    Local,
}

/// What is searched, how, and for how long (`[search]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// The search space; its settings are in `[cnn]` or `[rnn_cell]`.
    pub space: SpaceKind,
    /// The strategy proposing architectures. Default: the RL controller.
    pub strategy: StrategyKind,
    /// Seed of the strategy's RNG: the same seed and feedback give the same
    /// proposals.
    pub seed: u64,
    /// Stop after this many finished children. Paper (CIFAR): 12,800.
    pub architectures: u64,
    /// m: rewards per controller update. Paper (CIFAR): 8.
    pub batch: usize,
    /// Jobs kept outstanding (= K·m in the paper: 100 replicas × 8 = 800).
    pub max_in_flight: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            space: SpaceKind::Cnn,
            strategy: StrategyKind::Rl,
            seed: 0,
            architectures: 12_800,
            batch: 8,
            max_in_flight: 800,
        }
    }
}

/// The LSTM controller and its REINFORCE update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// Stacked LSTM layers (≥ 1). Paper: 2.
    pub lstm_layers: usize,
    /// Hidden units per LSTM layer, also the embedding size (≥ 1). Paper: 35.
    pub hidden: usize,
    /// Adam learning rate. Paper: 0.0006 (CIFAR), 0.0005 (PTB).
    pub lr: f64,
    /// Every weight is drawn uniformly from [-init_range, init_range].
    pub init_range: f64,
    /// EMA baseline decay (paper silent; see paper.md §2).
    pub baseline_decay: f64,
    /// Weight of the entropy bonus (not in the paper; 0 = off).
    pub entropy_weight: f64,
    /// Clip the gradient's global norm to this value (not in the paper; off).
    pub grad_clip: Option<f64>,
    /// Input after an anchor step with no selected layer: "zeros" or "start"
    /// (the learned start input). ENAS feeds the mean of selected anchors.
    pub empty_anchor_input: EmptyAnchorInput,
    /// The policy update: "reinforce" (the paper's, default) or "ppo".
    pub update: ControllerUpdate,
    /// PPO: passes over each batch (≥ 1). Default 4.
    pub ppo_epochs: usize,
    /// PPO: the probability ratio is clipped to [1 − ε, 1 + ε] (ε > 0). Default 0.2.
    pub ppo_clip: f64,
}

/// How the controller learns from a batch (`controller.update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControllerUpdate {
    /// One REINFORCE step per batch (the paper's rule).
    #[default]
    Reinforce,
    /// PPO (Schulman et al. 2017): `ppo_epochs` Adam steps on the clipped
    /// surrogate of the batch, ratios against the weights at the update's start.
    Ppo,
}

/// The controller's input after an anchor step that selected no earlier
/// layer (`controller.empty_anchor_input`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyAnchorInput {
    /// A zero vector (the default).
    Zeros,
    /// The controller's learned start input.
    Start,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            lstm_layers: 2,
            hidden: 35,
            lr: 0.0006,
            init_range: 0.08,
            baseline_decay: 0.95,
            entropy_weight: 0.0,
            grad_clip: None,
            empty_anchor_input: EmptyAnchorInput::Zeros,
            update: ControllerUpdate::Reinforce,
            ppo_epochs: 4,
            ppo_clip: 0.2,
        }
    }
}

/// Regularised evolution (Real et al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvolutionConfig {
    /// Architectures kept alive, the newest rewards (≥ 1). Default 100.
    pub population: usize,
    /// Members drawn (with replacement) per tournament, in
    /// `1..=population`. Default 25.
    pub sample_size: usize,
}

impl Default for EvolutionConfig {
    fn default() -> Self {
        EvolutionConfig { population: 100, sample_size: 25 }
    }
}

/// Local search (`[local_search]`, White et al. 2020).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSearchConfig {
    /// Uniformly random architectures drawn at the start and at every
    /// restart; the best of them is where the climb starts (≥ 1). Default 10.
    pub initial: usize,
}

impl Default for LocalSearchConfig {
    fn default() -> Self {
        LocalSearchConfig { initial: 10 }
    }
}

/// How a child's learning rate changes over its training (`train.schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `train.lr` throughout (the default).
    Constant,
    /// Cosine decay from `train.lr` at the first step to 0 after the last.
    Cosine,
}

/// How a child is trained (travels with every job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Dataset name: "cifar10", "fashion-mnist", "mnist", "ptb", "austen", "nb201-table".
    pub dataset: String,
    /// Passes over the training split per child (≥ 1). Default 50.
    pub epochs: usize,
    /// Examples per SGD step (≥ 1). Default 128.
    pub batch_size: usize,
    /// SGD learning rate (the peak under a cosine schedule). Default 0.1.
    pub lr: f64,
    /// SGD momentum, in [0, 1). Default 0.9.
    pub momentum: f64,
    /// Nesterov momentum instead of classical momentum. Default on.
    pub nesterov: bool,
    /// L2 weight decay per step (≥ 0). Default 1e-4.
    pub weight_decay: f64,
    /// How the learning rate changes over the steps.
    pub schedule: LrSchedule,
    /// Training / validation sizes drawn from the training set (paper: 45,000 / 5,000).
    pub train_size: usize,
    /// Examples held out of the training set to score the child (its reward).
    pub valid_size: usize,
    /// Image (CNN) children: data, augmentation, budgets, precision.
    pub image: ImageTrainConfig,
    /// Language-model (recurrent cell) children.
    pub lm: LmTrainConfig,
    /// NAS-Bench-201 table lookups (`dataset = "nb201-table"`).
    pub table: TableTrainConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        // The DenseNet recipe the paper uses for CIFAR-10 children.
        TrainConfig {
            dataset: "cifar10".into(),
            epochs: 50,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
            schedule: LrSchedule::Constant,
            train_size: 45_000,
            valid_size: 5_000,
            image: ImageTrainConfig::default(),
            lm: LmTrainConfig::default(),
            table: TableTrainConfig::default(),
        }
    }
}

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Space, strategy, seed and budget (`[search]`).
    pub search: SearchConfig,
    /// The CNN space's settings (`[cnn]`), used when `search.space = "cnn"`.
    pub cnn: CnnSpace,
    /// The recurrent-cell space's settings (`[rnn_cell]`).
    pub rnn_cell: CellSpace,
    /// The RL controller (`[controller]`), used when `search.strategy = "rl"`.
    pub controller: ControllerConfig,
    /// Regularised evolution (`[evolution]`), used when `search.strategy = "evolution"`.
    pub evolution: EvolutionConfig,
    /// Local search (`[local_search]`), used when `search.strategy = "local"`.
    pub local_search: LocalSearchConfig,
    /// How a child's validation metric becomes its reward (`[reward]`).
    pub reward: RewardConfig,
    /// How each child is trained (`[train]`, sent with every job).
    pub train: TrainConfig,
    /// Hard bounds on every architecture (`[limits]`).
    pub limits: ArchLimits,
    /// Queue, worker and embedded-mode settings.
    pub fleet: FleetConfig,
    /// Asynchronous early stopping of hopeless children (`[early_stop]`,
    /// off by default and in the paper configs).
    pub early_stop: EarlyStopConfig,
}

impl ExperimentConfig {
    /// Parses TOML text and runs [`check`](Self::check); `path` names the
    /// source in errors.
    pub fn from_toml_str(text: &str, path: &str) -> Result<Self, ConfigError> {
        let cfg: ExperimentConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    /// Reads and parses the TOML file at `path` (see [`from_toml_str`](Self::from_toml_str)).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        Self::from_toml_str(&text, &p)
    }

    /// The resolved config as TOML (saved next to every run).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The configured search space with its settings.
    pub fn space(&self) -> Space {
        match self.search.space {
            SpaceKind::Cnn => Space::Cnn(self.cnn.clone()),
            SpaceKind::RnnCell => Space::RnnCell(self.rnn_cell.clone()),
            SpaceKind::Nb201 => Space::Nb201,
        }
    }

    /// Cross-field checks serde cannot express.
    pub fn check(&self, path: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, message: String| ConfigError::Invalid {
            path: path.into(),
            field: field.into(),
            message,
        };
        self.space().check(&self.limits).map_err(|e| bad("space", e.to_string()))?;
        if self.search.batch == 0 {
            return Err(bad("search.batch", "must be at least 1".into()));
        }
        if self.search.max_in_flight == 0 {
            return Err(bad("search.max_in_flight", "must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.controller.baseline_decay) {
            return Err(bad("controller.baseline_decay", format!("{} is outside [0, 1)", self.controller.baseline_decay)));
        }
        if !(self.controller.lr > 0.0 && self.controller.lr.is_finite()) {
            return Err(bad("controller.lr", format!("{} is not a positive number", self.controller.lr)));
        }
        if self.controller.hidden == 0 || self.controller.lstm_layers == 0 {
            return Err(bad("controller", "hidden and lstm_layers must be at least 1".into()));
        }
        if self.evolution.sample_size == 0 || self.evolution.sample_size > self.evolution.population {
            return Err(bad(
                "evolution.sample_size",
                format!("{} must be in 1..=population ({})", self.evolution.sample_size, self.evolution.population),
            ));
        }
        if let Some(rule) = self.reward.cost_rule() {
            rule.check().map_err(|m| bad("reward.cost", m))?;
            if !matches!(self.search.space, SpaceKind::Nb201 | SpaceKind::Cnn) {
                return Err(bad(
                    "reward.cost",
                    format!(
                        "a cost rule needs children with a parameter and FLOP count (the cnn and nb201 spaces); \
                         the {} space's children have none",
                        self.search.space.name()
                    ),
                ));
            }
        }
        if self.controller.ppo_epochs == 0 {
            return Err(bad("controller.ppo_epochs", "must be at least 1".into()));
        }
        if !(self.controller.ppo_clip.is_finite() && self.controller.ppo_clip > 0.0) {
            return Err(bad("controller.ppo_clip", format!("{} is not a positive number", self.controller.ppo_clip)));
        }
        if self.local_search.initial == 0 {
            return Err(bad("local_search.initial", "must be at least 1".into()));
        }
        self.fleet.check().map_err(|(field, message)| bad(&field, message))?;
        self.early_stop.check(self.train.epochs).map_err(|(field, message)| bad(&field, message))?;
        if self.early_stop.enabled() && self.search.space == SpaceKind::Nb201 {
            return Err(bad(
                "early_stop.rule",
                "the nb201 table trainer looks a child up in one step: there is no epoch to stop at".into(),
            ));
        }
        self.train.lm.check().map_err(|m| bad("train.lm", m))?;
        self.train.table.check().map_err(|m| bad("train.table", m))?;
        Ok(())
    }
}
