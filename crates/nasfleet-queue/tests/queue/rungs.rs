//! Early-stopping rungs, every backend: `record_rung` records a child's score
//! and decides once per (job, rung), with the rule of
//! `nasfleet_util::rung::decide` (the Lua mirrors it: the same cases run
//! against both backends and against the Rust reference), and refuses a
//! consumer that lost the lease exactly as `complete` does.

use std::time::Duration;

use nasfleet_queue::{
    Completion, JobQueue, Lease, QueueError, RungDecision, RungRecord, RungReply, RungRule,
};
use nasfleet_util::rung::decide;

use crate::support::{config, consumer, fetch_now, Harness};

const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_millis(1000);
const PAST_SHORT: Duration = Duration::from_millis(1150);

fn decided(r: RungReply) -> RungRecord {
    match r {
        RungReply::Decided(rec) => rec,
        other => panic!("expected a decision, got {other:?}"),
    }
}

/// Enqueues `n` jobs `j0..` and fetches them all for one consumer.
async fn leases<Q: JobQueue>(q: &Q, n: usize) -> (nasfleet_queue::Consumer, Vec<Lease>) {
    for i in 0..n {
        q.enqueue(&format!("j{i}"), "p").await.unwrap();
    }
    let w = consumer("w");
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(fetch_now(q, &w).await.expect("a job"));
    }
    (w, out)
}

/// Deterministic scores with ties, extremes and NaN (a tiny LCG: no rand
/// dependency in the queue's tests).
fn scores(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|i| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            match i % 11 {
                3 => 0.5, // ties
                7 if seed % 2 == 0 => f64::NAN,
                9 => 1e-300,
                _ => (s >> 11) as f64 / (1u64 << 53) as f64,
            }
        })
        .collect()
}

async fn decisions_follow_the_reference_rule<H: Harness>(h: &mut H) {
    let rules = [
        RungRule::Median { min_peers: 1 },
        RungRule::Median { min_peers: 4 },
        RungRule::Asha { eta: 2, min_peers: 1 },
        RungRule::Asha { eta: 3, min_peers: 3 },
        RungRule::Asha { eta: 4, min_peers: 1 },
    ];
    let q = h.queue(config(LONG)).await;
    let n = 14;
    let (w, ls) = leases(&q, n).await;
    for (epoch, rule) in (1u32..).zip(rules) {
        let values = scores(n, u64::from(epoch));
        // What the queue stores: NaN as the most negative double.
        let stored: Vec<f64> = values.iter().map(|v| if v.is_nan() { f64::MIN } else { *v }).collect();
        for (i, l) in ls.iter().enumerate() {
            let rec = decided(q.record_rung(&w, l, epoch, values[i], rule).await.unwrap());
            let want = decide(rule, stored[i], &stored[..i]);
            assert_eq!(rec.decision, want, "rule {rule:?}, child {i}: {:?} after {:?}", values[i], &stored[..i]);
            assert_eq!((rec.peers, rec.first), (i as u64, true));
            assert_eq!(rec.value.to_bits(), stored[i].to_bits(), "the score reads back bit for bit");
        }
    }
}

async fn a_rung_decides_once_per_child<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    let (w, ls) = leases(&q, 3).await;
    let rule = RungRule::Asha { eta: 2, min_peers: 1 };
    assert_eq!(decided(q.record_rung(&w, &ls[0], 2, 0.9, rule).await.unwrap()).decision, RungDecision::Continue);
    let first = decided(q.record_rung(&w, &ls[1], 2, 0.1, rule).await.unwrap());
    assert_eq!((first.decision, first.first), (RungDecision::Stop, true));
    // Asked again (a resumed child that trained to another score, a retry,
    // another handle after a restart): the recorded decision, nothing new.
    for again in [0.1, 0.95] {
        let rec = decided(q.record_rung(&w, &ls[1], 2, again, rule).await.unwrap());
        assert_eq!((rec.decision, rec.first, rec.value, rec.peers), (RungDecision::Stop, false, 0.1, 1));
    }
    let q2 = h.reopen().await;
    let rec = decided(q2.record_rung(&w, &ls[1], 2, 0.95, rule).await.unwrap());
    assert_eq!((rec.decision, rec.first), (RungDecision::Stop, false));
    // The repeated calls did not count as peers: the third child sees two.
    let third = decided(q.record_rung(&w, &ls[2], 2, 0.5, rule).await.unwrap());
    assert_eq!(third.peers, 2);
    assert_eq!(third.decision, decide(rule, 0.5, &[0.9, 0.1]));
    // Rungs are separate: at epoch 4 the first child to arrive has no peers.
    let other = decided(q.record_rung(&w, &ls[1], 4, 0.0, rule).await.unwrap());
    assert_eq!((other.peers, other.decision, other.first), (0, RungDecision::Continue, true));
    // Epoch 0 is no rung.
    let err = q.record_rung(&w, &ls[0], 0, 0.5, rule).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidInput { what: "rung epoch", .. }), "{err}");
}

async fn a_stale_worker_records_no_decision<H: Harness>(h: &mut H) {
    let q = h.queue(config(SHORT)).await;
    q.enqueue("j1", "p").await.unwrap();
    q.enqueue("j2", "p").await.unwrap();
    let (a, b) = (consumer("a"), consumer("b"));
    let peer = fetch_now(&q, &b).await.unwrap();
    let rule = RungRule::Median { min_peers: 1 };
    let stale = fetch_now(&q, &a).await.unwrap();
    assert_eq!(stale.job_id, "j2");
    decided(q.record_rung(&b, &peer, 1, 0.5, rule).await.unwrap());
    h.pass(PAST_SHORT).await;
    assert!(q.heartbeat(&b, &peer, "{}").await.unwrap());
    let fresh = fetch_now(&q, &b).await.expect("the expired lease is claimed");
    assert_eq!(fresh.job_id, "j2");
    // The stale owner is refused and records nothing: the new holder's call
    // is the first for (j2, 1).
    assert_eq!(q.record_rung(&a, &stale, 1, 0.0, rule).await.unwrap(), RungReply::LeaseLost);
    let rec = decided(q.record_rung(&b, &fresh, 1, 0.9, rule).await.unwrap());
    assert_eq!((rec.first, rec.decision, rec.peers), (true, RungDecision::Continue, 1));
    assert_eq!(q.complete(&b, &fresh, "{}").await.unwrap(), Completion::Recorded);
    // Once the job has its outcome, nobody records at its rungs.
    assert_eq!(q.record_rung(&a, &stale, 2, 0.0, rule).await.unwrap(), RungReply::Finished);
    assert_eq!(q.record_rung(&b, &fresh, 1, 0.9, rule).await.unwrap(), RungReply::Finished);
}

both_backends!(
    decisions_follow_the_reference_rule,
    a_rung_decides_once_per_child,
    a_stale_worker_records_no_decision,
);
