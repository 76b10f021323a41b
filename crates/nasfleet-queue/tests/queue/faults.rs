//! Redis-only fault tests: what the in-memory backend cannot have (a server
//! that dies, a network that fails, replies that get lost).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nasfleet_queue::testing::{RedisServer, RedisServerOptions};
use nasfleet_queue::{Completion, Consumer, EnqueueOutcome, JobQueue, QueueError, RedisQueue};

use crate::support::{
    assert_each_job_finished_once, config, consumer, fetch_now, only_result, redis_config,
    redis_queue, CutScenario,
};

/// Polls `check` every 50 ms, at most `tries` times; panics with `what` if it
/// never holds.
async fn eventually<F, Fut>(what: &str, tries: u32, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..tries {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// A fake worker: fetch, heartbeat a few times while "training", complete.
async fn worker_loop(
    q: RedisQueue,
    me: Consumer,
    done: Arc<AtomicBool>,
) -> Result<Vec<(String, Completion)>, QueueError> {
    let mut log = Vec::new();
    while !done.load(Ordering::SeqCst) {
        let Some(lease) = q.fetch(&me, Duration::from_millis(300)).await? else {
            continue;
        };
        let mut owned = true;
        for step in 0..3 {
            if !q
                .heartbeat(&me, &lease, &format!(r#"{{"step":{step}}}"#))
                .await?
            {
                owned = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if owned {
            let c = q
                .complete(&me, &lease, &format!(r#"{{"by":"{}"}}"#, me.name()))
                .await?;
            log.push((lease.job_id, c));
        }
    }
    Ok(log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_in_flight_survive_redis_kill_9_and_restart() {
    const JOBS: usize = 8;
    let mut server = RedisServer::start_with(RedisServerOptions {
        appendonly: true,
        ..Default::default()
    })
    .unwrap();
    let cfg = redis_config(server.url(), "restart", config(Duration::from_secs(20)));
    let ctl = RedisQueue::connect(cfg.clone()).await.unwrap();
    for i in 0..JOBS {
        ctl.enqueue(&format!("job-{i}"), &format!(r#"{{"i":{i}}}"#))
            .await
            .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..3 {
        let q = RedisQueue::connect(cfg.clone()).await.unwrap();
        workers.push(tokio::spawn(worker_loop(
            q,
            consumer(&format!("w{w}")),
            done.clone(),
        )));
    }
    eventually("a job in flight", 400, || async {
        ctl.status(0).await.unwrap().in_flight_total > 0
    })
    .await;

    server.kill().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.restart().expect("restart on the same port and dir");
        server
    })
    .await
    .unwrap();

    eventually("every job finished", 1200, || async {
        ctl.status(0).await.unwrap().outcomes == JOBS as u64
    })
    .await;
    done.store(true, Ordering::SeqCst);
    let mut mine: BTreeMap<String, u32> = BTreeMap::new();
    for w in workers {
        for (job, c) in w.await.unwrap().expect("no worker call failed") {
            if c.is_mine() {
                *mine.entry(job).or_default() += 1;
            }
        }
    }
    assert_eq!(mine.len(), JOBS, "every job completed: {mine:?}");
    assert!(
        mine.values().all(|n| *n == 1),
        "no job completed twice: {mine:?}"
    );
    assert_each_job_finished_once(&ctl, JOBS).await;
    drop(server);
}

#[tokio::test]
async fn function_library_is_reloaded_after_a_restart_without_persistence() {
    let mut server = RedisServer::start().unwrap();
    let q = redis_queue(server.url(), "reload", Duration::from_secs(60)).await;
    q.enqueue("j1", "p").await.unwrap();
    server.restart().unwrap();
    // Everything is gone, the library included; the default user may load it.
    assert!(matches!(
        q.enqueue("j2", "p").await.unwrap(),
        EnqueueOutcome::Enqueued { .. }
    ));
    assert_eq!(q.status(10).await.unwrap().enqueued, 1);
}

#[tokio::test]
async fn network_cut_shorter_than_the_lease_keeps_the_job() {
    let cut = CutScenario::start(Duration::from_secs(6)).await;
    let heartbeat = cut.cut_during_heartbeat();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        fetch_now(&cut.b_q, &cut.b).await.is_none(),
        "lease still valid"
    );
    cut.proxy.restore();

    assert!(
        heartbeat.await.unwrap().unwrap(),
        "the heartbeat got through after the cut"
    );
    assert_eq!(
        cut.a_q.complete(&cut.a, &cut.lease, "a").await.unwrap(),
        Completion::Recorded
    );
    let s = cut.b_q.status(10).await.unwrap();
    assert_eq!((s.outcomes, s.results), (1, 1));
}

#[tokio::test]
async fn network_cut_longer_than_the_lease_reassigns_without_double_counting() {
    let cut = CutScenario::start(Duration::from_millis(1000)).await;
    let heartbeat = cut.cut_during_heartbeat();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let fresh = fetch_now(&cut.b_q, &cut.b).await.expect("reassigned");
    assert_eq!((fresh.job_id.as_str(), fresh.deliveries), ("j1", 2));
    assert_eq!(
        cut.b_q.complete(&cut.b, &fresh, "b").await.unwrap(),
        Completion::Recorded
    );
    cut.proxy.restore();

    assert!(
        !heartbeat.await.unwrap().unwrap(),
        "the cut-off worker learns it lost the job"
    );
    assert_eq!(
        cut.a_q.complete(&cut.a, &cut.lease, "a").await.unwrap(),
        Completion::Duplicate
    );
    let s = cut.b_q.status(10).await.unwrap();
    assert_eq!((s.outcomes, s.results), (1, 1));
    assert_eq!(only_result(&cut.b_q).await.by, cut.b.name());
}

#[tokio::test]
async fn a_blocking_fetch_does_not_stall_heartbeats() {
    let server = RedisServer::start().unwrap();
    let mut cfg = redis_config(server.url(), "block", config(Duration::from_secs(120)));
    // No client-side timeout would rescue a heartbeat queued behind the
    // blocked read: if they shared a connection, the heartbeats could only
    // finish after the fetch, and the ordering check below would fail.
    cfg.response_timeout = Duration::from_secs(100);
    let q = RedisQueue::connect(cfg).await.unwrap();
    q.enqueue("j1", "p").await.unwrap();
    let (a, b) = (consumer("a"), consumer("b"));
    let lease = fetch_now(&q, &a).await.unwrap();
    let blocked = {
        let (q, b) = (q.clone(), b.clone());
        tokio::spawn(async move { q.fetch(&b, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for step in 0..5 {
        assert!(q
            .heartbeat(&a, &lease, &format!(r#"{{"step":{step}}}"#))
            .await
            .unwrap());
    }
    // Ordering, not timing: the heartbeats finished while the read still blocks.
    assert!(
        !blocked.is_finished(),
        "the blocking fetch returned before anything was enqueued"
    );
    q.enqueue("j2", "p").await.unwrap();
    let got = blocked
        .await
        .unwrap()
        .unwrap()
        .expect("woken by the enqueue");
    assert_eq!(got.job_id, "j2");
}

#[tokio::test]
async fn a_cancelled_fetch_loses_no_job_and_spends_no_delivery() {
    let server = RedisServer::start().unwrap();
    let q = redis_queue(server.url(), "cancel", Duration::from_secs(60)).await;
    let (a, b) = (consumer("a"), consumer("b"));
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        q.fetch(&a, Duration::from_secs(3)),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the fetch was still blocking when cancelled"
    );
    // The read abandoned by the caller is still blocking in the background
    // and receives this job; it must come back.
    q.enqueue("j1", "p").await.unwrap();
    let mut got = None;
    for _ in 0..40 {
        if let Some(l) = q.fetch(&b, Duration::from_millis(250)).await.unwrap() {
            got = Some(l);
            break;
        }
    }
    let lease = got.expect("the job came back");
    assert_eq!((lease.job_id.as_str(), lease.deliveries), ("j1", 1));
    assert_eq!(
        q.complete(&b, &lease, "b").await.unwrap(),
        Completion::Recorded
    );
}

#[tokio::test]
async fn a_delivery_whose_reply_was_lost_is_adopted_not_stranded() {
    let server = RedisServer::start().unwrap();
    let q = redis_queue(server.url(), "lost", Duration::from_secs(60)).await;
    q.enqueue("j1", "p").await.unwrap();
    let a = consumer("a");
    // The server delivers j1 to `a`, but `a` never sees the reply (pitfall 3).
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg(a.name())
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&q.keys().jobs)
        .arg(">")
        .query_async(&mut raw)
        .await
        .unwrap();
    let lease = fetch_now(&q, &a).await.expect("adopted at the next fetch");
    assert_eq!((lease.job_id.as_str(), lease.deliveries), ("j1", 1));
    // Known now: a second fetch does not hand it out again.
    assert!(fetch_now(&q, &a).await.is_none());
    assert_eq!(
        q.complete(&a, &lease, "a").await.unwrap(),
        Completion::Recorded
    );
}
