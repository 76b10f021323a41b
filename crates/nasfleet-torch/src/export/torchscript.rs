//! TorchScript files of a trained child, made by tracing the tch child
//! (`torch.jit.load` reads them with no nasfleet code).
//!
//! - CNN: `forward(images: N×C×H×W float32) -> logits`, in evaluation mode
//!   (batch norm with its running statistics). Any batch size; the image
//!   size is the one the child was built for.
//! - Language model: one time step, `forward(ids: B int64, h: L×B×H,
//!   c: L×B×H) -> (logits B×vocab, h, c)`; a sequence is a loop over steps
//!   (tracing unrolls loops, so a whole-sequence trace would fix its length).
//!
//! The weights are constants of the traced graph.

use std::path::Path;

use tch::{CModule, Kind, Tensor};

use super::{CnnChild, ExportError, LmChild};
use crate::rnn::CellState;

/// Saves `module` atomically at `path`.
fn save(module: &CModule, path: &Path) -> Result<(), ExportError> {
    nasfleet_util::write_atomic_with(path, |tmp| module.save(tmp).map_err(std::io::Error::other))
        .map_err(|e| ExportError::Io { path: path.to_path_buf(), source: e })
}

/// The traced CNN child (evaluation mode).
pub fn trace_cnn(child: &CnnChild) -> Result<CModule, ExportError> {
    let (c, h, w) = child.input();
    let example = Tensor::zeros([2, c as i64, h as i64, w as i64], (Kind::Float, tch::Device::Cpu));
    let net = child.net();
    let mut failed: Option<String> = None;
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("NasfleetCnnChild", "forward", &[example], &mut |xs: &[Tensor]| {
            match net.forward(&xs[0], false) {
                Ok(y) => vec![y],
                Err(e) => {
                    failed = Some(e.to_string());
                    vec![xs[0].shallow_clone()]
                }
            }
        })
    })?;
    match failed {
        Some(e) => Err(ExportError::Build(format!("tracing the child failed: {e}"))),
        None => Ok(module),
    }
}

/// Traces the CNN child and writes it to `path`.
pub fn save_cnn(child: &CnnChild, path: &Path) -> Result<(), ExportError> {
    save(&trace_cnn(child)?, path)
}

/// The traced language model's single step (evaluation: no dropout).
pub fn trace_lm_step(child: &LmChild) -> Result<CModule, ExportError> {
    let m = child.model();
    let s = m.shape();
    let batch = 2i64;
    let ids = Tensor::zeros([batch], (Kind::Int64, tch::Device::Cpu));
    let zeros = Tensor::zeros([s.layers as i64, batch, s.hidden], (Kind::Float, tch::Device::Cpu));
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("NasfleetLmStep", "forward", &[ids, zeros.copy(), zeros], &mut |xs: &[Tensor]| {
            let state: Vec<CellState> =
                (0..s.layers as i64).map(|l| CellState { h: xs[1].get(l), c: xs[2].get(l) }).collect();
            let (logits, next) = m.forward(&xs[0].unsqueeze(0), &state, None);
            let h: Vec<Tensor> = next.iter().map(|st| st.h.shallow_clone()).collect();
            let c: Vec<Tensor> = next.iter().map(|st| st.c.shallow_clone()).collect();
            vec![logits, Tensor::stack(&h, 0), Tensor::stack(&c, 0)]
        })
    })?;
    Ok(module)
}

/// Traces the language model's step and writes it to `path`.
pub fn save_lm_step(child: &LmChild, path: &Path) -> Result<(), ExportError> {
    save(&trace_lm_step(child)?, path)
}
