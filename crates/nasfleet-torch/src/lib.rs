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

pub mod device;

pub use tch;
