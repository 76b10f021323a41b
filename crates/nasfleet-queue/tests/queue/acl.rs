//! The shipped ACL example (`redis/users.acl.example`): each user can make
//! the calls of its role and is refused everything else.

use std::path::PathBuf;
use std::time::Duration;

use nasfleet_queue::testing::{RedisServer, RedisServerOptions};
use nasfleet_queue::{Completion, JobOutcome, JobQueue, QueueError, RedisQueue, Requeued, RunLifecycle};

use crate::support::{config, consumer, fetch_now, redis_config};

const RUN: &str = "acl";

fn acl_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("redis/users.acl.example")
}

/// Connects to `url`, retrying for at most `retry_for`.
async fn connect_url(url: String, retry_for: Duration) -> Result<RedisQueue, QueueError> {
    let mut cfg = redis_config(url, RUN, config(Duration::from_secs(60)));
    cfg.retry_for = retry_for;
    RedisQueue::connect(cfg).await
}

/// Connects as `user` of the example file, with its password.
async fn connect(server: &RedisServer, user: &str) -> Result<RedisQueue, QueueError> {
    let url = server.url_for(user, &format!("{user}-example-password"));
    connect_url(url, Duration::from_secs(2)).await
}

async fn raw(server: &RedisServer, user: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url_for(user, &format!("{user}-example-password")))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn denied<T: std::fmt::Debug>(what: &str, r: Result<T, QueueError>) {
    match r {
        Err(e) if e.is_permission_denied() => {}
        other => panic!("{what}: expected permission denied, got {other:?}"),
    }
}

/// Runs a raw command and expects the server to refuse it on ACL grounds.
async fn refused(conn: &mut redis::aio::MultiplexedConnection, what: &str, cmd: &redis::Cmd) {
    match cmd.query_async::<redis::Value>(conn).await {
        Err(e) => {
            let s = e.to_string();
            assert!(
                s.contains("NOPERM") || s.contains("can't") || s.contains("no permissions"),
                "{what}: refused for the wrong reason: {s}"
            );
        }
        Ok(v) => panic!("{what}: expected a refusal, got {v:?}"),
    }
}

fn cmd(parts: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(parts[0]);
    for p in &parts[1..] {
        c.arg(*p);
    }
    c
}

/// On a raw connection as `user`, expects each command (a description and
/// its words) to be refused on ACL grounds; failures read "`user` `what`".
async fn refused_all(server: &RedisServer, user: &str, commands: &[(&str, &[&str])]) {
    let mut conn = raw(server, user).await;
    for (what, parts) in commands {
        refused(&mut conn, &format!("{user} {what}"), &cmd(parts)).await;
    }
}

#[tokio::test]
async fn each_user_can_do_its_job_and_nothing_else() {
    let server = RedisServer::start_with(RedisServerOptions {
        aclfile: Some(acl_file()),
        ..Default::default()
    })
    .unwrap();

    // Only the admin may load the library; the others fail with a precise
    // error until it is there.
    match connect(&server, "worker").await {
        Err(QueueError::Functions { problem, .. }) => assert_eq!(problem, "is not loaded"),
        other => panic!("worker before the library: {other:?}"),
    }
    let admin = connect(&server, "admin")
        .await
        .expect("admin loads the library");
    let controller = connect(&server, "controller").await.unwrap();
    let worker = connect(&server, "worker").await.unwrap();
    let viewer = connect(&server, "viewer").await.unwrap();
    denied(
        "controller loads functions",
        controller.load_functions().await,
    );
    denied("worker loads functions", worker.load_functions().await);
    denied("viewer loads functions", viewer.load_functions().await);
    admin.load_functions().await.unwrap();

    // Controller: enqueue.
    for j in ["j1", "j2", "j3"] {
        controller.enqueue(j, "p").await.unwrap();
    }

    // Worker: the whole job life cycle.
    let w = consumer("w");
    worker.worker_alive(&w).await.unwrap();
    let l1 = fetch_now(&worker, &w).await.unwrap();
    assert!(worker.heartbeat(&w, &l1, "{}").await.unwrap());
    assert_eq!(
        worker.complete(&w, &l1, "ok").await.unwrap(),
        Completion::Recorded
    );
    let l2 = fetch_now(&worker, &w).await.unwrap();
    // Early stopping: a rung decision (the rung hash is a worker key).
    let rung = worker
        .record_rung(&w, &l2, 1, 0.5, nasfleet_queue::RungRule::Median { min_peers: 1 })
        .await
        .unwrap();
    assert!(matches!(rung, nasfleet_queue::RungReply::Decided(_)), "{rung:?}");
    assert!(worker.release(&w, &l2).await.unwrap());
    let l2 = fetch_now(&worker, &w).await.unwrap();
    assert!(worker.abandon(&w, &l2).await.unwrap());
    let l2 = fetch_now(&worker, &w).await.unwrap();
    assert_eq!(
        l2.deliveries, 2,
        "release gave its delivery back, abandon did not"
    );
    assert_eq!(
        worker
            .dead_letter(&w, &l2, "invalid_payload", "nope")
            .await
            .unwrap(),
        Completion::Recorded
    );
    // Worker: refused.
    denied("worker enqueues", worker.enqueue("j9", "p").await);
    denied(
        "worker reads results",
        worker.read_results(&w, 10, Duration::ZERO).await,
    );
    denied(
        "worker acks results",
        worker.ack_results(&["1-0".to_owned()]).await,
    );
    denied("worker reads status", worker.status(10).await);
    // Worker: the run's lifecycle (read, to know when to leave) and which of
    // its checkpoints are garbage; it may not stop the run.
    assert_eq!(worker.lifecycle().await.unwrap(), RunLifecycle::Running);
    assert!(worker.is_finished(&l1.job_id).await.unwrap());
    denied("worker stops the run", worker.set_lifecycle(RunLifecycle::Stopping).await);
    let k = worker.keys().clone();
    refused_all(
        &server,
        "worker",
        &[
            ("EVAL", &["EVAL", "return 1", "0"]),
            (
                "XADD jobs",
                &["XADD", &k.jobs, "*", "job", "x", "payload", "p"],
            ),
            ("HSET enqueued", &["HSET", &k.enqueued, "x", "1-0"]),
            ("HSET outcome", &["HSET", &k.outcome, "j3", "fake"]),
            ("HDEL outcome", &["HDEL", &k.outcome, "j1"]),
            ("XDEL results", &["XDEL", &k.results, "1-0"]),
            ("XRANGE results", &["XRANGE", &k.results, "-", "+"]),
            (
                "FUNCTION LOAD",
                &[
                    "FUNCTION",
                    "LOAD",
                    "REPLACE",
                    nasfleet_queue::LIBRARY_SOURCE,
                ],
            ),
            ("FUNCTION DELETE", &["FUNCTION", "DELETE", "nasfleet"]),
            (
                "FCALL nasfleet_enqueue",
                &[
                    "FCALL",
                    "nasfleet_enqueue",
                    "4",
                    &k.jobs,
                    &k.results,
                    &k.outcome,
                    &k.enqueued,
                    "j9",
                    "p",
                ],
            ),
            ("KEYS", &["KEYS", "*"]),
            ("SET settings", &["SET", &k.settings, "{}"]),
            ("GET controller state", &["GET", &k.controller]),
        ],
    )
    .await;

    // Controller (and `controller stop`, which runs as it): the lifecycle.
    controller.set_lifecycle(RunLifecycle::Stopping).await.unwrap();
    assert_eq!(worker.lifecycle().await.unwrap(), RunLifecycle::Stopping, "workers see it");
    assert_eq!(viewer.lifecycle().await.unwrap(), RunLifecycle::Stopping, "viewers see it");
    denied("viewer stops the run", viewer.set_lifecycle(RunLifecycle::Stopped).await);
    controller.set_lifecycle(RunLifecycle::Running).await.unwrap();

    // Controller: results and inspection.
    let ctl = consumer("controller");
    let events = controller
        .read_results(&ctl, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[0].outcome, JobOutcome::Ok { result } if result == "ok"));
    assert!(
        matches!(&events[1].outcome, JobOutcome::Dead { reason, .. } if reason == "invalid_payload")
    );
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(controller.ack_results(&ids).await.unwrap(), 2);
    let s = controller.status(10).await.unwrap();
    assert_eq!((s.depth, s.outcomes, s.dead_total), (1, 2, 1));
    refused_all(
        &server,
        "controller",
        &[
            ("EVAL", &["EVAL", "return 1", "0"]),
            ("CONFIG SET", &["CONFIG", "SET", "appendonly", "no"]),
            ("FLUSHALL", &["FLUSHALL"]),
            ("FUNCTION DELETE", &["FUNCTION", "DELETE", "nasfleet"]),
            ("other keys", &["SET", "elsewhere", "1"]),
        ],
    )
    .await;

    // Viewer: read-only.
    let s = viewer.status(10).await.unwrap();
    assert_eq!(
        (s.depth, s.outcomes, s.dead_total, s.enqueued),
        (1, 2, 1, 3)
    );
    assert_eq!(s.workers.len(), 1);
    denied("viewer enqueues", viewer.enqueue("j9", "p").await);
    denied(
        "viewer fetches",
        viewer.fetch(&consumer("v"), Duration::ZERO).await,
    );
    denied(
        "viewer reads results",
        viewer
            .read_results(&consumer("v"), 10, Duration::ZERO)
            .await,
    );
    refused_all(
        &server,
        "viewer",
        &[
            ("XADD", &["XADD", &k.jobs, "*", "job", "x"]),
            ("HSET", &["HSET", &k.outcome, "x", "y"]),
            ("XACK", &["XACK", &k.jobs, "workers", "1-0"]),
            (
                "FCALL (write)",
                &[
                    "FCALL",
                    "nasfleet_worker_alive",
                    "1",
                    &k.worker("v"),
                    "h",
                    "d",
                    "1000",
                ],
            ),
            ("EVAL", &["EVAL", "return 1", "0"]),
        ],
    )
    .await;

    // Requeue (the controller user, as `nasfleet controller requeue` runs)
    // puts the dead letter back; a worker or a viewer may not, and a refused
    // call changes nothing.
    let dead = ["j2".to_owned()];
    denied("worker requeues", worker.requeue(&dead).await);
    denied("viewer requeues", viewer.requeue(&dead).await);
    assert_eq!(viewer.status(10).await.unwrap().dead_total, 1, "a refused requeue changed nothing");
    let r = controller.requeue(&dead).await.unwrap();
    assert!(matches!(r[..], [Requeued::Requeued { .. }]), "{r:?}");
    let s = viewer.status(10).await.unwrap();
    assert_eq!((s.depth, s.outcomes, s.dead_total), (2, 1, 0));

    // Nobody else gets in.
    let one_second = Duration::from_secs(1);
    denied(
        "connect without a user",
        connect_url(server.url(), one_second).await,
    );
    denied(
        "connect with a wrong password",
        connect_url(server.url_for("worker", "wrong"), one_second).await,
    );
}
