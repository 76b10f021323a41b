//! `nasfleet bench search`, run as a user would, on a synthetic CSV table
//! covering the whole NB201 space (the statistics themselves are checked by
//! hand in `nasfleet_nb201::bench`; this checks the wiring, the artefacts,
//! determinism per seed for all three strategies, and the error messages).

use std::path::{Path, PathBuf};

use nasfleet_core::space::nb201::Nb201Arch;
use nasfleet_core::{ExperimentConfig, SpaceKind};

use crate::support::{config_path, nasfleet};

/// A fresh directory per test (tests run in parallel and clean up after themselves).
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nasfleet-bench-search-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every cell, its value a fixed function of the NASLib tuple with one
/// optimum (all 4s), written with NB201 strings as a user's CSV would be.
pub(crate) fn synthetic_csv(dir: &Path) -> PathBuf {
    let mut text = String::from("arch,accuracy\n");
    for i in 0..15_625usize {
        let t: [u8; 6] = std::array::from_fn(|k| ((i / 5usize.pow(5 - k as u32)) % 5) as u8);
        let v = 50.0 + t.iter().enumerate().map(|(k, &d)| f64::from(d) * (k as f64 + 1.0)).sum::<f64>() / 2.0;
        text.push_str(&format!("{},{v}\n", Nb201Arch::from_naslib_tuple(t).unwrap()));
    }
    let p = dir.join("synthetic.csv");
    std::fs::write(&p, text).unwrap();
    p
}


#[test]
fn shipped_nb201_config_is_a_table_search() {
    let cfg = ExperimentConfig::load(&config_path("nb201.toml")).unwrap();
    assert_eq!(cfg.search.space, SpaceKind::Nb201);
    assert_eq!(cfg.train.dataset, "nb201-table");
    cfg.train.table.check().unwrap();
}

#[test]
fn bench_writes_its_artefacts_and_is_deterministic() {
    let d = dir("artefacts");
    let table = synthetic_csv(&d);
    let run = |out: &Path| {
        let (ok, stdout, stderr) = nasfleet(&[
            "bench",
            "search",
            "--table",
            table.to_str().unwrap(),
            "--budget",
            "120",
            "--seeds",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{stdout}\n{stderr}");
        stdout
    };
    let (a, b) = (d.join("a"), d.join("b"));
    let stdout = run(&a);
    assert!(stdout.contains("search efficiency on accuracy"), "{stdout}");
    for s in ["rl ", "random ", "evolution "] {
        assert!(stdout.contains(s), "{s} missing:\n{stdout}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("search.json")).unwrap()).unwrap();
    assert_eq!(report["checkpoints"], serde_json::json!([50, 100, 120]));
    assert_eq!(report["table"]["cells"], 15_625);
    // 50 + (4 · 21) / 2 = 92
    assert_eq!(report["table"]["best"], 92.0);
    let summaries = report["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 3);
    for s in summaries {
        assert_eq!(s["curve_mean"].as_array().unwrap().len(), 120);
    }
    assert_eq!(report["runs"].as_array().unwrap().len(), 6);
    for png in ["search.png", "pareto.png"] {
        let png = std::fs::read(a.join(png)).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
    }
    let fronts: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("pareto.json")).unwrap()).unwrap();
    assert_eq!(fronts["table"]["params"][0]["params"], 73_306);
    assert!(fronts["evolution"]["flops"].as_array().is_some_and(|f| !f.is_empty()));
    assert!(stdout.contains("regret"), "{stdout}");
    let saved = ExperimentConfig::load(&a.join("config.toml")).unwrap();
    assert_eq!(saved.search.space, SpaceKind::Nb201);
    assert!(std::fs::read_to_string(a.join("search.txt")).unwrap().starts_with("$ "));

    // Same seeds, same numbers, for the RL controller too.
    run(&b);
    assert_eq!(std::fs::read(a.join("search.json")).unwrap(), std::fs::read(b.join("search.json")).unwrap());
    std::fs::remove_dir_all(&d).unwrap();
}

/// The strategies beyond the paper (PPO updates, local search) and the
/// multi-objective reward run through the same command.
#[test]
fn ppo_local_search_and_a_cost_target_run_through_the_bench() {
    let d = dir("beyond");
    let table = synthetic_csv(&d);
    let out = d.join("out");
    let (ok, stdout, stderr) = nasfleet(&[
        "bench",
        "search",
        "--table",
        table.to_str().unwrap(),
        "--budget",
        "60",
        "--seeds",
        "2",
        "--strategies",
        "rl-ppo,local,random",
        "--ppo-epochs",
        "2",
        "--cost",
        "params",
        "--cost-target",
        "300000",
        "--cost-mode",
        "hard",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("rl-ppo ") && stdout.contains("local ") && stdout.contains("params target 300000"), "{stdout}");
    let saved = ExperimentConfig::load(&out.join("config.toml")).unwrap();
    let rule = saved.reward.cost_rule().expect("the cost rule is saved");
    assert_eq!((rule.target, rule.mode), (300_000.0, nasfleet_core::reward::CostMode::Hard));
    assert_eq!(saved.controller.ppo_epochs, 2);
    let (ok, _, err) = nasfleet(&["bench", "search", "--table", table.to_str().unwrap(), "--cost", "params", "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("--cost-target"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_requests_are_named() {
    let d = dir("errors");
    let csv = d.join("small.csv");
    std::fs::write(&csv, "arch,accuracy\n\"(2, 2, 2, 2, 2, 2)\",93.0\n").unwrap();
    let t = csv.to_str().unwrap();
    let out = d.join("out");
    let o = out.to_str().unwrap();

    let (ok, _, err) = nasfleet(&["bench", "search", "--table", t, "--strategies", "rl,greedy", "--out", o]);
    assert!(!ok && err.contains("unknown strategy \"greedy\""), "{err}");
    let cifar = config_path("cifar10.toml");
    let (ok, _, err) = nasfleet(&["bench", "search", "--table", t, "--config", cifar.to_str().unwrap(), "--out", o]);
    assert!(!ok && err.contains("nb201"), "{err}");
    let (ok, _, err) = nasfleet(&["bench", "search", "--table", "/nonexistent/t.csv", "--out", o]);
    assert!(!ok && err.contains("/nonexistent/t.csv"), "{err}");
    // Each cause is said once (not repeated by the printed error chain).
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let (ok, _, err) = nasfleet(&["bench", "search", "--table", t, "--objective", "latency", "--out", o]);
    assert!(!ok && err.contains("unknown objective column \"latency\"") && err.contains("accuracy"), "{err}");
    // A one-cell table cannot answer random search's proposals.
    let (ok, _, err) = nasfleet(&["bench", "search", "--table", t, "--strategies", "random", "--budget", "5", "--seeds", "1", "--out", o]);
    assert!(!ok && err.contains("not in the table") && err.contains("random (seed 0)"), "{err}");
    let (ok, _, err) = nasfleet(&["bench", "search", "--table", t, "--lr=-1", "--out", o]);
    assert!(!ok && err.contains("controller.lr"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The goal the shipped config was tuned for, as a regression check on the
/// real table (fetched into the cache like the nb201 crate's own tests):
/// on seeds the tuning never saw, the controller's mean best after 200
/// samples beats random search's by more than twice the standard error of
/// the difference. (With the shipped settings the measured margin on these
/// ten seeds is about four standard errors; the paper's defaults do not
/// clear it.) Deterministic for a given build: same seeds, same numbers.
#[test]
fn shipped_controller_beats_random_search_on_the_real_table() {
    let d = dir("real");
    let out = d.join("out");
    let (ok, stdout, stderr) = nasfleet(&[
        "bench",
        "search",
        "--budget",
        "200",
        "--seeds",
        "10",
        "--strategies",
        "rl,random",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    assert_eq!(report["table"]["cells"], 15_625);
    let c = report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["strategy"] == "rl" && c["against"] == "random" && c["samples"] == 200)
        .expect("rl − random at 200 samples");
    let (diff, se) = (c["difference"].as_f64().unwrap(), c["se"].as_f64().unwrap());
    assert!(diff > 2.0 * se, "rl − random at 200 samples: {diff} ± {se}\n{stdout}");
    std::fs::remove_dir_all(&d).unwrap();
}
