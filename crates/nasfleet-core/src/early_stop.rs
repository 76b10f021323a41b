//! Asynchronous early stopping (`[early_stop]`): which epochs are decision
//! points (rungs), what number a child is judged by there, and the decision
//! itself (re-exported from [`nasfleet_util::rung`], where the queue can
//! reach it too; see that module for why it lives there).
//!
//! The flow: at the end of an epoch that is a rung, the worker records the
//! child's [`score`] at that rung in the queue's store and gets the decision
//! back in the same atomic call, keyed by (job, epoch): a repeated call — a
//! resumed child, a retried call, a stale worker — returns the decision
//! recorded the first time. No central scheduler: every worker reads the
//! peers' values from the store.
//!
//! A stopped child's reward is its reward rule applied to the epochs it
//! trained (for `last_k = 1`, its last intermediate metric), NNI's
//! precedent; the controller applies it like any other reward (see
//! ARCHITECTURE.md, "Early stopping and REINFORCE").

use serde::{Deserialize, Serialize};

use crate::reward::RewardConfig;
use crate::trainer::EpochMetrics;

pub use nasfleet_util::rung::{decide, RungDecision, RungRule};

/// Which early-stopping rule a run uses (`early_stop.rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EarlyStopRule {
    /// Every child trains every epoch (the paper; the default).
    #[default]
    Off,
    /// From `warmup_epochs` on, stop a child whose best metric so far is
    /// below the median of its peers' at the same epoch.
    Median,
    /// Asynchronous successive halving: rungs at `min_epochs · eta^k`; a
    /// child goes on past a rung only in the top `1/eta` of those there.
    Asha,
}

/// The `[early_stop]` section. Off unless `rule` says otherwise; travels
/// with every job (so a worker needs no config of its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStopConfig {
    /// `off` (default), `median` or `asha`.
    pub rule: EarlyStopRule,
    /// Median: epochs every child trains before its first decision (≥ 1);
    /// decisions at the end of epochs `warmup_epochs ..< train.epochs`.
    /// Default 2.
    pub warmup_epochs: usize,
    /// Both rules: a decision needs at least this many peers at the rung
    /// (≥ 1); with fewer the child goes on. Default 4.
    pub min_peers: usize,
    /// ASHA: the first rung, in epochs (≥ 1, below `train.epochs`). Default 1.
    pub min_epochs: usize,
    /// ASHA: the reduction factor (≥ 2); rungs at `min_epochs · eta^k`
    /// below `train.epochs`. Default 3.
    pub eta: usize,
}

impl Default for EarlyStopConfig {
    fn default() -> Self {
        EarlyStopConfig { rule: EarlyStopRule::Off, warmup_epochs: 2, min_peers: 4, min_epochs: 1, eta: 3 }
    }
}

impl EarlyStopConfig {
    /// True when a rule is on.
    pub fn enabled(&self) -> bool {
        self.rule != EarlyStopRule::Off
    }

    /// What is wrong with the section for children of `epochs` epochs, as
    /// (the key, the message). Rules that are off are not checked beyond
    /// their ranges.
    pub fn check(&self, epochs: usize) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((format!("early_stop.{k}"), m));
        if self.min_peers == 0 {
            return bad("min_peers", "must be at least 1".into());
        }
        if self.eta < 2 {
            return bad("eta", format!("{} is below 2 (each rung keeps the top 1/eta)", self.eta));
        }
        if self.min_peers > u32::MAX as usize || self.eta > u32::MAX as usize {
            return bad("min_peers", "is out of range".into());
        }
        match self.rule {
            EarlyStopRule::Off => Ok(()),
            EarlyStopRule::Median if self.warmup_epochs == 0 => bad("warmup_epochs", "must be at least 1".into()),
            EarlyStopRule::Median if self.warmup_epochs >= epochs => bad(
                "warmup_epochs",
                format!("{} leaves no epoch to decide at: children train train.epochs = {epochs}", self.warmup_epochs),
            ),
            EarlyStopRule::Asha if self.min_epochs == 0 => bad("min_epochs", "must be at least 1".into()),
            EarlyStopRule::Asha if self.min_epochs >= epochs => bad(
                "min_epochs",
                format!("the first rung ({}) is beyond the last epoch that can stop a child: train.epochs = {epochs}", self.min_epochs),
            ),
            _ => Ok(()),
        }
    }

    /// The rule the queue applies, or `None` when off.
    pub fn rung_rule(&self) -> Option<RungRule> {
        let min_peers = u32::try_from(self.min_peers).unwrap_or(u32::MAX);
        match self.rule {
            EarlyStopRule::Off => None,
            EarlyStopRule::Median => Some(RungRule::Median { min_peers }),
            EarlyStopRule::Asha => Some(RungRule::Asha { eta: u32::try_from(self.eta).unwrap_or(u32::MAX), min_peers }),
        }
    }

    /// True when the end of `epoch` (counted from 1) is a decision point for
    /// a child of `epochs` epochs. The last epoch never is (the child is done).
    pub fn is_rung(&self, epoch: usize, epochs: usize) -> bool {
        if epoch == 0 || epoch >= epochs {
            return false;
        }
        match self.rule {
            EarlyStopRule::Off => false,
            EarlyStopRule::Median => epoch >= self.warmup_epochs.max(1),
            EarlyStopRule::Asha => {
                let mut r = self.min_epochs.max(1);
                while r < epoch {
                    match r.checked_mul(self.eta.max(2)) {
                        Some(next) => r = next,
                        None => return false,
                    }
                }
                r == epoch
            }
        }
    }

    /// Every rung of a child of `epochs` epochs, in order.
    pub fn rungs(&self, epochs: usize) -> Vec<usize> {
        (1..epochs).filter(|e| self.is_rung(*e, epochs)).collect()
    }
}

/// The number a child is judged by at a rung, higher is better: its best
/// validation metric so far through the reward rule's monotone map (before
/// any cost rule) — best accuracy^power, or c / (lowest perplexity)². NaN
/// (the worst score) when there is no usable metric.
pub fn score(reward: &RewardConfig, history: &[EpochMetrics]) -> f64 {
    match reward {
        RewardConfig::Accuracy { power, .. } => {
            let best = history
                .iter()
                .filter_map(|m| m.valid_accuracy)
                .filter(|a| a.is_finite())
                .fold(f64::NAN, f64::max);
            if best.is_nan() {
                f64::NAN
            } else {
                best.max(0.0).powf(*power)
            }
        }
        RewardConfig::Perplexity { .. } => {
            let best = history
                .iter()
                .filter_map(|m| m.valid_perplexity)
                .filter(|p| p.is_finite())
                .fold(f64::NAN, f64::min);
            reward.from_perplexity(best).unwrap_or(f64::NAN)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rule: EarlyStopRule) -> EarlyStopConfig {
        EarlyStopConfig { rule, ..EarlyStopConfig::default() }
    }

    #[test]
    fn rungs_of_each_rule() {
        assert_eq!(cfg(EarlyStopRule::Off).rungs(10), Vec::<usize>::new());
        assert_eq!(cfg(EarlyStopRule::Median).rungs(5), vec![2, 3, 4]);
        assert_eq!(cfg(EarlyStopRule::Asha).rungs(10), vec![1, 3, 9]);
        let a = EarlyStopConfig { min_epochs: 2, eta: 2, ..cfg(EarlyStopRule::Asha) };
        assert_eq!(a.rungs(9), vec![2, 4, 8]);
        assert_eq!(a.rungs(8), vec![2, 4], "no rung at the last epoch");
    }

    #[test]
    fn bad_sections_name_the_key() {
        let key = |c: EarlyStopConfig, epochs| c.check(epochs).unwrap_err().0;
        assert_eq!(key(EarlyStopConfig { eta: 1, ..cfg(EarlyStopRule::Asha) }, 10), "early_stop.eta");
        assert_eq!(key(EarlyStopConfig { min_peers: 0, ..cfg(EarlyStopRule::Median) }, 10), "early_stop.min_peers");
        assert_eq!(key(EarlyStopConfig { min_epochs: 10, ..cfg(EarlyStopRule::Asha) }, 10), "early_stop.min_epochs");
        assert_eq!(key(EarlyStopConfig { warmup_epochs: 12, ..cfg(EarlyStopRule::Median) }, 10), "early_stop.warmup_epochs");
        assert!(cfg(EarlyStopRule::Asha).check(10).is_ok());
        assert!(cfg(EarlyStopRule::Off).check(1).is_ok());
    }

    #[test]
    fn scores_are_higher_is_better() {
        let m = |acc: Option<f64>, ppl: Option<f64>| EpochMetrics { valid_accuracy: acc, valid_perplexity: ppl, ..EpochMetrics::default() };
        let acc = RewardConfig::accuracy(5, 2.0);
        assert_eq!(score(&acc, &[m(Some(0.5), None), m(Some(0.4), None)]), 0.25);
        assert!(score(&acc, &[m(Some(f64::NAN), None)]).is_nan());
        let ppl = RewardConfig::Perplexity { c: 80.0 };
        assert_eq!(score(&ppl, &[m(None, Some(80.0)), m(None, Some(160.0))]), 80.0 / 6400.0);
    }
}
