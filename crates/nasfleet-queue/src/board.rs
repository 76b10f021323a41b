//! A run's notice board on Redis, beside its queue: what the controller
//! publishes for others to read.
//!
//! - `nasfleet:{run}:controller`, a hash: the controller's progress (issued,
//!   applied, best so far, policy version), written after every step and read
//!   by `nasfleet controller status` (or `HGETALL` in redis-cli).
//! - `nasfleet:{run}:settings`, a string: the run's fleet settings as JSON,
//!   written by the controller before it issues a job and read by every
//!   worker at start, so that all workers of a run use the same lease,
//!   heartbeat and limits without being told on their command lines.
//!
//! The queue never interprets either (the fleet crate owns their meaning).
//! The board has its own small connection, made lazily with the queue's
//! client rules (URL, TLS files), and tries each call once with the queue's
//! response timeout: publishing progress is best effort (a status display
//! must never stall a search), and callers that need a value (a worker
//! waiting for the settings) poll. The shipped ACL file lets the
//! `controller` user write both, the `viewer` read both, and the `worker`
//! read the settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue};

use crate::error::Result;
use crate::keys::Keys;
use crate::redis_queue::{build_client, map_error, RedisQueueConfig};

/// The controller-state hash and the settings of one run. Cheap to clone.
#[derive(Clone)]
pub struct RedisBoard {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    keys: Keys,
    // An async mutex: held across the command's await (one command at a time
    // on this connection is plenty for a few writes per batch).
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBoard")
            .field("run", &self.inner.keys.run())
            .finish_non_exhaustive()
    }
}

impl RedisBoard {
    /// The board of `config`'s run on `config`'s server. Connects lazily.
    pub fn new(config: &RedisQueueConfig) -> Result<Self> {
        Ok(RedisBoard {
            inner: Arc::new(Inner {
                client: build_client(config)?,
                keys: Keys::new(&config.run)?,
                conn: tokio::sync::Mutex::new(None),
                timeout: config.response_timeout,
            }),
        })
    }

    /// The run's keys.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    async fn run<T: FromRedisValue>(&self, op: &'static str, cmd: Cmd) -> Result<T> {
        let inner = &self.inner;
        let mut guard = inner.conn.lock().await;
        let conn = match guard.as_mut() {
            Some(c) => c,
            None => {
                let cfg = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(inner.timeout))
                    .set_response_timeout(Some(inner.timeout));
                let c = inner
                    .client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map_err(|e| map_error(op, e))?;
                guard.insert(c)
            }
        };
        match cmd.query_async::<T>(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                // Reconnect next time: the connection may be half-open.
                *guard = None;
                Err(map_error(op, e))
            }
        }
    }

    /// Controller: writes its state (one `HSET` with every field).
    pub async fn publish_controller(&self, fields: &[(&str, String)]) -> Result<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&self.inner.keys.controller);
        for (k, v) in fields {
            cmd.arg(*k).arg(v);
        }
        self.run::<i64>("publish controller state", cmd).await.map(|_| ())
    }

    /// The controller's last published state; empty when none was published.
    pub async fn controller(&self) -> Result<HashMap<String, String>> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&self.inner.keys.controller);
        self.run("read controller state", cmd).await
    }

    /// Controller: publishes the run's settings (replacing earlier ones).
    pub async fn publish_settings(&self, json: &str) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.inner.keys.settings).arg(json);
        self.run::<()>("publish run settings", cmd).await
    }

    /// The run's settings as last published; `None` when no controller has
    /// published any yet.
    pub async fn settings(&self) -> Result<Option<String>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(&self.inner.keys.settings);
        self.run("read run settings", cmd).await
    }
}
