//! # nasfleet-torch
//!
//! The only crate that depends on tch (libtorch); checked by the `invariants`
//! test of the `nasfleet` crate. Tensors never leave the thread that owns
//! them: callers exchange plain data (tokens, rewards, metrics) with the
//! policy and trainer threads.
//!
//! # Layout
//!
//! - [`device`]: device selection (`auto`, `cpu`, `cuda:N`).
//! - [`cnn`]: CNN children — the builder (the paper's three rules), data on
//!   the device with batched augmentation, flat Nesterov SGD, checkpoints and
//!   [`cnn::CnnTrainer`].
//! - [`controller`]: the LSTM controller, REINFORCE, exact checkpoints and
//!   the policy thread behind [`controller::RlStrategy`] (the binary chooses
//!   between it and the pure-Rust strategies).
//! - [`rnn`]: recurrent-cell children — the cell builder (fused leaf
//!   projections), the language model, exact checkpoints and [`rnn::LmTrainer`].
//! - [`framed`]: the byte format of the controller's and the language
//!   model's checkpoints (JSON header, raw f32 tensors, every length checked).
//! - `optim` (crate-private): Adam and global-norm clipping, written once for
//!   the controller and the language-model children, with their state in
//!   plain tensors so checkpoints restore it exactly.
//! - `checkpoint_file` (crate-private): the file side of the children's
//!   checkpoints: atomic writes, `Ok(None)` for a missing file, errors that
//!   name the file.

mod checkpoint_file;
pub mod cnn;
pub mod controller;
pub mod device;
pub mod export;
pub mod framed;
mod optim;
pub mod rnn;

pub use tch;
