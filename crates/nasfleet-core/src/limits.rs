//! Hard bounds every architecture must satisfy, whatever the search space's
//! settings: they protect workers from payloads that would exhaust memory
//! (a job with 10^6 layers must be refused before anything is allocated).

use serde::{Deserialize, Serialize};

/// `[limits]`: the hard bounds (see the module documentation). Defaults sit
/// well above the paper's largest children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchLimits {
    /// Max size of an architecture's JSON in bytes, checked before parsing.
    pub max_payload_bytes: usize,
    /// Most layers of a CNN child (and of the CNN space's depth schedule).
    pub max_layers: usize,
    /// Most filters (output channels) of one CNN layer.
    pub max_filters: u32,
    /// Largest kernel height or width of a CNN layer, in pixels (kernels are odd).
    pub max_kernel: u32,
    /// Largest stride of a CNN layer, in pixels.
    pub max_stride: u32,
    /// Largest base (number of leaves, a power of two) of a recurrent cell.
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
