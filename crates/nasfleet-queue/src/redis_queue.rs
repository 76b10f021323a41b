//! The Redis backend: streams + consumer groups + the `nasfleet` function
//! library (`redis/nasfleet.lua`), driven over two kinds of connection.
//!
//! * A [`ConnectionManager`] (reconnects in the background) carries every
//!   FCALL. It has a short response timeout; a call that times out or hits a
//!   dropped connection is retried by [`RedisQueue`] itself, because the
//!   manager hands the first error to the caller (pitfall 5). Every call is
//!   idempotent, so a retry after a lost reply is harmless.
//! * Blocking reads (`XREADGROUP ... BLOCK`) run on dedicated connections from
//!   a small pool, with no client-side response timeout of their own but an
//!   outer one of `block + block_margin`: a blocked read on the shared
//!   connection would stall heartbeats behind it (pitfall 4), and a response
//!   timeout shorter than the block would abandon reads the server still
//!   completes (pitfall 3). A connection whose read failed or timed out is
//!   dropped, never reused.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, ErrorKind, RedisError, ServerErrorKind, Value};
use tokio::sync::oneshot;

use crate::error::{QueueError, Result};
use crate::keys::{Keys, JOBS_GROUP, RESULTS_GROUP};
use crate::queue::JobQueue;
use crate::reply::{self, at};
use crate::types::{check_rung_epoch, rung_value, RungDecision, RungRecord, RungReply, RungRule};
use crate::types::{
    check_entry_id, check_job_id, check_max, check_progress, check_reason, clamp_block,
    duration_ms, truncate_text, Completion, Consumer, DeadLetter, EnqueueOutcome, InFlight,
    JobOutcome, Lease, QueueConfig, QueueStatus, Requeued, ResultEvent, RunLifecycle, WorkerState, MAX_ERROR_TEXT_LEN,
};

/// Source of the Redis function library (`FUNCTION LOAD REPLACE` it).
pub const LIBRARY_SOURCE: &str = include_str!("../redis/nasfleet.lua");
/// Version of the library this client speaks; must equal `VERSION` in the Lua.
pub const LIBRARY_VERSION: &str = "3";

/// Connection and timing settings of [`RedisQueue`].
#[derive(Clone)]
pub struct RedisQueueConfig {
    /// `redis://[user:password@]host:port/` or `rediss://...` (TLS).
    pub url: String,
    /// Run id: namespaces every key (`nasfleet:{run}:...`).
    pub run: String,
    /// Lease, delivery limit, worker TTL.
    pub queue: QueueConfig,
    /// Response timeout of ordinary (non-blocking) calls. A timed-out call is
    /// retried on a fresh connection.
    pub response_timeout: Duration,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// How long one queue call keeps retrying while Redis is unreachable or
    /// loading, before failing with [`QueueError::Unavailable`]. Keep it above
    /// the longest Redis restart you want to ride through.
    pub retry_for: Duration,
    /// Added to the block time of blocking reads to get their client-side
    /// timeout (pitfall 3: it must exceed the block).
    pub block_margin: Duration,
    /// Certificates for `rediss://` URLs; `None` uses the system roots.
    pub tls: Option<TlsFiles>,
}

/// PEM files for TLS connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) to trust instead of the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate, for servers that require client authentication.
    pub client_cert: Option<PathBuf>,
    /// Client private key (with `client_cert`).
    pub client_key: Option<PathBuf>,
}

impl RedisQueueConfig {
    /// Defaults: 5 s response and connect timeouts, retry for 2 minutes, 5 s
    /// block margin, default [`QueueConfig`], no custom TLS files.
    pub fn new(url: impl Into<String>, run: impl Into<String>) -> Self {
        RedisQueueConfig {
            url: url.into(),
            run: run.into(),
            queue: QueueConfig::default(),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(120),
            block_margin: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`, for logs.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => format!("{}***{}", &url[..scheme_end + 3], &rest[at..]),
    }
}

impl fmt::Debug for RedisQueueConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueueConfig")
            .field("url", &redact_url(&self.url))
            .field("run", &self.run)
            .field("queue", &self.queue)
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_for", &self.retry_for)
            .field("block_margin", &self.block_margin)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The Redis-backed queue. Cheap to clone; clones share connections and the
/// per-consumer bookkeeping.
#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("url", &redact_url(&self.inner.config.url))
            .field("run", &self.inner.config.run)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: RedisQueueConfig,
    keys: Keys,
    client: Client,
    /// Replaced wholesale after a timeout: a connection that stopped answering
    /// (a half-open TCP connection after a network cut) may never error out by
    /// itself, and the manager only reconnects on errors it sees as fatal.
    manager: Mutex<ConnectionManager>,
    blocking_pool: Mutex<Vec<MultiplexedConnection>>,
    consumers: Mutex<HashMap<String, Arc<ConsumerLocal>>>,
    results_cursors: Mutex<HashMap<String, ResultsCursor>>,
}

/// What this handle knows about one consumer name.
#[derive(Default)]
struct ConsumerLocal {
    /// Fetches of one consumer are serialised: the adoption step of the fetch
    /// function treats "pending for me but not in `held`" as a lost delivery,
    /// which would misfire if another fetch of the same name were mid-read.
    fetch_lock: tokio::sync::Mutex<()>,
    /// Entry ids handed to the caller and not yet finished or released.
    held: Mutex<HashSet<String>>,
}

#[derive(Clone)]
enum ResultsCursor {
    /// Re-reading unacknowledged events; XAUTOCLAIM cursor.
    Pending(String),
    /// Reading new events.
    New,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data (connections, id sets) stays consistent across a
    // panic elsewhere; refusing to work would only spread the failure.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Errors worth retrying after a pause: the server is unreachable, restarting
/// or loading its data set.
fn is_retryable(e: &RedisError) -> bool {
    e.is_io_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
            )
        )
}

fn is_function_missing(e: &RedisError) -> bool {
    e.to_string().contains("Function not found")
}

fn is_permission_error(e: &RedisError) -> bool {
    if e.code() == Some("NOPERM")
        || e.code() == Some("NOAUTH")
        || e.code() == Some("WRONGPASS")
        || e.kind() == ErrorKind::AuthenticationFailed
    {
        return true;
    }
    let s = e.to_string();
    s.contains("NOPERM")
        || s.contains("The user executing the script can't")
        || s.contains("no permissions")
}

pub(crate) fn map_error(op: &'static str, e: RedisError) -> QueueError {
    if is_permission_error(&e) {
        return QueueError::PermissionDenied {
            op,
            detail: e.to_string(),
        };
    }
    if let Some(detail) = e
        .detail()
        .filter(|d| d.starts_with("entry ") && d.contains("does not hold job"))
    {
        return QueueError::invalid("lease", detail.to_owned());
    }
    if e.code() == Some("NASFLEET") {
        return QueueError::invalid("lease", e.detail().unwrap_or_default().to_owned());
    }
    QueueError::Redis { op, source: e }
}

/// Exponential pause between retries (50 ms doubling to 1 s), bounded by
/// the retry window.
struct Backoff {
    started: tokio::time::Instant,
    delays: nasfleet_util::Backoff,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            started: tokio::time::Instant::now(),
            delays: nasfleet_util::Backoff::new(Duration::from_millis(50), Duration::from_secs(1)),
        }
    }

    /// Sleeps before the next attempt, or gives up with `Unavailable` once the
    /// window is spent.
    async fn wait(&mut self, window: Duration, op: &'static str, err: RedisError) -> Result<()> {
        let waited = self.started.elapsed();
        if waited >= window {
            return Err(QueueError::Unavailable {
                op,
                waited,
                source: err,
            });
        }
        let delay = self.delays.next_delay();
        tracing::warn!(op, error = %err, retry_in_ms = duration_ms(delay), "redis call failed; retrying");
        tokio::time::sleep(delay.min(window - waited)).await;
        Ok(())
    }
}

fn fcall(name: &str, keys: &[&str]) -> Cmd {
    let mut c = redis::cmd("FCALL");
    c.arg(name).arg(keys.len()).arg(keys);
    c
}

fn fcall_ro(name: &str, keys: &[&str]) -> Cmd {
    let mut c = redis::cmd("FCALL_RO");
    c.arg(name).arg(keys.len()).arg(keys);
    c
}

pub(crate) fn build_client(config: &RedisQueueConfig) -> Result<Client> {
    let bad_url = |e: RedisError| {
        QueueError::invalid("redis url", format!("{}: {e}", redact_url(&config.url)))
    };
    let Some(tls) = &config.tls else {
        return Client::open(config.url.as_str()).map_err(bad_url);
    };
    if !config.url.starts_with("rediss://") {
        return Err(QueueError::invalid(
            "redis url",
            format!(
                "TLS files are configured but {} is not a rediss:// URL",
                redact_url(&config.url)
            ),
        ));
    }
    // rustls needs a process-wide crypto provider. Installing ring explicitly
    // keeps this working even if another crate in the binary compiles in a
    // second provider (then rustls cannot pick one by itself). An error means
    // one is installed already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |what: &str, p: &PathBuf| {
        std::fs::read(p)
            .map_err(|e| QueueError::Tls(format!("reading {what} {}: {e}", p.display())))
    };
    let root_cert = tls
        .ca_cert
        .as_ref()
        .map(|p| read("CA certificate", p))
        .transpose()?;
    let client_tls = match (&tls.client_cert, &tls.client_key) {
        (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
            client_cert: read("client certificate", c)?,
            client_key: read("client key", k)?,
        }),
        (None, None) => None,
        _ => {
            return Err(QueueError::Tls(
                "client_cert and client_key must be given together".to_owned(),
            ))
        }
    };
    Client::build_with_tls(
        config.url.as_str(),
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| QueueError::Tls(format!("building the TLS client: {e}")))
}

fn new_manager(client: &Client, config: &RedisQueueConfig) -> Result<ConnectionManager> {
    let cfg = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.response_timeout))
        .set_connection_timeout(Some(config.connect_timeout))
        // Few, short internal retries: our own retry loop owns the waiting, and
        // a caller stuck inside the manager's backoff would not see it.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), cfg).map_err(|e| QueueError::Redis {
        op: "connect",
        source: e,
    })
}

/// How often a blocking fetch looks again while the run has no job stream yet.
const NOGROUP_POLL: Duration = Duration::from_millis(250);

/// Parsed reply of `nasfleet_worker_fetch`.
enum FetchReply {
    Lease(Lease),
    None { dead_lettered: u64 },
}

fn parse_fetch(v: &Value) -> Result<FetchReply> {
    const OP: &str = "fetch";
    let items = reply::array(OP, "fetch reply", v)?;
    let tag = reply::text(OP, "fetch tag", at(OP, "fetch reply", items, 0)?)?;
    match tag.as_str() {
        "lease" => Ok(FetchReply::Lease(Lease {
            entry_id: reply::text(OP, "entry id", at(OP, "lease", items, 1)?)?,
            job_id: reply::text(OP, "job id", at(OP, "lease", items, 2)?)?,
            payload: reply::text(OP, "payload", at(OP, "lease", items, 3)?)?,
            deliveries: reply::uint(OP, "deliveries", at(OP, "lease", items, 4)?)?,
        })),
        "none" => Ok(FetchReply::None {
            dead_lettered: match items.get(1) {
                Some(n) => reply::uint(OP, "dead-lettered count", n)?,
                None => 0,
            },
        }),
        other => Err(QueueError::protocol(
            OP,
            format!("unknown fetch tag {other:?}"),
        )),
    }
}

fn parse_completion(op: &'static str, v: &Value) -> Result<Completion> {
    match reply::text(op, "completion", v)?.as_str() {
        "recorded" => Ok(Completion::Recorded),
        "already" => Ok(Completion::AlreadyRecorded),
        "duplicate" => Ok(Completion::Duplicate),
        "lost" => Ok(Completion::LeaseLost),
        other => Err(QueueError::protocol(
            op,
            format!("unknown completion {other:?}"),
        )),
    }
}

fn parse_rung(op: &'static str, v: &Value) -> Result<RungReply> {
    let items = reply::array(op, "rung reply", v)?;
    match reply::text(op, "rung status", at(op, "rung reply", items, 0)?)?.as_str() {
        "lost" => Ok(RungReply::LeaseLost),
        "finished" => Ok(RungReply::Finished),
        "decided" => {
            let d = reply::text(op, "rung decision", at(op, "rung reply", items, 1)?)?;
            let decision = RungDecision::parse(&d)
                .ok_or_else(|| QueueError::protocol(op, format!("unknown rung decision {d:?}")))?;
            let value = reply::text(op, "rung value", at(op, "rung reply", items, 2)?)?;
            let value = value
                .parse::<f64>()
                .map_err(|_| QueueError::protocol(op, format!("rung value {value:?} is not a number")))?;
            let peers = reply::uint(op, "rung peers", at(op, "rung reply", items, 3)?)?;
            let first = reply::uint(op, "rung first", at(op, "rung reply", items, 4)?)? == 1;
            Ok(RungReply::Decided(RungRecord { decision, value, peers, first }))
        }
        other => Err(QueueError::protocol(op, format!("unknown rung status {other:?}"))),
    }
}

fn parse_bool(op: &'static str, v: &Value) -> Result<bool> {
    match reply::uint(op, "flag", v)? {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(QueueError::protocol(
            op,
            format!("expected 0 or 1, got {n}"),
        )),
    }
}

/// A result event from its stream fields. An entry not written by this
/// library (no known `kind`) is reported as a dead job with reason
/// `malformed_result` rather than as an error: an error would wedge the
/// controller on an entry it could never acknowledge.
fn result_event(id: String, get: impl Fn(&str) -> String) -> ResultEvent {
    let kind = get("kind");
    let outcome = match kind.as_str() {
        "ok" => JobOutcome::Ok {
            result: get("result"),
        },
        "dead" => JobOutcome::Dead {
            reason: get("reason"),
            error: get("error"),
        },
        _ => JobOutcome::Dead {
            reason: "malformed_result".to_owned(),
            error: format!("result entry {id} has kind {kind:?}"),
        },
    };
    ResultEvent {
        job_id: get("job"),
        outcome,
        by: get("by"),
        id,
    }
}

impl RedisQueue {
    /// Connects (retrying for `retry_for` while Redis is unreachable) and
    /// checks that the function library is loaded in the right version,
    /// loading it if missing or outdated and this user is allowed to
    /// (`FUNCTION LOAD`); otherwise fails with [`QueueError::Functions`].
    pub async fn connect(config: RedisQueueConfig) -> Result<Self> {
        config.queue.validate()?;
        let keys = Keys::new(&config.run)?;
        let client = build_client(&config)?;
        let manager = new_manager(&client, &config)?;
        let q = RedisQueue {
            inner: Arc::new(Inner {
                config,
                keys,
                client,
                manager: Mutex::new(manager),
                blocking_pool: Mutex::new(Vec::new()),
                consumers: Mutex::new(HashMap::new()),
                results_cursors: Mutex::new(HashMap::new()),
            }),
        };
        q.ensure_functions().await?;
        Ok(q)
    }

    /// The configuration in force.
    pub fn config(&self) -> &RedisQueueConfig {
        &self.inner.config
    }

    /// The run's key names (for operators and tests).
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Loads (replaces) the function library. Needs a user allowed to run
    /// `FUNCTION LOAD` (the `admin` user of `redis/users.acl.example`).
    pub async fn load_functions(&self) -> Result<()> {
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("LOAD").arg("REPLACE").arg(LIBRARY_SOURCE);
        self.run_cmd("load_functions", &cmd, false).await?;
        tracing::info!(
            version = LIBRARY_VERSION,
            "loaded redis function library nasfleet"
        );
        Ok(())
    }

    async fn ensure_functions(&self) -> Result<()> {
        let problem = match self
            .run_cmd("connect", &fcall_ro("nasfleet_version", &[]), false)
            .await
        {
            Ok(v) => {
                let server = reply::text("connect", "library version", &v)?;
                if server == LIBRARY_VERSION {
                    return Ok(());
                }
                format!("has version {server}, this client needs {LIBRARY_VERSION}")
            }
            Err(QueueError::Redis { source, .. }) if is_function_missing(&source) => {
                "is not loaded".to_owned()
            }
            Err(e) => return Err(e),
        };
        self.load_or_explain(problem).await
    }

    async fn load_or_explain(&self, problem: String) -> Result<()> {
        match self.load_functions().await {
            Ok(()) => Ok(()),
            Err(QueueError::PermissionDenied { detail, .. }) => {
                Err(QueueError::Functions { problem, detail })
            }
            Err(e) => Err(e),
        }
    }

    fn manager(&self) -> ConnectionManager {
        lock(&self.inner.manager).clone()
    }

    fn reset_manager(&self) {
        match new_manager(&self.inner.client, &self.inner.config) {
            Ok(m) => *lock(&self.inner.manager) = m,
            Err(e) => tracing::warn!(error = %e, "could not replace the redis connection"),
        }
    }

    /// Runs one command on the shared connection, retrying retryable errors
    /// within the retry window; with `reload`, a missing function library is
    /// loaded once (Redis restarted without persistence) and the call retried.
    async fn run_cmd(&self, op: &'static str, cmd: &Cmd, reload: bool) -> Result<Value> {
        let mut backoff = Backoff::new();
        let mut reloaded = !reload;
        loop {
            let mut conn = self.manager();
            match cmd.query_async::<Value>(&mut conn).await {
                Ok(v) => return Ok(v),
                Err(e) if is_retryable(&e) => {
                    if e.is_timeout() {
                        self.reset_manager();
                    }
                    backoff.wait(self.inner.config.retry_for, op, e).await?;
                }
                Err(e) if !reloaded && is_function_missing(&e) => {
                    reloaded = true;
                    // Boxed: loading goes through run_cmd again (async recursion).
                    Box::pin(self.load_or_explain("is not loaded".to_owned())).await?;
                }
                Err(e) => return Err(map_error(op, e)),
            }
        }
    }

    async fn run(&self, op: &'static str, cmd: &Cmd) -> Result<Value> {
        self.run_cmd(op, cmd, true).await
    }

    async fn blocking_conn(&self) -> std::result::Result<MultiplexedConnection, RedisError> {
        if let Some(c) = lock(&self.inner.blocking_pool).pop() {
            return Ok(c);
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.config.connect_timeout))
            // The outer timeout in `blocking_query` bounds the read instead.
            .set_response_timeout(None);
        self.inner
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
    }

    /// Runs a blocking read on a dedicated connection with a timeout of
    /// `block + block_margin`.
    async fn blocking_query(
        &self,
        cmd: &Cmd,
        block: Duration,
    ) -> std::result::Result<Value, RedisError> {
        let mut conn = self.blocking_conn().await?;
        let limit = block.saturating_add(self.inner.config.block_margin);
        match tokio::time::timeout(limit, cmd.query_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => {
                lock(&self.inner.blocking_pool).push(conn);
                Ok(v)
            }
            Ok(Err(e)) => {
                if !e.is_io_error() {
                    // A server error (NOGROUP) leaves the connection usable.
                    lock(&self.inner.blocking_pool).push(conn);
                }
                Err(e)
            }
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        }
    }

    fn consumer_local(&self, name: &str) -> Arc<ConsumerLocal> {
        lock(&self.inner.consumers)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    fn forget(&self, consumer: &Consumer, entry_id: &str) {
        if let Some(local) = lock(&self.inner.consumers).get(consumer.name()) {
            lock(&local.held).remove(entry_id);
        }
    }

    fn worker_key(&self, consumer: &Consumer) -> String {
        self.inner.keys.worker(consumer.name())
    }

    async fn fetch_inner(&self, consumer: &Consumer, block: Duration) -> Result<Option<Lease>> {
        const OP: &str = "fetch";
        let k = &self.inner.keys;
        let q = &self.inner.config.queue;
        let local = self.consumer_local(consumer.name());
        let _serial = local.fetch_lock.lock().await;
        let mut backoff = Backoff::new();
        let deadline = tokio::time::Instant::now() + block;
        loop {
            let block = deadline.saturating_duration_since(tokio::time::Instant::now());
            let known: Vec<String> = lock(&local.held).iter().cloned().collect();
            let mut cmd = fcall(
                "nasfleet_worker_fetch",
                &[&k.jobs, &k.results, &k.dead, &k.outcome],
            );
            cmd.arg(consumer.name())
                .arg(q.lease_ms())
                .arg(q.max_deliveries)
                .arg(&known);
            match parse_fetch(&self.run(OP, &cmd).await?)? {
                FetchReply::Lease(lease) => {
                    lock(&local.held).insert(lease.entry_id.clone());
                    return Ok(Some(lease));
                }
                FetchReply::None { dead_lettered } => {
                    if dead_lettered > 0 {
                        tracing::warn!(
                            run = k.run(),
                            dead_lettered,
                            "dead-lettered jobs over the delivery limit"
                        );
                    }
                }
            }
            let mut read = redis::cmd("XREADGROUP");
            read.arg("GROUP")
                .arg(JOBS_GROUP)
                .arg(consumer.name())
                .arg("COUNT")
                .arg(1);
            if !block.is_zero() {
                // BLOCK 0 would mean "forever": never send it.
                read.arg("BLOCK").arg(duration_ms(block).max(1));
            }
            read.arg("STREAMS").arg(&k.jobs).arg(">");
            match self.blocking_query(&read, block).await {
                Ok(v) => {
                    let Some((entry_id, fields)) = reply::xread_entries(OP, &v)?.into_iter().next()
                    else {
                        return Ok(None);
                    };
                    let lease = Lease {
                        job_id: reply::field(&fields, "job")
                            .filter(|j| !j.is_empty())
                            .unwrap_or(&entry_id)
                            .to_owned(),
                        payload: reply::field(&fields, "payload")
                            .unwrap_or_default()
                            .to_owned(),
                        // '>' only returns entries never delivered before.
                        deliveries: 1,
                        entry_id,
                    };
                    lock(&local.held).insert(lease.entry_id.clone());
                    return Ok(Some(lease));
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // Nothing was ever enqueued in this run (workers may start
                    // before the controller; only the controller may create
                    // the group): poll until the block time is used up.
                    if block.is_zero() {
                        return Ok(None);
                    }
                    tokio::time::sleep(block.min(NOGROUP_POLL)).await;
                }
                // The read may have been delivered with the reply lost; the
                // next round's fetch function adopts such an entry.
                Err(e) if is_retryable(&e) => {
                    backoff.wait(self.inner.config.retry_for, OP, e).await?
                }
                Err(e) => return Err(map_error(OP, e)),
            }
        }
    }

    async fn give_back(
        &self,
        op: &'static str,
        function: &str,
        consumer: &Consumer,
        lease: &Lease,
    ) -> Result<bool> {
        check_entry_id("lease entry id", &lease.entry_id)?;
        let k = &self.inner.keys;
        let worker = self.worker_key(consumer);
        let mut cmd = fcall(function, &[&k.jobs, &worker]);
        cmd.arg(consumer.name())
            .arg(&lease.entry_id)
            .arg(self.inner.config.queue.lease_ms())
            .arg(lease.deliveries);
        let given = parse_bool(op, &self.run(op, &cmd).await?)?;
        self.forget(consumer, &lease.entry_id);
        Ok(given)
    }

    fn results_cursor(&self, consumer: &str) -> ResultsCursor {
        lock(&self.inner.results_cursors)
            .entry(consumer.to_owned())
            .or_insert_with(|| ResultsCursor::Pending("0-0".to_owned()))
            .clone()
    }

    fn set_results_cursor(&self, consumer: &str, cursor: ResultsCursor) {
        lock(&self.inner.results_cursors).insert(consumer.to_owned(), cursor);
    }

    async fn claim_pending_results(
        &self,
        consumer: &Consumer,
        cursor: &str,
        max: usize,
    ) -> Result<(String, Vec<ResultEvent>)> {
        const OP: &str = "read_results";
        let mut cmd = fcall("nasfleet_results_claim", &[&self.inner.keys.results]);
        cmd.arg(consumer.name()).arg(cursor).arg(max);
        let v = self.run(OP, &cmd).await?;
        let items = reply::array(OP, "claim reply", &v)?;
        let next = reply::text(OP, "cursor", at(OP, "claim reply", items, 0)?)?;
        let mut events = Vec::new();
        for e in &items[1..] {
            let e = reply::array(OP, "claimed event", e)?;
            let mut vals = Vec::with_capacity(7);
            for i in 0..7 {
                vals.push(reply::text(
                    OP,
                    "event field",
                    at(OP, "claimed event", e, i)?,
                )?);
            }
            let names = ["id", "job", "kind", "result", "reason", "error", "by"];
            let get = |name: &str| {
                names
                    .iter()
                    .position(|n| *n == name)
                    .map(|i| vals[i].clone())
                    .unwrap_or_default()
            };
            events.push(result_event(vals[0].clone(), get));
        }
        Ok((next, events))
    }
}

/// Receives the result of a background fetch; if dropped before the result
/// was taken, gives a fetched job back so it is not stranded in this
/// consumer's pending list until the lease runs out.
struct FetchReceiver {
    rx: Option<oneshot::Receiver<Result<Option<Lease>>>>,
    queue: RedisQueue,
    consumer: Consumer,
}

impl Drop for FetchReceiver {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        rx.close();
        if let Ok(Ok(Some(lease))) = rx.try_recv() {
            release_in_background(self.queue.clone(), self.consumer.clone(), lease);
        }
    }
}

fn release_in_background(queue: RedisQueue, consumer: Consumer, lease: Lease) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            if let Err(e) = queue.release(&consumer, &lease).await {
                tracing::warn!(job_id = %lease.job_id, error = %e,
                    "could not release a job fetched for a cancelled caller; it returns when its lease expires");
            }
        });
    }
}

impl JobQueue for RedisQueue {
    async fn enqueue(&self, job_id: &str, payload: &str) -> Result<EnqueueOutcome> {
        const OP: &str = "enqueue";
        check_job_id(job_id)?;
        let k = &self.inner.keys;
        let mut cmd = fcall(
            "nasfleet_enqueue",
            &[&k.jobs, &k.results, &k.outcome, &k.enqueued],
        );
        cmd.arg(job_id).arg(payload);
        let v = self.run(OP, &cmd).await?;
        let items = reply::array(OP, "enqueue reply", &v)?;
        let tag = reply::text(OP, "enqueue tag", at(OP, "enqueue reply", items, 0)?)?;
        let entry = || reply::text(OP, "entry id", at(OP, "enqueue reply", items, 1)?);
        match tag.as_str() {
            "enqueued" => Ok(EnqueueOutcome::Enqueued { entry_id: entry()? }),
            "already" => Ok(EnqueueOutcome::AlreadyEnqueued { entry_id: entry()? }),
            "finished" => Ok(EnqueueOutcome::AlreadyFinished),
            other => Err(QueueError::protocol(
                OP,
                format!("unknown enqueue tag {other:?}"),
            )),
        }
    }

    /// The read runs in a spawned task that always finishes: cancelling the
    /// caller must not cancel a read the server may already have served
    /// (pitfall 3). A job that arrives for a caller that went away is
    /// released without spending a delivery.
    async fn fetch(&self, consumer: &Consumer, block: Duration) -> Result<Option<Lease>> {
        let (tx, rx) = oneshot::channel();
        let mut receiver = FetchReceiver {
            rx: Some(rx),
            queue: self.clone(),
            consumer: consumer.clone(),
        };
        let (queue, who, block) = (self.clone(), consumer.clone(), clamp_block(block));
        tokio::spawn(async move {
            let result = queue.fetch_inner(&who, block).await;
            if let Err(Ok(Some(lease))) = tx.send(result) {
                release_in_background(queue, who, lease);
            }
        });
        let rx = receiver
            .rx
            .as_mut()
            .ok_or_else(|| QueueError::Task("receiver missing".into()))?;
        let result = rx.await;
        receiver.rx = None;
        result.map_err(|_| {
            QueueError::Task("the fetch task ended without replying (it panicked)".into())
        })?
    }

    async fn heartbeat(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        progress_json: &str,
    ) -> Result<bool> {
        const OP: &str = "heartbeat";
        check_entry_id("lease entry id", &lease.entry_id)?;
        check_progress(progress_json)?;
        let k = &self.inner.keys;
        let worker = self.worker_key(consumer);
        let mut cmd = fcall("nasfleet_worker_heartbeat", &[&k.jobs, &worker]);
        cmd.arg(consumer.name())
            .arg(&lease.entry_id)
            .arg(&lease.job_id)
            .arg(progress_json)
            .arg(consumer.host())
            .arg(consumer.device())
            .arg(self.inner.config.queue.worker_ttl_ms());
        let owned = parse_bool(OP, &self.run(OP, &cmd).await?)?;
        if !owned {
            self.forget(consumer, &lease.entry_id);
        }
        Ok(owned)
    }

    async fn worker_alive(&self, consumer: &Consumer) -> Result<()> {
        let worker = self.worker_key(consumer);
        let mut cmd = fcall("nasfleet_worker_alive", &[&worker]);
        cmd.arg(consumer.host())
            .arg(consumer.device())
            .arg(self.inner.config.queue.worker_ttl_ms());
        self.run("worker_alive", &cmd).await?;
        Ok(())
    }

    async fn complete(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        result_json: &str,
    ) -> Result<Completion> {
        const OP: &str = "complete";
        check_entry_id("lease entry id", &lease.entry_id)?;
        let k = &self.inner.keys;
        let worker = self.worker_key(consumer);
        let mut cmd = fcall(
            "nasfleet_worker_complete",
            &[&k.jobs, &k.results, &k.outcome, &worker],
        );
        cmd.arg(consumer.name())
            .arg(&lease.entry_id)
            .arg(&lease.job_id)
            .arg(result_json);
        let c = parse_completion(OP, &self.run(OP, &cmd).await?)?;
        self.forget(consumer, &lease.entry_id);
        Ok(c)
    }

    async fn release(&self, consumer: &Consumer, lease: &Lease) -> Result<bool> {
        self.give_back("release", "nasfleet_worker_release", consumer, lease)
            .await
    }

    async fn abandon(&self, consumer: &Consumer, lease: &Lease) -> Result<bool> {
        self.give_back("abandon", "nasfleet_worker_abandon", consumer, lease)
            .await
    }

    async fn dead_letter(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        reason: &str,
        error_text: &str,
    ) -> Result<Completion> {
        const OP: &str = "dead_letter";
        check_entry_id("lease entry id", &lease.entry_id)?;
        check_reason(reason)?;
        let k = &self.inner.keys;
        let worker = self.worker_key(consumer);
        let mut cmd = fcall(
            "nasfleet_worker_dead_letter",
            &[&k.jobs, &k.results, &k.dead, &k.outcome, &worker],
        );
        cmd.arg(consumer.name())
            .arg(&lease.entry_id)
            .arg(&lease.job_id)
            .arg(reason)
            .arg(truncate_text(error_text, MAX_ERROR_TEXT_LEN));
        let c = parse_completion(OP, &self.run(OP, &cmd).await?)?;
        self.forget(consumer, &lease.entry_id);
        Ok(c)
    }

    async fn read_results(
        &self,
        consumer: &Consumer,
        max: usize,
        block: Duration,
    ) -> Result<Vec<ResultEvent>> {
        const OP: &str = "read_results";
        check_max(max)?;
        let block = clamp_block(block);
        let k = &self.inner.keys;
        let mut backoff = Backoff::new();
        let mut set_up = false;
        loop {
            if let ResultsCursor::Pending(cursor) = self.results_cursor(consumer.name()) {
                let (next, events) = self.claim_pending_results(consumer, &cursor, max).await?;
                let done = next == "0-0";
                self.set_results_cursor(
                    consumer.name(),
                    if done {
                        ResultsCursor::New
                    } else {
                        ResultsCursor::Pending(next)
                    },
                );
                if !events.is_empty() {
                    return Ok(events);
                }
                if !done {
                    continue;
                }
            }
            let mut read = redis::cmd("XREADGROUP");
            read.arg("GROUP")
                .arg(RESULTS_GROUP)
                .arg(consumer.name())
                .arg("COUNT")
                .arg(max);
            if !block.is_zero() {
                read.arg("BLOCK").arg(duration_ms(block).max(1));
            }
            read.arg("STREAMS").arg(&k.results).arg(">");
            match self.blocking_query(&read, block).await {
                Ok(v) => {
                    return Ok(reply::xread_entries(OP, &v)?
                        .into_iter()
                        .map(|(id, fields)| {
                            result_event(id, |name| {
                                reply::field(&fields, name).unwrap_or_default().to_owned()
                            })
                        })
                        .collect());
                }
                Err(e) if e.code() == Some("NOGROUP") && !set_up => {
                    set_up = true;
                    self.run(OP, &fcall("nasfleet_setup", &[&k.jobs, &k.results]))
                        .await?;
                }
                Err(e) if is_retryable(&e) => {
                    // A lost reply may have delivered events to us: re-read
                    // the pending list before reading new ones again.
                    self.set_results_cursor(
                        consumer.name(),
                        ResultsCursor::Pending("0-0".to_owned()),
                    );
                    backoff.wait(self.inner.config.retry_for, OP, e).await?;
                }
                Err(e) => return Err(map_error(OP, e)),
            }
        }
    }

    async fn ack_results(&self, ids: &[String]) -> Result<u64> {
        const OP: &str = "ack_results";
        if ids.is_empty() {
            return Ok(0);
        }
        for id in ids {
            check_entry_id("result id", id)?;
        }
        let mut cmd = fcall("nasfleet_results_ack", &[&self.inner.keys.results]);
        cmd.arg(ids);
        reply::uint(OP, "acknowledged", &self.run(OP, &cmd).await?)
    }

    async fn is_finished(&self, job_id: &str) -> Result<bool> {
        check_job_id(job_id)?;
        let mut cmd = redis::cmd("HEXISTS");
        cmd.arg(&self.inner.keys.outcome).arg(job_id);
        let v = self.run("is finished", &cmd).await?;
        parse_bool("is finished", &v)
    }

    async fn lifecycle(&self) -> Result<RunLifecycle> {
        const OP: &str = "read lifecycle";
        let mut cmd = redis::cmd("GET");
        cmd.arg(&self.inner.keys.lifecycle);
        match self.run(OP, &cmd).await? {
            Value::Nil => Ok(RunLifecycle::Running),
            v => {
                let text = reply::text(OP, "lifecycle", &v)?;
                RunLifecycle::parse(&text).ok_or_else(|| {
                    QueueError::protocol(OP, format!("{} holds {text:?}", self.inner.keys.lifecycle))
                })
            }
        }
    }

    async fn set_lifecycle(&self, state: RunLifecycle) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.inner.keys.lifecycle).arg(state.as_str());
        self.run("set lifecycle", &cmd).await.map(|_| ())
    }

    async fn requeue(&self, job_ids: &[String]) -> Result<Vec<Requeued>> {
        const OP: &str = "requeue";
        for job_id in job_ids {
            check_job_id(job_id)?;
        }
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.inner.keys;
        let mut cmd = fcall(
            "nasfleet_requeue",
            &[&k.jobs, &k.results, &k.dead, &k.outcome, &k.enqueued],
        );
        for job_id in job_ids {
            cmd.arg(job_id);
        }
        let v = self.run(OP, &cmd).await?;
        let items = reply::array(OP, "requeue reply", &v)?;
        if items.len() != job_ids.len() {
            return Err(QueueError::protocol(
                OP,
                format!("{} answers for {} jobs", items.len(), job_ids.len()),
            ));
        }
        items
            .iter()
            .map(|item| {
                let pair = reply::array(OP, "requeue answer", item)?;
                let tag = reply::text(OP, "requeue tag", at(OP, "requeue answer", pair, 0)?)?;
                Ok(match tag.as_str() {
                    "requeued" => Requeued::Requeued {
                        entry_id: reply::text(OP, "entry id", at(OP, "requeue answer", pair, 1)?)?,
                    },
                    "finished" => Requeued::Finished,
                    "pending" => Requeued::Pending,
                    "unknown" => Requeued::Unknown,
                    other => {
                        return Err(QueueError::protocol(OP, format!("unknown requeue tag {other:?}")))
                    }
                })
            })
            .collect()
    }

    async fn record_rung(
        &self,
        consumer: &Consumer,
        lease: &Lease,
        epoch: u32,
        value: f64,
        rule: RungRule,
    ) -> Result<RungReply> {
        const OP: &str = "record rung";
        check_entry_id("lease entry id", &lease.entry_id)?;
        check_rung_epoch(epoch)?;
        let k = &self.inner.keys;
        let rung_key = k.rung(epoch);
        let (kind, eta, min_peers) = match rule {
            RungRule::Median { min_peers } => ("median", 2, min_peers),
            RungRule::Asha { eta, min_peers } => ("asha", eta, min_peers),
        };
        let mut cmd = fcall("nasfleet_worker_rung", &[&k.jobs, &k.outcome, &rung_key]);
        // `{:e}` is the shortest form that reads back to the same double, in
        // a syntax Lua's tonumber accepts; the value is finite (rung_value).
        cmd.arg(consumer.name())
            .arg(&lease.entry_id)
            .arg(&lease.job_id)
            .arg(format!("{:e}", rung_value(value)))
            .arg(kind)
            .arg(eta)
            .arg(min_peers);
        let v = self.run(OP, &cmd).await?;
        parse_rung(OP, &v)
    }

    async fn status(&self, limit: usize) -> Result<QueueStatus> {
        const OP: &str = "status";
        let k = &self.inner.keys;
        let mut cmd = fcall_ro(
            "nasfleet_status",
            &[&k.jobs, &k.results, &k.dead, &k.outcome, &k.enqueued],
        );
        cmd.arg(&k.worker_prefix).arg(limit);
        let v = self.run(OP, &cmd).await?;
        let items = reply::array(OP, "status reply", &v)?;
        let num = |i: usize, what: &str| reply::uint(OP, what, at(OP, "status reply", items, i)?);
        let now = num(0, "server time")?;
        let stream_len = num(1, "stream length")?;
        let in_flight_total = num(2, "pending count")?;

        let mut in_flight = Vec::new();
        for p in reply::array(OP, "in-flight list", at(OP, "status reply", items, 3)?)? {
            let p = reply::array(OP, "in-flight entry", p)?;
            in_flight.push(InFlight {
                entry_id: reply::text(OP, "entry id", at(OP, "in-flight entry", p, 0)?)?,
                job_id: reply::text(OP, "job id", at(OP, "in-flight entry", p, 1)?)?,
                owner: reply::text(OP, "owner", at(OP, "in-flight entry", p, 2)?)?,
                idle_ms: reply::uint(OP, "idle", at(OP, "in-flight entry", p, 3)?)?,
                deliveries: reply::uint(OP, "deliveries", at(OP, "in-flight entry", p, 4)?)?,
            });
        }

        let mut workers = Vec::new();
        for w in reply::array(OP, "worker list", at(OP, "status reply", items, 4)?)? {
            let w = reply::array(OP, "worker", w)?;
            let t = |i: usize, what: &str| reply::text(OP, what, at(OP, "worker", w, i)?);
            let key = t(0, "worker key")?;
            let opt = |s: String| if s.is_empty() { None } else { Some(s) };
            let last_seen = reply::uint(OP, "last seen", at(OP, "worker", w, 5)?)?;
            workers.push(WorkerState {
                consumer: key
                    .strip_prefix(k.worker_prefix.as_str())
                    .unwrap_or(&key)
                    .to_owned(),
                host: t(1, "host")?,
                device: t(2, "device")?,
                job_id: opt(t(3, "job")?),
                progress: opt(t(4, "progress")?),
                seen_ago_ms: now.saturating_sub(last_seen),
            });
        }
        workers.sort_by(|a, b| a.consumer.cmp(&b.consumer));

        let mut dead_letters = Vec::new();
        for d in reply::array(OP, "dead list", at(OP, "status reply", items, 5)?)? {
            let d = reply::array(OP, "dead letter", d)?;
            let t = |i: usize, what: &str| reply::text(OP, what, at(OP, "dead letter", d, i)?);
            dead_letters.push(DeadLetter {
                id: t(0, "dead id")?,
                job_id: t(1, "job id")?,
                reason: t(2, "reason")?,
                error: t(3, "error")?,
                deliveries: reply::uint(OP, "deliveries", at(OP, "dead letter", d, 4)?)?,
                payload: t(5, "payload")?,
                consumer: t(6, "consumer")?,
            });
        }

        Ok(QueueStatus {
            depth: stream_len.saturating_sub(in_flight_total),
            in_flight_total,
            in_flight,
            workers,
            dead_letters,
            dead_total: num(6, "dead count")?,
            results: num(7, "results count")?,
            outcomes: num(8, "outcome count")?,
            enqueued: num(9, "enqueued count")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_library_declares_the_version_this_client_speaks() {
        let decl = format!("local VERSION = '{LIBRARY_VERSION}'");
        assert!(
            LIBRARY_SOURCE.contains(&decl),
            "redis/nasfleet.lua must contain {decl}"
        );
        assert!(LIBRARY_SOURCE.starts_with("#!lua name=nasfleet\n"));
    }

    #[test]
    fn worker_functions_are_named_for_the_acl() {
        // The ACL example and operators rely on worker-callable functions
        // carrying the nasfleet_worker_ prefix.
        for f in [
            "fetch",
            "heartbeat",
            "alive",
            "complete",
            "dead_letter",
            "release",
            "abandon",
            "rung",
        ] {
            let decl = format!("redis.register_function('nasfleet_worker_{f}'");
            assert!(LIBRARY_SOURCE.contains(&decl), "missing {decl}");
        }
    }

    #[test]
    fn passwords_are_redacted_in_debug_output() {
        assert_eq!(redact_url("redis://w:secret@h:1/"), "redis://w:***@h:1/");
        assert_eq!(redact_url("rediss://secret@h:1/"), "rediss://***@h:1/");
        assert_eq!(redact_url("redis://h:1/"), "redis://h:1/");
        let cfg = RedisQueueConfig::new("redis://w:secret@h:1/", "r");
        assert!(!format!("{cfg:?}").contains("secret"));
    }

    #[test]
    fn tls_files_require_a_rediss_url() {
        let mut cfg = RedisQueueConfig::new("redis://127.0.0.1:1/", "r");
        cfg.tls = Some(TlsFiles::default());
        assert!(matches!(
            build_client(&cfg),
            Err(QueueError::InvalidInput {
                what: "redis url",
                ..
            })
        ));
    }
}
