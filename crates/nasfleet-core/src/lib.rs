//! # nasfleet-core
//!
//! The pure core of nasfleet: everything that can be decided without a GPU,
//! a network or a clock. No tokio, no redis, no tch (checked by the
//! `invariants` test of the `nasfleet` binary crate), deterministic given an
//! explicit RNG, and tested in milliseconds.
//!
//! # Layout
//!
//! - [`schema`]: token schemas, the generic shape of a search space that the
//!   controller walks (decision types, choice steps, anchor steps), with
//!   uniform sampling and token checks.
//! - [`space`]: the three search spaces — the paper's CNN space ([`space::cnn`]),
//!   its recurrent-cell space ([`space::rnn_cell`]) and the NAS-Bench-201 cell
//!   ([`space::nb201`]) — each with decode (tokens → architecture), encode
//!   (architecture → tokens) and validation; [`space::Space`] dispatches.
//! - [`arch`]: the space-independent [`arch::Architecture`] and its versioned,
//!   strictly parsed JSON form (what travels in jobs).
//! - [`limits`]: hard bounds every architecture must satisfy.
//! - [`reward`]: the paper's rewards and the EMA baseline.
//! - [`config`]: experiment configuration (TOML, paper defaults).
//! - [`early_stop`]: asynchronous early stopping (`[early_stop]`): rungs,
//!   scores, and the median / ASHA decision.
//! - [`strategy`]: the interface every search strategy implements, with the
//!   two that need no libtorch (random search, regularised evolution) and a
//!   synthetic CNN reward to compare them in seconds.
//! - [`trainer`]: the trainer interface and the job / result wire types.
//! - [`error`]: the errors, each naming the field and the bound.

pub mod arch;
pub mod config;
pub mod draw;
pub mod early_stop;
mod config_fleet;
mod config_image;
mod config_lm;
mod config_table;
pub mod cost;
pub mod error;
pub mod limits;
pub mod pareto;
pub mod reward;
pub mod schema;
pub mod space;
pub mod strategy;
pub mod trainer;

pub use arch::Architecture;
pub use config::ExperimentConfig;
pub use error::{ArchError, ConfigError};
pub use limits::ArchLimits;
pub use schema::TokenSchema;
pub use space::{Space, SpaceKind};
