//! Rewards and the exponential-moving-average baseline of REINFORCE.
//!
//! An accuracy reward may carry a cost rule ([`CostRule`], MnasNet's
//! multi-objective reward, Tan et al. 2019): the accuracy reward is
//! multiplied by `(cost / target) ^ w`, with `w = alpha` when the child is
//! within the target and `w = beta` beyond it.

use serde::{Deserialize, Serialize};

use crate::cost::{ArchCost, CostMetric};

/// How the cost factor bends (`reward.cost.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostMode {
    /// MnasNet's soft constraint: `alpha = beta = weight` (default −0.07):
    /// cheaper children gain a little, dearer ones lose a little.
    #[default]
    Soft,
    /// MnasNet's hard constraint: `alpha = 0`, `beta = −1`: a child within
    /// the target keeps its accuracy reward, one beyond it is divided by
    /// `cost / target`.
    Hard,
}

/// The multi-objective part of an accuracy reward (`[reward.cost]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostRule {
    /// Which cost: `"params"` or `"flops"` (see [`crate::cost`]).
    pub metric: CostMetric,
    /// The target cost T (> 0), in parameters or FLOPs.
    pub target: f64,
    /// Soft or hard (default soft).
    #[serde(default)]
    pub mode: CostMode,
    /// The soft rule's exponent (≤ 0). Default −0.07 (MnasNet).
    #[serde(default = "mnas_weight")]
    pub weight: f64,
}

fn mnas_weight() -> f64 {
    -0.07
}

impl CostRule {
    /// A soft rule with MnasNet's weight.
    pub fn soft(metric: CostMetric, target: f64) -> Self {
        CostRule { metric, target, mode: CostMode::Soft, weight: mnas_weight() }
    }

    /// `(cost / target) ^ w` for the child's cost (see [`CostMode`]).
    pub fn factor(&self, cost: &ArchCost) -> f64 {
        let ratio = cost.get(self.metric) as f64 / self.target;
        let w = match self.mode {
            CostMode::Soft => self.weight,
            CostMode::Hard if ratio <= 1.0 => 0.0,
            CostMode::Hard => -1.0,
        };
        ratio.powf(w)
    }

    /// What is wrong with the rule, if anything.
    pub fn check(&self) -> Result<(), String> {
        if !(self.target.is_finite() && self.target > 0.0) {
            return Err(format!("target {} is not a positive number", self.target));
        }
        if !(self.weight.is_finite() && self.weight <= 0.0) {
            return Err(format!("weight {} is not a number ≤ 0", self.weight));
        }
        Ok(())
    }
}

/// How a child's metrics become its reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardConfig {
    /// CIFAR: `(max of the last `last_k` validation accuracies) ^ power`,
    /// accuracies as fractions in [0, 1]. Paper: last 5, cubed.
    Accuracy {
        /// How many of the last epochs' accuracies the best is taken from
        /// (0 counts as 1). Default 5.
        #[serde(default = "five")]
        last_k: usize,
        /// The exponent applied to that best accuracy. Default 3.
        #[serde(default = "three")]
        power: f64,
        /// A cost rule making the reward multi-objective (off by default);
        /// see [`RewardConfig::with_cost`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<CostRule>,
    },
    /// PTB: `c / ppl²`. Paper: c = 80.
    Perplexity {
        /// The numerator. Default 80.
        #[serde(default = "eighty")]
        c: f64,
    },
}

fn five() -> usize {
    5
}
fn three() -> f64 {
    3.0
}
fn eighty() -> f64 {
    80.0
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig::Accuracy { last_k: 5, power: 3.0, cost: None }
    }
}

impl RewardConfig {
    /// The plain accuracy rule: `(accuracy) ^ power`.
    pub fn accuracy(last_k: usize, power: f64) -> Self {
        RewardConfig::Accuracy { last_k, power, cost: None }
    }

    /// The cost rule, if the reward has one.
    pub fn cost_rule(&self) -> Option<&CostRule> {
        match self {
            RewardConfig::Accuracy { cost, .. } => cost.as_ref(),
            RewardConfig::Perplexity { .. } => None,
        }
    }

    /// Applies the cost rule, if any, to an accuracy reward: `reward ×
    /// (cost / target) ^ w`, kept within [0, 1] like every accuracy reward
    /// (a soft rule can lift a very cheap child's factor above 1). Without a
    /// rule the reward is returned as it is; with one, a child without a
    /// cost is an error.
    pub fn with_cost(&self, reward: f64, cost: Option<&ArchCost>) -> Result<f64, String> {
        match (self.cost_rule(), cost) {
            (None, _) => Ok(reward),
            (Some(rule), Some(c)) => Ok((reward * rule.factor(c)).clamp(0.0, 1.0)),
            (Some(rule), None) => {
                Err(format!("the reward's cost rule needs the child's {}, which is not known", rule.metric.name()))
            }
        }
    }

    /// Reward from per-epoch validation accuracies (fractions), before any
    /// cost rule ([`RewardConfig::with_cost`]). `None` when there are none
    /// or a value is not finite / outside [0, 1].
    pub fn from_accuracies(&self, accs: &[f64]) -> Option<f64> {
        let RewardConfig::Accuracy { power, .. } = self else { return None };
        Some(self.accuracy_of(accs)?.powf(*power))
    }

    /// The accuracy an accuracy reward is made of: the best of the last
    /// `last_k` validation accuracies (before the power and any cost rule;
    /// what a Pareto front plots). `None` as [`from_accuracies`](Self::from_accuracies).
    pub fn accuracy_of(&self, accs: &[f64]) -> Option<f64> {
        let RewardConfig::Accuracy { last_k, .. } = self else { return None };
        if accs.is_empty() || accs.iter().any(|a| !a.is_finite() || *a < 0.0 || *a > 1.0) {
            return None;
        }
        let tail = &accs[accs.len().saturating_sub((*last_k).max(1))..];
        Some(tail.iter().copied().fold(f64::MIN, f64::max))
    }

    /// Reward from a validation perplexity. A non-finite or < 1 perplexity
    /// (divergence) gives reward 0, as the paper's recipe treats failed children.
    pub fn from_perplexity(&self, ppl: f64) -> Option<f64> {
        let RewardConfig::Perplexity { c } = self else { return None };
        if !ppl.is_finite() || ppl < 1.0 {
            return Some(0.0);
        }
        Some(c / (ppl * ppl))
    }
}

/// `b ← decay·b + (1 − decay)·R`, starting at the first reward seen (so the
/// first update is not dominated by an arbitrary initial value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmaBaseline {
    /// Weight of the old value in each step, in [0, 1); higher is slower.
    pub decay: f64,
    /// The current baseline; `None` before the first reward.
    pub value: Option<f64>,
}

impl EmaBaseline {
    /// A baseline with no value yet.
    pub fn new(decay: f64) -> Self {
        EmaBaseline { decay, value: None }
    }

    /// Advantages of a batch against the baseline *before* the batch, then
    /// folds the batch into the baseline in order. An empty batch is a no-op.
    pub fn advantages(&mut self, rewards: &[f64]) -> Vec<f64> {
        if rewards.is_empty() {
            return Vec::new();
        }
        let b = self.value.unwrap_or_else(|| rewards.iter().sum::<f64>() / rewards.len() as f64);
        let adv = rewards.iter().map(|r| r - b).collect();
        let mut v = b;
        for r in rewards {
            v = self.decay * v + (1.0 - self.decay) * r;
        }
        self.value = Some(v);
        adv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_reward_is_cube_of_best_of_last_five() {
        let r = RewardConfig::default();
        let accs = [0.9, 0.5, 0.6, 0.7, 0.8, 0.65];
        // last five: 0.5..0.65, best 0.8 (the 0.9 is older than five epochs)
        assert!((r.from_accuracies(&accs).unwrap() - 0.512).abs() < 1e-12);
        assert_eq!(r.from_accuracies(&[]), None);
        assert_eq!(r.from_accuracies(&[f64::NAN]), None);
    }

    #[test]
    fn cost_rules_by_hand() {
        let c = |params| ArchCost { params, flops: 0 };
        let soft = CostRule::soft(CostMetric::Params, 1000.0);
        assert!((soft.factor(&c(2000)) - 2f64.powf(-0.07)).abs() < 1e-15);
        assert!((soft.factor(&c(500)) - 0.5f64.powf(-0.07)).abs() < 1e-15);
        let hard = CostRule { mode: CostMode::Hard, ..soft.clone() };
        assert_eq!(hard.factor(&c(500)), 1.0);
        assert_eq!(hard.factor(&c(1000)), 1.0);
        assert_eq!(hard.factor(&c(4000)), 0.25);
        let r = RewardConfig::Accuracy { last_k: 1, power: 1.0, cost: Some(hard) };
        assert_eq!(r.with_cost(0.8, Some(&c(4000))), Ok(0.2));
        assert!(r.with_cost(0.8, None).unwrap_err().contains("params"));
        // A soft factor above 1 is capped at reward 1.
        let r = RewardConfig::Accuracy { last_k: 1, power: 1.0, cost: Some(CostRule { weight: -1.0, ..soft }) };
        assert_eq!(r.with_cost(0.9, Some(&c(1))), Ok(1.0));
        assert_eq!(RewardConfig::default().with_cost(0.3, None), Ok(0.3));
        // TOML form.
        let t: RewardConfig =
            toml::from_str("kind = \"accuracy\"\npower = 1.0\n[cost]\nmetric = \"flops\"\ntarget = 1e8\nmode = \"hard\"\n").unwrap();
        assert_eq!(t.cost_rule().unwrap().metric, CostMetric::Flops);
        assert!(toml::from_str::<RewardConfig>("kind = \"accuracy\"\n[cost]\nmetric = \"flops\"\ntarget = 1\nspeed = 2\n").is_err());
    }

    #[test]
    fn perplexity_reward() {
        let r = RewardConfig::Perplexity { c: 80.0 };
        assert!((r.from_perplexity(80.0).unwrap() - 0.0125).abs() < 1e-12);
        assert_eq!(r.from_perplexity(f64::NAN), Some(0.0));
    }

    #[test]
    fn ema_baseline() {
        let mut b = EmaBaseline::new(0.5);
        assert_eq!(b.advantages(&[1.0, 3.0]), vec![-1.0, 1.0]);
        // 2 -> 0.5*2+0.5*1 = 1.5 -> 0.5*1.5+0.5*3 = 2.25
        assert_eq!(b.value, Some(2.25));
        assert_eq!(b.advantages(&[2.25]), vec![0.0]);
    }
}
