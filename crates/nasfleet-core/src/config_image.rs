//! `[train.image]`: how CNN children are trained (owned by the CNN trainer).
//!
//! The defaults are the paper's CIFAR-10 recipe (pad-and-crop, flips,
//! per-channel whitening, fp32, no budget caps); everything else is a knob a
//! cheaper proxy search (the Fashion-MNIST demo) or a GPU fleet turns.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[train.image]`: data preparation, augmentation, precision and budgets of
/// CNN children (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageTrainConfig {
    /// Random crop after zero-padding by this many pixels (0 = off).
    pub crop_padding: usize,
    /// Random horizontal flips.
    pub flip: bool,
    /// Per-channel whitening with the training subset's mean and deviation.
    pub normalize: bool,
    /// Resample images to this height and width before training (area
    /// averaging when shrinking, bilinear when growing); `None` keeps the
    /// dataset's own size. A proxy search trains on smaller images to see
    /// more children per hour.
    pub resolution: Option<usize>,
    /// Label smoothing of the cross-entropy (not in the paper: 0).
    pub label_smoothing: f64,
    /// Mixed precision: convolutions, activations and stored images in
    /// bfloat16; weights, batch-norm statistics, optimiser and loss in fp32.
    /// Off in the paper's recipe; worth it on GPUs with bf16 tensor cores.
    pub mixed_precision: bool,
    /// Batch size of the (gradient-free) validation passes.
    pub eval_batch_size: usize,
    /// Seed of the train/validation split. It is a property of the
    /// experiment, not of the child: every child must be scored on the same
    /// validation images for rewards to be comparable.
    pub split_seed: u64,
    /// Draw the same number of training and validation images per class.
    pub class_balanced: bool,
    // Budgets: a child above any of them is refused before training, as a
    // permanent failure that names the numbers. `None` = no cap (the paper
    // has none).
    /// Cap on trainable parameters.
    pub max_params: Option<u64>,
    /// Cap on the FLOPs of one forward pass of one image (a multiply-add counts 2).
    pub max_flops: Option<u64>,
    /// Cap on the estimated activation memory of one training batch, in bytes (every
    /// convolution's output, batch-norm output and ReLU output for the whole
    /// batch, as kept for the backward pass).
    pub max_activation_bytes: Option<u64>,
    /// Where this dataset's files are, overriding the worker's data directory
    /// for this dataset (e.g. a user's own CIFAR-10 batches).
    pub data_dir: Option<PathBuf>,
}

impl Default for ImageTrainConfig {
    fn default() -> Self {
        // The paper's CIFAR preprocessing: whitening, pad-and-crop, horizontal flip.
        ImageTrainConfig {
            crop_padding: 4,
            flip: true,
            normalize: true,
            resolution: None,
            label_smoothing: 0.0,
            mixed_precision: false,
            eval_batch_size: 500,
            split_seed: 0,
            class_balanced: false,
            max_params: None,
            max_flops: None,
            max_activation_bytes: None,
            data_dir: None,
        }
    }
}
