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
//! - [`raise_malloc_thresholds`]: keeps glibc from returning activation
//!   memory to the kernel after every CPU step.

pub mod budget;
pub mod checkpoint;
pub mod data;
pub mod net;
pub mod sgd;
pub mod trainer;

use std::path::PathBuf;
use std::sync::Once;

use thiserror::Error;

pub use budget::ChildCost;
pub use data::{Augment, DeviceData, DeviceImages, Prepare};
pub use net::{CnnNet, ForwardShapes};
pub use sgd::{FlatSgd, SgdConfig};
pub use trainer::{evaluate, evaluate_on, lr_at, CnnReport, CnnTrainer, DATASETS};

/// What can go wrong below the trainer; the trainer sorts these into
/// permanent and retryable job failures.
#[derive(Debug, Error)]
pub enum CnnError {
    /// The architecture cannot be built (the core's check failed).
    #[error("invalid architecture: {0}")]
    Arch(#[from] nasfleet_core::ArchError),
    /// A libtorch operation failed (e.g. out of memory on the device).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Inputs that do not fit together (shapes, sizes, a checkpoint's tensors).
    #[error("{0}")]
    Invalid(String),
    /// A checkpoint file could not be written or read.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Makes glibc keep freed activation memory in the heap instead of returning
/// it to the kernel after every training step (once per process; called by
/// [`CnnTrainer::new`]).
///
/// Why: a CPU training step allocates and frees megabytes of activations.
/// glibc serves blocks above its mmap threshold with fresh mappings and trims
/// the heap top above its trim threshold, so every step faults the same
/// memory back in. glibc raises both thresholds dynamically when a mapped
/// block of up to 32 MiB is freed; freeing one such block at start raises
/// them to their maximum (32 MiB / 64 MiB), where PyTorch's Python process
/// tends to end up anyway. Measured on a 6-layer child (23 CPU steps, batch
/// 32, 3x32x32): 335k page faults and 0.64 s of system time before, 62k and
/// 0.14 s after, 11% less wall time. Other allocators are unaffected; no
/// unsafe code or allocator configuration is involved.
pub fn raise_malloc_thresholds() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Just under glibc's DEFAULT_MMAP_THRESHOLD_MAX (32 MiB on 64-bit),
        // chunk header included; `black_box` keeps the pair from being elided.
        let block: Vec<u8> = Vec::with_capacity((32 << 20) - (64 << 10));
        drop(std::hint::black_box(block));
    });
}
