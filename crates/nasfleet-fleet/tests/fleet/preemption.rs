//! Spot preemption notices (`--preemption-notice`), end to end: worker
//! processes poll a metadata endpoint this test serves on 127.0.0.1 and, on
//! a notice, stop exactly as on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::faults::{report, status};
use crate::support::*;

/// A plain-URL notice endpoint: 404 until [`NoticeServer::notify`], then
/// 200 with an AWS-like body.
struct NoticeServer {
    url: String,
    on: Arc<AtomicBool>,
}

impl NoticeServer {
    fn start() -> NoticeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/notice", listener.local_addr().unwrap());
        let on = Arc::new(AtomicBool::new(false));
        let flag = on.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf);
                let reply = if flag.load(Ordering::SeqCst) {
                    let body = r#"{"action":"terminate","time":"2026-12-05T12:00:00Z"}"#;
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                };
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        NoticeServer { url, on }
    }

    fn notify(&self) {
        self.on.store(true, Ordering::SeqCst);
    }
}

/// A notice in the middle of an epoch: the trainer checkpoints, the job is
/// released without spending a delivery, the worker exits 0; the next
/// worker resumes from the checkpoint (every epoch trained once, in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_mid_epoch_releases_the_job_and_the_next_worker_resumes() {
    let mut cfg = config(1, 1, 1, 20);
    // Only a release hands the job on within the test's patience.
    cfg.fleet.lease_ms = 60_000;
    let sc = Scenario::start("fleet-notice", cfg).await;
    let ctrl = sc.controller();
    let work = sc.dir.path().join("work");
    let notice = NoticeServer::start();
    let mut a = sc.worker_node(
        100,
        &["--work-dir", work.to_str().unwrap(), "--preemption-notice", &notice.url, "--notice-poll-ms", "20"],
    );
    sc.wait_trace("A trains epoch 2", |&(_, e, p)| p == a.pid() && e >= 2).await;
    notice.notify();
    let code = a.exit(30).await;
    assert!(code.success(), "worker exited with {code}; log:\n{}", a.log());
    assert!(a.log().contains("preemption notice"), "{}", a.log());
    let r = report(&a);
    assert_eq!((r.released, r.completed, r.stopped), (1, 0, true), "{r:?}");
    let s = status(&sc.queue).await;
    assert_eq!(s.dead_total, 0, "{s:?}");
    assert_eq!(s.in_flight.len(), 1, "{s:?}");
    assert_eq!(s.in_flight[0].deliveries, 0, "a release must not count as a delivery: {s:?}");

    let b = sc.worker_node(100, &["--work-dir", work.to_str().unwrap()]);
    ctrl.finish(60).await;
    drop(b);
    let epochs: Vec<usize> = trace(&sc.trace).into_iter().map(|(_, e, _)| e).collect();
    assert_eq!(epochs, (0..20).collect::<Vec<_>>(), "B resumed from A's checkpoint");
    sc.assert_like_reference(1).await;
}

/// A notice while the worker posts a finished child's result: the outcome
/// is recorded exactly once (by this worker, or, if it gave the job back
/// first, by the next), never lost, never doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_during_the_final_post_neither_loses_nor_doubles_the_outcome() {
    let mut cfg = config(2, 1, 1, 3);
    cfg.fleet.lease_ms = 60_000;
    let sc = Scenario::start("fleet-notice-post", cfg).await;
    let ctrl = sc.controller();
    let work = sc.dir.path().join("work");
    let notice = NoticeServer::start();
    let mut a = sc.worker_node(
        50,
        &["--work-dir", work.to_str().unwrap(), "--preemption-notice", &notice.url, "--notice-poll-ms", "5"],
    );
    // The last epoch of the first child is done: the worker is posting.
    let first = sc.job_id(0);
    sc.wait_trace("A finishes the first child's last epoch", |(j, e, p)| *p == a.pid() && *j == first && *e == 2).await;
    notice.notify();
    assert!(a.exit(30).await.success(), "{}", a.log());
    // A posted the first child (and may have taken the second and given
    // it back), or gave the first back before posting: never a spent
    // delivery, never two completions.
    let r = report(&a);
    assert!(r.stopped && r.abandoned == 0 && r.completed <= 1 && r.completed + r.released >= 1, "{r:?}");
    let b = sc.worker_node(50, &["--work-dir", work.to_str().unwrap()]);
    ctrl.finish(60).await;
    drop(b);
    sc.assert_like_reference(2).await;
}
