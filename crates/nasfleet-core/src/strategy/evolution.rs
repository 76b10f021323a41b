//! Regularised (aging) evolution, Real et al. 2019 — the strongest simple
//! baseline on NAS-Bench-201 (paper.md §8).
//!
//! - The population is the last `population` architectures whose rewards came
//!   back, oldest first; a new reward pushes its architecture in and the
//!   oldest out (aging: a member dies of age, not of low fitness).
//! - Until the population is full, proposals are uniformly random.
//! - Afterwards each proposal is a child of a tournament winner: `sample_size`
//!   members drawn uniformly *with replacement* (as in the paper's
//!   algorithm), the one with the highest reward wins (the first drawn on a
//!   tie), and the child is the winner with exactly one token resampled to a
//!   *different* value of that step (a choice token to another choice, a skip
//!   bit flipped), which always respects the schema.
//! - The CNN depth schedule still applies: when the schedule is deeper than
//!   the parent, the parent's tokens are kept (a shallower CNN's tokens are a
//!   prefix of a deeper one's) and the new layers are drawn uniformly before
//!   the mutation.
//!
//! Proposals are asynchronous like everything else: feedback may arrive in
//! any order and any batch size.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{check_feedback, f64_bits, from_json_checkpoint, proposal, schema_for_tokens, to_json_checkpoint};
use super::{Feedback, Proposal, SearchStrategy, StrategyError, UpdateStats};
use crate::config::EvolutionConfig;
use crate::schema::TokenSchema;
use crate::space::Space;

const NAME: &str = "evolution";

/// A member of the population: an architecture's tokens and its reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The architecture's tokens.
    pub actions: Vec<u32>,
    /// Its reward, the fitness a tournament compares.
    #[serde(with = "f64_bits")]
    pub reward: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    rng: ChaCha8Rng,
    samples_drawn: u64,
    version: u64,
    population: VecDeque<Member>,
}

/// Regularised evolution over a space, deterministic per seed.
#[derive(Debug, Clone)]
pub struct RegularizedEvolution {
    space: Space,
    population_size: usize,
    sample_size: usize,
    state: State,
}

impl RegularizedEvolution {
    /// An empty population over `space`, seeded with `seed`; refuses a
    /// population of 0 and a sample size outside `1..=population`.
    pub fn new(space: Space, cfg: &EvolutionConfig, seed: u64) -> Result<Self, StrategyError> {
        if cfg.population == 0 {
            return Err(StrategyError::Config("evolution.population must be at least 1".into()));
        }
        if cfg.sample_size == 0 || cfg.sample_size > cfg.population {
            return Err(StrategyError::Config(format!(
                "evolution.sample_size {} must be in 1..=population ({})",
                cfg.sample_size, cfg.population
            )));
        }
        Ok(RegularizedEvolution {
            space,
            population_size: cfg.population,
            sample_size: cfg.sample_size,
            state: State {
                rng: ChaCha8Rng::seed_from_u64(seed),
                samples_drawn: 0,
                version: 0,
                population: VecDeque::with_capacity(cfg.population),
            },
        })
    }

    /// The current population, oldest first.
    pub fn population(&self) -> impl Iterator<Item = &Member> {
        self.state.population.iter()
    }

    /// Proposal tokens without decoding.
    pub fn sample_tokens(&mut self, n: usize) -> Result<Vec<Vec<u32>>, StrategyError> {
        (0..n).map(|_| self.next_tokens()).collect()
    }

    fn next_tokens(&mut self) -> Result<Vec<u32>, StrategyError> {
        let schema = self.space.schema(self.space.layers_at(self.state.samples_drawn));
        let tokens = if self.state.population.len() < self.population_size {
            schema.sample_uniform(&mut self.state.rng)
        } else {
            let parent = self.tournament();
            let mut child = if parent.len() < schema.token_count() {
                extend_uniform(&schema, &parent, &mut self.state.rng)
            } else {
                parent
            };
            // A parent deeper than the schedule (a restore under a different
            // schedule) keeps its own depth; its schema is then the reference.
            let child_schema = if child.len() == schema.token_count() {
                schema
            } else {
                schema_for_tokens(&self.space, &child)?
            };
            mutate_one(&child_schema, &mut child, &mut self.state.rng);
            child
        };
        self.state.samples_drawn += 1;
        Ok(tokens)
    }

    /// Best of `sample_size` uniform draws with replacement; first drawn wins ties.
    fn tournament(&mut self) -> Vec<u32> {
        let pop = &self.state.population;
        let mut best: Option<&Member> = None;
        for _ in 0..self.sample_size {
            let m = &pop[self.state.rng.gen_range(0..pop.len())];
            let better = match best {
                None => true,
                Some(b) => m.reward > b.reward,
            };
            if better {
                best = Some(m);
            }
        }
        // The population is full (≥ 1 member) whenever a tournament runs.
        best.map(|m| m.actions.clone()).unwrap_or_default()
    }
}

/// `prefix` followed by uniform tokens for the rest of `schema`'s steps.
fn extend_uniform(schema: &TokenSchema, prefix: &[u32], rng: &mut ChaCha8Rng) -> Vec<u32> {
    let mut out = prefix.to_vec();
    out.extend(schema.token_choices().skip(prefix.len()).map(|choices| rng.gen_range(0..choices)));
    out
}

/// Resamples one token (uniform over the positions that have an alternative)
/// to a different value, uniform over the step's other choices.
fn mutate_one(schema: &TokenSchema, tokens: &mut [u32], rng: &mut ChaCha8Rng) {
    let positions: Vec<(usize, u32)> =
        schema.token_choices().enumerate().filter(|&(_, choices)| choices >= 2).collect();
    if positions.is_empty() {
        // Every step has a single choice: the space has one architecture.
        return;
    }
    let (p, choices) = positions[rng.gen_range(0..positions.len())];
    let mut v = rng.gen_range(0..choices - 1);
    if v >= tokens[p] {
        v += 1;
    }
    tokens[p] = v;
}

impl SearchStrategy for RegularizedEvolution {
    fn name(&self) -> &'static str {
        NAME
    }

    fn propose(&mut self, n: usize) -> Result<Vec<Proposal>, StrategyError> {
        let version = self.state.version;
        self.sample_tokens(n)?.into_iter().map(|t| proposal(&self.space, t, version)).collect()
    }

    /// Adds the batch to the population in order, retiring the oldest
    /// members beyond `population`. No loss, baseline, entropy or gradient:
    /// those report 0.
    fn update(&mut self, batch: &[Feedback]) -> Result<UpdateStats, StrategyError> {
        check_feedback(&self.space, batch)?;
        for f in batch {
            self.state.population.push_back(Member { actions: f.actions.clone(), reward: f.reward });
            while self.state.population.len() > self.population_size {
                self.state.population.pop_front();
            }
        }
        self.state.version += 1;
        Ok(UpdateStats::without_gradient(batch, 0.0, self.state.version))
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

    /// Refuses a population larger than this strategy's (a checkpoint from a
    /// differently configured run) and members whose tokens do not fit the space.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), StrategyError> {
        let state: State = from_json_checkpoint(NAME, &self.space, bytes)?;
        if state.population.len() > self.population_size {
            return Err(StrategyError::Checkpoint(format!(
                "checkpoint population of {} exceeds evolution.population = {}",
                state.population.len(),
                self.population_size
            )));
        }
        for (k, m) in state.population.iter().enumerate() {
            schema_for_tokens(&self.space, &m.actions)
                .map_err(|e| StrategyError::Checkpoint(format!("population member {k}: {e}")))?;
            if !m.reward.is_finite() {
                return Err(StrategyError::Checkpoint(format!("population member {k}: reward is not finite")));
            }
        }
        self.state = state;
        Ok(())
    }
}
