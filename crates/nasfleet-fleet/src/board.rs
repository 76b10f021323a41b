//! The controller's public state: what `nasfleet controller status` shows
//! beyond the queue (progress, best so far, policy step).
//!
//! On Redis it is one hash, `nasfleet:{run}:controller`, written by the
//! controller after every step (`HGETALL` it with redis-cli) and read by
//! `status`. The queue crate's interface has no place for it, so this module
//! talks to Redis itself, with its own small connection: publishing is
//! best-effort (a status display must never stall or fail a search), reading
//! is what `status` does. The shipped ACL file already allows it: the
//! `controller` user may `HSET` any `nasfleet:*` key and the `viewer` user may
//! `HGETALL` them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nasfleet_queue::{Keys, RedisQueueConfig};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use serde::{Deserialize, Serialize};

use crate::error::{FleetError, Result};

/// The controller's progress, as published.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Run id.
    pub run: String,
    /// Strategy name.
    pub strategy: String,
    /// `running`, `stopped` (resumable) or `finished`.
    pub state: String,
    /// Children the run will train.
    pub total: u64,
    /// Jobs issued so far.
    pub issued: u64,
    /// Children applied (rewarded or failed).
    pub applied: u64,
    /// Children applied with a reward.
    pub rewarded: u64,
    /// Children without a reward (dead-lettered, invalid result).
    pub failed: u64,
    /// m: rewards per update.
    pub batch: u64,
    /// Jobs kept outstanding.
    pub max_in_flight: u64,
    /// Policy version (updates applied).
    pub policy_version: u64,
    /// Best reward so far.
    pub best_reward: Option<f64>,
    /// Its job.
    pub best_job: Option<String>,
    /// Its architecture JSON.
    pub best_arch: Option<serde_json::Value>,
    /// When this was published (Unix ms).
    pub updated_ms: u64,
}

impl ControllerState {
    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        vec![
            ("run", self.run.clone()),
            ("strategy", self.strategy.clone()),
            ("state", self.state.clone()),
            ("total", self.total.to_string()),
            ("issued", self.issued.to_string()),
            ("applied", self.applied.to_string()),
            ("rewarded", self.rewarded.to_string()),
            ("failed", self.failed.to_string()),
            ("batch", self.batch.to_string()),
            ("max_in_flight", self.max_in_flight.to_string()),
            ("policy_version", self.policy_version.to_string()),
            ("best_reward", opt(self.best_reward.map(|r| r.to_string()))),
            ("best_job", opt(self.best_job.clone())),
            ("best_arch", opt(self.best_arch.as_ref().map(|a| a.to_string()))),
            ("updated_ms", self.updated_ms.to_string()),
        ]
    }

    fn from_fields(f: &HashMap<String, String>) -> std::result::Result<Self, String> {
        let text = |k: &str| f.get(k).cloned().unwrap_or_default();
        let num = |k: &str| -> std::result::Result<u64, String> {
            let v = text(k);
            v.parse().map_err(|_| format!("field {k} is {v:?}, not a number"))
        };
        let nonempty = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
        Ok(ControllerState {
            run: text("run"),
            strategy: text("strategy"),
            state: text("state"),
            total: num("total")?,
            issued: num("issued")?,
            applied: num("applied")?,
            rewarded: num("rewarded")?,
            failed: num("failed")?,
            batch: num("batch")?,
            max_in_flight: num("max_in_flight")?,
            policy_version: num("policy_version")?,
            best_reward: nonempty("best_reward")
                .map(|v| v.parse().map_err(|_| format!("field best_reward is {v:?}, not a number")))
                .transpose()?,
            best_job: nonempty("best_job"),
            best_arch: nonempty("best_arch")
                .map(|v| serde_json::from_str(&v).map_err(|e| format!("field best_arch: {e}")))
                .transpose()?,
            updated_ms: num("updated_ms")?,
        })
    }
}

/// Where the controller publishes its state.
#[derive(Clone, Debug, Default)]
pub enum Board {
    /// Nowhere.
    #[default]
    Off,
    /// In process (the embedded mode, tests).
    Memory(Arc<Mutex<Option<ControllerState>>>),
    /// The run's Redis hash.
    Redis(RedisBoard),
}

impl Board {
    /// An in-process board.
    pub fn memory() -> Self {
        Board::Memory(Arc::new(Mutex::new(None)))
    }

    /// Publishes `state`; failures are logged, never returned.
    pub async fn publish(&self, state: &ControllerState) {
        match self {
            Board::Off => {}
            Board::Memory(m) => *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(state.clone()),
            Board::Redis(r) => {
                if let Err(e) = r.publish(state).await {
                    tracing::warn!(error = %e, "cannot publish the controller state (status will be stale)");
                }
            }
        }
    }

    /// The last published state, if any.
    pub async fn read(&self) -> Result<Option<ControllerState>> {
        match self {
            Board::Off => Ok(None),
            Board::Memory(m) => Ok(m.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            Board::Redis(r) => r.read().await,
        }
    }
}

/// The controller-state hash of one run on Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisBoard {
    inner: Arc<BoardInner>,
}

struct BoardInner {
    client: Client,
    key: String,
    // An async mutex: held across the command's await (one command at a time
    // on this connection is plenty for a few writes per batch).
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBoard").field("key", &self.inner.key).finish_non_exhaustive()
    }
}

/// The key of a run's controller-state hash.
pub fn controller_key(run: &str) -> Result<String> {
    Keys::new(run)?;
    Ok(format!("nasfleet:{{{run}}}:controller"))
}

impl RedisBoard {
    /// A board for the run and server of `config` (URL, TLS files). Connects lazily.
    pub fn new(config: &RedisQueueConfig) -> Result<Self> {
        let client = client_for(config)?;
        Ok(RedisBoard {
            inner: Arc::new(BoardInner {
                client,
                key: controller_key(&config.run)?,
                conn: tokio::sync::Mutex::new(None),
                timeout: config.response_timeout,
            }),
        })
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> std::result::Result<T, String> {
        let inner = &self.inner;
        let mut guard = inner.conn.lock().await;
        if guard.is_none() {
            let cfg = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(inner.timeout))
                .set_response_timeout(Some(inner.timeout));
            let c = inner
                .client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .map_err(|e| e.to_string())?;
            *guard = Some(c);
        }
        let Some(conn) = guard.as_mut() else {
            return Err("no connection".into());
        };
        match cmd.query_async::<T>(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                // Reconnect next time: the connection may be half-open.
                *guard = None;
                Err(e.to_string())
            }
        }
    }

    /// Writes the state (one `HSET` with every field).
    pub async fn publish(&self, state: &ControllerState) -> std::result::Result<(), String> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&self.inner.key);
        for (k, v) in state.to_fields() {
            cmd.arg(k).arg(v);
        }
        self.run::<i64>(cmd).await.map(|_| ())
    }

    /// Reads the state; `None` when no controller has published one.
    pub async fn read(&self) -> Result<Option<ControllerState>> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&self.inner.key);
        let fields: HashMap<String, String> = self.run(cmd).await.map_err(FleetError::Board)?;
        if fields.is_empty() {
            return Ok(None);
        }
        ControllerState::from_fields(&fields)
            .map(Some)
            .map_err(|e| FleetError::Board(format!("{}: {e}", self.inner.key)))
    }
}

/// A Redis client for `config`'s URL and TLS files (the same rules as the
/// queue's: TLS files need a `rediss://` URL).
fn client_for(config: &RedisQueueConfig) -> Result<Client> {
    let bad = |m: String| FleetError::Setting { field: "redis url", message: m };
    let Some(tls) = &config.tls else {
        return Client::open(config.url.as_str()).map_err(|e| bad(e.to_string()));
    };
    if !config.url.starts_with("rediss://") {
        return Err(bad("TLS files are configured but the URL is not rediss://".into()));
    }
    // Same process-wide crypto provider as the queue; an error means one is
    // installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |p: &std::path::PathBuf| std::fs::read(p).map_err(|e| FleetError::io("TLS file", p, e));
    let root_cert = tls.ca_cert.as_ref().map(read).transpose()?;
    let client_tls = match (&tls.client_cert, &tls.client_key) {
        (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
            client_cert: read(c)?,
            client_key: read(k)?,
        }),
        (None, None) => None,
        _ => return Err(bad("client_cert and client_key must be given together".into())),
    };
    Client::build_with_tls(config.url.as_str(), redis::TlsCertificates { client_tls, root_cert })
        .map_err(|e| bad(format!("building the TLS client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let s = ControllerState {
            run: "r".into(),
            strategy: "random".into(),
            state: "running".into(),
            total: 10,
            issued: 8,
            applied: 4,
            rewarded: 3,
            failed: 1,
            batch: 2,
            max_in_flight: 4,
            policy_version: 2,
            best_reward: Some(0.625),
            best_job: Some("r-000003".into()),
            best_arch: Some(serde_json::json!({"version": 1})),
            updated_ms: 5,
        };
        let map: HashMap<String, String> = s.to_fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(ControllerState::from_fields(&map).unwrap(), s);
        let empty = ControllerState { best_reward: None, best_job: None, best_arch: None, ..s };
        let map: HashMap<String, String> = empty.to_fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(ControllerState::from_fields(&map).unwrap(), empty);
    }

    #[test]
    fn the_key_carries_the_hash_tag() {
        assert_eq!(controller_key("r1").unwrap(), "nasfleet:{r1}:controller");
        assert!(controller_key("a*b").is_err());
    }
}
