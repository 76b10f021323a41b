//! The paper's controller (Zoph & Le 2017, §2 of paper.md).
//!
//! - `policy` — a 2-layer, 35-unit LSTM stepped one token at a time
//!   over any [`TokenSchema`](nasfleet_core::schema::TokenSchema): one
//!   embedding table and one softmax head per decision type, a learned start
//!   input, anchor-point attention for skip connections. Sampling draws its
//!   uniforms from the controller's own seeded ChaCha8 RNG and inverts each
//!   decision's CDF, never torch's global RNG, so a checkpoint captures the
//!   randomness exactly.
//! - [`Controller`] — the network with its own Adam, the EMA baseline, the RNG
//!   and the depth-schedule position; the REINFORCE update; checkpoints to
//!   bytes after which samples and updates continue bit for bit.
//! - [`RlStrategy`] — the handle: the controller lives on a dedicated thread
//!   (libtorch single-threaded there, see [`use_one_libtorch_thread`]) and
//!   only plain data crosses to callers.
//!
//! The PyTorch module in `tests/reference/controller_reference.py` is the
//! same network written independently (unbatched); the tests check this one
//! against its log-probabilities.

mod checkpoint;
mod policy;
mod reinforce;
mod thread;

pub use reinforce::{Controller, ParameterInfo, Sample, Scored};
pub use thread::{use_one_libtorch_thread, RlStrategy};
