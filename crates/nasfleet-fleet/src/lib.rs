//! `nasfleet-fleet`: the controller and worker loops of a nasfleet search,
//! over any [`JobQueue`](nasfleet_queue::JobQueue) — Redis for a fleet of
//! machines, the in-memory queue for one machine — with any search strategy
//! and any trainer.
//!
//! Goal: workers on preemptible machines die, stall, get preempted and lose
//! the network; Redis restarts; the controller crashes. Every child still
//! ends with exactly one outcome, every reward is applied exactly once, and
//! the controller's sequence of strategy calls equals an uninterrupted run's.
//!
//! # Layout
//!
//! * [`worker`] — [`run_worker`]: fetch, [`validate`] the payload before
//!   allocating anything, train on the trainer thread
//!   ([`trainer_thread`]) while heartbeating with per-epoch progress, then
//!   complete / dead-letter / abandon / release. SIGTERM: the trainer
//!   checkpoints, the job is released without spending a delivery.
//! * [`controller`] — [`run_controller`]: keeps `max_in_flight` jobs
//!   outstanding, applies one update per batch of m results in issue order,
//!   checkpoints ([`rundir`]) before acknowledging, resumes exactly.
//! * [`local`] — [`run_local`]: controller + N workers in one process over
//!   the in-memory queue (`nasfleet local`).
//! * [`status`] — the operator's snapshot (`nasfleet controller status`);
//!   [`board`] — what the controller publishes beside the queue (its state,
//!   which status reads, and the run's settings, which workers read).
//! * [`stop`] and [`requeue`] — operator actions on a run
//!   (`nasfleet controller stop`, `nasfleet controller requeue`: dead
//!   letters back in the queue; their results arrive as late children).
//! * [`settings`] — the one resolution of fleet settings (config file, the
//!   run's published settings, a worker's flags and environment);
//!   [`shutdown`] — SIGINT/SIGTERM as one value passed down; [`ids`] — job
//!   ids and child seeds.
//! * `fake` (feature `fake-trainer`) — a deterministic stand-in trainer with
//!   crash and ignore-SIGTERM switches, and the `nasfleet-fleet-node` binary
//!   the fault tests run as separate processes. The `nasfleet` binary never
//!   enables the feature.
//!
//! Collaborators are parameters — the queue, the strategy, the trainer sets
//! and a [`Shutdown`] — so the same loops run in the fleet, in the embedded
//! mode and in tests.
//!
//! Invariants: no dependency on tch (checked by the `nasfleet` crate's
//! invariants test); tensors never reach this crate — trainers own theirs on
//! the trainer thread, and only plain data (jobs, metrics, outcomes) crosses.

pub mod board;
pub mod controller;
mod error;
#[cfg(feature = "fake-trainer")]
pub mod fake;
pub mod ids;
pub mod local;
pub mod preemption;
pub mod requeue;
pub mod rundir;
pub mod settings;
pub mod shutdown;
pub mod status;
pub mod stop;
pub mod trainer_thread;
pub mod validate;
pub mod worker;

pub use board::{wait_for_settings, Board, ControllerState, MemoryBoard};
pub use nasfleet_queue::RedisBoard;
pub use controller::{run_controller, ControllerOptions, ControllerSummary, Point, Probe};
pub use error::{FleetError, Result};
pub use local::{local_queue, run_local, run_local_on, LocalOptions};
pub use preemption::{signal_or_notice, watch as watch_preemption, Notice, NoticeSource, NoticeWatcher};
pub use settings::{parse_duration, FleetSettings, RunSettings, WorkerOverrides, RUN_SETTINGS_VERSION};
pub use shutdown::{on_signals, shutdown_pair, Shutdown, ShutdownTrigger};
pub use status::{collect_status, render_text, StatusReport};
pub use requeue::{requeue, RequeueReport};
pub use stop::request_stop;
pub use trainer_thread::{TrainerSet, TrainerSets};
pub use validate::{validate_job, Rejection};
pub use worker::{run_worker, WorkerOptions, WorkerReport};
