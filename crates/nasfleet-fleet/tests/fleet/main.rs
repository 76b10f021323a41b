//! Integration tests of nasfleet-fleet, one binary:
//!
//! * `configs` — every shipped config's children pass a worker's
//!   validation under the settings its controller publishes.
//! * `early_stop` — asynchronous early stopping in process and under
//!   faults at a rung decision (kill -9, SIGTERM, a stale lease).
//! * `local` — the embedded mode over the in-memory queue: the update
//!   sequence does not depend on worker count or timing, stop + resume,
//!   refusals, untrusted results.
//! * `faults` — the ten fault scenarios of the queue spec against a real
//!   `redis-server` each test starts on a free loopback port, with worker
//!   and controller processes (`nasfleet-fleet-node`) killed, stopped and
//!   signalled by pid. In each, every job ends with exactly one outcome and
//!   the run's history and update sequence equal an uninterrupted run's.
//! * `lifecycle` — `controller stop` then `--resume` equals an
//!   uninterrupted run; workers leave when the run is over or idle; no
//!   checkpoint directory outlives its child.
//! * `preemption` — spot notices from a metadata endpoint served by the
//!   test: a release mid-epoch and a notice during the final post.
//! * `security` — the shipped ACL users running a fleet with least
//!   privilege, and a fleet over TLS (`rediss://`).

mod configs;
mod early_stop;
mod faults;
mod lifecycle;
mod local;
mod preemption;
mod security;
mod support;
