//! What a child costs, from [`CnnArch::resolve`](nasfleet_core::space::cnn::CnnArch::resolve)
//! alone, and the budget check that refuses a child before anything is
//! allocated.

use serde::Serialize;

use nasfleet_core::config::ImageTrainConfig;
use nasfleet_core::space::cnn::CnnGraph;

/// Tensors kept per convolution for the backward pass: its output, the batch
/// norm's output and the ReLU's output.
const KEPT_PER_LAYER: u64 = 3;

/// The costs the budget caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChildCost {
    /// Trainable parameters.
    pub params: u64,
    /// FLOPs of one forward pass of one image (multiply-add = 2).
    pub flops: u64,
    /// Estimated activation memory of one training batch, in bytes.
    pub activation_bytes: u64,
}

impl ChildCost {
    /// Costs of `graph` trained with batches of `batch_size` (activations in
    /// bfloat16 when `mixed_precision`).
    pub fn of(graph: &CnnGraph, batch_size: usize, mixed_precision: bool) -> ChildCost {
        let bytes = if mixed_precision { 2 } else { 4 };
        ChildCost {
            params: graph.params,
            flops: graph.flops(),
            activation_bytes: graph
                .activation_elems
                .saturating_mul(batch_size as u64)
                .saturating_mul(bytes * KEPT_PER_LAYER),
        }
    }

    /// `Err` naming every exceeded cap with both numbers.
    pub fn check(&self, cfg: &ImageTrainConfig) -> Result<(), String> {
        let mut over = Vec::new();
        let mut cap = |what: &str, value: u64, max: Option<u64>| {
            if let Some(max) = max.filter(|&m| value > m) {
                over.push(format!("{what} {value} > train.image.max_{what} {max}"));
            }
        };
        cap("params", self.params, cfg.max_params);
        cap("flops", self.flops, cfg.max_flops);
        cap("activation_bytes", self.activation_bytes, cfg.max_activation_bytes);
        if over.is_empty() {
            Ok(())
        } else {
            Err(format!("over budget: {}", over.join(", ")))
        }
    }
}
