//! `nasfleet-queue`: the durable job queue between the nasfleet controller
//! and its workers, with one interface ([`JobQueue`]) and two backends —
//! Redis ([`RedisQueue`]) for a fleet, in-process ([`MemoryQueue`]) for the
//! embedded single-machine mode and tests.
//!
//! Goal: workers on preemptible machines die, stall, get preempted and lose
//! the network; Redis restarts; the controller crashes. Through all of it no
//! job is lost, no outcome is recorded twice, and nothing needs a human.
//! The queue never parses payloads or results: they are opaque strings.
//!
//! # Layout
//!
//! * [`queue`](JobQueue) — the [`JobQueue`] trait (each method's contract is
//!   in its docs) and [`AnyQueue`], a backend chosen at run time.
//! * `types` — plain data: [`Consumer`], [`Lease`], [`EnqueueOutcome`],
//!   [`Completion`], [`ResultEvent`], [`QueueStatus`], [`QueueConfig`].
//! * [`Keys`] — the Redis key names of one run.
//! * [`MemoryQueue`] — collections behind a `std::sync::Mutex`, leases on an
//!   injectable [`Clock`] ([`ManualClock`] in tests).
//! * [`RedisQueue`] — streams + consumer groups; every state transition is a
//!   function of the library `redis/nasfleet.lua` ([`LIBRARY_SOURCE`]), loaded
//!   with `FUNCTION LOAD REPLACE` and called with FCALL.
//! * `redis/users.acl.example` — least-privilege ACL users (admin, controller,
//!   worker, viewer).
//! * `testing` (feature `testing`) — a throwaway `redis-server` per test, a
//!   loopback TCP proxy that can cut the network, throwaway TLS certificates.
//!
//! Invariants: this crate depends on no other nasfleet crate and not on tch;
//! it never trims a stream (`MAXLEN` would delete in-flight entries, which
//! XAUTOCLAIM then silently drops).
//!
//! # The state machine
//!
//! ```text
//!  enqueue ─► waiting ─fetch─► leased(owner, deliveries) ─complete──────────► ok ────┐
//!  (idempotent:  ▲               │ │ │ │  heartbeat: extends the lease if owner      │
//!   enqueued /   │               │ │ │ └─dead_letter (permanent) ──────────► dead ───┤
//!   outcome      │   release     │ │ │                                               ▼
//!   checked)     ├───────────────┘ │ │  (graceful; delivery not counted)    results stream:
//!                │   abandon       │ │                                      controller reads,
//!                ├─────────────────┘ │  (retryable failure; counted)      checkpoints, acks
//!                │   lease expires   │
//!                └───────────────────┘  (worker died or stalled; counted)
//!
//!  every claim of a given-back job counts +1 (release pre-subtracts one);
//!  a claim that takes deliveries past max_deliveries dead-letters the job
//!  instead (reason `max_deliveries`); an operator's `requeue` takes a dead
//!  job back to waiting as a new entry (outcome and dead letters removed,
//!  deliveries from zero), in one function call.
//! ```
//!
//! On Redis: *waiting* = in `nasfleet:{run}:jobs`, not yet delivered to group
//! `workers`; *leased* = in the group's pending list, the lease being the
//! entry's idle time on the **server** clock (so worker clocks do not
//! matter); *ok*/*dead* = a record in the `outcome` hash, written with HSETNX
//! (first writer wins), an event on `results`, the job entry acknowledged and
//! deleted — all in one function, so there is no state in between.
//!
//! # The pitfalls, and how each is handled
//!
//! 1. **XACK does not check the owner.** `complete`, `dead_letter`,
//!    `release`, `abandon` and `heartbeat` check the pending entry's owner
//!    inside their function first. A consumer whose lease was taken over gets
//!    [`Completion::LeaseLost`] / `false` and changes nothing.
//! 2. **`XREADGROUP ... 0` counts a delivery.** Nothing re-reads its own
//!    pending list that way: lost deliveries are adopted with
//!    `XCLAIM ... JUSTID`, which does not count.
//! 3. **Phantom deliveries** (a client-side timeout shorter than BLOCK). The
//!    blocking read has no response timeout of its own, only an outer one of
//!    `block + block_margin`; it runs in a spawned task so cancelling the
//!    caller cannot abandon it (a job fetched for a caller that went away is
//!    released). If a reply is lost anyway, the entry sits in *this*
//!    consumer's pending list unknown to the handle; the fetch function
//!    hands such entries out first (the handle passes the ids it knows; only
//!    entries younger than the lease qualify, so a job this consumer
//!    released or abandoned is claimed, and counted, like any other).
//! 4. **A blocking read stalls its connection.** Blocking reads use
//!    dedicated connections; everything else goes through a
//!    `ConnectionManager`, so heartbeats never wait behind a fetch.
//! 5. **`ConnectionManager` returns the first error.** Each call is retried
//!    with backoff for [`RedisQueueConfig::retry_for`]; every call is
//!    idempotent (enqueue checks markers, completion reports
//!    `AlreadyRecorded` to a retry of the same lease, release computes the
//!    new delivery count from the lease, not by decrementing). A timed-out
//!    connection is replaced, since a half-open one may never error out.
//! 6. **Idle time survives a Redis restart.** Nothing to do in code but to
//!    keep the lease long relative to outages (default 5 min) and let
//!    workers heartbeat right after reconnecting (the retried heartbeat does).
//! 7. **Consumer names per incarnation.** [`Consumer::new`] makes
//!    `host-<uuid>`; consumers are never deleted.
//! 8. **Redis 7.0 commands only**: XAUTOCLAIM, XCLAIM, XPENDING, functions.
//!
//! # Early stopping
//!
//! [`JobQueue::record_rung`] records a leased child's score at a rung and
//! returns the decision of [`RungRule`] against the scores other children
//! recorded there before (`nasfleet_util::rung::decide`, mirrored by
//! `rung_decide` in the Lua), in one atomic step keyed by (job, epoch): a
//! repeated call returns the recorded decision. On Redis, one hash per rung,
//! `nasfleet:{run}:rung:<epoch>`, written only by `nasfleet_worker_rung`,
//! which checks the lease exactly as `complete` does.
//!
//! Results are at-least-once toward the controller: a restarted controller's
//! first [`JobQueue::read_results`] calls re-claim every unacknowledged event
//! of the `controller` group (whatever consumer name read it), so it must
//! checkpoint before [`JobQueue::ack_results`] and apply each job id once.

mod board;
mod error;
mod keys;
mod memory;
mod queue;
mod redis_queue;
mod reply;
mod types;

#[cfg(feature = "testing")]
pub mod testing;

pub use board::RedisBoard;
pub use error::{QueueError, Result};
pub use keys::{Keys, JOBS_GROUP, RESULTS_GROUP};
pub use memory::{Clock, ManualClock, MemoryQueue, MonotonicClock};
pub use queue::{AnyQueue, JobQueue};
pub use redis_queue::{RedisQueue, RedisQueueConfig, TlsFiles, LIBRARY_SOURCE, LIBRARY_VERSION};
pub use types::{
    local_hostname, Completion, Consumer, DeadLetter, EnqueueOutcome, InFlight, JobOutcome, Lease,
    RunLifecycle,
    QueueConfig, QueueStatus, Requeued, ResultEvent, WorkerState, MAX_BLOCK, MAX_CONSUMER_NAME_LEN,
    MAX_ERROR_TEXT_LEN, MAX_JOB_ID_LEN, MAX_LEASE, MAX_PROGRESS_LEN, MAX_READ, MAX_REASON_LEN,
    REASON_MAX_DELIVERIES,
};
pub use types::{RungDecision, RungRecord, RungReply, RungRule, MAX_RUNG_EPOCH};
