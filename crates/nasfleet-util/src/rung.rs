//! The early-stopping decision at one rung, as a pure function of numbers.
//!
//! Why it lives here and not in `nasfleet-core` (where the `[early_stop]`
//! config and its property tests are): the decision must be taken *inside*
//! the queue's atomic transition (the Redis function records a child's value
//! at a rung and its decision in one step), and the queue crate depends on no
//! nasfleet crate but this one. Written once here, it is re-exported by
//! `nasfleet_core::early_stop` (which tests it), called by the in-memory
//! queue, and mirrored line for line by `rung_decide` in the queue's
//! `redis/nasfleet.lua` (the queue's conformance suite runs the same cases
//! against both backends).
//!
//! Values are "higher is better" scores; a NaN counts as the worst score.
//! Only comparisons, a sort and one mean of two doubles are used, so Lua
//! (IEEE doubles) computes bit for bit the same decision.

/// Which rule decides at a rung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RungRule {
    /// Stop when the value is below the median of the peers' values at the
    /// same epoch (Optuna's median pruner, Katib's median stop).
    Median {
        /// Decide only with at least this many peers (≥ 1); continue before.
        min_peers: u32,
    },
    /// Asynchronous successive halving (ASHA, Li et al. 2020): continue only
    /// when in the top `1/eta` of the children that reached the rung (this
    /// one included), and always when it is the best so far.
    Asha {
        /// The reduction factor (≥ 2).
        eta: u32,
        /// Decide only with at least this many peers (≥ 1); continue before.
        min_peers: u32,
    },
}

/// A rung's verdict on a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RungDecision {
    /// Train the next epoch.
    Continue,
    /// End the child now; its reward comes from the epochs trained so far.
    Stop,
}

impl RungDecision {
    /// `continue` / `stop` (the form stored by the queue).
    pub fn as_str(self) -> &'static str {
        match self {
            RungDecision::Continue => "continue",
            RungDecision::Stop => "stop",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "continue" => Some(RungDecision::Continue),
            "stop" => Some(RungDecision::Stop),
            _ => None,
        }
    }
}

/// NaN is the worst score.
fn clean(v: f64) -> f64 {
    if v.is_nan() {
        f64::NEG_INFINITY
    } else {
        v
    }
}

/// The decision for a child whose score at the rung is `value`, given the
/// scores `peers` recorded at the same rung by *other* children before it.
///
/// - `Median`: with fewer than `min_peers` peers, continue; otherwise stop
///   iff `value` is strictly below the peers' median (the mean of the two
///   middle values for an even count).
/// - `Asha`: with fewer than `min_peers` peers, continue; otherwise, with
///   `n = peers + 1` children at the rung and `better` = peers strictly above
///   `value`, continue iff `better + 1 <= max(1, n / eta)` (integer
///   division). Ties favour the child.
pub fn decide(rule: RungRule, value: f64, peers: &[f64]) -> RungDecision {
    let value = clean(value);
    match rule {
        RungRule::Median { min_peers } => {
            if peers.len() < min_peers.max(1) as usize {
                return RungDecision::Continue;
            }
            let mut v: Vec<f64> = peers.iter().copied().map(clean).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
            if value < median {
                RungDecision::Stop
            } else {
                RungDecision::Continue
            }
        }
        RungRule::Asha { eta, min_peers } => {
            if peers.len() < min_peers.max(1) as usize {
                return RungDecision::Continue;
            }
            let n = peers.len() + 1;
            let better = peers.iter().filter(|p| clean(**p) > value).count();
            let keep = (n / eta.max(2) as usize).max(1);
            if better < keep {
                RungDecision::Continue
            } else {
                RungDecision::Stop
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RungDecision::{Continue, Stop};

    #[test]
    fn median_by_hand() {
        let r = RungRule::Median { min_peers: 3 };
        assert_eq!(decide(r, 0.1, &[0.5, 0.6]), Continue, "too few peers");
        assert_eq!(decide(r, 0.49, &[0.5, 0.6, 0.4]), Stop);
        assert_eq!(decide(r, 0.5, &[0.5, 0.6, 0.4]), Continue, "equal to the median");
        // Even count: median (0.4 + 0.5) / 2 = 0.45.
        assert_eq!(decide(r, 0.44, &[0.5, 0.6, 0.4, 0.1]), Stop);
        assert_eq!(decide(r, 0.45, &[0.5, 0.6, 0.4, 0.1]), Continue);
        assert_eq!(decide(r, f64::NAN, &[0.5, 0.6, 0.4]), Stop);
    }

    #[test]
    fn asha_by_hand() {
        let r = RungRule::Asha { eta: 3, min_peers: 1 };
        assert_eq!(decide(r, 0.0, &[]), Continue, "the first child always goes on");
        // n = 2, keep max(1, 0) = 1: only the best.
        assert_eq!(decide(r, 0.4, &[0.5]), Stop);
        assert_eq!(decide(r, 0.5, &[0.5]), Continue, "ties favour the child");
        // n = 6, keep 2.
        let peers = [0.9, 0.8, 0.7, 0.6, 0.5];
        assert_eq!(decide(r, 0.85, &peers), Continue);
        assert_eq!(decide(r, 0.75, &peers), Stop);
        assert_eq!(decide(RungRule::Asha { eta: 2, min_peers: 1 }, 0.75, &peers), Continue);
        assert_eq!(decide(RungRule::Asha { eta: 3, min_peers: 6 }, 0.0, &peers), Continue);
    }

    #[test]
    fn decisions_have_a_stored_form() {
        for d in [Continue, Stop] {
            assert_eq!(RungDecision::parse(d.as_str()), Some(d));
        }
        assert_eq!(RungDecision::parse("maybe"), None);
    }
}
