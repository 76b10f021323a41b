//! `nasfleet-dashboard`: a search as live web pages (`nasfleet dashboard`,
//! `nasfleet local --dashboard`) and as one static HTML file (`nasfleet
//! report`).
//!
//! # Layout
//!
//! * [`tail`] — [`Tail`]: an append-only JSON-lines file read incrementally
//!   by byte offset, tolerant of a truncated last line and of a file cut back
//!   on resume.
//! * [`run`] — [`RunState`]: one run directory aggregated into compact
//!   per-child records (memory grows by ~200 bytes per child, not by the raw
//!   lines), with the JSON each view draws from.
//! * [`live`] — [`LiveSource`]: the queue's live view (depth, in flight,
//!   dead letters, workers) through `nasfleet-queue`, for a Redis fleet
//!   ([`RedisLive`]) or the embedded run's in-memory queue ([`QueueLive`]).
//! * [`server`] — the axum router: the page, its assets, the JSON API.
//! * [`report`] — [`write_report`]: the same page with the run's data
//!   inlined (one self-contained HTML file) and PNGs of the main plots.
//! * `assets/` — `index.html`, `app.js`, `app.css`, compiled into the
//!   binary with `include_str!`: nothing is fetched from the internet and
//!   nothing is built with Node at install time.
//!
//! Invariants: the dashboard only reads a run directory, never writes to
//! it; it does not depend on tch or on redis (the queue crate is the only
//! one that talks to Redis — checked by the `nasfleet` crate's invariants
//! test); no request input makes it panic.

pub mod live;
pub mod report;
pub mod run;
pub mod server;
pub mod tail;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nasfleet_core::ArchLimits;
use nasfleet_core::draw::Drawing;
use nasfleet_core::Architecture;
use serde_json::{json, Value};
use thiserror::Error;

pub use live::{LiveSource, QueueLive, RedisLive};
pub use report::{write_report, ReportFiles};
pub use run::{ChildStatus, RunState};
pub use tail::{Tail, TailRead};

/// What the dashboard could not do; messages name the path.
#[derive(Debug, Error)]
pub enum DashboardError {
    /// A file or directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What it was.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The run does not exist or cannot be shown.
    #[error("{0}")]
    Run(String),
    /// A plot could not be drawn.
    #[error("plotting {path}: {message}")]
    Plot {
        /// The PNG.
        path: PathBuf,
        /// The backend's message.
        message: String,
    },
}

/// The embedded page and its assets.
pub mod assets {
    /// The page's code.
    pub const APP_JS: &str = include_str!("assets/app.js");
    /// The page's style.
    pub const APP_CSS: &str = include_str!("assets/app.css");
    /// The page's skeleton.
    pub const INDEX_HTML: &str = include_str!("assets/index.html");

    /// The page as the server sends it (assets as separate, cacheable files).
    pub fn served_page() -> String {
        INDEX_HTML
            .replace("<!--STYLE-->", r#"<link rel="stylesheet" href="/assets/app.css">"#)
            .replace("<!--SCRIPT-->", r#"<script src="/assets/app.js"></script>"#)
    }

    /// The page with everything inlined and `data` as `window.NASFLEET_STATIC`.
    pub fn static_page(data: &serde_json::Value) -> String {
        // `</` inside a script element would end it: escape it in the JSON.
        let json = data.to_string().replace("</", "<\\/");
        INDEX_HTML.replace("<!--STYLE-->", &format!("<style>\n{APP_CSS}</style>")).replace(
            "<!--SCRIPT-->",
            &format!("<script>window.NASFLEET_STATIC = {json};</script>\n<script>\n{APP_JS}</script>"),
        )
    }
}

/// Run states kept in memory at once (least recently used dropped first):
/// what bounds the server's memory when it serves a directory of many runs.
const CACHE_RUNS: usize = 32;

/// A run directory is re-read at most this often, however many pages poll.
const REFRESH_EVERY: Duration = Duration::from_millis(200);

/// Attempts remembered per run from heartbeats and dead letters.
const ATTEMPTS_KEPT: usize = 10_000;

struct Cached {
    state: Arc<Mutex<RunState>>,
    used: Instant,
    refreshed: Option<Instant>,
}

/// A job in flight: its sequence number, worker, and metric per epoch seen.
type InFlightCurve = (Option<u64>, String, BTreeMap<u64, f64>);

/// The in-flight learning curves seen in heartbeats, per run.
#[derive(Default)]
struct InFlightBook {
    /// job id → its curve so far.
    curves: HashMap<String, InFlightCurve>,
    /// seq → deliveries seen.
    attempts: HashMap<u64, u64>,
}

/// A dashboard: which runs it shows, and where their live data comes from.
pub struct Dashboard {
    runs_dir: PathBuf,
    only: Option<(String, PathBuf)>,
    live: Option<Arc<dyn LiveSource>>,
    cache: Mutex<HashMap<String, Cached>>,
    inflight: Mutex<HashMap<String, InFlightBook>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("runs_dir", &self.runs_dir).field("only", &self.only).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data; keep serving it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `name` may be a run directory's name: no path separators, not
/// `.`/`..`, not hidden (so a request can never leave the runs directory).
pub fn valid_run_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

fn looks_like_run(dir: &Path) -> bool {
    ["config.toml", "history.jsonl", "checkpoint.json"].iter().any(|f| dir.join(f).is_file())
}

impl Dashboard {
    /// Every run under `runs_dir`.
    pub fn all_runs(runs_dir: PathBuf) -> Self {
        Dashboard { runs_dir, only: None, live: None, cache: Mutex::default(), inflight: Mutex::default() }
    }

    /// One run, `name`, whose directory is `dir`.
    pub fn one_run(name: &str, dir: PathBuf) -> Self {
        let runs_dir = dir.parent().map(Path::to_owned).unwrap_or_default();
        Dashboard { runs_dir, only: Some((name.to_owned(), dir)), live: None, cache: Mutex::default(), inflight: Mutex::default() }
    }

    /// Adds a source of live fleet data.
    pub fn with_live(mut self, live: Arc<dyn LiveSource>) -> Self {
        self.live = Some(live);
        self
    }

    fn resolve(&self, name: &str) -> Result<PathBuf, String> {
        if let Some((only, dir)) = &self.only {
            return if name == only {
                Ok(dir.clone())
            } else {
                Err(format!("unknown run {name:?}: this dashboard shows run {only}"))
            };
        }
        if !valid_run_name(name) {
            return Err(format!("{name:?} is not a run name"));
        }
        let dir = self.runs_dir.join(name);
        if dir.is_dir() && looks_like_run(&dir) {
            Ok(dir)
        } else {
            Err(format!("unknown run {name:?}: no run directory {}", dir.display()))
        }
    }

    /// Calls `f` with the run's state, refreshed if it is older than
    /// [`REFRESH_EVERY`], and the time now (Unix ms). Blocking (file reads).
    pub fn with_run<T>(&self, name: &str, f: impl FnOnce(&RunState, u64) -> T) -> Result<T, String> {
        let dir = self.resolve(name)?;
        let state = {
            let mut cache = lock(&self.cache);
            if !cache.contains_key(name) && cache.len() >= CACHE_RUNS {
                if let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.used).map(|(k, _)| k.clone()) {
                    cache.remove(&oldest);
                }
            }
            let c = cache.entry(name.to_owned()).or_insert_with(|| Cached {
                state: Arc::new(Mutex::new(RunState::new(name, dir))),
                used: Instant::now(),
                refreshed: None,
            });
            c.used = Instant::now();
            let stale = c.refreshed.is_none_or(|t| t.elapsed() >= REFRESH_EVERY);
            if stale {
                c.refreshed = Some(Instant::now());
            }
            (c.state.clone(), stale)
        };
        let mut s = lock(&state.0);
        if state.1 {
            s.refresh();
        }
        Ok(f(&s, run::now_ms()))
    }

    /// The runs list (`/api/runs`).
    pub fn runs_list(&self) -> Value {
        let now = run::now_ms();
        if let Some((name, _)) = &self.only {
            let row = self.with_run(name, |s, now| s.row(now));
            return match row {
                Ok(r) => json!({ "single": name, "runs": [r], "notices": [] }),
                Err(e) => json!({ "single": name, "runs": [], "notices": [e] }),
            };
        }
        let mut names: Vec<String> = match std::fs::read_dir(&self.runs_dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir() && looks_like_run(&e.path()))
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| valid_run_name(n))
                .collect(),
            Err(e) => {
                return json!({ "single": null, "runs": [], "notices": [format!("cannot read the runs directory {}: {e}", self.runs_dir.display())] })
            }
        };
        names.sort();
        let rows: Vec<Value> = names.iter().filter_map(|n| self.with_run(n, |s, _| s.row(now)).ok()).collect();
        json!({ "single": null, "runs": rows, "notices": [] })
    }

    /// Live fleet data of `run` for the summary: `null` without a source,
    /// `{error}` when it is unreachable, else `{status, inflight}`.
    pub async fn live_json(&self, run: &str) -> Value {
        let Some(live) = &self.live else { return Value::Null };
        match live.snapshot(run).await {
            Err(e) => json!({ "error": e }),
            Ok(status) => {
                let mut books = lock(&self.inflight);
                let book = books.entry(run.to_owned()).or_default();
                let current: HashMap<&str, &nasfleet_fleet::status::LiveWorker> =
                    status.workers.iter().filter_map(|w| w.job_id.as_deref().map(|j| (j, w))).collect();
                book.curves.retain(|job, _| current.contains_key(job.as_str()));
                if book.attempts.len() > ATTEMPTS_KEPT {
                    book.attempts.clear();
                }
                for (job, w) in &current {
                    let seq = seq_of(job);
                    let entry = book.curves.entry((*job).to_owned()).or_insert_with(|| (seq, w.consumer.clone(), BTreeMap::new()));
                    if let Some(p) = &w.progress {
                        let m = &p["metrics"];
                        let v = m["valid_accuracy"].as_f64().or_else(|| m["valid_perplexity"].as_f64());
                        if let (Some(e), Some(v)) = (m["epoch"].as_u64(), v) {
                            entry.2.insert(e, v);
                        }
                        if let (Some(seq), Some(d)) = (seq, p["deliveries"].as_u64()) {
                            book.attempts.insert(seq, d);
                        }
                    }
                }
                for d in &status.dead_letters {
                    if let Some(seq) = seq_of(&d.job_id) {
                        book.attempts.insert(seq, d.attempts);
                    }
                }
                let inflight: Vec<Value> = book
                    .curves
                    .iter()
                    .map(|(job, (seq, worker, pts))| json!({ "job": job, "seq": seq, "worker": worker, "points": pts.iter().map(|(e, v)| json!([e, v])).collect::<Vec<_>>() }))
                    .collect();
                json!({ "status": status, "inflight": inflight })
            }
        }
    }

    /// Deliveries of child `seq` of `run` as seen in heartbeats or dead letters.
    pub fn attempts_seen(&self, run: &str, seq: u64) -> Option<u64> {
        lock(&self.inflight).get(run).and_then(|b| b.attempts.get(&seq).copied())
    }
}

/// The sequence number in a job id `<run>-<seq>`.
fn seq_of(job: &str) -> Option<u64> {
    job.rsplit_once('-').and_then(|(_, s)| s.parse().ok())
}

/// One child's page data: its history line, status and picture; `attempts`
/// is the delivery that trained it when its worker reported one (the
/// history's `attempt`), else null (the server fills in what the queue
/// showed for a dead letter).
pub fn child_detail(s: &RunState, seq: u64) -> Option<Value> {
    let c = s.child(seq)?;
    let line = s.child_line(seq).unwrap_or(Value::Null);
    let (svg, svg_error) = match draw(s, &line["arch"]) {
        Ok(svg) => (Some(svg), None),
        Err(e) => (None, Some(e)),
    };
    Some(json!({ "line": line, "status": c.status.name(), "svg": svg, "svg_error": svg_error, "attempts": line["attempt"].as_u64() }))
}

/// The architecture's picture (SVG) through `nasfleet_core::draw`.
pub fn draw(s: &RunState, arch: &Value) -> Result<String, String> {
    if arch.is_null() {
        return Err("the history line has no architecture".into());
    }
    let limits: ArchLimits = s.config().map(|c| c.limits.clone()).unwrap_or_default();
    let a = Architecture::from_value(arch.clone(), &limits).map_err(|e| format!("the architecture does not parse: {e}"))?;
    Ok(Drawing::of(&a, None).svg())
}

/// Serves `dash` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dash: Arc<Dashboard>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, server::router(dash)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::tests::{line, run_dir};

    /// `GET path` on `addr`: (status code, content type, body).
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        let ctype = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned)).unwrap_or_default();
        (code, ctype, body.to_owned())
    }

    async fn start(d: Dashboard) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve(l, Arc::new(d), std::future::pending()));
        addr
    }

    #[tokio::test]
    async fn the_api_serves_a_run_and_names_what_it_cannot() {
        let runs = tempfile::tempdir().unwrap();
        let r = run_dir(&[line(0, "ok", Some(0.5), "w0"), line(1, "dead", None, "w1")], "{\"job_id\":\"t-0000");
        std::fs::rename(r.path(), runs.path().join("r1")).unwrap();
        let addr = start(Dashboard::all_runs(runs.path().to_owned())).await;
        let (code, ctype, body) = get(addr, "/").await;
        assert_eq!(code, 200);
        assert!(ctype.starts_with("text/html") && body.contains("/assets/app.js"), "{ctype} {body}");
        let (code, _, body) = get(addr, "/assets/app.js").await;
        assert!(code == 200 && body.contains("function chart"));
        let v: Value = serde_json::from_str(&get(addr, "/api/runs").await.2).unwrap();
        assert_eq!(v["runs"][0]["name"], "r1");
        assert_eq!(v["runs"][0]["done"], 2);
        let v: Value = serde_json::from_str(&get(addr, "/api/runs/r1/summary").await.2).unwrap();
        assert_eq!(v["dead"], 1);
        assert!(v["notices"].to_string().contains("incomplete"), "{v}");
        assert!(v["live"].is_null());
        let v: Value = serde_json::from_str(&get(addr, "/api/runs/r1/children?from=1&wait=1").await.2).unwrap();
        assert_eq!(v["seq"], json!([1]));
        let v: Value = serde_json::from_str(&get(addr, "/api/runs/r1/children/0").await.2).unwrap();
        assert_eq!(v["line"]["worker"], "w0");
        let (code, ctype, body) = get(addr, "/api/runs/r1/children/0/arch.svg").await;
        assert!(code == 200 && ctype.starts_with("image/svg+xml") && body.contains("nor_conv_3x3"), "{code} {ctype} {body}");
        for (path, says) in [
            ("/api/runs/nope/summary", "no run directory"),
            ("/api/runs/..%2F..%2Fetc/summary", "not a run name"),
            ("/api/runs/r1/children/99", "no finished child #99"),
            ("/api/runs/r1/children/x1", "not a child's sequence number"),
            ("/api/runs/r1/children?from=-3", "must be numbers"),
            ("/nothing", "no such page"),
        ] {
            let (code, _, body) = get(addr, path).await;
            assert!(code >= 400 && body.contains(says), "{path}: {code} {body}");
        }
    }

    #[tokio::test]
    async fn redis_down_is_a_notice_and_the_run_still_shows() {
        let r = run_dir(&[line(0, "ok", Some(0.5), "w0")], "");
        let cfg = nasfleet_queue::RedisQueueConfig::new("redis://127.0.0.1:1/", "r");
        let d = Dashboard::one_run("r", r.path().to_owned()).with_live(Arc::new(RedisLive::new(cfg)));
        let addr = start(d).await;
        let v: Value = serde_json::from_str(&get(addr, "/api/runs/r/summary").await.2).unwrap();
        assert_eq!(v["run"]["done"], 1);
        let e = v["live"]["error"].as_str().unwrap();
        assert!(e.contains("127.0.0.1:1"), "{e}");
        let v: Value = serde_json::from_str(&get(addr, "/api/runs").await.2).unwrap();
        assert_eq!(v["single"], "r");
        let (code, _, body) = get(addr, "/api/runs/other/summary").await;
        assert!(code == 404 && body.contains("this dashboard shows run r"), "{body}");
    }

    #[test]
    fn run_names_cannot_leave_the_runs_directory() {
        for bad in ["", "..", ".", "../etc", "a/b", ".hidden", "a\\b"] {
            assert!(!valid_run_name(bad), "{bad}");
        }
        assert!(valid_run_name("cifar10-20260101-120000"));
    }

    #[test]
    fn the_static_page_cannot_be_closed_by_its_data() {
        let page = assets::static_page(&json!({ "x": "</script><script>alert(1)</script>" }));
        assert_eq!(page.matches("</script>").count(), 2, "only the two real script ends");
    }
}
