//! The harness that lets one test body run against every backend.

use std::sync::Arc;
use std::time::Duration;

use nasfleet_queue::testing::{RedisServer, RedisServerOptions};
use nasfleet_queue::{
    Consumer, JobQueue, ManualClock, MemoryQueue, QueueConfig, RedisQueue, RedisQueueConfig,
};

/// A backend under test plus the means to make time pass for it.
pub trait Harness {
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
pub fn config(lease: Duration) -> QueueConfig {
    QueueConfig {
        lease,
        ..QueueConfig::default()
    }
}

pub fn consumer(name: &str) -> Consumer {
    Consumer::new(name, "cpu").expect("valid consumer")
}

pub struct MemoryHarness {
    clock: ManualClock,
    queue: Option<MemoryQueue>,
}

impl MemoryHarness {
    pub fn new() -> Self {
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

pub struct RedisHarness {
    pub server: RedisServer,
    config: Option<RedisQueueConfig>,
}

impl RedisHarness {
    pub fn start() -> Self {
        RedisHarness {
            server: RedisServer::start_with(RedisServerOptions::default())
                .expect("redis-server starts"),
            config: None,
        }
    }
}

/// Test settings: short timeouts so failures show quickly, a retry window
/// long enough to ride through the restarts the fault tests cause.
pub fn redis_config(url: String, run: &str, queue: QueueConfig) -> RedisQueueConfig {
    RedisQueueConfig {
        queue,
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        retry_for: Duration::from_secs(30),
        block_margin: Duration::from_secs(2),
        ..RedisQueueConfig::new(url, run)
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
