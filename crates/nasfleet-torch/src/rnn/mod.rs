//! Recurrent-cell children (paper.md §5–6): a sampled cell as a tch module,
//! the language model around it, and the trainer that turns a cell into the
//! paper's reward `c / (validation perplexity)²`.
//!
//! - [`cell`] — [`RecurrentCell`]: a [`CellArch`](nasfleet_core::space::CellArch)
//!   of any base, extended functions included, with the exact semantics of the
//!   core's module doc; all leaf projections are two fused matrices.
//! - [`lm`] — [`LanguageModel`]: embedding, stacked cells, softmax; word,
//!   input, variational recurrent and output dropout drawn from our own RNG;
//!   optional tied embeddings; parameter counting and budget matching.
//! - `sgd` — [`Sgd`], plain SGD with global-norm clipping, written out on
//!   the model's tensors; the other optimiser, Adam, is the crate's one
//!   (`crate::optim`), shared with the controller.
//! - [`data`] — dataset names (`ptb`, `austen`, `-char` variants), finding or
//!   preparing their files, BPTT batching.
//! - `checkpoint` — the exact per-epoch checkpoint file.
//! - [`trainer`] — [`LmTrainer`], the [`Trainer`](nasfleet_core::trainer::Trainer)
//!   for rnn-cell jobs, and [`LmReport`] (test perplexity, bits per character).

pub mod cell;
mod checkpoint;
pub mod data;
pub mod lm;
mod sgd;
pub mod trainer;

use thiserror::Error;

pub use cell::{CellState, LeafWeights, RecurrentCell};
pub use data::{LmCorpus, LmDataset};
pub use lm::{Dropouts, LanguageModel, LmInit, LmShape};
pub use sgd::Sgd;
pub use trainer::{bits_per_char, LmReport, LmTrainer};

/// Why a cell or model could not be built.
#[derive(Debug, Error)]
pub enum RnnError {
    /// The cell architecture is invalid (the core's check failed).
    #[error("invalid cell: {0}")]
    Arch(#[from] nasfleet_core::ArchError),
    /// Sizes that cannot make a cell or model (a vocabulary, hidden size,
    /// input size or layer count below 1).
    #[error("{0}")]
    Shape(String),
}
