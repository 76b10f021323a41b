//! Benchmark (not a test): one CNN child training step, tch vs PyTorch eager,
//! and the data pipeline's share of a step.
//!
//! ```text
//! bench_cnn_step prepare --out DIR [--archs 8] [--layers 6] [--strides]
//!                [--batch 32] [--input 3,32,32] [--seed 0]
//! bench_cnn_step time --dir DIR [--device cpu|cuda:N] [--threads 1]
//!                [--warmup 3] [--steps 15] [--mixed] [--only I] [--no-data]
//! ```
//! `prepare` samples a fixed panel of architectures from the paper's CNN
//! space and writes it (`panel.json`) with one batch of inputs (`x.f32`,
//! little-endian f32, N×C×H×W) and labels (`y.i64`). `time` trains every
//! panel child for warm-up + timed steps on that batch — forward, cross
//! entropy, backward, SGD (momentum 0.9 Nesterov, lr 0.1, weight decay 1e-4)
//! — and prints one JSON line with every step's milliseconds, of wall time
//! and of the calling thread's CPU time. The PyTorch
//! side is `scripts/bench/cnn_step_reference.py` reading the same directory;
//! `scripts/bench/cnn_step.sh` runs both in alternation and prints the ratio
//! of medians.
//!
//! `--only I` times panel architecture I alone (the driver alternates the two
//! sides architecture by architecture, so a noisy machine hits both alike).
//! Unless `--no-data`, `time` also measures the data pipeline on a dataset of the panel's shape
//! held on the device: cutting and augmenting one batch (pad 4, crop, flip)
//! with the trainer's batched gathers, and with a per-image loop for
//! comparison.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nasfleet_core::space::cnn::CnnSpace;
use nasfleet_core::Architecture;
use nasfleet_core::ArchLimits;
use nasfleet_data::ImageSet;
use nasfleet_torch::cnn::{Augment, CnnNet, DeviceData, FlatSgd, Prepare, SgdConfig};
use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::tch::{self, nn, Device, Kind, Reduction, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Res<T> = Result<T, String>;

mod common;

use common::{arg, num};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("prepare") => prepare(&args[1..]),
        Some("time") => time(&args[1..]),
        _ => Err("usage: bench_cnn_step prepare --out DIR [...] | time --dir DIR [...] (see the file's header)".into()),
    };
    if let Err(e) = result {
        eprintln!("bench_cnn_step: {e}");
        std::process::exit(1);
    }
}

fn prepare(args: &[String]) -> Res<()> {
    let out = PathBuf::from(arg(args, "--out").ok_or("--out DIR is required")?);
    let archs: usize = num(args, "--archs", 8)?;
    let layers: usize = num(args, "--layers", 6)?;
    let batch: usize = num(args, "--batch", 32)?;
    let seed: u64 = num(args, "--seed", 0)?;
    let input: Vec<usize> = arg(args, "--input")
        .unwrap_or("3,32,32")
        .split(',')
        .map(|s| s.parse().map_err(|_| format!("--input {s:?} is not C,H,W")))
        .collect::<Res<_>>()?;
    let [c, h, w] = input[..] else { return Err("--input needs C,H,W".into()) };
    let space = CnnSpace { predict_strides: args.iter().any(|a| a == "--strides"), ..Default::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let schema = space.schema(layers);
    let panel: Vec<serde_json::Value> = (0..archs)
        .map(|_| space.decode(&schema.sample_uniform(&mut rng)).map(|a| Architecture::Cnn(a).to_value()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let meta = serde_json::json!({
        "input": [c, h, w], "classes": 10, "batch": batch, "seed": seed,
        "lr": 0.1, "momentum": 0.9, "nesterov": true, "weight_decay": 1e-4,
        "archs": panel,
    });
    write(&out.join("panel.json"), serde_json::to_vec_pretty(&meta).map_err(|e| e.to_string())?)?;
    let x: Vec<u8> = (0..batch * c * h * w).flat_map(|_| rng.gen_range(-2.0f32..2.0).to_le_bytes()).collect();
    let y: Vec<u8> = (0..batch).flat_map(|_| rng.gen_range(0i64..10).to_le_bytes()).collect();
    write(&out.join("x.f32"), x)?;
    write(&out.join("y.i64"), y)?;
    for (i, a) in meta["archs"].as_array().into_iter().flatten().enumerate() {
        let arch = Architecture::from_value(a.clone(), &ArchLimits::default()).map_err(|e| e.to_string())?;
        eprintln!("arch {i}: {}", arch.summary((c, h, w), 10));
    }
    Ok(())
}

fn write(path: &Path, bytes: Vec<u8>) -> Res<()> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Nanoseconds the calling thread has run on a CPU (CLOCK_THREAD_CPUTIME_ID,
/// as Python's `time.thread_time` on the reference side), so a step's cost
/// can be told apart from time spent waiting for a busy machine's cores.
/// With one intra-op thread, forward, backward and update all run on the
/// calling thread. (Not /proc's schedstat: for a running thread it only
/// advances at scheduler ticks, 4 ms here.)
fn thread_cpu_ns() -> Option<u64> {
    cpu_time::ThreadTime::try_now().ok().map(|t| t.as_duration().as_nanos() as u64)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        f64::NAN
    } else {
        s[s.len() / 2]
    }
}

fn time(args: &[String]) -> Res<()> {
    let dir = PathBuf::from(arg(args, "--dir").ok_or("--dir DIR is required")?);
    let device: Device = arg(args, "--device").unwrap_or("cpu").parse::<DeviceSpec>()?.resolve()?;
    let threads: i32 = num(args, "--threads", 1)?;
    let warmup: usize = num(args, "--warmup", 3)?;
    let steps: usize = num(args, "--steps", 15)?;
    let mixed = args.iter().any(|a| a == "--mixed");
    let only: Option<usize> = arg(args, "--only").map(|v| v.parse().map_err(|_| format!("--only {v:?}"))).transpose()?;
    let with_data = !args.iter().any(|a| a == "--no-data");
    tch::set_num_threads(threads);
    tch::set_num_interop_threads(1);
    // As the trainer does (see its doc): keep freed activations in the heap.
    nasfleet_torch::cnn::raise_malloc_thresholds();
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }

    let meta: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("panel.json"))?).map_err(|e| format!("panel.json: {e}"))?;
    let dims: Vec<usize> =
        meta["input"].as_array().into_iter().flatten().filter_map(|v| v.as_u64().map(|v| v as usize)).collect();
    let [c, h, w] = dims[..] else { return Err("panel.json: input must be [C, H, W]".into()) };
    let batch = meta["batch"].as_u64().ok_or("panel.json: batch")? as usize;
    let kind = if mixed { Kind::BFloat16 } else { Kind::Float };
    let xb = read(&dir.join("x.f32"))?;
    let floats: Vec<f32> = xb.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let yb = read(&dir.join("y.i64"))?;
    let labels: Vec<i64> = yb.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect();
    if floats.len() != batch * c * h * w || labels.len() != batch {
        return Err(format!("x.f32 / y.i64 do not hold a batch of {batch} images of {c}x{h}x{w}"));
    }
    let x = Tensor::from_slice(&floats).view([batch as i64, c as i64, h as i64, w as i64]).to_device(device).to_kind(kind);
    let y = Tensor::from_slice(&labels).to_device(device);

    let mut per_arch = Vec::new();
    let mut per_arch_cpu = Vec::new();
    let mut flops = Vec::new();
    let mut indices = Vec::new();
    for (i, a) in meta["archs"].as_array().into_iter().flatten().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        indices.push(i);
        let Architecture::Cnn(arch) = Architecture::from_value(a.clone(), &ArchLimits::default()).map_err(|e| e.to_string())?
        else {
            return Err(format!("panel arch {i} is not a CNN"));
        };
        let vs = nn::VarStore::new(device);
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let net = CnnNet::build(&vs.root(), &arch, (c, h, w), 10, &mut rng, mixed).map_err(|e| e.to_string())?;
        flops.push(net.graph().flops());
        let mut sgd = FlatSgd::new(vs.trainable_variables(), SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 1e-4 })
            .map_err(|e| e.to_string())?;
        let mut times = Vec::with_capacity(steps);
        let mut cpu_times = Vec::with_capacity(steps);
        for s in 0..warmup + steps {
            sync(device);
            let t0 = Instant::now();
            let c0 = thread_cpu_ns();
            let logits = net.forward(&x, true).map_err(|e| e.to_string())?;
            let loss = logits.cross_entropy_loss(&y, None::<Tensor>, Reduction::Mean, -100, 0.0);
            sgd.step(&loss, 0.1).map_err(|e| e.to_string())?;
            sync(device);
            if s >= warmup {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
                    cpu_times.push(b.saturating_sub(a) as f64 / 1e6);
                }
            }
        }
        eprintln!("tch arch {i}: median step {:.2} ms", median(&times));
        per_arch.push(times);
        per_arch_cpu.push(cpu_times);
    }

    let step_medians: Vec<f64> = per_arch.iter().map(|t| median(t)).collect();
    let mut report = serde_json::json!({
        "impl": "tch",
        "device": format!("{device:?}"),
        "threads": threads,
        "mixed_precision": mixed,
        "batch": batch,
        "input": [c, h, w],
        "archs": indices,
        "step_ms": per_arch,
        "step_thread_cpu_ms": per_arch_cpu,
        "forward_flops_per_image": flops,
    });
    if with_data {
        let (data_ms, loop_ms) = data_pipeline(device, kind, (c, h, w), batch)?;
        report["data_batched_ms"] = data_ms.into();
        report["data_per_image_loop_ms"] = loop_ms.into();
        report["data_share_of_step"] = step_medians.iter().map(|s| data_ms / (data_ms + s)).collect::<Vec<_>>().into();
    }
    println!("{report}");
    Ok(())
}

/// Median milliseconds to cut and augment one batch (pad 4, crop, flip) from
/// a device-resident dataset: batched gathers, and a per-image loop.
fn data_pipeline(device: Device, kind: Kind, (c, h, w): (usize, usize, usize), batch: usize) -> Res<(f64, f64)> {
    let n = 4096.max(batch);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let pixels: Vec<u8> = (0..n * c * h * w).map(|_| rng.gen()).collect();
    let set = ImageSet::new(pixels, (0..n).map(|i| (i % 10) as u8).collect(), [c, h, w], 10).map_err(|e| e.to_string())?;
    let data = DeviceData::new(&set, &set, Prepare { resolution: None, normalize: true, kind }, device).map_err(|e| e.to_string())?;
    let aug = Augment { crop_padding: 4, flip: true };
    let mut batched = Vec::new();
    let mut looped = Vec::new();
    for r in 0..30 {
        let idx: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..n)).collect();
        sync(device);
        let t0 = Instant::now();
        let (xb, _) = data.train_batch(&idx, aug, &mut rng).map_err(|e| e.to_string())?;
        sync(device);
        let t_batched = t0.elapsed().as_secs_f64() * 1e3;
        drop(xb);
        let t0 = Instant::now();
        let xb = per_image_augment(&data, &idx, 4, &mut rng);
        sync(device);
        let t_loop = t0.elapsed().as_secs_f64() * 1e3;
        drop(xb);
        if r >= 5 {
            batched.push(t_batched);
            looped.push(t_loop);
        }
    }
    Ok((median(&batched), median(&looped)))
}

/// The textbook per-image pipeline, for comparison only: pad, crop and
/// maybe flip each image separately, then stack.
fn per_image_augment(data: &DeviceData, idx: &[usize], p: i64, rng: &mut ChaCha8Rng) -> Tensor {
    let (_, h, w) = data.shape;
    let imgs: Vec<Tensor> = idx
        .iter()
        .map(|&i| {
            let img = data.train.images.get(i as i64).constant_pad_nd([p, p, p, p]);
            let (dy, dx) = (rng.gen_range(0..=2 * p), rng.gen_range(0..=2 * p));
            let crop = img.narrow(1, dy, h as i64).narrow(2, dx, w as i64);
            if rng.gen::<bool>() {
                crop.flip([2])
            } else {
                crop
            }
        })
        .collect();
    Tensor::stack(&imgs, 0)
}
