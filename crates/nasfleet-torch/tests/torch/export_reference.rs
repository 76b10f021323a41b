//! The exported children against PyTorch itself: for 24 sampled CNN children
//! (strides, pooling, all three filling rules) and 12 sampled recurrent cells
//! plus the paper's NAS cell, the generated PyTorch module loaded with the
//! exported safetensors weights gives the tch child's outputs on the same
//! input (to 1e-5 of the output's scale), has the same parameter count, and
//! the traced TorchScript file loaded by `torch.jit.load` gives them too.
//! Every case runs in one Python process
//! (`tests/reference/export_check.py`, the venv's torch).

use std::path::{Path, PathBuf};
use std::process::Command;

use nasfleet_core::space::cnn::{CnnArch, CnnSpace, DepthSchedule};
use nasfleet_core::space::rnn_cell::{CellArch, CellSpace};
use nasfleet_torch::export::{python, torchscript, CnnChild, LmChild, WeightsFile};
use nasfleet_torch::rnn::LmShape;
use nasfleet_torch::tch::{self, Kind, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const NASCELL_TOKENS: [u32; 34] = [
    0, 2, 0, 3, 0, 2, 1, 3, 0, 1, 0, 2, 0, 1, 0, 2, // leaves
    1, 1, 0, 1, 1, 1, 0, 2, // nodes 8..11
    1, 0, 0, 1, // nodes 12, 13
    1, 1, // root
    0, 1, 8, 12, // inject add/tanh into node 8; c_t = pre-activation of node 12
];

/// The Python of the set-up venv: `NASFLEET_PYTHON`, else the active venv's,
/// else `python3` on the PATH (`eval "$(scripts/setup.sh)"` puts the venv there).
pub(crate) fn python() -> PathBuf {
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

/// Runs the check script on `cases` and returns its result per case name.
fn run_checks(dir: &Path, cases: &[Value]) -> Vec<Value> {
    let list = dir.join("cases.json");
    std::fs::write(&list, serde_json::to_vec(cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/export_check.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&list)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (the set-up venv's python; set NASFLEET_PYTHON): {e}", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "export_check.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), cases.len(), "{stdout}");
    results
}

/// Values of `shape` uniform in [lo, hi) from `rng`.
fn uniform(rng: &mut ChaCha8Rng, shape: &[i64], lo: f32, hi: f32) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Tensor::from_slice(&v).reshape(shape)
}

fn io_file(tensors: Vec<(&str, Tensor)>) -> WeightsFile {
    WeightsFile { metadata: Default::default(), tensors: tensors.into_iter().map(|(n, t)| (n.to_string(), t)).collect() }
}

fn sample_cnns(n: usize) -> Vec<CnnArch> {
    let space = CnnSpace {
        filter_heights: vec![1, 3, 5],
        filter_widths: vec![1, 3, 5],
        predict_strides: true,
        strides: vec![1, 2, 3],
        num_filters: vec![2, 3, 4],
        max_pool_after: vec![1, 3],
        depth: DepthSchedule { start: 3, step: 0, every: 1, max: 6 },
    };
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    (0..n)
        .map(|i| {
            let layers = 2 + i % 5;
            let tokens = space.schema(layers).sample_uniform(&mut rng);
            space.decode(&tokens).unwrap()
        })
        .collect()
}

#[test]
fn exported_cnn_children_match_the_tch_children_in_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let input = (3usize, 9usize, 11usize);
    let classes = 5;
    let archs = sample_cnns(24);
    // The sample exercises every rule.
    let graphs: Vec<_> = archs.iter().map(|a| a.resolve(input, classes)).collect();
    let rule1 = graphs.iter().any(|g| g.layers.iter().skip(1).any(|l| l.takes_image));
    let rule2 = graphs.iter().any(|g| g.final_inputs.len() > 1);
    let padded = |shapes: Vec<[usize; 3]>| shapes.windows(2).any(|w| w[0][1..] != w[1][1..]);
    let rule3 = graphs.iter().any(|g| {
        g.layers.iter().any(|l| l.inputs.len() > 1 && padded(l.inputs.iter().map(|&j| g.layers[j].output_shape).collect()))
            || padded(g.final_inputs.iter().map(|&j| g.layers[j].output_shape).collect())
    });
    let strided = archs.iter().any(|a| a.layers.iter().any(|l| l.stride_height > 1 || l.stride_width > 1));
    let pooled = graphs.iter().any(|g| g.layers.iter().any(|l| l.pooled));
    assert!(rule1 && rule2 && rule3 && strided && pooled, "sample lacks a case: {rule1} {rule2} {rule3} {strided} {pooled}");

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut cases = Vec::new();
    let mut expected_params = Vec::new();
    for (i, arch) in archs.iter().enumerate() {
        let child = CnnChild::new(arch, input, classes, i as u64).unwrap();
        // Non-trivial batch-norm parameters and statistics.
        tch::no_grad(|| {
            for (name, v) in child.variables() {
                let (lo, hi) = if name.ends_with("running_var") || name.ends_with("bn.weight") {
                    (0.5, 1.5)
                } else if name.ends_with("running_mean") || name.ends_with("bn.bias") {
                    (-0.5, 0.5)
                } else {
                    continue;
                };
                v.shallow_clone().copy_(&uniform(&mut rng, &v.size(), lo, hi));
            }
        });
        let x = uniform(&mut rng, &[3, input.0 as i64, input.1 as i64, input.2 as i64], -1.0, 1.0);
        let y = tch::no_grad(|| child.net().forward(&x, false)).unwrap();
        let weights = dir.path().join(format!("cnn{i}.safetensors"));
        child.weights().unwrap().write(&weights).unwrap();
        let ts = dir.path().join(format!("cnn{i}.pt"));
        torchscript::save_cnn(&child, &ts).unwrap();
        // Training mode last: it updates the running statistics.
        let y_train = tch::no_grad(|| child.net().forward(&x, true)).unwrap();
        let io = dir.path().join(format!("cnn{i}-io.safetensors"));
        io_file(vec![("x", x), ("y", y), ("y_train", y_train)]).write(&io).unwrap();
        let module = dir.path().join(format!("cnn{i}.py"));
        std::fs::write(&module, python::cnn_module(arch, &graphs[i])).unwrap();
        cases.push(json!({"name": format!("cnn{i}"), "kind": "cnn", "module": module, "weights": weights, "io": io, "torchscript": ts}));
        assert_eq!(child.param_count(), graphs[i].params);
        expected_params.push(child.param_count());
    }
    let results = run_checks(dir.path(), &cases);
    for ((r, arch), params) in results.iter().zip(&archs).zip(&expected_params) {
        for key in ["rel", "ts_rel", "train_rel"] {
            let d = r[key].as_f64().unwrap();
            assert!(d <= 1e-5, "{}: {key} = {d:e} for {arch:?}", r["name"]);
        }
        assert_eq!(r["params"].as_u64(), Some(*params), "{}", r["name"]);
    }
}

fn sample_cells() -> Vec<CellArch> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut cells = vec![CellSpace::default().decode(&NASCELL_TOKENS).unwrap()];
    for i in 0..12 {
        let space = CellSpace { base: [2, 4, 8][i % 3], extended: i % 2 == 1 };
        let tokens = space.schema().sample_uniform(&mut rng);
        cells.push(space.decode(&tokens).unwrap());
    }
    cells
}

#[test]
fn exported_cells_and_language_models_match_the_tch_children_in_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (vocab, steps, batch) = (11i64, 5i64, 3i64);
    let mut cases = Vec::new();
    let mut expected_params = Vec::new();
    for (i, arch) in sample_cells().iter().enumerate() {
        let shape = LmShape { vocab, hidden: 6, layers: 2, tie_weights: i % 2 == 0, leaf_bias: i % 3 == 1 };
        let child = LmChild::new(arch, shape, i as u64).unwrap();
        let ids: Vec<i64> = (0..steps * batch).map(|_| rng.gen_range(0..vocab)).collect();
        let ids = Tensor::from_slice(&ids).reshape([steps, batch]);
        let (y, _) = tch::no_grad(|| child.model().forward(&ids, &child.model().zero_state(batch), None));
        let weights = dir.path().join(format!("lm{i}.safetensors"));
        child.weights().unwrap().write(&weights).unwrap();
        let ts = dir.path().join(format!("lm{i}.pt"));
        torchscript::save_lm_step(&child, &ts).unwrap();
        let io = dir.path().join(format!("lm{i}-io.safetensors"));
        io_file(vec![("ids", ids.to_kind(Kind::Int64)), ("y", y)]).write(&io).unwrap();
        let module = dir.path().join(format!("lm{i}.py"));
        let defaults = python::LmDefaults {
            vocab: Some(vocab),
            hidden: shape.hidden,
            layers: shape.layers,
            tie_weights: shape.tie_weights,
            leaf_bias: shape.leaf_bias,
        };
        std::fs::write(&module, python::lm_module(arch, defaults)).unwrap();
        let name = if i == 0 { "nascell".to_string() } else { format!("cell{i}") };
        cases.push(json!({"name": name, "kind": "lm", "module": module, "weights": weights, "io": io, "torchscript": ts}));
        assert_eq!(child.param_count(), shape.param_count(arch.base));
        expected_params.push(child.param_count());
    }
    let results = run_checks(dir.path(), &cases);
    for ((r, arch), params) in results.iter().zip(sample_cells()).zip(&expected_params) {
        for key in ["rel", "ts_rel"] {
            let d = r[key].as_f64().unwrap();
            assert!(d <= 1e-5, "{}: {key} = {d:e} for\n{}", r["name"], arch.formula());
        }
        assert_eq!(r["params"].as_u64(), Some(*params), "{}", r["name"]);
    }
}

#[test]
fn weights_round_trip_and_refuse_another_child() {
    let dir = tempfile::tempdir().unwrap();
    let archs = sample_cnns(3);
    let input = (3, 9, 11);
    let child = CnnChild::new(&archs[0], input, 5, 1).unwrap();
    let path = dir.path().join("w.safetensors");
    child.weights().unwrap().write(&path).unwrap();
    let w = WeightsFile::read(&path).unwrap();
    let back = CnnChild::from_weights(&archs[0], input, 5, &w).unwrap();
    for ((n, a), (m, b)) in child.variables().iter().zip(back.variables()) {
        assert_eq!(n, &m);
        assert!(a.equal(&b), "{n}");
    }
    let other = CnnChild::from_weights(&archs[1], input, 5, &w).unwrap_err().to_string();
    assert!(other.contains("another child"), "{other}");
    let classes = CnnChild::from_weights(&archs[0], input, 7, &w).unwrap_err().to_string();
    assert!(classes.contains("classes = 5"), "{classes}");
    std::fs::write(&path, b"not a weights file").unwrap();
    let garbage = WeightsFile::read(&path).unwrap_err().to_string();
    assert!(garbage.contains("is not a nasfleet weights file"), "{garbage}");

    let cell = sample_cells().remove(0);
    let shape = LmShape { vocab: 7, hidden: 3, layers: 2, tie_weights: false, leaf_bias: true };
    let lm = LmChild::new(&cell, shape, 2).unwrap();
    let w = lm.weights().unwrap();
    let back = LmChild::from_weights(&cell, 2, false, true, &w).unwrap();
    for ((n, a), (_, b)) in lm.model().params().iter().zip(back.model().params()) {
        assert!(a.equal(b), "{n}");
    }
    let layers = LmChild::from_weights(&cell, 3, false, true, &w).unwrap_err().to_string();
    assert!(layers.contains("layers = 2"), "{layers}");
}
