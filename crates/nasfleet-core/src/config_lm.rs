//! `[train.lm]`: how language-model children are trained (owned by the RNN trainer).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmTrainConfig {
    /// Hidden (and embedding) size of each cell layer.
    pub hidden: usize,
    /// Truncated back-propagation through time length.
    pub bptt: usize,
}

impl Default for LmTrainConfig {
    fn default() -> Self {
        LmTrainConfig { hidden: 650, bptt: 35 }
    }
}
