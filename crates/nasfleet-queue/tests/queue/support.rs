//! The harness that lets one test body run against every backend, and the
//! set-up and checks that several tests share.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use nasfleet_queue::testing::{RedisServer, RedisServerOptions, TcpProxy};
use nasfleet_queue::{
    Consumer, JobQueue, Lease, ManualClock, MemoryQueue, QueueConfig, QueueError, RedisQueue,
    RedisQueueConfig, ResultEvent,
};
use tokio::task::JoinHandle;

/// A backend under test plus the means to make time pass for it.
pub(crate) trait Harness {
    type Q: JobQueue;

    /// A fresh queue (empty run) with `config`; later calls of `reopen` give
    /// more handles on the same data.
    async fn queue(&mut self, config: QueueConfig) -> Self::Q;

    /// Another handle on the data of the last `queue`, as a restarted process
    /// would get (new connections, no per-handle memory).
    async fn reopen(&mut self) -> Self::Q;

    /// Lets `d` pass on the queue's clock (the memory backend's manual clock,
    /// the Redis server's real one).
    async fn pass(&self, d: Duration);
}

/// A config with a lease of `lease` and defaults otherwise.
pub(crate) fn config(lease: Duration) -> QueueConfig {
    QueueConfig {
        lease,
        ..QueueConfig::default()
    }
}

/// A fresh consumer on host `name` (named `name-<uuid>`), device `cpu`.
pub(crate) fn consumer(name: &str) -> Consumer {
    Consumer::new(name, "cpu").expect("valid consumer")
}

/// A fetch that does not block: the lease `who` gets now, if any.
pub(crate) async fn fetch_now<Q: JobQueue>(q: &Q, who: &Consumer) -> Option<Lease> {
    q.fetch(who, Duration::ZERO).await.expect("fetch")
}

/// The result events a controller named `ctl` reads now, at most `max`.
pub(crate) async fn results<Q: JobQueue>(q: &Q, max: usize) -> Vec<ResultEvent> {
    q.read_results(&consumer("ctl"), max, Duration::ZERO)
        .await
        .expect("read results")
}

/// The one result event there is (checked: exactly one).
pub(crate) async fn only_result<Q: JobQueue>(q: &Q) -> ResultEvent {
    let mut events = results(q, 10).await;
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

/// Checks that each of `jobs` jobs finished exactly once: as many outcomes
/// and results as jobs, none dead, queued or in flight, one result event per
/// job.
pub(crate) async fn assert_each_job_finished_once<Q: JobQueue>(q: &Q, jobs: usize) {
    let s = q.status(0).await.expect("status");
    assert_eq!(
        (s.outcomes, s.results, s.dead_total),
        (jobs as u64, jobs as u64, 0)
    );
    assert_eq!((s.depth, s.in_flight_total), (0, 0));
    let events = results(q, 100).await;
    let ids: BTreeSet<&str> = events.iter().map(|e| e.job_id.as_str()).collect();
    assert_eq!(
        (events.len(), ids.len()),
        (jobs, jobs),
        "one result per job"
    );
}

pub(crate) struct MemoryHarness {
    clock: ManualClock,
    queue: Option<MemoryQueue>,
}

impl MemoryHarness {
    pub(crate) fn new() -> Self {
        MemoryHarness {
            clock: ManualClock::new(),
            queue: None,
        }
    }
}

impl Harness for MemoryHarness {
    type Q = MemoryQueue;

    async fn queue(&mut self, config: QueueConfig) -> MemoryQueue {
        let q =
            MemoryQueue::with_clock(config, Arc::new(self.clock.clone())).expect("valid config");
        self.queue = Some(q.clone());
        q
    }

    async fn reopen(&mut self) -> MemoryQueue {
        self.queue.clone().expect("queue() first")
    }

    async fn pass(&self, d: Duration) {
        self.clock.advance(d);
    }
}

pub(crate) struct RedisHarness {
    pub(crate) server: RedisServer,
    config: Option<RedisQueueConfig>,
}

impl RedisHarness {
    pub(crate) fn start() -> Self {
        RedisHarness {
            server: RedisServer::start_with(RedisServerOptions::default())
                .expect("redis-server starts"),
            config: None,
        }
    }
}

/// Test settings: short timeouts so failures show quickly, a retry window
/// long enough to ride through the restarts the fault tests cause.
pub(crate) fn redis_config(url: String, run: &str, queue: QueueConfig) -> RedisQueueConfig {
    RedisQueueConfig {
        queue,
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        retry_for: Duration::from_secs(30),
        block_margin: Duration::from_secs(2),
        ..RedisQueueConfig::new(url, run)
    }
}

/// A queue of run `run` at `url` with a lease of `lease` and otherwise the
/// settings of [`redis_config`].
pub(crate) async fn redis_queue(url: String, run: &str, lease: Duration) -> RedisQueue {
    RedisQueue::connect(redis_config(url, run, config(lease)))
        .await
        .expect("connect")
}

/// Two workers of run `cut`: `a` reaches Redis through a proxy whose network
/// can be cut, `b` directly. Job `j1` is enqueued and `a` holds its lease.
/// (Fields drop in order: the server last.)
pub(crate) struct CutScenario {
    pub(crate) a: Consumer,
    pub(crate) b: Consumer,
    /// `a`'s lease of `j1`.
    pub(crate) lease: Lease,
    /// `a`'s handle, through the proxy.
    pub(crate) a_q: RedisQueue,
    /// `b`'s handle, direct.
    pub(crate) b_q: RedisQueue,
    pub(crate) proxy: TcpProxy,
    _server: RedisServer,
}

impl CutScenario {
    /// The scenario with a queue lease of `lease`.
    pub(crate) async fn start(lease: Duration) -> Self {
        let server = RedisServer::start().unwrap();
        let proxy = TcpProxy::start(server.addr()).await.unwrap();
        let a_q = redis_queue(proxy.url(), "cut", lease).await;
        let b_q = redis_queue(server.url(), "cut", lease).await;
        b_q.enqueue("j1", "p").await.unwrap();
        let (a, b) = (consumer("a"), consumer("b"));
        let lease = fetch_now(&a_q, &a).await.unwrap();
        CutScenario {
            a,
            b,
            lease,
            a_q,
            b_q,
            proxy,
            _server: server,
        }
    }

    /// Cuts `a`'s network and sends a heartbeat of its lease into the cut;
    /// the task ends with the heartbeat's answer once the network is back.
    pub(crate) fn cut_during_heartbeat(&self) -> JoinHandle<Result<bool, QueueError>> {
        self.proxy.cut();
        let (q, a, lease) = (self.a_q.clone(), self.a.clone(), self.lease.clone());
        tokio::spawn(async move { q.heartbeat(&a, &lease, "{}").await })
    }
}

impl Harness for RedisHarness {
    type Q = RedisQueue;

    async fn queue(&mut self, config: QueueConfig) -> RedisQueue {
        let cfg = redis_config(self.server.url(), "conformance", config);
        self.config = Some(cfg.clone());
        RedisQueue::connect(cfg).await.expect("connect")
    }

    async fn reopen(&mut self) -> RedisQueue {
        RedisQueue::connect(self.config.clone().expect("queue() first"))
            .await
            .expect("reconnect")
    }

    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}
