//! A synthetic reward on the CNN space: known optimum, computed in
//! nanoseconds, so a search strategy can be tested or compared in seconds
//! instead of GPU-days.
//!
//! `reward = (1 − skip_weight) · layer_score + skip_weight · skip_score`, in [0, 1]:
//! - `layer_score`: the mean over layers of the fraction of the three target
//!   properties a layer has (filter height, filter width, number of filters;
//!   default 3, 3, 64). Partial credit per property, rather than "the layer
//!   is exactly 3×3 with 64 filters", gives every decision its own signal;
//!   the score is 1 exactly when every layer is the target layer.
//! - `skip_score`: the fraction of skip bits that match the rewarded pattern
//!   *chain* — layer i is fed by layer i−1 and by no other layer. A
//!   one-layer network has no skip bits and scores 1.
//!
//! Uniform random search scores 0.5·(1/4) + 0.5·(1/2) = 0.375 in expectation
//! with the default value sets (four heights, widths and filter counts).

use serde::{Deserialize, Serialize};

use crate::arch::Architecture;
use crate::error::ArchError;
use crate::space::CnnArch;

/// The synthetic reward's targets and weighting (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticCnnReward {
    /// The rewarded kernel height in pixels. Default 3.
    pub filter_height: u32,
    /// The rewarded kernel width in pixels. Default 3.
    pub filter_width: u32,
    /// The rewarded filter count. Default 64.
    pub filters: u32,
    /// Weight of the skip pattern in [0, 1]; the layer score gets the rest.
    pub skip_weight: f64,
}

impl Default for SyntheticCnnReward {
    fn default() -> Self {
        SyntheticCnnReward { filter_height: 3, filter_width: 3, filters: 64, skip_weight: 0.5 }
    }
}

impl SyntheticCnnReward {
    /// The reward of a CNN architecture (0 for one with no layers).
    pub fn reward(&self, arch: &CnnArch) -> f64 {
        let n = arch.layers.len();
        if n == 0 {
            return 0.0;
        }
        let layer_score = arch
            .layers
            .iter()
            .map(|l| {
                let hits = (l.filter_height == self.filter_height) as u32
                    + (l.filter_width == self.filter_width) as u32
                    + (l.filters == self.filters) as u32;
                hits as f64 / 3.0
            })
            .sum::<f64>()
            / n as f64;
        let bits = n * (n - 1) / 2;
        let skip_score = if bits == 0 {
            1.0
        } else {
            let matching: usize = arch
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| (0..i).filter(|&j| l.inputs.contains(&j) == (j + 1 == i)).count())
                .sum();
            matching as f64 / bits as f64
        };
        let w = self.skip_weight.clamp(0.0, 1.0);
        (1.0 - w) * layer_score + w * skip_score
    }

    /// The reward of any architecture: an error for one outside the CNN space.
    pub fn reward_of(&self, arch: &Architecture) -> Result<f64, ArchError> {
        match arch {
            Architecture::Cnn(a) => Ok(self.reward(a)),
            other => Err(ArchError::invalid(
                "space",
                format!("the synthetic reward is defined on the cnn space, not {}", other.kind()),
            )),
        }
    }
}
