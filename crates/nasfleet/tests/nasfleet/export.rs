//! `nasfleet train --save-weights` and `nasfleet export`, run as a user runs
//! them: a small child trained for one epoch on a slice of Fashion-MNIST,
//! exported in every format; the README's PyTorch example run on the export
//! with the venv's torch; and the refusals (another space, another child's
//! weights, missing files), each one line, non-zero, nothing at `--out`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::nasfleet;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nasfleet-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The demo config cut to one short epoch.
fn small_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(crate::support::config_path("fashion-mnist-demo.toml")).unwrap();
    let text = text
        .replace("epochs = 3", "epochs = 1")
        .replace("train_size = 5000", "train_size = 256")
        .replace("valid_size = 1000", "valid_size = 128");
    let p = dir.join("cfg.toml");
    std::fs::write(&p, text).unwrap();
    p
}

const ARCH: &str = r#"{"job_id":"x-1","reward":0.5,"arch":{"version":1,"space":"cnn","layers":[
 {"filter_height":3,"filter_width":3,"stride_height":2,"stride_width":2,"filters":24,"inputs":[]},
 {"filter_height":3,"filter_width":1,"stride_height":1,"stride_width":1,"filters":36,"inputs":[0]},
 {"filter_height":5,"filter_width":5,"stride_height":3,"stride_width":3,"filters":24,"inputs":[]}]}}"#;

const OTHER: &str = r#"{"version":1,"space":"cnn","layers":[
 {"filter_height":3,"filter_width":3,"stride_height":2,"stride_width":2,"filters":24,"inputs":[]}]}"#;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NASFLEET_PYTHON") {
        return p.into();
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        let p = Path::new(&v).join("bin").join("python");
        if p.exists() {
            return p;
        }
    }
    "python3".into()
}

/// `nasfleet ARGS` must fail with one line naming `needle`, leaving nothing at `out`.
fn refused(args: &[&str], needle: &str, out: &Path) {
    let (ok, _, err) = nasfleet(args);
    assert!(!ok, "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!out.exists(), "{} was written", out.display());
    assert!(!out.with_extension("safetensors").exists());
}

#[test]
fn a_trained_child_exports_in_every_format_and_bad_input_is_refused() {
    let dir = scratch();
    let cfg = s(&small_config(&dir));
    let arch = dir.join("best.json");
    std::fs::write(&arch, ARCH).unwrap();
    let arch = s(&arch);
    let weights = s(&dir.join("child-weights.safetensors"));
    let (ok, out, err) =
        nasfleet(&["train", "--arch", &arch, "--config", &cfg, "--device", "cpu", "--json", "--save-weights", &weights]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["weights"].as_str(), Some(weights.as_str()));
    // The scratch checkpoint directory is gone.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".ckpt-")), "{left:?}");

    let py = dir.join("child.py");
    let (ok, _, err) = nasfleet(&[
        "export", "--arch", &arch, "--config", &cfg, "--format", "pytorch", "--weights", &weights, "--out", &s(&py),
    ]);
    assert!(ok, "{err}");
    assert!(py.exists() && dir.join("child.safetensors").exists());
    for (format, file, marker) in [
        ("torchscript", "child.pt", "PK"),
        ("svg", "child.svg", "<svg"),
        ("dot", "child.dot", "digraph"),
        ("json", "child.json", "{"),
    ] {
        let p = dir.join(file);
        let (ok, _, err) =
            nasfleet(&["export", "--arch", &arch, "--config", &cfg, "--format", format, "--weights", &weights, "--out", &s(&p)]);
        assert!(ok, "{format}: {err}");
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.starts_with(marker.as_bytes()), "{format}");
    }
    let json = std::fs::read_to_string(dir.join("child.json")).unwrap();
    assert!(json.contains("\"space\": \"cnn\"") && !json.contains("job_id"), "{json}");
    let svg = std::fs::read_to_string(dir.join("child.svg")).unwrap();
    assert!(svg.contains("layer 2: conv 5x5") && svg.contains("24 filters, stride 3x3"), "{svg}");

    // The README's example, verbatim but for the paths, and the TorchScript
    // file against it.
    let script = format!(
        "import sys, torch\nsys.path.insert(0, {dir:?})\n\
         from child import load_child, INPUT_SHAPE\n\
         model = load_child({w:?})\n\
         x = torch.randn(4, *INPUT_SHAPE)\n\
         logits = model(x)\n\
         ts = torch.jit.load({pt:?})\n\
         d = (ts(x) - logits).abs().max().item() / logits.abs().max().item()\n\
         assert logits.shape == (4, 10) and d <= 1e-5, d\n\
         print(sum(p.numel() for p in model.parameters()))\n",
        dir = s(&dir),
        w = s(&dir.join("child.safetensors")),
        pt = s(&dir.join("child.pt")),
    );
    let run = Command::new(python()).arg("-c").arg(&script).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), report["params"].to_string());

    // Refusals.
    let out = dir.join("refused.py");
    let other = dir.join("other.json");
    std::fs::write(&other, OTHER).unwrap();
    let cell = dir.join("cell.json");
    let (ok, sample, err) = nasfleet(&["space", "sample", "rnn-cell", "--seed", "1"]);
    assert!(ok, "{err}");
    std::fs::write(&cell, sample).unwrap();
    let args = |a: &Path, format: &str, w: Option<&str>| -> Vec<String> {
        let mut v = vec!["export", "--arch", &s(a), "--config", &cfg, "--format", format, "--out", &s(&out)]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        if let Some(w) = w {
            v.extend(["--weights".to_string(), w.to_string()]);
        }
        v
    };
    let run = |v: Vec<String>, needle: &str| refused(&v.iter().map(String::as_str).collect::<Vec<_>>(), needle, &out);
    run(args(&cell, "pytorch", None), "does not match the cnn space");
    run(args(&other, "pytorch", Some(&weights)), "weights are of another child");
    run(args(&other, "torchscript", Some(&weights)), "weights are of another child");
    run(args(Path::new(&arch), "pytorch", Some(&s(&dir.join("missing.safetensors")))), "missing.safetensors");
    run(args(&dir.join("missing.json"), "pytorch", None), "cannot read");
    run(args(Path::new(&arch), "torchscript", None), "give --weights");
    run(args(Path::new(&arch), "onnx", None), "onnx is not supported");
    run(args(Path::new(&arch), "pytorch", Some(&arch)), "is not a nasfleet weights file");
    let nowhere = s(&dir.join("no/such/dir/w.safetensors"));
    let (ok, _, err) = nasfleet(&["train", "--arch", &arch, "--config", &cfg, "--device", "cpu", "--save-weights", &nowhere]);
    assert!(!ok && err.contains("no such directory"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_trained_cell_exports_its_language_model() {
    let dir = std::env::temp_dir().join(format!("nasfleet-export-lm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(crate::support::config_path("austen-char.toml")).unwrap();
    let text = text
        .replace("epochs = 5", "epochs = 1")
        .replace("hidden = 128", "hidden = 8")
        .replace("bptt = 100", "bptt = 20")
        .replace("max_train_tokens = 1000000", "max_train_tokens = 3000")
        .replace("max_valid_tokens = 100000", "max_valid_tokens = 1000");
    let cfg = dir.join("lm.toml");
    std::fs::write(&cfg, text).unwrap();
    let cfg = s(&cfg);
    let (ok, sample, err) = nasfleet(&["space", "sample", "rnn-cell", "--seed", "3"]);
    assert!(ok, "{err}");
    let arch = dir.join("cell.json");
    std::fs::write(&arch, sample).unwrap();
    let arch = s(&arch);
    let weights = s(&dir.join("w.safetensors"));
    let (ok, out, err) =
        nasfleet(&["train", "--arch", &arch, "--config", &cfg, "--device", "cpu", "--json", "--save-weights", &weights]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    for (format, file) in [("pytorch", "cell.py"), ("torchscript", "cell.pt"), ("svg", "cell.svg")] {
        let (ok, _, err) = nasfleet(&[
            "export", "--arch", &arch, "--config", &cfg, "--format", format, "--weights", &weights, "--out",
            &s(&dir.join(file)),
        ]);
        assert!(ok, "{format}: {err}");
    }
    // The PyTorch module with the exported weights against the traced tch
    // model, step by step; and the parameter count against the trainer's.
    let script = format!(
        "import sys, torch\nsys.path.insert(0, {dir:?})\n\
         from cell import load_model\n\
         m = load_model({w:?})\n\
         V = m.decoder.out_features\n\
         ids = torch.randint(0, V, (6, 2), generator=torch.Generator().manual_seed(0))\n\
         logits, _ = m(ids)\n\
         ts = torch.jit.load({pt:?})\n\
         state = torch.zeros(2, 2 * len(m.cells) * m.hidden)\n\
         outs = []\n\
         for t in range(6):\n    y = ts(ids[t], state)\n    outs.append(y[:, :V])\n    state = y[:, V:]\n\
         d = (torch.cat(outs) - logits).abs().max().item() / logits.abs().max().item()\n\
         assert d <= 1e-5, d\n\
         print(sum(p.numel() for p in m.parameters()))\n",
        dir = s(&dir),
        w = s(&dir.join("cell.safetensors")),
        pt = s(&dir.join("cell.pt")),
    );
    let run = Command::new(python()).arg("-c").arg(&script).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), report["params"].to_string());
    let svg = std::fs::read_to_string(dir.join("cell.svg")).unwrap();
    assert!(svg.contains("inject: ") && svg.contains("c_t"), "{svg}");
    let _ = std::fs::remove_dir_all(&dir);
}
