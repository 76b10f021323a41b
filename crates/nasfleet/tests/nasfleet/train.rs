//! `nasfleet train`, run as a user runs it: one real child on real
//! Fashion-MNIST (the demo's recipe, one epoch), and its refusals.

use std::process::Command;

use crate::support::nasfleet;

fn config(name: &str) -> String {
    crate::support::config_path(name).display().to_string()
}

fn tmp(name: &str, text: &str) -> String {
    crate::support::tmp("train", name, text).display().to_string()
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

#[test]
fn ctrl_c_stops_at_the_next_step_and_the_same_command_resumes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let arch = tmp(
        "resume.json",
        r#"{"version":1,"space":"cnn","layers":[
            {"filter_height":3,"filter_width":3,"stride_height":2,"stride_width":2,"filters":24,"inputs":[]}]}"#,
    );
    let dir = std::env::temp_dir().join(format!("nasfleet-train-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_s = dir.display().to_string();
    let cfg = config("fashion-mnist-demo.toml");
    let args = ["train", "--arch", &arch, "--config", &cfg, "--epochs", "20", "--device", "cpu", "--checkpoint-dir", &dir_s];

    let mut child = Command::new(env!("CARGO_BIN_EXE_nasfleet")).args(args).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // Interrupt once the first epoch (and its checkpoint) is done.
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "exited before its first epoch: {seen}");
        seen.push_str(&line);
        if line.starts_with("epoch   1 ") {
            break;
        }
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted training is not a success: {seen}");
    assert!(seen.contains("stopped after") && seen.contains("run the same command again"), "{seen}");
    assert!(!seen.contains("epoch  20 "), "stopped at the next step, not at the end: {seen}");

    // The same command (plus --json) resumes after the last finished epoch.
    let mut again: Vec<&str> = args.to_vec();
    again.push("--json");
    let (ok, out, err) = nasfleet(&again);
    assert!(ok, "{err}");
    assert!(!err.contains("epoch   1 "), "epoch 1 came from the checkpoint, not trained again: {err}");
    assert!(err.contains("epoch  20 "), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let epochs: Vec<u64> = r["epochs"].as_array().unwrap().iter().map(|m| m["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, (1..=20).collect::<Vec<u64>>(), "the report holds every epoch, restored ones included");
    assert!(r["test_accuracy"].as_f64().unwrap() > 0.5);
    let _ = std::fs::remove_dir_all(&dir);
}
