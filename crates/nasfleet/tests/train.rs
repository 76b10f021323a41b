//! `nasfleet train`, run as a user runs it: one real child on real
//! Fashion-MNIST (the demo's recipe, one epoch), and its refusals.

use std::process::Command;

fn nasfleet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nasfleet")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn config(name: &str) -> String {
    format!("{}/../../config/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("nasfleet-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn trains_a_child_from_a_best_json_record() {
    // The shape of a run's best.json: the architecture under "arch".
    let best = tmp(
        "best.json",
        r#"{"job_id":"x-000001","reward":0.5,"arch":{"version":1,"space":"cnn","layers":[
            {"filter_height":3,"filter_width":3,"stride_height":2,"stride_width":2,"filters":36,"inputs":[]},
            {"filter_height":3,"filter_width":3,"stride_height":1,"stride_width":1,"filters":48,"inputs":[0]}]}}"#,
    );
    let (ok, out, err) = nasfleet(&[
        "train", "--arch", &best, "--config", &config("fashion-mnist-demo.toml"), "--epochs", "1", "--device", "cpu", "--json",
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let acc = r["final_valid_accuracy"].as_f64().unwrap();
    // Chance is 0.10 on Fashion-MNIST's 10 balanced classes.
    assert!(acc > 0.5, "one epoch reached only {acc}");
    assert!((r["reward"].as_f64().unwrap() - acc.powi(3)).abs() < 1e-9);
    // The final training scores the untouched test set (all 10,000 images).
    assert_eq!(r["test_images"].as_u64(), Some(10_000));
    let test = r["test_accuracy"].as_f64().unwrap();
    assert!(test > 0.5, "test accuracy {test} after one epoch");
    // Validation and test images come from the same distribution.
    assert!((test - acc).abs() < 0.1, "test {test} vs validation {acc}");
    assert!(r["params"].as_u64().unwrap() > 0);
    assert!(err.contains("epoch   1"), "{err}");
}

#[test]
fn refusals_are_clear() {
    let nb = tmp("nb.json", r#"{"version":1,"space":"nb201","ops":["none","none","none","none","none","none"]}"#);
    let (ok, _, err) = nasfleet(&["train", "--arch", &nb, "--config", &config("nb201.toml")]);
    assert!(!ok && err.contains("looked up in a table"), "{err}");
    let bad = tmp("bad.json", r#"{"version":1,"space":"cnn","layers":[]}"#);
    let (ok, _, err) = nasfleet(&["train", "--arch", &bad, "--config", &config("fashion-mnist-demo.toml")]);
    assert!(!ok && err.contains("0 layers"), "{err}");
    let (ok, _, err) = nasfleet(&["train", "--arch", &bad, "--config", &config("fashion-mnist-demo.toml"), "--device", "tpu"]);
    assert!(!ok && (err.contains("0 layers") || err.contains("unknown device")), "{err}");
}
