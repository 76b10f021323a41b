//! Uniform random search: the paper's control experiment 2 (§6), the bar the
//! RL controller must clear.
//!
//! Each proposal is a uniformly random token sequence of the schema at the
//! current depth ([`Space::layers_at`]), which is a uniformly random
//! architecture of that depth because decoding is a bijection. Rewards do not
//! change what is sampled; `update` only validates them, reports them and
//! counts versions, so the loop around it is the same as for the controller.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{check_feedback, from_json_checkpoint, proposal, to_json_checkpoint};
use super::{Feedback, Proposal, SearchStrategy, StrategyError, UpdateStats};
use crate::space::Space;

const NAME: &str = "random";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    rng: ChaCha8Rng,
    samples_drawn: u64,
    version: u64,
}

/// Uniform random search over a space, deterministic per seed.
#[derive(Debug, Clone)]
pub struct RandomSearch {
    space: Space,
    state: State,
}

impl RandomSearch {
    /// Random search over `space`, seeded with `seed`.
    pub fn new(space: Space, seed: u64) -> Self {
        RandomSearch { space, state: State { rng: ChaCha8Rng::seed_from_u64(seed), samples_drawn: 0, version: 0 } }
    }

    /// Uniform token sequences at the scheduled depths, without decoding.
    pub fn sample_tokens(&mut self, n: usize) -> Vec<Vec<u32>> {
        (0..n)
            .map(|_| {
                let schema = self.space.schema(self.space.layers_at(self.state.samples_drawn));
                self.state.samples_drawn += 1;
                schema.sample_uniform(&mut self.state.rng)
            })
            .collect()
    }
}

impl SearchStrategy for RandomSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn propose(&mut self, n: usize) -> Result<Vec<Proposal>, StrategyError> {
        let version = self.state.version;
        self.sample_tokens(n).into_iter().map(|t| proposal(&self.space, t, version)).collect()
    }

    /// Reports the batch; `entropy` is that of the uniform policy over each
    /// feedback's schema (nats, averaged over the batch), the value the RL
    /// controller's entropy starts near, so the two can be read side by side.
    fn update(&mut self, batch: &[Feedback]) -> Result<UpdateStats, StrategyError> {
        let schemas = check_feedback(&self.space, batch)?;
        let entropy = schemas.iter().map(|s| s.log10_size() * std::f64::consts::LN_10).sum::<f64>()
            / schemas.len() as f64;
        self.state.version += 1;
        Ok(UpdateStats::without_gradient(batch, entropy, self.state.version))
    }

    fn policy_version(&self) -> u64 {
        self.state.version
    }

    fn samples_drawn(&self) -> u64 {
        self.state.samples_drawn
    }

    fn checkpoint(&self) -> Result<Vec<u8>, StrategyError> {
        to_json_checkpoint(NAME, &self.space, &self.state)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), StrategyError> {
        self.state = from_json_checkpoint(NAME, &self.space, bytes)?;
        Ok(())
    }
}
