//! A fleet as an operator runs it: `nasfleet controller start` and
//! `nasfleet worker` as separate processes on a redis-server this test
//! starts (and kills). The worker gets only `--redis`, `--run`, `--device`
//! and `--data-dir`: everything else comes from the run, which its
//! controller published from the config file.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nasfleet_queue::testing::{RedisServer, TempDir};

use crate::bench_search::synthetic_csv;
use crate::support::nasfleet;

/// An NB201 table search with the fleet's timings scaled down (the worker
/// must take them from the run, not from its own defaults).
fn config(dir: &Path) -> std::path::PathBuf {
    let table = synthetic_csv(dir);
    let text = format!(
        r#"
[search]
space = "nb201"
strategy = "random"
seed = 3
architectures = 12
batch = 4
max_in_flight = 4

[reward]
kind = "accuracy"
last_k = 1
power = 1.0

[train]
dataset = "nb201-table"

[train.table]
path = "{}"
simulated_seconds = 0.0

[fleet]
lease_ms = 7000
heartbeat_ms = 700
block_ms = 200
"#,
        table.display()
    );
    let p = dir.join("fleet.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nasfleet"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit (killing it after `secs`): (success, stdout, stderr).
fn finish(mut child: Child, secs: u64) -> (bool, String, String) {
    let end = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.is_some(), "still running after {secs} s; stderr: {err}");
    (status.is_some_and(|s| s.success()), out, err)
}

#[test]
fn a_worker_started_with_only_the_run_takes_its_settings_from_the_controller() {
    let dir = TempDir::new("nasfleet-fleet-cli").unwrap();
    let cfg = config(dir.path());
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let data = dir.path().join("data");
    let run_dir = dir.path().join("run");
    let (cfg_s, data_s, run_dir_s) = (cfg.display().to_string(), data.display().to_string(), run_dir.display().to_string());

    // The worker first: it waits for the run's controller.
    let worker_args = ["worker", "--redis", &url, "--run", "cli-fleet", "--device", "cpu", "--data-dir", &data_s];
    let worker = spawn(&worker_args);
    std::thread::sleep(Duration::from_millis(500));
    let controller = spawn(&["controller", "start", "--config", &cfg_s, "--redis", &url, "--run", "cli-fleet", "--run-dir", &run_dir_s]);
    let (ok, out, err) = finish(controller, 120);
    assert!(ok, "controller failed: {err}");
    assert!(out.contains("best reward"), "{out}");
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    assert!(history.lines().count() >= 12, "{history}");

    // The run is over: the worker leaves by itself, exit 0.
    let (ok, _, err) = finish(worker, 60);
    assert!(ok, "worker failed: {err}");
    assert!(err.contains("waiting for the run's controller"), "the worker waited: {err}");
    assert!(err.contains("lease=7s"), "the worker took the run's lease: {err}");
    assert!(err.contains("12 completed") && err.contains("left: run finished"), "{err}");
    let (ok, _, err) = nasfleet(&["controller", "stop", "--redis", &url, "--run", "cli-fleet"]);
    assert!(ok && err.contains("already finished"), "{err}");
    // Nothing died: nothing to requeue; a named job that is not a dead
    // letter is reported and refused.
    let (ok, out, err) = nasfleet(&["controller", "requeue", "--redis", &url, "--run", "cli-fleet"]);
    assert!(ok && out.contains("no dead letters"), "{out}{err}");
    let (ok, out, err) = nasfleet(&["controller", "requeue", "--redis", &url, "--run", "cli-fleet", "cli-fleet-000000", "nope"]);
    assert!(!ok, "{out}{err}");
    assert!(out.contains("cli-fleet-000000\tfinished") && out.contains("nope\tunknown"), "{out}");
    assert!(err.contains("none of the named jobs was a dead letter"), "{err}");
    let (ok, out, err) = nasfleet(&["controller", "status", "--redis", &url, "--run", "cli-fleet", "--json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["controller"]["state"], "finished", "{status}");
    assert!(status["controller"]["children_per_hour"].as_f64().is_some_and(|r| r > 0.0), "{status}");

    // A run-wide flag that disagrees with the run is refused at once.
    let mut args = worker_args.to_vec();
    args.extend(["--lease", "1m"]);
    let (ok, _, err) = nasfleet(&args);
    assert!(!ok && err.contains("--lease") && err.contains("disagrees"), "{err}");
    // So is one from the environment; a worker-local one is taken.
    let out = Command::new(env!("CARGO_BIN_EXE_nasfleet"))
        .args(worker_args)
        .env("NASFLEET_HEARTBEAT", "1s")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--heartbeat") && err.contains("disagrees"), "{err}");
}
