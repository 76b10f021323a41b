//! The dashboard in a real browser: headless Chromium (Debian's `chromium`,
//! installed by `scripts/setup.sh`) loads each view of real runs served by
//! `nasfleet dashboard`, and the tests assert on the rendered DOM (the
//! numbers shown equal the run's files). Screenshots of every view go to
//! `target/dashboard-screenshots/` for a reviewer to open.
//!
//! Runs: an NB201 search of 1,000 children through the table trainer, a
//! short Fashion-MNIST demo search (the shipped demo config, cut to a few
//! small children), and a live fleet over a redis-server this test starts
//! (a child finishing appears on the page without a reload).
//!
//! Chromium is driven with `--dump-dom` and `--screenshot` after a
//! `--virtual-time-budget`: virtual time stops while a request is pending,
//! so the page's long poll for new children waits in real time for the
//! server, and the dump shows what the page showed after it.
//!
//! Chromium 156's virtual clock sometimes stops for good under CPU load
//! (seen with the live-fleet page beside the other tests: the browser idle
//! for minutes, no request pending at the server — both sockets idle, the
//! same URLs answered by curl in milliseconds — so the budget never ran
//! out). Why is not known. [`browse`] therefore kills a browser that is still
//! running [`BROWSER_PATIENCE`] after its start and tries once more; a
//! second stall fails the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nasfleet_queue::testing::{RedisServer, TempDir};
use serde_json::Value;

use crate::bench_search::synthetic_csv;
use crate::support::{config_path, nasfleet};

/// The headless browser; a missing one fails the test with what to do
/// (CI installs it through scripts/setup.sh, so a skip would hide a gap).
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("NASFLEET_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!(
        "the dashboard tests need headless Chromium and none is installed: run scripts/setup.sh \
         (as root it runs `apt-get install -y chromium`) or set NASFLEET_CHROMIUM to a chromium binary"
    );
}

/// Where screenshots go: `target/dashboard-screenshots/`.
fn screenshots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Real time a browser gets for one page before it is taken for stalled.
const BROWSER_PATIENCE: Duration = Duration::from_secs(40);

/// Runs Chromium on `url` with `extra` switches; its stdout. A browser that
/// stalls (see the module documentation) is killed and started once more.
fn browse(url: &str, budget_ms: u64, extra: &[&str]) -> String {
    for attempt in 1..=2 {
        if let Some(out) = browse_once(url, budget_ms, extra) {
            return out;
        }
        eprintln!("chromium stalled on {url} (attempt {attempt}): killed");
    }
    panic!("chromium stalled twice on {url}: still running {BROWSER_PATIENCE:?} after its start");
}

/// One browser run; `None` when it was still running after [`BROWSER_PATIENCE`].
fn browse_once(url: &str, budget_ms: u64, extra: &[&str]) -> Option<String> {
    let profile = TempDir::new("nasfleet-chromium").unwrap();
    // Output to files, not pipes: a page's DOM can exceed a pipe's buffer
    // while this thread is waiting for the exit, not reading.
    let (out_path, err_path) = (profile.path().join("stdout"), profile.path().join("stderr"));
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        &format!("--user-data-dir={}", profile.path().display()),
        &format!("--virtual-time-budget={budget_ms}"),
        "--window-size=1400,1000",
    ]);
    // Its own process group, so that a kill reaches its helper processes.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().expect("running chromium");
    let deadline = Instant::now() + BROWSER_PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // The whole group (procps kill needs `--` before a negative pid,
            // else it reads it as an option and kills nothing), then the
            // browser itself in case it left the group.
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "chromium failed on {url}: {err}");
    Some(String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned())
}

/// The page's DOM after the page ran for `budget_ms` of virtual time.
fn dom(url: &str, budget_ms: u64) -> String {
    let d = browse(url, budget_ms, &["--dump-dom"]);
    assert!(d.contains("data-ready=\"1\""), "the page did not render {url}:\n{d}");
    d
}

/// Saves a screenshot of `url` as `<name>.png` in [`screenshots`].
fn screenshot(url: &str, name: &str) -> PathBuf {
    let p = screenshots().join(format!("{name}.png"));
    browse(url, 3000, &[&format!("--screenshot={}", p.display())]);
    assert!(std::fs::metadata(&p).is_ok_and(|m| m.len() > 10_000), "no screenshot at {}", p.display());
    p
}

/// The text of the element with `id` (its first text node and what follows up to `<`).
fn text_of(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    rest[start..end].replace("&amp;", "&")
}

/// An attribute of the element with `id`.
fn attr_of(dom: &str, id: &str, attr: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag_start = dom[..at].rfind('<').unwrap();
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>').unwrap()];
    let key = format!("{attr}=\"");
    let v = tag.find(&key).unwrap_or_else(|| panic!("#{id} has no {attr}: {tag}")) + key.len();
    tag[v..v + tag[v..].find('"').unwrap()].to_owned()
}

/// A `nasfleet dashboard` process; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nasfleet"))
            .arg("dashboard")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("dashboard: ").unwrap_or_else(|| panic!("no URL from the dashboard: {line:?}"));
        let base = url.split("/?").next().unwrap().trim_end_matches('/').to_owned();
        Server { child, base }
    }

    fn url(&self, query: &str) -> String {
        format!("{}/?{query}", self.base)
    }

    /// `GET path` as JSON (plain HTTP, no browser).
    fn api(&self, path: &str) -> Value {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An NB201 search of 1,000 children (RL, through the table trainer),
/// made once for the tests of this module: (scratch dir, runs dir).
fn nb201_run() -> &'static (TempDir, PathBuf) {
    static RUN: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = TempDir::new("nasfleet-dashboard-nb201").unwrap();
        let table = synthetic_csv(dir.path());
        let cfg = std::fs::read_to_string(config_path("nb201.toml")).unwrap().replace(
            "[train.table]",
            &format!("[train.table]\npath = \"{}\"", table.display()),
        );
        let cfg_path = dir.path().join("nb201.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let runs = dir.path().join("runs");
        let run_dir = runs.join("nb201-1000");
        let (ok, _, err) = nasfleet(&[
            "local",
            "--config",
            cfg_path.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--device",
            "cpu",
        ]);
        assert!(ok, "{err}");
        (dir, runs)
    })
}

fn history(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn best(h: &[Value]) -> (u64, f64) {
    h.iter()
        .filter_map(|l| Some((l["seq"].as_u64()?, l["reward"].as_f64()?)))
        .fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b })
}

#[test]
fn every_view_of_a_1000_child_nb201_run_shows_the_runs_files() {
    let (_, runs) = nb201_run();
    let run_dir = runs.join("nb201-1000");
    let h = history(&run_dir);
    assert_eq!(h.len(), 1000);
    let (best_seq, best_reward) = best(&h);
    let updates = std::fs::read_to_string(run_dir.join("updates.jsonl")).unwrap().lines().count();
    let server = Server::start(&["--runs-dir", runs.to_str().unwrap()]);

    // Runs list.
    let d = dom(&server.url("view=runs"), 2000);
    assert!(d.contains("data-run=\"nb201-1000\""), "{d}");
    assert!(d.contains("1000 / 1000") && d.contains("finished"), "{d}");
    screenshot(&server.url("view=runs"), "nb201-runs");

    // Overview: counts, best, policy version, every child a point.
    let q = "run=nb201-1000&view=overview";
    let d = dom(&server.url(q), 3000);
    assert_eq!(text_of(&d, "v-done"), "1000 / 1000");
    assert_eq!(text_of(&d, "v-best"), format!("{best_reward:.4}"));
    assert_eq!(text_of(&d, "v-policy"), updates.to_string(), "one policy version per update");
    assert_eq!(text_of(&d, "run-state"), "finished");
    assert_eq!(attr_of(&d, "chart-best", "data-points"), "1000");
    screenshot(&server.url(q), "nb201-overview");

    // Learning curves: every child's curve.
    let d = dom(&server.url("run=nb201-1000&view=curves"), 3000);
    assert_eq!(attr_of(&d, "chart-curves", "data-curves"), "1000");
    screenshot(&server.url("run=nb201-1000&view=curves"), "nb201-curves");

    // Children table: all of them, the first page of rows; sorted by reward on request.
    let d = dom(&server.url("run=nb201-1000&view=children"), 3000);
    assert_eq!(attr_of(&d, "children-count", "data-total"), "1000");
    assert_eq!(d.matches("<tr data-seq=").count(), 100, "one page of rows");
    screenshot(&server.url("run=nb201-1000&view=children"), "nb201-children");

    // The best child's page: reward, worker, picture, JSON.
    let line = &h[best_seq as usize];
    let q = format!("run=nb201-1000&view=child&seq={best_seq}");
    let d = dom(&server.url(&q), 3000);
    assert_eq!(text_of(&d, "child-reward"), format!("{best_reward:.6}"));
    assert_eq!(text_of(&d, "child-worker"), line["worker"].as_str().unwrap());
    assert_eq!(line["attempt"], 1, "the history records the delivery that trained it");
    assert_eq!(text_of(&d, "child-attempts"), "1");
    let svg = &d[d.find("id=\"child-svg\"").unwrap()..];
    assert!(svg.contains("<svg"), "the architecture is drawn");
    for op in line["arch"]["ops"].as_array().unwrap() {
        assert!(svg.contains(op.as_str().unwrap()), "the picture names {op}");
    }
    screenshot(&server.url(&q), "nb201-child");

    // Controller: one point per update, the heat map with the 6 edges.
    let d = dom(&server.url("run=nb201-1000&view=controller"), 3000);
    assert_eq!(text_of(&d, "updates-count"), updates.to_string());
    let heat = &d[d.find("id=\"heatmap\"").unwrap()..];
    for e in ["edge 0-&gt;1", "edge 2-&gt;3"] {
        assert!(heat.contains(e), "heat map row {e}: {heat}");
    }
    // The heat map is the controller's own probabilities after the last
    // update (recorded in updates.jsonl), its likeliest choice outlined.
    assert_eq!(attr_of(&d, "heatmap-source", "data-source"), "policy");
    let last: Value = serde_json::from_str(
        std::fs::read_to_string(runs.join("nb201-1000/updates.jsonl")).unwrap().lines().last().unwrap(),
    )
    .unwrap();
    let probs = last["policy"]["probs"].as_array().unwrap();
    assert_eq!(probs.len(), 6, "one row per NB201 edge");
    assert_eq!(heat.matches("class=\"chosen\"").count(), 6, "one likeliest choice per row");
    let shown: Vec<&str> = heat.split("data-p=\"").skip(1).map(|t| &t[..t.find('"').unwrap()]).collect();
    let want: Vec<String> = probs.iter().flat_map(|r| r.as_array().unwrap().iter().map(|p| p.as_f64().unwrap().to_string())).collect();
    assert_eq!(shown, want, "every cell shows the recorded probability");
    screenshot(&server.url("run=nb201-1000&view=controller"), "nb201-controller");

    // Fleet: an embedded run seen from its directory has no queue; it says so.
    let d = dom(&server.url("run=nb201-1000&view=fleet"), 2000);
    assert!(d.contains("id=\"fleet-offline\""), "{d}");
}

#[test]
fn bad_input_shows_a_notice_and_the_server_stays_up() {
    let (_, runs) = nb201_run();
    let scratch = TempDir::new("nasfleet-dashboard-bad").unwrap();
    // A copy of the run whose last history line was cut mid-write.
    let cut = scratch.path().join("runs/cut");
    std::fs::create_dir_all(&cut).unwrap();
    for f in ["config.toml", "checkpoint.json", "updates.jsonl"] {
        std::fs::copy(runs.join("nb201-1000").join(f), cut.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(runs.join("nb201-1000/history.jsonl")).unwrap();
    let keep = text.len() - 200;
    std::fs::write(cut.join("history.jsonl"), &text[..keep]).unwrap();
    // Redis down: nothing listens on port 1.
    let mut server = Server::start(&["--runs-dir", scratch.path().join("runs").to_str().unwrap(), "--redis", "redis://127.0.0.1:1/"]);

    let d = dom(&server.url("run=cut&view=overview"), 3000);
    assert_eq!(text_of(&d, "v-done"), "999 / 1000", "the complete lines are shown");
    assert!(d.contains("The last line of history.jsonl is incomplete") || d.contains("the last line of history.jsonl is incomplete"), "{d}");
    assert!(d.contains("Live fleet data unavailable") && d.contains("127.0.0.1:1"), "Redis down is named: {d}");
    screenshot(&server.url("run=cut&view=overview"), "bad-truncated-and-redis-down");

    let d = dom(&server.url("run=no-such-run&view=overview"), 2000);
    assert!(d.contains("unknown run") && d.contains("no-such-run"), "{d}");
    screenshot(&server.url("run=no-such-run&view=overview"), "bad-unknown-run");

    let d = dom(&server.url("run=cut&view=child&seq=999999"), 2000);
    assert!(d.contains("has no finished child #999999"), "{d}");
    let d = dom(&server.url("run=..%2F..&view=overview"), 2000);
    assert!(d.contains("not a run name"), "{d}");
    assert!(server.alive(), "the server survived every bad request");
    // And still serves.
    assert_eq!(server.api("/api/runs")["runs"][0]["done"], 999);
}

#[test]
fn a_short_fashion_mnist_demo_run_is_drawn_with_its_cnn_children() {
    let dir = TempDir::new("nasfleet-dashboard-fmnist").unwrap();
    // The shipped demo, cut to 4 small children of 2 epochs.
    let cfg = std::fs::read_to_string(config_path("fashion-mnist-demo.toml"))
        .unwrap()
        .replace("architectures = 24", "architectures = 4")
        .replace("batch = 4", "batch = 2")
        .replace("max_in_flight = 4", "max_in_flight = 2")
        .replace("epochs = 3", "epochs = 2")
        .replace("train_size = 5000", "train_size = 600")
        .replace("valid_size = 1000", "valid_size = 300");
    let cfg_path = dir.path().join("fmnist.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let runs = dir.path().join("runs");
    let run_dir = runs.join("fmnist");
    let (ok, _, err) = nasfleet(&["local", "--config", cfg_path.to_str().unwrap(), "--run-dir", run_dir.to_str().unwrap(), "--device", "cpu"]);
    assert!(ok, "{err}");
    let h = history(&run_dir);
    assert_eq!(h.len(), 4);
    let (best_seq, best_reward) = best(&h);
    let server = Server::start(&["--run", "fmnist", "--runs-dir", runs.to_str().unwrap()]);

    let d = dom(&server.url("view=overview"), 3000);
    assert_eq!(text_of(&d, "v-done"), "4 / 4");
    assert_eq!(text_of(&d, "v-best"), format!("{best_reward:.4}"));
    assert_eq!(attr_of(&d, "chart-best", "data-points"), "4");
    screenshot(&server.url("view=overview"), "fmnist-overview");

    let d = dom(&server.url("view=curves"), 3000);
    assert_eq!(attr_of(&d, "chart-curves", "data-curves"), "4");
    screenshot(&server.url("view=curves"), "fmnist-curves");

    // The best child: its CNN drawn (a box per layer with its filter size), its epochs.
    let line = &h[best_seq as usize];
    let q = format!("view=child&seq={best_seq}");
    let d = dom(&server.url(&q), 3000);
    assert_eq!(text_of(&d, "child-reward"), format!("{best_reward:.6}"));
    let svg = &d[d.find("id=\"child-svg\"").unwrap()..d.find("id=\"child-metrics\"").unwrap()];
    for layer in line["arch"]["layers"].as_array().unwrap() {
        let (fh, fw) = (layer["filter_height"].as_u64().unwrap(), layer["filter_width"].as_u64().unwrap());
        assert!(svg.contains(&format!("conv {fh}x{fw}")), "layer {layer} drawn: {svg}");
    }
    let metrics = &d[d.find("id=\"child-metrics\"").unwrap()..];
    assert_eq!(metrics.split("<tbody>").nth(1).unwrap().split("</tbody>").next().unwrap().matches("<tr>").count(), 2, "two epochs");
    screenshot(&server.url(&q), "fmnist-child");
    screenshot(&server.url("view=controller"), "fmnist-controller");

    // The static report: one HTML file with the same page, and PNGs.
    let out = dir.path().join("report");
    let (ok, stdout, err) = nasfleet(&["report", "--run", "fmnist", "--runs-dir", runs.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let html = out.join("fmnist.html");
    assert!(stdout.contains("fmnist.html") && stdout.contains("fmnist-best.png"), "{stdout}");
    let page = std::fs::read_to_string(&html).unwrap();
    for outside in ["src=\"http", "href=\"http", "src=\"/", "href=\"/", "<link rel=\"stylesheet\""] {
        assert!(!page.contains(outside), "the report loads nothing from outside ({outside})");
    }
    assert!(page.contains("window.NASFLEET_STATIC"), "the data is inlined");
    let d = dom(&format!("file://{}?view=overview", html.display()), 2000);
    assert_eq!(text_of(&d, "v-done"), "4 / 4");
    for png in ["fmnist-best.png", "fmnist-curves.png", "fmnist-controller.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
}

/// A fleet search over Redis whose children take a while (the table
/// trainer's simulated seconds), seen live by the dashboard.
#[test]
// Beside the other tests its first page stalls Chromium's virtual clock, often
// twice in a row (seen in a fresh-clone run of the whole suite; alone it
// passes in ~30 s). The cause is not found, so scripts/test.sh runs it on its
// own after the others.
#[ignore = "stalls Chromium beside the other browser tests; scripts/test.sh runs it on its own"]
fn a_live_fleet_over_redis_shows_workers_and_new_children_without_a_reload() {
    let dir = TempDir::new("nasfleet-dashboard-fleet").unwrap();
    let table = synthetic_csv(dir.path());
    let cfg = format!(
        r#"
[search]
space = "nb201"
strategy = "random"
seed = 5
architectures = 60
batch = 2
max_in_flight = 2

[reward]
kind = "accuracy"
last_k = 1
power = 1.0

[train]
dataset = "nb201-table"
epochs = 4

[train.table]
path = "{}"
simulated_seconds = 1.0

[fleet]
lease_ms = 20000
heartbeat_ms = 300
block_ms = 200
"#,
        table.display()
    );
    let cfg_path = dir.path().join("fleet.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let runs = dir.path().join("runs");
    let run_dir = runs.join("live");
    let spawn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nasfleet")).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    };
    let mut controller = spawn(&["controller", "start", "--config", cfg_path.to_str().unwrap(), "--redis", &url, "--run", "live", "--run-dir", run_dir.to_str().unwrap()]);
    let mut worker = spawn(&["worker", "--redis", &url, "--run", "live", "--device", "cpu", "--data-dir", dir.path().to_str().unwrap()]);
    let server = Server::start(&["--run", "live", "--runs-dir", runs.to_str().unwrap(), "--redis", &url]);

    // Wait (on the run's files, not the clock) until a child is done and the next is in training.
    let until = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(run_dir.join("history.jsonl")).map(|h| h.lines().count()).unwrap_or(0) < 2 {
        assert!(Instant::now() < until, "no child finished in 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let d = dom(&server.url("view=fleet"), 2500);
    let workers = &d[d.find("id=\"workers\"").unwrap()..];
    assert_eq!(workers.matches("<tr data-worker=").count(), 1, "the one live worker: {workers}");
    assert!(workers.contains("cpu"), "its device: {workers}");
    screenshot(&server.url("view=fleet"), "live-fleet");

    // The page keeps itself up to date: children applied while it is open
    // appear in it (its long poll), no reload.
    let d = dom(&server.url("view=overview"), 5000);
    let body_attr = |name: &str| -> u64 {
        let key = format!(" {name}=\"");
        d.split(&key).nth(1).and_then(|r| r.split('"').next()).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {name}: {d}"))
    };
    let (first, last) = (body_attr("data-first-done"), body_attr("data-done"));
    assert!(last > first, "a child finishing appeared on the open page: first {first}, then {last}");
    assert!(text_of(&d, "v-workers") == "1", "{}", text_of(&d, "v-workers"));
    let on_disk = history(&run_dir).len() as u64;
    assert!(last <= on_disk, "the page never shows more than the run has");

    let _ = controller.kill();
    let _ = worker.kill();
    let _ = controller.wait();
    let _ = worker.wait();
}

#[test]
fn space_draw_writes_svg_and_dot() {
    let arch = crate::support::tmp(
        "dashboard",
        "draw.json",
        r#"{"version":1,"space":"cnn","layers":[
            {"filter_height":3,"filter_width":5,"stride_height":1,"stride_width":1,"filters":24,"inputs":[]},
            {"filter_height":7,"filter_width":1,"stride_height":2,"stride_width":2,"filters":36,"inputs":[0]},
            {"filter_height":1,"filter_width":1,"stride_height":1,"stride_width":1,"filters":48,"inputs":[0,1]}]}"#,
    );
    let a = arch.to_str().unwrap();
    let (ok, svg, err) = nasfleet(&["space", "draw", a]);
    assert!(ok, "{err}");
    assert!(svg.starts_with("<svg") && svg.contains("conv 3x5") && svg.contains("conv 7x1"), "{svg}");
    let (ok, dot, err) = nasfleet(&["space", "draw", a, "--format", "dot"]);
    assert!(ok && dot.starts_with("digraph"), "{err}{dot}");
    let (ok, _, err) = nasfleet(&["space", "draw", a, "--input", "1,28,28"]);
    assert!(ok, "{err}");
    let (ok, _, err) = nasfleet(&["space", "draw", "/nonexistent/arch.json"]);
    assert!(!ok && err.contains("cannot read /nonexistent/arch.json"), "{err}");
}

#[test]
fn listening_beyond_loopback_warns_about_authentication() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nasfleet"))
        .args(["dashboard", "--runs-dir", "/nonexistent-runs", "--listen", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no authentication"), "{err}");
    assert!(line.starts_with("dashboard: http://"), "{line}");
}
