//! Integration tests of nasfleet-torch, one binary (libtorch is linked once):
//!
//! * `libtorch` — the toolchain: libtorch found, linked, loaded through the
//!   rpath of `build.rs`, computing; device specs.
//! * `cnn_builder`, `cnn_data`, `cnn_sgd`, `cnn_trainer`, `cnn_fashion` — CNN
//!   children: the builder against the core's resolver and PyTorch's shapes,
//!   the on-device data pipeline, the flat SGD against PyTorch's rule, the
//!   trainer's paths (budget, divergence, preemption, bit-identical resume),
//!   and a short run that learns Fashion-MNIST.
//! * `controller_sampling`, `controller_update`, `controller_checkpoint`,
//!   `controller_reference`, `controller_learning`, `controller_threads` — the
//!   RL controller: sampling, the REINFORCE update, exact checkpoints, the
//!   network against the PyTorch reference in `tests/reference/`, learning on
//!   the synthetic reward, and libtorch's per-thread thread count.
//! * `rnn_cell`, `rnn_trainer`, `rnn_train` — recurrent-cell children: the
//!   built cell against the paper's formulas, the language-model trainer's
//!   contract (exact resume, preemption, divergence), and a cell learning
//!   Jane Austen.
//!
//! The tests run in parallel threads of one process, so none may depend on
//! process-wide state another test changes: no result depends on torch's
//! global random generator (tests that need random values draw them from
//! their own seeded ChaCha8 stream), the trainers and the controller set
//! libtorch's thread count on their own threads, and the one test that
//! measures the process-wide default thread count runs alone in a child
//! process (`support::alone`).

mod cnn_builder;
mod cnn_data;
mod cnn_fashion;
mod cnn_sgd;
mod cnn_trainer;
mod controller_checkpoint;
mod controller_learning;
mod controller_reference;
mod controller_sampling;
mod controller_threads;
mod controller_update;
mod export_reference;
mod libtorch;
mod rnn_cell;
mod rnn_train;
mod rnn_trainer;
mod support;
