//! `[train.image]`: how CNN children are trained (owned by the CNN trainer).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageTrainConfig {
    /// Random crop after zero-padding by this many pixels (0 = off).
    pub crop_padding: usize,
    /// Random horizontal flips.
    pub flip: bool,
}

impl Default for ImageTrainConfig {
    fn default() -> Self {
        // The paper's CIFAR preprocessing: pad-and-crop, horizontal flip.
        ImageTrainConfig { crop_padding: 4, flip: true }
    }
}
