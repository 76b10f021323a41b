//! TLS: a TLS-only redis-server with a throwaway CA; the queue works over
//! `rediss://` when it trusts that CA, and refuses to talk otherwise.

use std::time::Duration;

use nasfleet_queue::testing::{generate_tls, RedisServer, RedisServerOptions, TempDir};
use nasfleet_queue::{Completion, JobOutcome, JobQueue, QueueError, RedisQueue, TlsFiles};

use crate::support::{config, consumer, only_result, redis_config};

#[tokio::test]
async fn queue_works_over_tls_with_a_trusted_ca_only() {
    let dir = TempDir::new("nasfleet-tls").unwrap();
    let tls = generate_tls(dir.path()).expect("openssl makes a CA and a server certificate");
    let server = RedisServer::start_with(RedisServerOptions {
        tls: Some(tls.clone()),
        ..Default::default()
    })
    .expect("redis-server supports --tls-port");
    assert!(server.url().starts_with("rediss://"));

    let mut cfg = redis_config(server.url(), "tls", config(Duration::from_secs(60)));
    cfg.tls = Some(TlsFiles {
        ca_cert: Some(tls.ca_cert.clone()),
        ..Default::default()
    });
    let q = RedisQueue::connect(cfg.clone())
        .await
        .expect("TLS connection");
    q.enqueue("j1", r#"{"arch":[1,2]}"#).await.unwrap();
    let w = consumer("w");
    let lease = q
        .fetch(&w, Duration::from_millis(500))
        .await
        .unwrap()
        .expect("the job");
    assert_eq!(lease.payload, r#"{"arch":[1,2]}"#);
    assert!(q.heartbeat(&w, &lease, "{}").await.unwrap());
    assert_eq!(
        q.complete(&w, &lease, "0.9").await.unwrap(),
        Completion::Recorded
    );
    assert_eq!(
        only_result(&q).await.outcome,
        JobOutcome::Ok {
            result: "0.9".into()
        }
    );

    // Without the CA the server's certificate is not trusted: no connection.
    let mut untrusted = cfg.clone();
    untrusted.tls = None;
    untrusted.retry_for = Duration::from_millis(500);
    let err = RedisQueue::connect(untrusted).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::Unavailable { .. } | QueueError::Redis { .. }
        ),
        "{err}"
    );

    // A plain-text client on the TLS port gets nowhere either.
    let mut plain = cfg;
    plain.tls = None;
    plain.url = format!("redis://127.0.0.1:{}/", server.port());
    plain.retry_for = Duration::from_millis(500);
    plain.response_timeout = Duration::from_millis(500);
    assert!(RedisQueue::connect(plain).await.is_err());
}
