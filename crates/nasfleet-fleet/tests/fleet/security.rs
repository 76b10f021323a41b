//! Least privilege and TLS, with the files operators are told to use.

use std::path::PathBuf;

use nasfleet_fleet::fake::FakeTrainerConfig;
use nasfleet_fleet::{collect_status, Board, ControllerState, RedisBoard, RunSettings};
use nasfleet_queue::testing::{generate_tls, RedisServer, RedisServerOptions, TempDir};
use nasfleet_queue::{Consumer, JobQueue, QueueError, RedisQueue, TlsFiles};

use crate::support::*;

const RUN: &str = "sec";

fn acl_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nasfleet-queue/redis/users.acl.example")
}

fn denied<T: std::fmt::Debug>(what: &str, r: Result<T, QueueError>) {
    match r {
        Err(e) if e.is_permission_denied() => {}
        other => panic!("{what}: expected a permission error, got {other:?}"),
    }
}

/// 10. The shipped ACL file: the controller user runs the controller, the
/// worker user the workers, the viewer user reads the status; each
/// forbidden call is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_users_run_a_fleet_with_least_privilege() {
    let cfg = config(6, 2, 4, 1);
    let expected = reference(&cfg, FakeTrainerConfig::default()).await;
    let dir = TempDir::new("fleet-acl").unwrap();
    let server = RedisServer::start_with(RedisServerOptions {
        aclfile: Some(acl_file()),
        appendonly: true,
        ..RedisServerOptions::default()
    })
    .unwrap();
    let url = |user: &str| server.url_for(user, &format!("{user}-example-password"));
    // Only admin may load the function library.
    let admin = connect(&url("admin"), RUN, &cfg).await;
    let controller = connect(&url("controller"), RUN, &cfg).await;
    let board = Board::Redis(RedisBoard::new(&redis_config(&url("controller"), RUN, &cfg)).unwrap());
    let run_dir = dir.path().join("run");
    let ctrl = spawn_controller(controller.clone(), &cfg, RUN, &run_dir, false, board);
    let mut workers = Vec::new();
    for i in 0..2 {
        let q = connect(&url("worker"), RUN, &cfg).await;
        workers.push(spawn_worker(q, &cfg, RUN, &format!("w{i}"), FakeTrainerConfig::default(), None));
    }
    ctrl.finish(60).await;
    for w in workers {
        let r = w.stop().await;
        assert_eq!(r.dead_lettered + r.abandoned, 0, "{r:?}");
    }
    assert_exactly_once(&admin, 6).await;
    assert_eq!(project(&run_dir), expected);

    // The viewer sees everything, the controller's state included.
    let viewer = connect(&url("viewer"), RUN, &cfg).await;
    let viewer_board = RedisBoard::new(&redis_config(&url("viewer"), RUN, &cfg)).unwrap();
    let report = collect_status(&viewer, &Board::Redis(viewer_board.clone()), RUN, 10).await.unwrap();
    let c: ControllerState = report.controller.expect("controller state");
    assert_eq!((c.state.as_str(), c.applied, c.total), ("finished", 6, 6));
    assert_eq!(report.outcomes, 6);

    // Forbidden calls.
    let worker = connect(&url("worker"), RUN, &cfg).await;
    denied("worker enqueue", worker.enqueue("sec-000099", "{}").await);
    let me = Consumer::new("w", "cpu").unwrap();
    denied(
        "worker reads results",
        worker.read_results(&me, 10, std::time::Duration::from_millis(10)).await,
    );
    denied("viewer enqueue", viewer.enqueue("sec-000099", "{}").await);
    let viewer_board = Board::Redis(viewer_board);
    let e = viewer_board.try_publish(&c).await.unwrap_err().to_string();
    assert!(e.contains("no permissions"), "viewer wrote the controller state: {e}");
    let worker_board = Board::Redis(RedisBoard::new(&redis_config(&url("worker"), RUN, &cfg)).unwrap());
    let e = worker_board.read().await.unwrap_err().to_string();
    assert!(e.contains("no permissions"), "worker read the controller state: {e}");
    // The run's settings: the controller publishes them, workers and the
    // viewer read them, neither may change them.
    let settings = RunSettings::of(&cfg);
    let controller_board = Board::Redis(RedisBoard::new(&redis_config(&url("controller"), RUN, &cfg)).unwrap());
    controller_board.publish_settings(&settings).await.unwrap();
    assert_eq!(worker_board.settings().await.unwrap(), Some(settings.clone()));
    assert_eq!(viewer_board.settings().await.unwrap(), Some(settings.clone()));
    for (who, board) in [("worker", &worker_board), ("viewer", &viewer_board)] {
        let e = board.publish_settings(&settings).await.unwrap_err().to_string();
        assert!(e.contains("no permissions"), "{who} wrote the run's settings: {e}");
    }
    // The default user is off: no anonymous access at all.
    let e = RedisQueue::connect(redis_config(&server.url(), RUN, &cfg)).await.unwrap_err();
    assert!(e.is_permission_denied() && e.to_string().contains("NOAUTH"), "{e}");
}

/// A fleet over TLS (`rediss://`), trusting only a private CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_runs_over_tls() {
    let cfg = config(4, 2, 2, 1);
    let expected = reference(&cfg, FakeTrainerConfig::default()).await;
    let dir = TempDir::new("fleet-tls").unwrap();
    let tls = generate_tls(dir.path()).unwrap();
    let server = RedisServer::start_with(RedisServerOptions {
        tls: Some(tls.clone()),
        ..RedisServerOptions::default()
    })
    .unwrap();
    let url = server.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let rc = || {
        let mut c = redis_config(&url, RUN, &cfg);
        c.tls = Some(TlsFiles {
            ca_cert: Some(tls.ca_cert.clone()),
            ..TlsFiles::default()
        });
        c
    };
    let queue = RedisQueue::connect(rc()).await.unwrap();
    let board = Board::Redis(RedisBoard::new(&rc()).unwrap());
    let run_dir = dir.path().join("run");
    let ctrl = spawn_controller(queue.clone(), &cfg, RUN, &run_dir, false, board.clone());
    let w = spawn_worker(RedisQueue::connect(rc()).await.unwrap(), &cfg, RUN, "w", FakeTrainerConfig::default(), None);
    ctrl.finish(60).await;
    w.stop().await;
    let report = collect_status(&queue, &board, RUN, 10).await.unwrap();
    assert_eq!(report.controller.unwrap().state, "finished");
    assert_exactly_once(&queue, 4).await;
    assert_eq!(project(&run_dir), expected);
}
