//! The `nasfleet space` commands, run as a user would run them.

use crate::support::nasfleet;

fn tmp(name: &str, text: &str) -> std::path::PathBuf {
    crate::support::tmp("cli", name, text)
}

#[test]
fn describe_each_space() {
    let (ok, out, _) = nasfleet(&["space", "describe", "cnn", "--layers", "6"]);
    assert!(ok);
    assert!(out.contains("num_filters") && out.contains("24 | 36 | 48 | 64"), "{out}");
    // 6 layers x (4*4*4) x 2^(0+1+...+5) = 64^6 * 2^15
    assert!(out.contains("tokens per architecture: 33"), "{out}");
    let (ok, out, _) = nasfleet(&["space", "describe", "rnn-cell"]);
    assert!(ok && out.contains("5.52e16"), "{out}");
    let (ok, out, _) = nasfleet(&["space", "describe", "nb201"]);
    assert!(ok && out.contains("1.56e4") && out.contains("nor_conv_3x3"), "{out}");
    let (ok, _, err) = nasfleet(&["space", "describe", "rnn-cell", "--base", "6"]);
    assert!(!ok && err.contains("power of two"), "{err}");
}

#[test]
fn sample_is_deterministic_and_checks_clean() {
    for space in ["cnn", "rnn-cell", "nb201"] {
        let a = nasfleet(&["space", "sample", space, "--seed", "42", "--layers", "9"]);
        let b = nasfleet(&["space", "sample", space, "--seed", "42", "--layers", "9"]);
        let c = nasfleet(&["space", "sample", space, "--seed", "43", "--layers", "9"]);
        assert!(a.0 && a.1 == b.1 && a.1 != c.1, "{space}");
        let p = tmp(&format!("{space}.json"), &a.1);
        let (ok, out, err) = nasfleet(&["space", "check", p.to_str().unwrap()]);
        assert!(ok && out.starts_with("ok: "), "{out}{err}");
    }
}

#[test]
fn check_reports_cnn_summary() {
    let p = tmp(
        "small.json",
        r#"{"version":1,"space":"cnn","layers":[{"filter_height":3,"filter_width":3,"filters":24}]}"#,
    );
    let (ok, out, _) = nasfleet(&["space", "check", p.to_str().unwrap(), "--input", "1,28,28"]);
    // conv 3*3*1*24 = 216, bn 2*24 = 48, linear 24*10+10 = 250; FLOPs 2*(216*28*28 + 240)
    assert!(ok && out.contains("1 layers") && out.contains("514 params") && out.contains("339168 FLOPs"), "{out}");
}

#[test]
fn check_errors_are_precise_and_exit_non_zero() {
    let cases = [
        (r#"{"version":1,"space":"cnn","layers":[]}"#, "0 layers is outside 1..=64"),
        (r#"{"version":1,"space":"cnn","layers":[{"filter_height":3,"filter_width":3,"filters":24,"dilation":2}]}"#, "unknown field `dilation`"),
        (r#"{"version":1,"space":"cnn","layers":[{"filter_height":3,"#, "invalid JSON"),
        (r#"{"version":1,"space":"cnn","layers":[{"filter_height":3,"filter_width":3,"filters":4096}]}"#, "layers[0].filters"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let p = tmp(&format!("bad{i}.json"), text);
        let (ok, _, err) = nasfleet(&["space", "check", p.to_str().unwrap()]);
        assert!(!ok, "case {i} should fail");
        assert!(err.contains(needle), "case {i}: {err}");
    }
    let (ok, _, err) = nasfleet(&["space", "check", "/nonexistent/arch.json"]);
    assert!(!ok && err.contains("cannot read /nonexistent/arch.json"), "{err}");
}
