//! Integration tests of nasfleet-queue, one binary:
//!
//! * `conformance` — one generic suite, run against [`MemoryQueue`] and
//!   [`RedisQueue`] through the [`support::Harness`] trait.
//! * `faults` — Redis only: kill -9 / restart, network cuts through a proxy,
//!   blocking reads vs heartbeats, cancelled and lost fetches.
//! * `acl` — the shipped `redis/users.acl.example`, allowed and refused calls.
//! * `tls` — TLS-only redis-server with throwaway certificates.
//! * `invariants` — architecture rules stated as absences.
//! * `rungs` — early-stopping rungs (`record_rung`), both backends, against
//!   the reference rule.
//!
//! Every Redis test starts its own `redis-server` on a free loopback port
//! (see `nasfleet_queue::testing`).
//!
//! [`MemoryQueue`]: nasfleet_queue::MemoryQueue
//! [`RedisQueue`]: nasfleet_queue::RedisQueue

/// Runs each generic test `fn name<H: Harness>(h: &mut H)` listed against
/// both backends: `memory::name` and `redis::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&mut crate::support::MemoryHarness::new()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&mut crate::support::RedisHarness::start()).await;
                }
            )*
        }
    };
}

mod acl;
mod conformance;
mod faults;
mod invariants;
mod rungs;
mod support;
mod tls;
