//! The HTTP server: the page and its assets (embedded in the binary), and
//! the JSON the page polls.
//!
//! | route | answers |
//! |---|---|
//! | `GET /` | the page (`?run=R&view=overview\|best\|curves\|children\|child\|controller\|fleet`, `&seq=N` for a child) |
//! | `GET /assets/app.js`, `/assets/app.css` | the page's code and style |
//! | `GET /api/runs` | the runs list (and the one run when serving one) |
//! | `GET /api/runs/{run}/summary` | counts, pace, best, updates, the choice heat map, live fleet data |
//! | `GET /api/runs/{run}/children?from=N&wait=S` | children from index N as columns; waits up to S s (≤ 10) for a new one while the run runs |
//! | `GET /api/runs/{run}/children/{seq}` | one child's whole history line, its picture (SVG), attempts when known |
//! | `GET /api/runs/{run}/children/{seq}/arch.svg` | the picture alone |
//!
//! Handlers never panic on input: a bad run name or sequence number is a
//! 404 with a JSON `error` naming it; file reading and JSON building run on
//! the blocking pool (`spawn_blocking`), so a first read of a large run does
//! not stall the other requests.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{assets, Dashboard};

type App = Arc<Dashboard>;

/// The router of a dashboard.
pub fn router(dash: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], assets::APP_JS) }))
        .route("/assets/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], assets::APP_CSS) }))
        .route("/api/runs", get(runs))
        .route("/api/runs/{run}/summary", get(summary))
        .route("/api/runs/{run}/children", get(children))
        .route("/api/runs/{run}/children/{seq}", get(child))
        .route("/api/runs/{run}/children/{seq}/arch.svg", get(child_svg))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page".into()) })
        .with_state(dash)
}

fn error(code: StatusCode, message: String) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], assets::served_page()).into_response()
}

/// Runs `f` on the blocking pool; a panic there (a bug) becomes a 500, not a dead server.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}")))
}

async fn runs(State(d): State<App>) -> Response {
    match blocking(move || d.runs_list()).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn summary(State(d): State<App>, Path(run): Path<String>) -> Response {
    let d2 = d.clone();
    let name = run.clone();
    let mut v = match blocking(move || d2.with_run(&name, |s, now| s.summary(now))).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return error(StatusCode::NOT_FOUND, e),
        Err(r) => return r,
    };
    v["live"] = d.live_json(&run).await;
    Json(v).into_response()
}

#[derive(Deserialize)]
struct ChildrenQuery {
    #[serde(default)]
    from: usize,
    #[serde(default)]
    wait: f64,
}

async fn children(State(d): State<App>, Path(run): Path<String>, q: Result<Query<ChildrenQuery>, QueryRejection>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("from and wait must be numbers: {e}")),
    };
    let wait = if q.wait.is_finite() { q.wait.clamp(0.0, 10.0) } else { 0.0 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
    loop {
        let (d2, name, from) = (d.clone(), run.clone(), q.from);
        let r = blocking(move || {
            d2.with_run(&name, |s, now| (s.children.len(), s.state(now) == "running", (s.children.len() > from).then(|| s.children_since(from))))
        })
        .await;
        match r {
            Ok(Ok((_, _, Some(v)))) => return Json(v).into_response(),
            Ok(Ok((total, running, None))) => {
                // Nothing new: answer at once for a run that is over, else wait a little.
                if !running || tokio::time::Instant::now() >= deadline {
                    return Json(json!({ "from": q.from.min(total), "total": total, "workers": [], "seq": [], "status": [], "reward": [], "worker": [], "started": [], "finished": [], "applied": [], "pv": [], "curve": [], "reason": {} })).into_response();
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(Err(e)) => return error(StatusCode::NOT_FOUND, e),
            Err(r) => return r,
        }
    }
}

fn parse_seq(seq: &str) -> Result<u64, Response> {
    seq.parse::<u64>().map_err(|_| error(StatusCode::NOT_FOUND, format!("{seq:?} is not a child's sequence number")))
}

async fn child(State(d): State<App>, Path((run, seq)): Path<(String, String)>) -> Response {
    let seq = match parse_seq(&seq) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (d2, name) = (d.clone(), run.clone());
    let r = blocking(move || d2.with_run(&name, |s, _| crate::child_detail(s, seq))).await;
    let mut v = match r {
        Ok(Ok(Some(v))) => v,
        Ok(Ok(None)) => return error(StatusCode::NOT_FOUND, format!("run {run} has no finished child #{seq}")),
        Ok(Err(e)) => return error(StatusCode::NOT_FOUND, e),
        Err(r) => return r,
    };
    if v["attempts"].is_null() {
        if let Some(a) = d.attempts_seen(&run, seq) {
            v["attempts"] = Value::from(a);
        }
    }
    Json(v).into_response()
}

async fn child_svg(State(d): State<App>, Path((run, seq)): Path<(String, String)>) -> Response {
    let seq = match parse_seq(&seq) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = run.clone();
    match blocking(move || d.with_run(&name, |s, _| crate::child_detail(s, seq))).await {
        Ok(Ok(Some(v))) => match v["svg"].as_str() {
            Some(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg.to_owned()).into_response(),
            None => error(StatusCode::NOT_FOUND, v["svg_error"].as_str().unwrap_or("no picture").to_owned()),
        },
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("run {run} has no finished child #{seq}")),
        Ok(Err(e)) => error(StatusCode::NOT_FOUND, e),
        Err(r) => r,
    }
}
