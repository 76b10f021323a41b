//! Hard bounds every architecture must satisfy, whatever the search space's
//! settings: they protect workers from payloads that would exhaust memory
//! (a job with 10^6 layers must be refused before anything is allocated).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchLimits {
    /// Max size of an architecture's JSON, checked before parsing.
    pub max_payload_bytes: usize,
    pub max_layers: usize,
    pub max_filters: u32,
    pub max_kernel: u32,
    pub max_stride: u32,
    pub max_cell_base: usize,
}

impl Default for ArchLimits {
    fn default() -> Self {
        // The paper's largest child has 39 layers; "v3 + more filters" reaches
        // a few hundred filters per layer. These bounds leave room above both.
        ArchLimits {
            max_payload_bytes: 64 * 1024,
            max_layers: 64,
            max_filters: 1024,
            max_kernel: 15,
            max_stride: 3,
            max_cell_base: 64,
        }
    }
}
