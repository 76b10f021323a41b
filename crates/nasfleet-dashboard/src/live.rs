//! Live fleet data — queue depth, jobs in flight, dead letters, workers and
//! their heartbeats — through `nasfleet-queue`'s [`JobQueue::status`] (this
//! crate never talks to Redis itself), as the `controller status` command
//! collects it ([`collect_status`]).
//!
//! A snapshot is bounded in time ([`SNAPSHOT_TIMEOUT`]) so a page never waits
//! on a Redis that is down: the page then shows the run directory's data and
//! a notice. Redis connections are opened lazily per run and dropped on an
//! error, so the dashboard reconnects by itself when Redis comes back.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use nasfleet_fleet::{collect_status, Board, RedisBoard, StatusReport};
use nasfleet_queue::{JobQueue, RedisQueue, RedisQueueConfig};

/// The longest a page waits for the queue.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);

/// In-flight jobs and dead letters listed per snapshot.
const LIST_LIMIT: usize = 200;

/// A boxed snapshot future.
pub type SnapshotFuture<'a> = Pin<Box<dyn Future<Output = Result<StatusReport, String>> + Send + 'a>>;

/// Where live data of a run comes from.
pub trait LiveSource: Send + Sync + 'static {
    /// One snapshot of run `run`; `Err` is a message for the page.
    fn snapshot<'a>(&'a self, run: &'a str) -> SnapshotFuture<'a>;
}

/// The in-process queue of one embedded run (`nasfleet local --dashboard`).
#[derive(Debug, Clone)]
pub struct QueueLive<Q> {
    queue: Q,
    run: String,
}

impl<Q: JobQueue> QueueLive<Q> {
    /// The live view of `run` on `queue`.
    pub fn new(queue: Q, run: &str) -> Self {
        QueueLive { queue, run: run.to_owned() }
    }
}

impl<Q: JobQueue> LiveSource for QueueLive<Q> {
    fn snapshot<'a>(&'a self, run: &'a str) -> SnapshotFuture<'a> {
        Box::pin(async move {
            if run != self.run {
                return Err(format!("the embedded queue serves run {}, not {run}", self.run));
            }
            collect_status(&self.queue, &Board::Off, run, LIST_LIMIT).await.map_err(|e| e.to_string())
        })
    }
}

/// Redis, for every run of a fleet: one connection per run, opened on first use.
pub struct RedisLive {
    template: RedisQueueConfig,
    queues: tokio::sync::Mutex<HashMap<String, RedisQueue>>,
}

impl std::fmt::Debug for RedisLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLive").field("url", &redact(&self.template.url)).finish()
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl RedisLive {
    /// Live data from the Redis of `template` (its `run` is replaced per
    /// request). Its retries are cut to about a second: a dashboard shows
    /// "Redis unreachable" rather than wait the workers' two minutes.
    pub fn new(mut template: RedisQueueConfig) -> Self {
        template.retry_for = Duration::from_millis(1000);
        template.connect_timeout = template.connect_timeout.min(Duration::from_secs(1));
        template.response_timeout = template.response_timeout.min(Duration::from_secs(2));
        RedisLive { template, queues: tokio::sync::Mutex::new(HashMap::new()) }
    }

    async fn queue(&self, run: &str) -> Result<(RedisQueue, RedisQueueConfig), String> {
        let mut cfg = self.template.clone();
        cfg.run = run.to_owned();
        if let Some(q) = self.queues.lock().await.get(run) {
            return Ok((q.clone(), cfg));
        }
        let q = RedisQueue::connect(cfg.clone())
            .await
            .map_err(|e| format!("Redis at {} is unreachable: {e}", redact(&cfg.url)))?;
        self.queues.lock().await.insert(run.to_owned(), q.clone());
        Ok((q, cfg))
    }
}

impl LiveSource for RedisLive {
    fn snapshot<'a>(&'a self, run: &'a str) -> SnapshotFuture<'a> {
        Box::pin(async move {
            let work = async {
                let (queue, cfg) = self.queue(run).await?;
                let board = Board::Redis(RedisBoard::new(&cfg).map_err(|e| e.to_string())?);
                collect_status(&queue, &board, run, LIST_LIMIT).await.map_err(|e| format!("reading the queue: {e}"))
            };
            let r = match tokio::time::timeout(SNAPSHOT_TIMEOUT, work).await {
                Ok(r) => r,
                Err(_) => Err(format!("Redis at {} did not answer within {SNAPSHOT_TIMEOUT:?}", redact(&self.template.url))),
            };
            if r.is_err() {
                // Reconnect next time.
                self.queues.lock().await.remove(run);
            }
            r
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(super::redact("redis://viewer:secret@10.0.0.5:6379/"), "redis://…@10.0.0.5:6379/");
        assert_eq!(super::redact("redis://127.0.0.1:1/"), "redis://127.0.0.1:1/");
    }
}
