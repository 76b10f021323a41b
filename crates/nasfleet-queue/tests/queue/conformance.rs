//! One suite, every backend: the semantics the worker and controller loops
//! rely on must not depend on where the queue lives.

use std::collections::BTreeSet;
use std::time::Duration;

use nasfleet_queue::{
    Completion, EnqueueOutcome, JobOutcome, JobQueue, QueueConfig, QueueError, RunLifecycle,
    REASON_MAX_DELIVERIES,
};

use crate::support::{
    assert_each_job_finished_once, config, consumer, fetch_now, only_result, results, Harness,
};

/// Long enough never to expire during a test.
const LONG: Duration = Duration::from_secs(600);
/// Short enough to wait out (Redis tests really sleep).
const SHORT: Duration = Duration::from_millis(1000);
/// Comfortably past a SHORT lease.
const PAST_SHORT: Duration = Duration::from_millis(1150);

async fn enqueue_is_idempotent<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    let first = q.enqueue("j1", r#"{"arch":1}"#).await.unwrap();
    let EnqueueOutcome::Enqueued { entry_id } = first else {
        panic!("first enqueue: {first:?}")
    };
    assert_eq!(
        q.enqueue("j1", r#"{"arch":"other"}"#).await.unwrap(),
        EnqueueOutcome::AlreadyEnqueued {
            entry_id: entry_id.clone()
        }
    );
    let a = consumer("a");
    let lease = fetch_now(&q, &a).await.expect("the job");
    // The second enqueue did not replace the payload.
    assert_eq!(lease.payload, r#"{"arch":1}"#);
    assert_eq!(lease.entry_id, entry_id);
    assert!(
        fetch_now(&q, &consumer("b")).await.is_none(),
        "only one copy was queued"
    );
    assert_eq!(
        q.complete(&a, &lease, "{}").await.unwrap(),
        Completion::Recorded
    );
    assert_eq!(
        q.enqueue("j1", "{}").await.unwrap(),
        EnqueueOutcome::AlreadyFinished
    );
    let s = q.status(10).await.unwrap();
    assert_eq!((s.enqueued, s.outcomes, s.depth), (1, 1, 0));

    for bad in ["", "has\nnewline", &"x".repeat(300)] {
        let err = q.enqueue(bad, "{}").await.unwrap_err();
        assert!(
            matches!(err, QueueError::InvalidInput { what: "job id", .. }),
            "{bad:?}: {err}"
        );
    }
}

async fn fetch_then_complete<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    assert!(fetch_now(&q, &consumer("a")).await.is_none(), "empty queue");
    q.enqueue("j1", "payload-1").await.unwrap();
    q.enqueue("j2", "payload-2").await.unwrap();
    let a = consumer("a");
    let l1 = fetch_now(&q, &a).await.expect("j1");
    assert_eq!(
        (l1.job_id.as_str(), l1.payload.as_str(), l1.deliveries),
        ("j1", "payload-1", 1)
    );
    let l2 = fetch_now(&q, &consumer("b")).await.expect("j2");
    assert_eq!(l2.job_id, "j2");
    assert!(fetch_now(&q, &consumer("c")).await.is_none());

    assert!(q.heartbeat(&a, &l1, r#"{"epoch":1}"#).await.unwrap());
    assert_eq!(
        q.complete(&a, &l1, r#"{"reward":0.5}"#).await.unwrap(),
        Completion::Recorded
    );
    let s = q.status(10).await.unwrap();
    assert_eq!(
        (s.depth, s.in_flight_total, s.outcomes, s.results),
        (0, 1, 1, 1)
    );

    let ctl = consumer("controller");
    let events = q.read_results(&ctl, 10, Duration::ZERO).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].job_id, "j1");
    assert_eq!(events[0].by, a.name());
    assert_eq!(
        events[0].outcome,
        JobOutcome::Ok {
            result: r#"{"reward":0.5}"#.into()
        }
    );
}

async fn duplicate_completion_is_recorded_once<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    q.enqueue("j1", "p").await.unwrap();
    let (a, b) = (consumer("a"), consumer("b"));
    let lease = fetch_now(&q, &a).await.unwrap();
    assert_eq!(
        q.complete(&a, &lease, "first").await.unwrap(),
        Completion::Recorded
    );
    // A retry after a lost reply.
    assert_eq!(
        q.complete(&a, &lease, "first").await.unwrap(),
        Completion::AlreadyRecorded
    );
    // Someone else with the same lease data: nothing applied.
    assert_eq!(
        q.complete(&b, &lease, "second").await.unwrap(),
        Completion::Duplicate
    );
    assert_eq!(
        q.dead_letter(&b, &lease, "invalid_payload", "late")
            .await
            .unwrap(),
        Completion::Duplicate
    );
    let s = q.status(10).await.unwrap();
    assert_eq!((s.results, s.outcomes, s.dead_total), (1, 1, 0));
    assert_eq!(
        only_result(&q).await.outcome,
        JobOutcome::Ok {
            result: "first".into()
        }
    );
}

async fn lease_expiry_reassigns_and_fences_the_stale_owner<H: Harness>(h: &mut H) {
    let q = h.queue(config(SHORT)).await;
    q.enqueue("j1", "p").await.unwrap();
    let (a, b) = (consumer("a"), consumer("b"));
    let stale = fetch_now(&q, &a).await.unwrap();
    h.pass(PAST_SHORT).await;
    let fresh = fetch_now(&q, &b).await.expect("expired lease is claimed");
    assert_eq!(
        (fresh.job_id.as_str(), fresh.entry_id.as_str()),
        ("j1", stale.entry_id.as_str())
    );
    assert_eq!(fresh.deliveries, 2);

    assert!(
        !q.heartbeat(&a, &stale, "{}").await.unwrap(),
        "stale owner must abort"
    );
    assert_eq!(
        q.complete(&a, &stale, "stale").await.unwrap(),
        Completion::LeaseLost
    );
    assert!(
        !q.release(&a, &stale).await.unwrap(),
        "the stale owner has nothing to release"
    );
    assert!(q.heartbeat(&b, &fresh, "{}").await.unwrap());
    assert_eq!(
        q.complete(&b, &fresh, "fresh").await.unwrap(),
        Completion::Recorded
    );
    assert_eq!(
        q.complete(&a, &stale, "stale").await.unwrap(),
        Completion::Duplicate
    );

    let s = q.status(10).await.unwrap();
    assert_eq!((s.results, s.outcomes, s.in_flight_total), (1, 1, 0));
    assert_eq!(only_result(&q).await.by, b.name());
}

async fn heartbeat_extends_the_lease<H: Harness>(h: &mut H) {
    let lease = Duration::from_millis(2000);
    let q = h.queue(config(lease)).await;
    q.enqueue("j1", "p").await.unwrap();
    let a = consumer("a");
    let l = fetch_now(&q, &a).await.unwrap();
    h.pass(Duration::from_millis(1200)).await;
    assert!(q.heartbeat(&a, &l, "{}").await.unwrap());
    h.pass(Duration::from_millis(1200)).await;
    // 2.4 s since the fetch, 1.2 s since the heartbeat: still a's.
    assert!(fetch_now(&q, &consumer("b")).await.is_none());
    assert_eq!(
        q.complete(&a, &l, "ok").await.unwrap(),
        Completion::Recorded
    );
}

async fn release_does_not_spend_a_delivery<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    q.enqueue("j1", "p").await.unwrap();
    let same = consumer("same");
    for i in 0..10 {
        // Alternate: the releasing worker itself fetches again (its pending
        // entry must not be mistaken for a lost delivery), or another one.
        let who = if i % 2 == 0 {
            same.clone()
        } else {
            consumer(&format!("w{i}"))
        };
        let lease = fetch_now(&q, &who)
            .await
            .expect("released job is claimable at once");
        assert_eq!(
            lease.deliveries, 1,
            "release #{i} must not count as a delivery"
        );
        assert!(
            !q.release(&consumer("intruder"), &lease).await.unwrap(),
            "only the owner releases"
        );
        assert!(q.release(&who, &lease).await.unwrap());
        if i == 0 {
            // A retried release (lost reply) gives nothing back twice.
            assert!(q.release(&who, &lease).await.unwrap());
        }
    }
    let last = consumer("last");
    let lease = fetch_now(&q, &last).await.unwrap();
    assert_eq!(lease.deliveries, 1);
    assert_eq!(
        q.complete(&last, &lease, "done").await.unwrap(),
        Completion::Recorded
    );
    let s = q.status(10).await.unwrap();
    assert_eq!((s.dead_total, s.outcomes), (0, 1));
}

async fn abandon_counts_the_delivery_without_waiting_for_the_lease<H: Harness>(h: &mut H) {
    let q = h
        .queue(QueueConfig {
            max_deliveries: 2,
            ..config(LONG)
        })
        .await;
    q.enqueue("flaky", "p").await.unwrap();
    // One flaky worker failing again and again, then another one.
    let who = consumer("flaky-worker");
    for attempt in 1..=2u64 {
        let lease = fetch_now(&q, &who).await.expect("claimable at once");
        assert_eq!(lease.deliveries, attempt);
        assert!(!q.abandon(&consumer("intruder"), &lease).await.unwrap());
        assert!(q.abandon(&who, &lease).await.unwrap());
    }
    assert!(
        fetch_now(&q, &consumer("w3")).await.is_none(),
        "third delivery dead-letters it"
    );
    let s = q.status(10).await.unwrap();
    assert_eq!((s.dead_total, s.outcomes), (1, 1));
    assert_eq!(s.dead_letters[0].reason, REASON_MAX_DELIVERIES);
}

async fn poison_job_is_dead_lettered_after_the_limit<H: Harness>(h: &mut H) {
    let q = h
        .queue(QueueConfig {
            max_deliveries: 3,
            ..config(SHORT)
        })
        .await;
    q.enqueue("poison", "crashes-every-time").await.unwrap();
    for attempt in 1..=3u64 {
        // Each worker "crashes": it never heartbeats or completes.
        let lease = fetch_now(&q, &consumer(&format!("w{attempt}")))
            .await
            .expect("delivered");
        assert_eq!(lease.deliveries, attempt);
        h.pass(PAST_SHORT).await;
    }
    let w4 = consumer("w4");
    assert!(
        fetch_now(&q, &w4).await.is_none(),
        "4th delivery is dead-lettered instead"
    );
    let s = q.status(10).await.unwrap();
    assert_eq!(
        (s.dead_total, s.outcomes, s.in_flight_total, s.depth),
        (1, 1, 0, 0)
    );
    let d = &s.dead_letters[0];
    assert_eq!(
        (d.job_id.as_str(), d.reason.as_str()),
        ("poison", REASON_MAX_DELIVERIES)
    );
    assert_eq!(d.deliveries, 4);
    assert_eq!(d.payload, "crashes-every-time");
    assert!(
        matches!(&only_result(&q).await.outcome, JobOutcome::Dead { reason, .. } if reason == REASON_MAX_DELIVERIES)
    );
    assert_eq!(
        q.enqueue("poison", "again").await.unwrap(),
        EnqueueOutcome::AlreadyFinished
    );
}

async fn dead_letter_is_permanent<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    q.enqueue("bad", r#"{"layers":1000000}"#).await.unwrap();
    let a = consumer("a");
    let lease = fetch_now(&q, &a).await.unwrap();
    let err = q
        .dead_letter(&a, &lease, "Not A Token", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::InvalidInput {
                what: "dead-letter reason",
                ..
            }
        ),
        "{err}"
    );
    let long_error = "e".repeat(10_000);
    assert_eq!(
        q.dead_letter(&a, &lease, "over_budget", &long_error)
            .await
            .unwrap(),
        Completion::Recorded
    );
    assert_eq!(
        q.dead_letter(&a, &lease, "over_budget", &long_error)
            .await
            .unwrap(),
        Completion::AlreadyRecorded
    );
    assert!(
        fetch_now(&q, &consumer("b")).await.is_none(),
        "no retry after a dead letter"
    );
    let s = q.status(10).await.unwrap();
    assert_eq!(
        (s.dead_total, s.outcomes, s.results, s.in_flight_total),
        (1, 1, 1, 0)
    );
    let d = &s.dead_letters[0];
    assert_eq!(d.reason, "over_budget");
    assert_eq!(d.error.len(), nasfleet_queue::MAX_ERROR_TEXT_LEN);
    assert_eq!(d.payload, r#"{"layers":1000000}"#);
    assert_eq!((d.deliveries, d.consumer.as_str()), (1, a.name()));
    let events = results(&q, 10).await;
    assert!(
        matches!(&events[0].outcome, JobOutcome::Dead { reason, .. } if reason == "over_budget")
    );
}

async fn results_are_reread_until_acknowledged<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    let w = consumer("w");
    for j in ["j1", "j2", "j3"] {
        q.enqueue(j, "p").await.unwrap();
        let lease = fetch_now(&q, &w).await.unwrap();
        assert_eq!(
            q.complete(&w, &lease, j).await.unwrap(),
            Completion::Recorded
        );
    }
    let ids = |events: &[nasfleet_queue::ResultEvent]| -> BTreeSet<String> {
        events.iter().map(|e| e.id.clone()).collect()
    };
    let first = q
        .read_results(&consumer("ctl1"), 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    // Read but not acknowledged: a restarted controller (new handle, new
    // name) sees the same events again, in pages of `max`.
    let q2 = h.reopen().await;
    let ctl2 = consumer("ctl2");
    let mut again = q2.read_results(&ctl2, 2, Duration::ZERO).await.unwrap();
    assert_eq!(again.len(), 2);
    again.extend(q2.read_results(&ctl2, 2, Duration::ZERO).await.unwrap());
    assert_eq!(ids(&again), ids(&first));
    assert!(q2
        .read_results(&ctl2, 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());

    let acked: Vec<String> = first.iter().take(2).map(|e| e.id.clone()).collect();
    assert_eq!(q2.ack_results(&acked).await.unwrap(), 2);
    assert_eq!(
        q2.ack_results(&acked).await.unwrap(),
        0,
        "acking twice is harmless"
    );
    let q3 = h.reopen().await;
    let rest = q3
        .read_results(&consumer("ctl3"), 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, first[2].id);
    assert_eq!(q3.ack_results(&[rest[0].id.clone()]).await.unwrap(), 1);
    let q4 = h.reopen().await;
    assert!(q4
        .read_results(&consumer("ctl4"), 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());

    let err = q4.ack_results(&["not-an-id".to_owned()]).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidInput { .. }), "{err}");
}

async fn status_shows_the_whole_picture<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    for j in ["j1", "j2", "j3"] {
        q.enqueue(j, &format!("payload-{j}")).await.unwrap();
    }
    let (a, idle, c) = (
        consumer("host-a"),
        consumer("host-idle"),
        consumer("host-c"),
    );
    let l1 = fetch_now(&q, &a).await.unwrap();
    assert!(q.heartbeat(&a, &l1, r#"{"step":3}"#).await.unwrap());
    q.worker_alive(&idle).await.unwrap();
    let l2 = fetch_now(&q, &c).await.unwrap();
    q.worker_alive(&c).await.unwrap();
    assert_eq!(
        q.dead_letter(&c, &l2, "invalid_payload", "bad json")
            .await
            .unwrap(),
        Completion::Recorded
    );

    let s = q.status(10).await.unwrap();
    assert_eq!((s.depth, s.in_flight_total, s.enqueued), (1, 1, 3));
    assert_eq!((s.results, s.outcomes, s.dead_total), (1, 1, 1));
    assert_eq!(s.in_flight.len(), 1);
    let f = &s.in_flight[0];
    assert_eq!(
        (f.job_id.as_str(), f.owner.as_str(), f.deliveries),
        ("j1", a.name(), 1)
    );
    assert_eq!(f.entry_id, l1.entry_id);

    let names: Vec<&str> = s.workers.iter().map(|w| w.consumer.as_str()).collect();
    let mut expected = vec![a.name(), idle.name(), c.name()];
    expected.sort();
    assert_eq!(names, expected);
    let wa = s.workers.iter().find(|w| w.consumer == a.name()).unwrap();
    assert_eq!(wa.job_id.as_deref(), Some("j1"));
    assert_eq!(wa.progress.as_deref(), Some(r#"{"step":3}"#));
    assert_eq!((wa.host.as_str(), wa.device.as_str()), ("host-a", "cpu"));
    for w in s.workers.iter().filter(|w| w.consumer != a.name()) {
        assert_eq!(
            (w.job_id.as_deref(), w.progress.as_deref()),
            (None, None),
            "{}",
            w.consumer
        );
    }
    assert_eq!(s.dead_letters.len(), 1);
    assert_eq!(
        (
            s.dead_letters[0].job_id.as_str(),
            s.dead_letters[0].error.as_str()
        ),
        ("j2", "bad json")
    );

    let capped = q.status(0).await.unwrap();
    assert!(capped.in_flight.is_empty() && capped.dead_letters.is_empty());
    assert_eq!(capped.in_flight_total, 1);
}

async fn worker_state_expires<H: Harness>(h: &mut H) {
    let q = h
        .queue(QueueConfig {
            worker_ttl: Duration::from_millis(500),
            ..config(LONG)
        })
        .await;
    q.worker_alive(&consumer("w")).await.unwrap();
    assert_eq!(q.status(10).await.unwrap().workers.len(), 1);
    h.pass(Duration::from_millis(700)).await;
    assert!(q.status(10).await.unwrap().workers.is_empty());
}

async fn blocked_fetch_wakes_on_enqueue<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    let a = consumer("a");
    let waiting = {
        let (q, a) = (q.clone(), a.clone());
        tokio::spawn(async move { q.fetch(&a, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    q.enqueue("j1", "p").await.unwrap();
    let lease = waiting
        .await
        .unwrap()
        .unwrap()
        .expect("woken by the enqueue");
    assert_eq!(lease.job_id, "j1");
}

async fn a_lease_for_another_job_is_refused<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    q.enqueue("j1", "p").await.unwrap();
    let a = consumer("a");
    let mut lease = fetch_now(&q, &a).await.unwrap();
    lease.job_id = "j-other".into();
    let err = q.complete(&a, &lease, "x").await.unwrap_err();
    assert!(
        matches!(err, QueueError::InvalidInput { what: "lease", .. }),
        "{err}"
    );
    assert_eq!(q.status(10).await.unwrap().outcomes, 0);
}

async fn many_workers_finish_every_job_exactly_once<H: Harness>(h: &mut H) {
    const JOBS: usize = 30;
    let q = h.queue(config(LONG)).await;
    for i in 0..JOBS {
        q.enqueue(&format!("job-{i}"), &i.to_string())
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (q, me) = (q.clone(), consumer(&format!("w{w}")));
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut idle_rounds = 0;
            while idle_rounds < 3 {
                let Some(lease) = q.fetch(&me, Duration::from_millis(100)).await.unwrap() else {
                    idle_rounds += 1;
                    continue;
                };
                idle_rounds = 0;
                let i: usize = lease.payload.parse().unwrap();
                // Preempt every third job once, as a spot instance would.
                if i % 3 == 0 && lease.deliveries == 1 && !mine.contains(&lease.job_id) {
                    mine.push(lease.job_id.clone());
                    assert!(q.release(&me, &lease).await.unwrap());
                    continue;
                }
                assert!(q.heartbeat(&me, &lease, "{}").await.unwrap());
                let c = q.complete(&me, &lease, &lease.payload).await.unwrap();
                assert_eq!(c, Completion::Recorded, "{}", lease.job_id);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_each_job_finished_once(&q, JOBS).await;
}

async fn lifecycle_and_finished_jobs_are_visible<H: Harness>(h: &mut H) {
    let q = h.queue(config(LONG)).await;
    assert_eq!(q.lifecycle().await.unwrap(), RunLifecycle::Running, "never set: running");
    for state in [RunLifecycle::Stopping, RunLifecycle::Stopped, RunLifecycle::Running, RunLifecycle::Finished] {
        q.set_lifecycle(state).await.unwrap();
        assert_eq!(q.lifecycle().await.unwrap(), state);
        assert_eq!(state.is_over(), state != RunLifecycle::Running);
    }
    q.enqueue("ok", "{}").await.unwrap();
    q.enqueue("dead", "{}").await.unwrap();
    assert!(!q.is_finished("ok").await.unwrap());
    let a = consumer("a");
    for _ in 0..2 {
        let lease = fetch_now(&q, &a).await.expect("a job");
        if lease.job_id == "ok" {
            q.complete(&a, &lease, "{}").await.unwrap();
        } else {
            q.dead_letter(&a, &lease, "invalid_payload", "bad").await.unwrap();
        }
    }
    assert!(q.is_finished("ok").await.unwrap(), "completed");
    assert!(q.is_finished("dead").await.unwrap(), "dead-lettered");
    assert!(!q.is_finished("never-issued").await.unwrap());
    assert!(q.is_finished("").await.is_err(), "a bad job id is refused");
}

async fn requeue_puts_dead_letters_back_once<H: Harness>(h: &mut H) {
    let q = h
        .queue(QueueConfig {
            max_deliveries: 2,
            ..config(SHORT)
        })
        .await;
    for job in ["ok", "dead", "poison", "waiting"] {
        q.enqueue(job, &format!("payload-{job}")).await.unwrap();
    }
    let a = consumer("a");
    for _ in 0..3 {
        let lease = fetch_now(&q, &a).await.expect("a job");
        match lease.job_id.as_str() {
            "ok" => assert_eq!(q.complete(&a, &lease, "{}").await.unwrap(), Completion::Recorded),
            "dead" => assert_eq!(
                q.dead_letter(&a, &lease, "invalid_payload", "bad").await.unwrap(),
                Completion::Recorded
            ),
            // Left to its lease: it crashes twice and is dead-lettered by the queue.
            "poison" => {}
            other => panic!("unexpected {other}"),
        }
    }
    h.pass(PAST_SHORT).await;
    let again = fetch_now(&q, &consumer("b")).await.expect("poison, second delivery");
    assert_eq!((again.job_id.as_str(), again.deliveries), ("poison", 2));
    h.pass(PAST_SHORT).await;
    // The third fetch dead-letters poison (max_deliveries) and hands out "waiting".
    let waiting = fetch_now(&q, &consumer("c")).await.expect("waiting");
    assert_eq!(waiting.job_id, "waiting");
    assert_eq!(q.status(10).await.unwrap().dead_total, 2);
    let ask: Vec<String> = ["dead", "ok", "waiting", "never", "poison", "dead"].map(String::from).into();
    let answers = q.requeue(&ask).await.unwrap();
    let tags: Vec<&str> = answers.iter().map(|a| a.as_str()).collect();
    assert_eq!(tags, ["requeued", "finished", "pending", "unknown", "requeued", "pending"]);
    let s = q.status(10).await.unwrap();
    assert_eq!((s.dead_total, s.outcomes, s.depth), (0, 1, 2), "dead letters gone, both queued again");
    assert!(!q.is_finished("dead").await.unwrap() && !q.is_finished("poison").await.unwrap());
    assert_eq!(
        q.enqueue("dead", "other").await.unwrap(),
        EnqueueOutcome::AlreadyEnqueued { entry_id: match &answers[0] {
            nasfleet_queue::Requeued::Requeued { entry_id } => entry_id.clone(),
            other => panic!("{other:?}"),
        } },
        "the requeued entry is the job's one entry"
    );
    // Back with the same payload and a fresh delivery count; a second
    // life ends in one new outcome and one new result event.
    let d = consumer("d");
    let mut seen = BTreeSet::new();
    for _ in 0..2 {
        let lease = fetch_now(&q, &d).await.expect("a requeued job");
        assert_eq!(lease.deliveries, 1, "{}: deliveries start afresh", lease.job_id);
        assert_eq!(lease.payload, format!("payload-{}", lease.job_id));
        assert_eq!(q.complete(&d, &lease, "fixed").await.unwrap(), Completion::Recorded);
        seen.insert(lease.job_id);
    }
    assert_eq!(seen, BTreeSet::from(["dead".to_owned(), "poison".to_owned()]));
    assert!(fetch_now(&q, &d).await.is_none());
    let events = results(&q, 10).await;
    let fixed: Vec<&str> = events
        .iter()
        .filter(|e| matches!(&e.outcome, JobOutcome::Ok { result } if result == "fixed"))
        .map(|e| e.job_id.as_str())
        .collect();
    assert_eq!(fixed.len(), 2, "one new event per requeued job: {fixed:?}");
    assert_eq!(
        q.requeue(&["dead".to_owned()]).await.unwrap(),
        vec![nasfleet_queue::Requeued::Finished],
        "a job that finished after its requeue stays finished"
    );
    assert!(q.requeue(&[String::new()]).await.is_err(), "a bad job id is refused");
}

both_backends!(
    enqueue_is_idempotent,
    fetch_then_complete,
    duplicate_completion_is_recorded_once,
    lease_expiry_reassigns_and_fences_the_stale_owner,
    heartbeat_extends_the_lease,
    release_does_not_spend_a_delivery,
    abandon_counts_the_delivery_without_waiting_for_the_lease,
    poison_job_is_dead_lettered_after_the_limit,
    dead_letter_is_permanent,
    results_are_reread_until_acknowledged,
    status_shows_the_whole_picture,
    worker_state_expires,
    blocked_fetch_wakes_on_enqueue,
    a_lease_for_another_job_is_refused,
    many_workers_finish_every_job_exactly_once,
    lifecycle_and_finished_jobs_are_visible,
    requeue_puts_dead_letters_back_once,
);
