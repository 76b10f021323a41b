//! Rewards and the exponential-moving-average baseline of REINFORCE.

use serde::{Deserialize, Serialize};

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
        RewardConfig::Accuracy { last_k: 5, power: 3.0 }
    }
}

impl RewardConfig {
    /// Reward from per-epoch validation accuracies (fractions). `None` when
    /// there are none or a value is not finite / outside [0, 1].
    pub fn from_accuracies(&self, accs: &[f64]) -> Option<f64> {
        let RewardConfig::Accuracy { last_k, power } = self else { return None };
        if accs.is_empty() || accs.iter().any(|a| !a.is_finite() || *a < 0.0 || *a > 1.0) {
            return None;
        }
        let tail = &accs[accs.len().saturating_sub((*last_k).max(1))..];
        let best = tail.iter().copied().fold(f64::MIN, f64::max);
        Some(best.powf(*power))
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
