//! Architecture invariants (ARCHITECTURE.md), checked on the real dependency
//! graph from `cargo metadata`:
//! - nasfleet-core depends on none of tokio, redis, tch (even transitively);
//! - only nasfleet-torch depends on tch / torch-sys directly;
//! - the data, nb201 and queue crates do not pull in tch;
//! - the queue crate does not depend on tch or on the torch crate;
//! - the fleet crate does not pull in tch, and the binary never enables the
//!   fleet's fake trainer;
//! - only the queue crate talks to Redis: no other workspace crate depends
//!   on `redis` (or its TLS stack, `rustls`) directly;
//! - nasfleet-util, the shared helpers, depends on nothing;
//! - the dashboard pulls in neither tch nor the torch crate, and reads the
//!   queue through nasfleet-queue (it has no Redis client of its own).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn metadata() -> serde_json::Value {
    static META: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    META.get_or_init(load_metadata).clone()
}

fn load_metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// package name -> names of its normal (non-dev) dependencies, from the resolve graph.
fn graph(meta: &serde_json::Value) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let names: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p["name"].as_str().unwrap().to_string()))
        .collect();
    let mut g = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = names[node["id"].as_str().unwrap()].clone();
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null() || k["kind"] == "build"))
            .map(|d| names[d["pkg"].as_str().unwrap()].clone())
            .collect();
        g.insert(name, deps);
    }
    let members = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| names[id.as_str().unwrap()].clone())
        .collect();
    (g, members)
}

fn closure(g: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_string()];
    while let Some(n) = stack.pop() {
        for d in g.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn core_depends_on_none_of_tokio_redis_tch() {
    let (g, _) = graph(&metadata());
    let deps = closure(&g, "nasfleet-core");
    for banned in ["tokio", "redis", "tch", "torch-sys"] {
        assert!(!deps.contains(banned), "nasfleet-core depends on {banned} (transitively)");
    }
}

#[test]
fn only_the_torch_crate_depends_on_tch() {
    let (g, members) = graph(&metadata());
    // The check can see tch when it is there.
    assert!(g["nasfleet-torch"].contains("tch"), "graph does not show nasfleet-torch -> tch");
    for m in &members {
        let direct = &g[m];
        if m != "nasfleet-torch" {
            assert!(!direct.contains("tch") && !direct.contains("torch-sys"), "{m} depends on tch directly");
        }
    }
    for pure in ["nasfleet-core", "nasfleet-data", "nasfleet-nb201", "nasfleet-queue", "nasfleet-fleet", "nasfleet-dashboard"] {
        if members.contains(pure) {
            let deps = closure(&g, pure);
            assert!(!deps.contains("tch") && !deps.contains("nasfleet-torch"), "{pure} pulls in tch");
        }
    }
}

#[test]
fn only_the_queue_crate_talks_to_redis() {
    let (g, members) = graph(&metadata());
    // The check can see redis when it is there.
    assert!(g["nasfleet-queue"].contains("redis"), "graph does not show nasfleet-queue -> redis");
    for m in &members {
        if m != "nasfleet-queue" {
            for banned in ["redis", "rustls"] {
                assert!(!g[m].contains(banned), "{m} depends on {banned} directly: talk to Redis through nasfleet-queue");
            }
        }
    }
}

#[test]
fn the_dashboard_reads_runs_and_the_queue_only_through_the_libraries() {
    let (g, members) = graph(&metadata());
    assert!(members.contains("nasfleet-dashboard"), "nasfleet-dashboard is a workspace member");
    let deps = closure(&g, "nasfleet-dashboard");
    for banned in ["tch", "torch-sys", "nasfleet-torch"] {
        assert!(!deps.contains(banned), "nasfleet-dashboard pulls in {banned}");
    }
    // Live fleet data comes through the queue crate's API, never a Redis client of its own.
    assert!(g["nasfleet-dashboard"].contains("nasfleet-queue"), "the dashboard reads the queue through nasfleet-queue");
}

#[test]
fn the_shared_helpers_depend_on_nothing() {
    let (g, members) = graph(&metadata());
    assert!(members.contains("nasfleet-util"), "nasfleet-util is a workspace member");
    assert!(g["nasfleet-util"].is_empty(), "nasfleet-util depends on {:?}", g["nasfleet-util"]);
}

#[test]
fn the_binary_never_enables_the_fake_trainer() {
    let meta = metadata();
    let packages = meta["packages"].as_array().unwrap();
    let package = |name: &str| packages.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} not in the workspace"));
    let fleet = package("nasfleet-fleet");
    assert!(fleet["features"]["fake-trainer"].is_array(), "the check must see the feature");
    let default: Vec<&str> = fleet["features"]["default"].as_array().map(|d| d.iter().filter_map(|f| f.as_str()).collect()).unwrap_or_default();
    assert!(!default.contains(&"fake-trainer"), "fake-trainer is a default feature of nasfleet-fleet");
    let dep = package("nasfleet")["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "nasfleet-fleet" && d["kind"].is_null())
        .expect("nasfleet depends on nasfleet-fleet");
    let features: Vec<&str> = dep["features"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect();
    assert!(!features.contains(&"fake-trainer"), "the nasfleet binary enables the fake trainer");
}
