//! The search-strategy interface: the RL controller, random search and
//! regularised evolution all sit behind [`SearchStrategy`], so the controller
//! loop, the fleet and the benchmarks never know which one runs.
//!
//! The loop is: `propose(n)` → train children → `update(batch of m feedbacks)`.
//! Proposals carry their action tokens; feedback returns them with the reward
//! (the paper's "store actions, recompute log-probs at update time").
//! `checkpoint()` captures *everything* (weights, optimiser, baseline, RNG,
//! depth-schedule position) so that `restore` + the same calls reproduce an
//! uninterrupted run bit for bit.
//!
//! # Layout
//!
//! - this module: the trait, its plain-data types, and the helpers every
//!   strategy shares (feedback validation, the schema of a token sequence).
//! - [`random`]: uniform random search (the paper's control experiment 2).
//! - [`evolution`]: regularised (aging) evolution (Real et al. 2019).
//! - [`local`]: local search (White et al. 2020): hill-climbing over one-edit
//!   neighbours with random restarts.
//! - [`synthetic`]: a cheap, known reward on the CNN space, so strategies can
//!   be compared in seconds without training a child.
//!
//! The RL controller needs libtorch and lives in `nasfleet-torch`
//! (`nasfleet_torch::controller::RlStrategy`); the binary's `choose.rs`
//! selects among all four; [`build_pure_strategy`] builds the three that
//! need no tch.

pub mod evolution;
pub mod local;
pub mod random;
pub mod synthetic;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arch::Architecture;
use crate::config::{ExperimentConfig, StrategyKind};
use crate::error::ArchError;
use crate::schema::TokenSchema;
use crate::space::Space;

pub use evolution::RegularizedEvolution;
pub use local::LocalSearch;
pub use random::RandomSearch;
pub use synthetic::SyntheticCnnReward;

/// One architecture to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The sampled tokens (the strategy's actions), to return in [`Feedback`].
    pub actions: Vec<u32>,
    /// The architecture the tokens decode to.
    pub arch: Architecture,
    /// Policy version that sampled it (lag = version at update − this).
    pub policy_version: u64,
}

/// A finished child's reward, returned with its actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The proposal's tokens, unchanged.
    pub actions: Vec<u32>,
    /// The child's reward (finite; its scale is the reward rule's).
    pub reward: f64,
}

/// What one update did. Strategies without a loss report 0 for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// The REINFORCE loss of the batch (0 without a loss).
    pub loss: f64,
    /// The reward baseline the advantages were taken against (0 without one).
    pub baseline: f64,
    /// Mean reward of the batch.
    pub mean_reward: f64,
    /// Entropy of the sampling policy in nats, summed over an architecture's
    /// tokens and averaged over the batch.
    pub entropy: f64,
    /// Global norm of the gradient before any clipping (0 without a gradient).
    pub grad_norm: f64,
    /// The policy version after this update.
    pub policy_version: u64,
}

impl UpdateStats {
    /// The stats of an update without a loss, baseline or gradient (random
    /// search, evolution): those report 0, `mean_reward` is the batch's mean.
    pub fn without_gradient(batch: &[Feedback], entropy: f64, policy_version: u64) -> Self {
        UpdateStats { loss: 0.0, baseline: 0.0, mean_reward: mean_reward(batch), entropy, grad_norm: 0.0, policy_version }
    }
}

/// What a policy would choose now, for people to look at (the dashboard's
/// heat map): its most likely architecture, built token by token by taking
/// the likeliest choice at each step (greedy decoding, no RNG used), and at
/// each token the probability of every choice given the tokens before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    /// The likeliest token at each step.
    pub actions: Vec<u32>,
    /// For each token, the probability of each choice (an anchor's skip bit:
    /// `[no, yes]`), rounded to 4 decimals.
    pub probs: Vec<Vec<f64>>,
}

/// Why a strategy call failed; the message names the offending entry or field.
#[derive(Debug, Error)]
pub enum StrategyError {
    /// A feedback batch is empty, has a non-finite reward or tokens that do
    /// not fit the space.
    #[error("invalid feedback: {0}")]
    Feedback(String),
    /// A checkpoint cannot be written, or cannot restore this strategy.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The thread running the policy failed or is gone.
    #[error("policy thread: {0}")]
    Thread(String),
    /// The strategy's settings are invalid or name an unknown strategy.
    #[error("strategy configuration: {0}")]
    Config(String),
    /// Sampled tokens did not decode to an architecture.
    #[error(transparent)]
    Arch(#[from] crate::error::ArchError),
}

/// A search strategy: proposes architectures and learns from their rewards
/// (see the module documentation for the loop).
pub trait SearchStrategy: Send {
    /// The strategy's name as in configs and reports (`rl`, `random`,
    /// `evolution`, `local`).
    fn name(&self) -> &'static str;
    /// Samples `n` architectures (advances the RNG and the depth schedule).
    fn propose(&mut self, n: usize) -> Result<Vec<Proposal>, StrategyError>;
    /// Applies one batch of rewards. Rewards must be finite.
    fn update(&mut self, batch: &[Feedback]) -> Result<UpdateStats, StrategyError>;
    /// Current policy version (number of updates applied).
    fn policy_version(&self) -> u64;
    /// Architectures proposed so far: the depth schedule's position.
    fn samples_drawn(&self) -> u64;
    /// The complete state as bytes.
    fn checkpoint(&self) -> Result<Vec<u8>, StrategyError>;
    /// Replaces the state with a checkpoint taken from a strategy built with
    /// the same configuration.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), StrategyError>;
    /// The current policy's choices ([`PolicyView`]), for strategies with a
    /// policy (the RL controller); `None` for the others. Must not change
    /// the state: no RNG draw, no sample counted.
    fn policy_view(&self) -> Result<Option<PolicyView>, StrategyError> {
        Ok(None)
    }
}

/// Builds the strategies that need no libtorch (random search, evolution,
/// local search) for `cfg.space()`. Asking it for `rl` is a configuration error: the RL
/// controller is `nasfleet_torch::controller::RlStrategy`, chosen by the
/// `nasfleet` binary (`choose::strategy`), which delegates here for the other
/// three.
pub fn build_pure_strategy(cfg: &ExperimentConfig) -> Result<Box<dyn SearchStrategy>, StrategyError> {
    let space = cfg.space();
    match cfg.search.strategy {
        StrategyKind::Random => Ok(Box::new(RandomSearch::new(space, cfg.search.seed))),
        StrategyKind::Evolution => Ok(Box::new(RegularizedEvolution::new(space, &cfg.evolution, cfg.search.seed)?)),
        StrategyKind::Local => Ok(Box::new(LocalSearch::new(space, &cfg.local_search, cfg.search.seed)?)),
        StrategyKind::Rl => Err(StrategyError::Config(
            "strategy \"rl\" needs libtorch: build it with nasfleet_torch::controller::RlStrategy".into(),
        )),
    }
}

/// The schema that a complete token sequence of `space` follows. The CNN
/// space's depth grows during a search, so its sequences are recognised by
/// their length (at most the depth schedule's maximum: nothing deeper is ever
/// proposed, and replaying it would cost the controller unbounded time); the
/// other spaces have a single schema. The tokens are checked against the
/// schema (count and range of every token).
pub fn schema_for_tokens(space: &Space, tokens: &[u32]) -> Result<TokenSchema, ArchError> {
    let schema = match space {
        Space::Cnn(s) => match s.layers_for_token_count(tokens.len()) {
            Some(l) if l > s.depth.max.max(s.depth.start) => {
                return Err(ArchError::invalid(
                    "tokens",
                    format!("{l} layers is deeper than the depth schedule's maximum of {}", s.depth.max.max(s.depth.start)),
                ))
            }
            Some(l) if l >= 1 => s.schema(l),
            _ => {
                // Let decode phrase the error: it names the neighbouring lengths.
                s.decode(tokens)?;
                return Err(ArchError::invalid("tokens", format!("{} tokens is no layer count's length", tokens.len())));
            }
        },
        other => other.schema(1),
    };
    schema.check_tokens(tokens)?;
    Ok(schema)
}

/// Checks a batch before any state changes: it is not empty, every reward is
/// finite and every action sequence is a complete sequence of `space`.
/// Returns each feedback's schema, in order. Errors name the offending entry.
pub fn check_feedback(space: &Space, batch: &[Feedback]) -> Result<Vec<TokenSchema>, StrategyError> {
    if batch.is_empty() {
        return Err(StrategyError::Feedback("the batch is empty".into()));
    }
    batch
        .iter()
        .enumerate()
        .map(|(k, f)| {
            if !f.reward.is_finite() {
                return Err(StrategyError::Feedback(format!("feedback {k}: reward {} is not finite", f.reward)));
            }
            schema_for_tokens(space, &f.actions).map_err(|e| StrategyError::Feedback(format!("feedback {k}: {e}")))
        })
        .collect()
}

/// Mean reward of a (checked, non-empty) batch.
pub fn mean_reward(batch: &[Feedback]) -> f64 {
    batch.iter().map(|f| f.reward).sum::<f64>() / batch.len().max(1) as f64
}

/// Decodes sampled tokens into a proposal.
pub fn proposal(space: &Space, actions: Vec<u32>, policy_version: u64) -> Result<Proposal, StrategyError> {
    let arch = space.decode(&actions)?;
    Ok(Proposal { actions, arch, policy_version })
}

/// Envelope of the pure strategies' JSON checkpoints: a restore into another
/// strategy or space is refused with a message naming both.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonCheckpoint<T> {
    pub format: u32,
    pub strategy: String,
    pub space: String,
    pub state: T,
}

pub(crate) const JSON_CHECKPOINT_FORMAT: u32 = 1;

pub(crate) fn to_json_checkpoint<T: Serialize>(strategy: &str, space: &Space, state: &T) -> Result<Vec<u8>, StrategyError> {
    serde_json::to_vec(&JsonCheckpoint {
        format: JSON_CHECKPOINT_FORMAT,
        strategy: strategy.into(),
        space: space.kind().name().into(),
        state,
    })
    .map_err(|e| StrategyError::Checkpoint(format!("cannot serialise the {strategy} state: {e}")))
}

pub(crate) fn from_json_checkpoint<T: for<'de> Deserialize<'de>>(
    strategy: &str,
    space: &Space,
    bytes: &[u8],
) -> Result<T, StrategyError> {
    // The envelope first, so a checkpoint of another strategy is named as
    // such rather than reported as a missing field.
    let c: JsonCheckpoint<serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| StrategyError::Checkpoint(format!("not a valid {strategy} checkpoint: {e}")))?;
    if c.format != JSON_CHECKPOINT_FORMAT {
        return Err(StrategyError::Checkpoint(format!(
            "checkpoint format {} is not the supported format {JSON_CHECKPOINT_FORMAT}",
            c.format
        )));
    }
    if c.strategy != strategy || c.space != space.kind().name() {
        return Err(StrategyError::Checkpoint(format!(
            "checkpoint of strategy {:?} on space {:?} cannot restore strategy {strategy:?} on space {:?}",
            c.strategy,
            c.space,
            space.kind().name()
        )));
    }
    serde_json::from_value(c.state)
        .map_err(|e| StrategyError::Checkpoint(format!("invalid {strategy} checkpoint state: {e}")))
}

/// serde_json's default float parser is not always correctly rounded, so f64s
/// that must survive a checkpoint bit for bit travel as their IEEE bits.
pub(crate) mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}
