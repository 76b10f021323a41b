//! Benchmark (not a test): the time of one training step of a language-model
//! child — forward over a BPTT segment, cross-entropy, backward, clipped SGD
//! — with a sampled cell, against tch's built-in LSTM of the same hidden size
//! in the same model (embedding, 2 layers, softmax) and the same step.
//! `scripts/bench/lm_step_reference.py` times the same cell in PyTorch eager;
//! `scripts/bench/lm_step.sh` runs both and prints the ratios.
//!
//! ```text
//! cargo run --release -p nasfleet-torch --example bench_lm_step -- \
//!     [--cell CELL.json] [--hidden 200] [--batch 20] [--bptt 35] [--vocab 10000]
//!     [--reps 20] [--device cpu|cuda:0] [--print-cell]
//! ```
//! Without `--cell` the paper's NAS cell is used (`--print-cell` prints its
//! JSON, the file the PyTorch side reads). Prints one JSON line with
//! the median step times in milliseconds. Dropout is off in both models
//! (the LSTM has no equivalent of word or variational dropout), so the
//! comparison is of the recurrences themselves.

use std::time::Instant;

use nasfleet_core::space::rnn_cell::CellSpace;
use nasfleet_core::{ArchLimits, Architecture};
use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::rnn::{LanguageModel, LmInit, LmShape, Sgd};
use nasfleet_torch::tch::nn::{self, RNN};
use nasfleet_torch::tch::{self, Device, Kind, Tensor};
use rand::SeedableRng;

/// The paper's cell (TensorFlow Addons `NASCell`) as tokens.
const NASCELL_TOKENS: [u32; 34] =
    [0, 2, 0, 3, 0, 2, 1, 3, 0, 1, 0, 2, 0, 1, 0, 2, 1, 1, 0, 1, 1, 1, 0, 2, 1, 0, 0, 1, 1, 1, 0, 1, 8, 12];

struct Args {
    cell: Option<String>,
    hidden: i64,
    batch: i64,
    bptt: i64,
    vocab: i64,
    reps: usize,
    device: Device,
    print_cell: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { cell: None, hidden: 200, batch: 20, bptt: 35, vocab: 10_000, reps: 20, device: Device::Cpu, print_cell: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<i64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--cell" => a.cell = Some(value()?),
            "--hidden" => a.hidden = num(value()?)?,
            "--batch" => a.batch = num(value()?)?,
            "--bptt" => a.bptt = num(value()?)?,
            "--vocab" => a.vocab = num(value()?)?,
            "--reps" => a.reps = num(value()?)? as usize,
            "--device" => a.device = value()?.parse::<DeviceSpec>()?.resolve()?,
            "--print-cell" => a.print_cell = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.hidden < 1 || a.batch < 1 || a.bptt < 1 || a.vocab < 2 || a.reps < 1 {
        return Err("sizes and --reps must be positive".into());
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Median milliseconds of `step` after a warm-up.
fn time(reps: usize, device: Device, mut step: impl FnMut()) -> f64 {
    for _ in 0..3 {
        step();
    }
    sync(device);
    let mut ms = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        step();
        sync(device);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(ms)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_lm_step: {e}");
            std::process::exit(2);
        }
    };
    let arch = match &a.cell {
        None => CellSpace::default().decode(&NASCELL_TOKENS).expect("the paper's cell decodes"),
        Some(path) => {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            match Architecture::from_json(&bytes, &ArchLimits::default()) {
                Ok(Architecture::RnnCell(c)) => c,
                Ok(other) => panic!("{path}: a {} architecture, not an rnn-cell", other.kind()),
                Err(e) => panic!("{path}: {e}"),
            }
        }
    };
    if a.print_cell {
        println!("{}", Architecture::RnnCell(arch).to_json_pretty());
        return;
    }
    let dev = a.device;
    let sgd = Sgd { lr: 1.0, weight_decay: 0.0, grad_clip: 5.0 };
    let tokens = Tensor::randint(a.vocab, [a.bptt + 1, a.batch], (Kind::Int64, dev));
    let input = tokens.narrow(0, 0, a.bptt);
    let target = tokens.narrow(0, 1, a.bptt).reshape([-1]);

    // The sampled cell.
    let shape = LmShape { vocab: a.vocab, hidden: a.hidden, layers: 2, tie_weights: false, leaf_bias: false };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = LanguageModel::new(dev, &arch, shape, LmInit::uniform(0.05), &mut rng).expect("model");
    let mut state = model.zero_state(a.batch);
    let cell_ms = time(a.reps, dev, || {
        let (logits, next) = model.forward(&input, &state, None);
        let loss = logits.cross_entropy_for_logits(&target);
        model.zero_grad();
        loss.backward();
        sgd.step(model.params());
        state = next.iter().map(|s| s.detach()).collect();
    });
    let forward_ms = time(a.reps, dev, || {
        tch::no_grad(|| {
            let _ = model.forward(&input, &state, None);
        })
    });

    // tch's built-in LSTM in the same model.
    let vs = nn::VarStore::new(dev);
    let root = vs.root();
    let emb = nn::embedding(&root / "emb", a.vocab, a.hidden, Default::default());
    let lstm = nn::lstm(&root / "lstm", a.hidden, a.hidden, nn::RNNConfig { num_layers: 2, batch_first: false, ..Default::default() });
    let dec = nn::linear(&root / "dec", a.hidden, a.vocab, Default::default());
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    params.sort_by(|x, y| x.0.cmp(&y.0));
    let mut lstm_state = lstm.zero_state(a.batch);
    let lstm_ms = time(a.reps, dev, || {
        let x = input.apply(&emb);
        let (out, next) = lstm.seq_init(&x, &lstm_state);
        let loss = out.reshape([-1, a.hidden]).apply(&dec).cross_entropy_for_logits(&target);
        for (_, p) in params.iter_mut() {
            p.zero_grad();
        }
        loss.backward();
        sgd.step(&params);
        lstm_state = nn::LSTMState((next.0 .0.detach(), next.0 .1.detach()));
    });

    println!(
        "{{\"bench\":\"lm_step\",\"impl\":\"tch\",\"device\":\"{:?}\",\"threads\":{},\"hidden\":{},\"batch\":{},\
         \"bptt\":{},\"vocab\":{},\"base\":{},\"params\":{},\"reps\":{},\"cell_step_ms\":{:.3},\
         \"cell_forward_ms\":{:.3},\"lstm_step_ms\":{:.3}}}",
        dev,
        tch::get_num_threads(),
        a.hidden,
        a.batch,
        a.bptt,
        a.vocab,
        arch.base,
        model.param_count(),
        a.reps,
        cell_ms,
        forward_ms,
        lstm_ms
    );
}
