//! CNN children (paper §3–4): the network, its data, its optimiser, its
//! checkpoints and the trainer that ties them together.
//!
//! - [`net`]: [`CnnNet`], any [`CnnArch`](nasfleet_core::space::cnn::CnnArch)
//!   as a tch module following the paper's three rules, with exactly the
//!   parameters `CnnArch::resolve` counts.
//! - [`data`]: [`DeviceData`], the dataset as tensors on the training device,
//!   whitened once, with pad-crop and flip as whole-batch `gather`s.
//! - [`sgd`]: [`FlatSgd`], (Nesterov) momentum SGD with weight decay over one
//!   flat buffer: few kernels per step, and its state can be saved.
//! - [`checkpoint`]: per-epoch checkpoints (weights, momentum, batch-norm
//!   statistics, data-stream RNG, metrics) written atomically.
//! - [`budget`]: [`ChildCost`], the parameter / FLOP / activation-memory
//!   costs that the budget caps, from the resolved graph alone.
//! - [`trainer`]: [`CnnTrainer`], the [`Trainer`](nasfleet_core::trainer::Trainer)
//!   for CNN jobs: budget check, training with the paper's recipe by default,
//!   evaluation, reward, divergence, preemption and resume.

pub mod budget;
pub mod checkpoint;
pub mod data;
pub mod net;
pub mod sgd;
pub mod trainer;

use std::path::PathBuf;

use thiserror::Error;

pub use budget::ChildCost;
pub use data::{Augment, DeviceData, DeviceImages, Prepare};
pub use net::{CnnNet, ForwardShapes};
pub use sgd::{FlatSgd, SgdConfig};
pub use trainer::{evaluate, lr_at, CnnTrainer, DATASETS};

/// What can go wrong below the trainer; the trainer sorts these into
/// permanent and retryable job failures.
#[derive(Debug, Error)]
pub enum CnnError {
    #[error("invalid architecture: {0}")]
    Arch(#[from] nasfleet_core::ArchError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{0}")]
    Invalid(String),
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
}
