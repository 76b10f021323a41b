//! `nasfleet export`: the best child taken home — plain PyTorch source (and
//! its weights as safetensors), TorchScript, a picture (SVG or dot), or the
//! canonical JSON. Every check (architecture in the config's space, weights
//! of this very child) happens before anything is written, and every file
//! is written to a temporary name and renamed, so a failure leaves nothing
//! half-written at `--out`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nasfleet_core::{Architecture, ExperimentConfig};
use nasfleet_torch::cnn::CnnTrainer;
use nasfleet_torch::export::{python, torchscript, CnnChild, LmChild, WeightsFile};
use nasfleet_torch::tch::Device;

use crate::cli::{ExportArgs, ExportFormat};

/// Why ONNX is refused (also in the README).
const NO_ONNX: &str = "--format onnx is not supported: no maintained Rust crate writes ONNX from a tch model, and \
     torch.onnx.export needs the `onnx` package, which the set-up venv does not hold; export --format torchscript \
     or pytorch and run torch.onnx.export on it where `onnx` is installed";

pub(crate) fn run(args: ExportArgs) -> Result<()> {
    let cfg = ExperimentConfig::load(&args.config)?;
    let bytes = std::fs::read(&args.arch).with_context(|| format!("cannot read {}", args.arch.display()))?;
    let arch = crate::train_cmd::read_arch(&bytes, &cfg)
        .with_context(|| format!("{} is not a valid architecture", args.arch.display()))?;
    cfg.space().encode(&arch).map_err(|e| {
        anyhow!(
            "{} does not match the {} space of {}: {e}",
            args.arch.display(),
            cfg.space().kind(),
            args.config.display()
        )
    })?;
    let weights = match &args.weights {
        Some(p) => Some(WeightsFile::read(p).map_err(|e| anyhow!("{e}"))?),
        None => None,
    };
    let weights_path = || args.weights.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
    let out = &args.out;
    if args.format == ExportFormat::Pytorch && args.weights.is_some() && weights_next_to(out) == *out {
        bail!("--out {} would be overwritten by the weights written beside it: name it .py", out.display());
    }
    match args.format {
        ExportFormat::Json => write(out, arch.to_json_pretty().as_bytes()),
        ExportFormat::Dot => write(out, draw(&arch, &cfg, &args, true)?.as_bytes()),
        ExportFormat::Svg => write(out, draw(&arch, &cfg, &args, false)?.as_bytes()),
        ExportFormat::Onnx => bail!("{NO_ONNX}"),
        ExportFormat::Pytorch | ExportFormat::Torchscript => match &arch {
            Architecture::Nb201(_) => bail!(
                "NAS-Bench-201 cells are looked up in a table, not trained here: export them with --format json, svg or dot"
            ),
            Architecture::Cnn(a) => {
                let (input, classes) = cnn_input(&cfg, &args)?;
                let child = match &weights {
                    Some(w) => Some(
                        CnnChild::from_weights(a, input, classes, w)
                            .map_err(|e| anyhow!("{}: {e}", weights_path()))?,
                    ),
                    None => None,
                };
                if args.format == ExportFormat::Torchscript {
                    let child = child.ok_or_else(|| anyhow!("--format torchscript exports the trained child: give --weights"))?;
                    torchscript::save_cnn(&child, out).map_err(|e| anyhow!("{e}"))?;
                    eprintln!("wrote {}", out.display());
                    return Ok(());
                }
                let source = python::cnn_module(a, &a.resolve(input, classes));
                if let Some(child) = child {
                    let w = weights_next_to(out);
                    child.weights().and_then(|f| f.write(&w)).map_err(|e| anyhow!("{e}"))?;
                    eprintln!("weights: {}", w.display());
                }
                write(out, source.as_bytes())
            }
            Architecture::RnnCell(a) => {
                let lm = &cfg.train.lm;
                let child = match &weights {
                    Some(w) => Some(
                        LmChild::from_weights(a, lm.layers, lm.tie_weights, lm.leaf_bias, w)
                            .map_err(|e| anyhow!("{}: {e}", weights_path()))?,
                    ),
                    None => None,
                };
                if args.format == ExportFormat::Torchscript {
                    let child = child.ok_or_else(|| anyhow!("--format torchscript exports the trained child: give --weights"))?;
                    torchscript::save_lm_step(&child, out).map_err(|e| anyhow!("{e}"))?;
                    eprintln!("wrote {}", out.display());
                    return Ok(());
                }
                let shape = child.as_ref().map(|c| c.model().shape());
                let defaults = python::LmDefaults {
                    vocab: shape.map(|s| s.vocab),
                    hidden: shape.map_or(lm.hidden as i64, |s| s.hidden),
                    layers: lm.layers,
                    tie_weights: lm.tie_weights,
                    leaf_bias: lm.leaf_bias,
                };
                let source = python::lm_module(a, defaults);
                if let Some(child) = child {
                    let w = weights_next_to(out);
                    child.weights().and_then(|f| f.write(&w)).map_err(|e| anyhow!("{e}"))?;
                    eprintln!("weights: {}", w.display());
                }
                write(out, source.as_bytes())
            }
        },
    }
}

/// (C, H, W) and classes of the config's dataset, read from no file.
pub(crate) fn cnn_input(cfg: &ExperimentConfig, args: &ExportArgs) -> Result<((usize, usize, usize), usize)> {
    let data_dir = args.data_dir.clone().unwrap_or_else(nasfleet_data::default_cache_dir);
    CnnTrainer::new(&data_dir, Device::Cpu)
        .input_shape(&cfg.train)
        .map_err(|e| anyhow!("{}: {e}", args.config.display()))
}

fn draw(arch: &Architecture, cfg: &ExperimentConfig, args: &ExportArgs, dot: bool) -> Result<String> {
    let graph = match arch {
        Architecture::Cnn(_) => {
            let (input, classes) = cnn_input(cfg, args)?;
            nasfleet_core::draw::Drawing::of(arch, Some((input, classes)))
        }
        _ => nasfleet_core::draw::Drawing::of(arch, None),
    };
    Ok(if dot { graph.dot() } else { graph.svg() })
}

/// `child.py` → `child.safetensors` (beside it).
fn weights_next_to(out: &Path) -> PathBuf {
    out.with_extension("safetensors")
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    nasfleet_util::write_atomic(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
