//! The controller: policy network + Adam + EMA baseline + RNG + counters,
//! and the REINFORCE update.
//!
//! For a batch of m (actions, reward) pairs, with b the EMA baseline *before*
//! the batch (the batch mean for the very first batch):
//! ```text
//! loss = −(1/m) Σ_k (R_k − b) · log P(a_k; θ)  −  entropy_weight · (1/m) Σ_k H_k
//! ```
//! where log P is recomputed now from the stored actions (the paper's rule,
//! paper.md §2: jobs store actions, not log-probabilities, since a sample may
//! be several policy versions old) and H_k is the summed per-token entropy.
//! Then optional clipping of the global gradient norm, one Adam step, and
//! the baseline absorbs the batch. Rows of one schema (one depth) are
//! replayed as one batch; a batch spanning a depth change is replayed in one
//! group per depth.
//!
//! With `controller.update = "ppo"` (not in the paper; Schulman et al. 2017)
//! the same advantages feed `ppo_epochs` Adam steps on the clipped surrogate
//! ```text
//! loss = −(1/m) Σ_k min(ρ_k A_k, clip(ρ_k, 1 − ε, 1 + ε) A_k)  −  entropy_weight · (1/m) Σ_k H_k
//! ```
//! with ρ_k = P(a_k; θ) / P(a_k; θ_start), θ_start the weights when the
//! update begins (the sampling policy in a synchronous search; stored
//! actions keep the paper's recompute-at-update rule). The policy version
//! advances once per update; Adam's step once per pass. PPO keeps no state
//! of its own, so checkpoints are the same.
//!
//! A `Controller` owns tensors and is not `Sync`: the system talks to it
//! through [`super::RlStrategy`], which keeps it on one dedicated thread.

use nasfleet_core::config::{ControllerConfig, ControllerUpdate, EmptyAnchorInput, ExperimentConfig};
use nasfleet_core::reward::EmaBaseline;
use nasfleet_core::schema::TokenSchema;
use nasfleet_core::strategy::{check_feedback, proposal, schema_for_tokens, Feedback, PolicyView, Proposal, StrategyError, UpdateStats};
use nasfleet_core::Space;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::checkpoint::{self, Blob};
use super::policy::{copy_into, to_f32s, Policy, PolicyShape};
use crate::optim::Adam;

/// One sampled architecture with what the policy said about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The token sequence, one action per decision.
    pub actions: Vec<u32>,
    /// log P(actions) under the policy that sampled it (nats).
    pub log_prob: f64,
    /// Sum over its tokens of each decision's entropy (nats).
    pub entropy: f64,
    /// The policy version (updates applied) that sampled it.
    pub policy_version: u64,
}

/// log P and summed entropy of a given sequence under the current weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// log P(actions) under the current weights (nats).
    pub log_prob: f64,
    /// Sum over its tokens of each decision's entropy (nats).
    pub entropy: f64,
}

/// Name, shape of a policy variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterInfo {
    /// The variable's name (as in the PyTorch reference's `state_dict`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
}

/// The RL controller of one search: the policy network, its Adam state, the
/// EMA baseline, the sampling RNG and the counters (see the module docs).
/// Owns tensors, so it stays on one thread; [`super::RlStrategy`] is the
/// handle the rest of the system uses.
pub struct Controller {
    space: Space,
    cfg: ControllerConfig,
    policy: Policy,
    adam: Adam,
    baseline: EmaBaseline,
    rng: ChaCha8Rng,
    version: u64,
    samples_drawn: u64,
}

/// Everything but the tensors, as it travels in a checkpoint header.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainState {
    strategy: String,
    space: String,
    hidden: i64,
    lstm_layers: i64,
    choices: Vec<i64>,
    empty_anchor_input: EmptyAnchorInput,
    policy_version: u64,
    samples_drawn: u64,
    /// IEEE bits: serde_json's float parsing is not always correctly rounded.
    baseline_bits: Option<u64>,
    adam_step: u64,
    rng: ChaCha8Rng,
}

fn config_error(field: &str, message: String) -> StrategyError {
    StrategyError::Config(format!("controller.{field}: {message}"))
}

/// Rejects settings that would make the network or the update meaningless.
pub(crate) fn check_config(c: &ControllerConfig) -> Result<(), StrategyError> {
    if c.hidden == 0 || c.lstm_layers == 0 {
        return Err(config_error("hidden", "hidden and lstm_layers must be at least 1".into()));
    }
    if !(c.lr.is_finite() && c.lr > 0.0) {
        return Err(config_error("lr", format!("{} is not a positive number", c.lr)));
    }
    if !(c.init_range.is_finite() && c.init_range >= 0.0) {
        return Err(config_error("init_range", format!("{} is not a non-negative number", c.init_range)));
    }
    if !(0.0..1.0).contains(&c.baseline_decay) {
        return Err(config_error("baseline_decay", format!("{} is outside [0, 1)", c.baseline_decay)));
    }
    if !c.entropy_weight.is_finite() {
        return Err(config_error("entropy_weight", format!("{} is not finite", c.entropy_weight)));
    }
    if c.ppo_epochs == 0 {
        return Err(config_error("ppo_epochs", "must be at least 1".into()));
    }
    if !(c.ppo_clip.is_finite() && c.ppo_clip > 0.0) {
        return Err(config_error("ppo_clip", format!("{} is not a positive number", c.ppo_clip)));
    }
    if let Some(g) = c.grad_clip {
        if !(g.is_finite() && g > 0.0) {
            return Err(config_error("grad_clip", format!("{g} is not a positive number")));
        }
    }
    Ok(())
}

impl Controller {
    /// A fresh controller for `cfg.space()` seeded with `cfg.search.seed`:
    /// the weights come from one ChaCha8 stream, the samples from another.
    pub fn new(cfg: &ExperimentConfig) -> Result<Self, StrategyError> {
        Self::with_parts(cfg.space(), cfg.controller.clone(), cfg.search.seed)
    }

    /// A fresh controller for `space` with settings `cfg`, seeded with `seed`
    /// (weights from ChaCha8 stream 1 of the seed, samples from stream 0).
    /// Refuses meaningless settings (a zero size, a non-positive learning
    /// rate, …) and decision types without choices.
    pub fn with_parts(space: Space, cfg: ControllerConfig, seed: u64) -> Result<Self, StrategyError> {
        check_config(&cfg)?;
        let decisions = space.decision_types();
        if let Some(d) = decisions.iter().find(|d| d.choices.is_empty()) {
            return Err(StrategyError::Config(format!("decision type {} has no choices", d.name)));
        }
        let shape = PolicyShape::new(&decisions, cfg.hidden, cfg.lstm_layers, cfg.empty_anchor_input);
        let mut init_rng = ChaCha8Rng::seed_from_u64(seed);
        init_rng.set_stream(1);
        let policy = Policy::new(shape, cfg.init_range, &mut init_rng);
        let adam = Adam::new(policy.params());
        Ok(Controller {
            space,
            baseline: EmaBaseline::new(cfg.baseline_decay),
            cfg,
            policy,
            adam,
            rng: ChaCha8Rng::seed_from_u64(seed),
            version: 0,
            samples_drawn: 0,
        })
    }

    /// The search space the controller samples from.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// Updates applied so far (0 for a fresh controller).
    pub fn policy_version(&self) -> u64 {
        self.version
    }

    /// Architectures sampled so far (the depth schedule's position).
    pub fn samples_drawn(&self) -> u64 {
        self.samples_drawn
    }

    /// The EMA baseline's current value (`None` before the first update).
    pub fn baseline(&self) -> Option<f64> {
        self.baseline.value
    }

    /// Samples `n` architectures at the scheduled depths, without gradients.
    /// Consecutive samples of one depth are drawn as one batch; the result
    /// depends only on the RNG state, the weights and the calls made.
    pub fn sample(&mut self, n: usize) -> Result<Vec<Sample>, StrategyError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let layers = self.space.layers_at(self.samples_drawn);
            let mut run = 1;
            while out.len() + run < n && self.space.layers_at(self.samples_drawn + run as u64) == layers {
                run += 1;
            }
            let schema = self.space.schema(layers);
            for row in self.policy.sample(&schema, run, &mut self.rng) {
                out.push(Sample {
                    actions: row.actions,
                    log_prob: row.log_prob,
                    entropy: row.entropy,
                    policy_version: self.version,
                });
            }
            self.samples_drawn += run as u64;
        }
        Ok(out)
    }

    /// [`Controller::sample`], decoded into proposals.
    pub fn propose(&mut self, n: usize) -> Result<Vec<Proposal>, StrategyError> {
        self.sample(n)?.into_iter().map(|s| proposal(&self.space, s.actions, s.policy_version)).collect()
    }

    /// The current policy's likeliest architecture at the depth the next
    /// sample would have, with each token's choice probabilities
    /// ([`PolicyView`]). Changes nothing.
    pub fn policy_view(&self) -> PolicyView {
        let schema = self.space.schema(self.space.layers_at(self.samples_drawn));
        let (actions, probs) = self.policy.greedy(&schema);
        let round = |p: f64| (p * 1e4).round() / 1e4;
        PolicyView { actions, probs: probs.into_iter().map(|ps| ps.into_iter().map(round).collect()).collect() }
    }

    /// log P and entropy of each sequence under the current weights, without
    /// gradients. Every sequence is checked against the space first.
    pub fn score(&self, actions: &[Vec<u32>]) -> Result<Vec<Scored>, StrategyError> {
        let schemas = actions
            .iter()
            .enumerate()
            .map(|(k, a)| schema_for_tokens(&self.space, a).map_err(|e| StrategyError::Feedback(format!("sequence {k}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = vec![Scored { log_prob: 0.0, entropy: 0.0 }; actions.len()];
        tch::no_grad(|| {
            for (schema, idx) in group_by_schema(&schemas) {
                let rows: Vec<&[u32]> = idx.iter().map(|&k| actions[k].as_slice()).collect();
                let (lp, ent) = self.policy.replay(schema, &rows, false);
                for ((k, lp), ent) in idx.iter().zip(to_f32s(&lp)).zip(to_f32s(&ent)) {
                    out[*k] = Scored { log_prob: lp as f64, entropy: ent as f64 };
                }
            }
        });
        Ok(out)
    }

    /// One REINFORCE update from a batch (see the module docs). The batch is
    /// checked before anything changes; an invalid one leaves the controller
    /// untouched. Reports the loss, the baseline the advantages were taken
    /// against, the mean reward, the mean summed entropy per sequence, the
    /// gradient's global norm before clipping, and the new policy version.
    pub fn update(&mut self, batch: &[Feedback]) -> Result<UpdateStats, StrategyError> {
        let schemas = check_feedback(&self.space, batch)?;
        let rewards: Vec<f64> = batch.iter().map(|f| f.reward).collect();
        let m = batch.len() as f64;
        let mean_reward = rewards.iter().sum::<f64>() / m;
        let baseline = self.baseline.value.unwrap_or(mean_reward);
        let advantages = self.baseline.advantages(&rewards);

        if self.cfg.update == ControllerUpdate::Ppo {
            return Ok(self.ppo_update(batch, &schemas, &advantages, baseline, mean_reward));
        }
        self.policy.zero_grad();
        // One term per schema group: −Σ advantage·log P (− weight·Σ entropy).
        let mut terms = Vec::new();
        let mut entropy_sum = 0.0;
        for (schema, idx) in group_by_schema(&schemas) {
            let rows: Vec<&[u32]> = idx.iter().map(|&k| batch[k].actions.as_slice()).collect();
            let (log_probs, entropies) = self.policy.replay(schema, &rows, self.cfg.entropy_weight != 0.0);
            let adv: Vec<f32> = idx.iter().map(|&k| advantages[k] as f32).collect();
            let policy_gradient = -(Tensor::from_slice(&adv) * &log_probs).sum(Kind::Float);
            terms.push(if self.cfg.entropy_weight != 0.0 {
                policy_gradient - entropies.sum(Kind::Float) * self.cfg.entropy_weight
            } else {
                policy_gradient
            });
            entropy_sum += entropies.detach().sum(Kind::Double).double_value(&[]);
        }
        // check_feedback refused an empty batch, so there is at least one term.
        let loss = terms.into_iter().reduce(|a, b| a + b).unwrap_or_else(|| Tensor::zeros([], (Kind::Float, tch::Device::Cpu)));
        let loss = loss / m;
        loss.backward();
        let grad_norm = self.clip_and_step();
        self.version += 1;
        Ok(UpdateStats {
            loss: loss.double_value(&[]),
            baseline,
            mean_reward,
            entropy: entropy_sum / m,
            grad_norm,
            policy_version: self.version,
        })
    }

    /// The PPO update (see the module docs): the log-probabilities of the
    /// weights at the start are the ratios' denominators; `ppo_epochs` Adam
    /// steps on the clipped surrogate. Reports the first pass's loss,
    /// entropy and gradient norm (those of the weights that sampled).
    fn ppo_update(
        &mut self,
        batch: &[Feedback],
        schemas: &[TokenSchema],
        advantages: &[f64],
        baseline: f64,
        mean_reward: f64,
    ) -> UpdateStats {
        let m = batch.len() as f64;
        let groups = group_by_schema(schemas);
        let rows: Vec<Vec<&[u32]>> =
            groups.iter().map(|(_, idx)| idx.iter().map(|&k| batch[k].actions.as_slice()).collect()).collect();
        let adv: Vec<Tensor> = groups
            .iter()
            .map(|(_, idx)| Tensor::from_slice(&idx.iter().map(|&k| advantages[k] as f32).collect::<Vec<f32>>()))
            .collect();
        let old: Vec<Tensor> = tch::no_grad(|| {
            groups.iter().zip(&rows).map(|((schema, _), r)| self.policy.replay(schema, r, false).0.detach()).collect()
        });
        let (lo, hi) = (1.0 - self.cfg.ppo_clip, 1.0 + self.cfg.ppo_clip);
        let mut first: Option<(f64, f64, f64)> = None;
        for _ in 0..self.cfg.ppo_epochs {
            self.policy.zero_grad();
            let mut terms = Vec::new();
            let mut entropy_sum = 0.0;
            for (((schema, _), r), (a, o)) in groups.iter().zip(&rows).zip(adv.iter().zip(&old)) {
                let (log_probs, entropies) = self.policy.replay(schema, r, self.cfg.entropy_weight != 0.0);
                let ratio = (&log_probs - o).exp();
                let surrogate = (&ratio * a).minimum(&(ratio.clamp(lo, hi) * a));
                let term = -surrogate.sum(Kind::Float);
                terms.push(if self.cfg.entropy_weight != 0.0 {
                    term - entropies.sum(Kind::Float) * self.cfg.entropy_weight
                } else {
                    term
                });
                entropy_sum += entropies.detach().sum(Kind::Double).double_value(&[]);
            }
            let loss = terms.into_iter().reduce(|a, b| a + b).unwrap_or_else(|| Tensor::zeros([], (Kind::Float, tch::Device::Cpu)));
            let loss = loss / m;
            loss.backward();
            let grad_norm = self.clip_and_step();
            first.get_or_insert((loss.double_value(&[]), entropy_sum / m, grad_norm));
        }
        self.version += 1;
        let (loss, entropy, grad_norm) = first.unwrap_or((0.0, 0.0, 0.0));
        UpdateStats { loss, baseline, mean_reward, entropy, grad_norm, policy_version: self.version }
    }

    /// Clips the gradient's global norm (if configured) and takes one Adam
    /// step; returns the norm before clipping.
    fn clip_and_step(&mut self) -> f64 {
        let grad_norm = self.grad_norm();
        if let Some(clip) = self.cfg.grad_clip {
            // torch.nn.utils.clip_grad_norm_'s rule.
            let scale = clip / (grad_norm + 1e-6);
            if scale < 1.0 {
                tch::no_grad(|| {
                    for (_, p) in self.policy.params() {
                        let mut g = p.grad();
                        if g.defined() {
                            let _ = g.g_mul_scalar_(scale);
                        }
                    }
                });
            }
        }
        // Clipped above (the norm is reported), so none here; no weight decay.
        self.adam.update(self.policy.params(), self.cfg.lr, 0.0, 0.0);
        grad_norm
    }

    fn grad_norm(&self) -> f64 {
        let mut sq = 0.0;
        for (_, p) in self.policy.params() {
            let g = p.grad();
            if g.defined() {
                sq += g.square().sum(Kind::Double).double_value(&[]);
            }
        }
        sq.sqrt()
    }

    /// Names and shapes of the policy's variables, sorted by name (the names
    /// of the PyTorch reference module's `state_dict`).
    pub fn parameters(&self) -> Vec<ParameterInfo> {
        self.policy.params().iter().map(|(n, p)| ParameterInfo { name: n.clone(), shape: p.size() }).collect()
    }

    /// One variable's values (row-major), `None` for an unknown name.
    pub fn parameter(&self, name: &str) -> Option<Vec<f32>> {
        self.policy.params().iter().find(|(n, _)| n == name).map(|(_, p)| to_f32s(p))
    }

    /// Overwrites one variable's values (row-major), e.g. to load weights
    /// exported from elsewhere. The optimiser state is left alone.
    pub fn set_parameter(&mut self, name: &str, values: &[f32]) -> Result<(), StrategyError> {
        let (_, p) = self
            .policy
            .params()
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| StrategyError::Config(format!("the policy has no variable named {name:?}")))?;
        if p.numel() != values.len() {
            return Err(StrategyError::Config(format!(
                "variable {name} {:?} has {} values, got {}",
                p.size(),
                p.numel(),
                values.len()
            )));
        }
        copy_into(p, values);
        Ok(())
    }

    fn plain_state(&self) -> PlainState {
        let shape = self.policy.shape();
        PlainState {
            strategy: "rl".into(),
            space: self.space.kind().name().into(),
            hidden: shape.hidden,
            lstm_layers: shape.lstm_layers,
            choices: shape.choices.clone(),
            empty_anchor_input: shape.empty_anchor,
            policy_version: self.version,
            samples_drawn: self.samples_drawn,
            baseline_bits: self.baseline.value.map(f64::to_bits),
            adam_step: self.adam.step,
            rng: self.rng.clone(),
        }
    }

    /// Every tensor of the state: weights, then Adam's m, then v.
    fn blobs(&self) -> Vec<Blob> {
        let params = self.policy.params();
        let blob = |prefix: &str, name: &str, t: &Tensor| Blob::of(format!("{prefix}/{name}"), t);
        let mut out: Vec<Blob> = params.iter().map(|(n, p)| blob("param", n, p)).collect();
        out.extend(params.iter().zip(&self.adam.m).map(|((n, _), m)| blob("adam_m", n, m)));
        out.extend(params.iter().zip(&self.adam.v).map(|((n, _), v)| blob("adam_v", n, v)));
        out
    }

    /// The complete state: weights, Adam moments and step, baseline, policy
    /// version, depth-schedule position and RNG.
    pub fn checkpoint(&self) -> Result<Vec<u8>, StrategyError> {
        checkpoint::encode(&self.plain_state(), &self.blobs())
    }

    /// Replaces the whole state with a checkpoint of a controller with the
    /// same network (space, decision types, hidden size, layers, empty-anchor
    /// input); the learning rate and other update settings stay this
    /// controller's. Everything is checked before anything is written.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), StrategyError> {
        let (state, blobs): (PlainState, Vec<Blob>) = checkpoint::decode(bytes)?;
        let mine = self.plain_state();
        let same = state.strategy == mine.strategy
            && state.space == mine.space
            && state.hidden == mine.hidden
            && state.lstm_layers == mine.lstm_layers
            && state.choices == mine.choices
            && state.empty_anchor_input == mine.empty_anchor_input;
        if !same {
            return Err(StrategyError::Checkpoint(format!(
                "checkpoint of a {} controller on space {} (hidden {}, {} LSTM layers, choices {:?}, empty anchor {:?}) \
                 cannot restore this one on space {} (hidden {}, {} LSTM layers, choices {:?}, empty anchor {:?})",
                state.strategy,
                state.space,
                state.hidden,
                state.lstm_layers,
                state.choices,
                state.empty_anchor_input,
                mine.space,
                mine.hidden,
                mine.lstm_layers,
                mine.choices,
                mine.empty_anchor_input
            )));
        }
        let expected = self.blobs();
        if blobs.len() != expected.len() {
            return Err(StrategyError::Checkpoint(format!(
                "checkpoint has {} tensors, this controller {}",
                blobs.len(),
                expected.len()
            )));
        }
        for (got, want) in blobs.iter().zip(&expected) {
            if got.name != want.name || got.shape != want.shape {
                return Err(StrategyError::Checkpoint(format!(
                    "checkpoint tensor {} {:?} where this controller has {} {:?}",
                    got.name, got.shape, want.name, want.shape
                )));
            }
        }
        let n = self.policy.params().len();
        for (k, blob) in blobs.iter().enumerate() {
            let target = match k / n {
                0 => &self.policy.params()[k].1,
                1 => &self.adam.m[k - n],
                _ => &self.adam.v[k - 2 * n],
            };
            copy_into(target, &blob.data);
        }
        self.policy.zero_grad();
        self.adam.step = state.adam_step;
        self.baseline.value = state.baseline_bits.map(f64::from_bits);
        self.version = state.policy_version;
        self.samples_drawn = state.samples_drawn;
        self.rng = state.rng;
        Ok(())
    }
}

/// Indices grouped by schema, groups in order of first appearance.
fn group_by_schema(schemas: &[TokenSchema]) -> Vec<(&TokenSchema, Vec<usize>)> {
    let mut groups: Vec<(&TokenSchema, Vec<usize>)> = Vec::new();
    for (k, s) in schemas.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| *g == s) {
            Some((_, idx)) => idx.push(k),
            None => groups.push((s, vec![k])),
        }
    }
    groups
}
