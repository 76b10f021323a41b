//! TorchScript files of a trained child, made by tracing the tch child
//! (`torch.jit.load` reads them with no nasfleet code).
//!
//! - CNN: `forward(images: N×C×H×W float32) -> logits`, in evaluation mode
//!   (batch norm with its running statistics). Any batch size; the image
//!   size is the one the child was built for.
//! - Language model: one time step, `forward(ids: B int64, state: B×2LH)
//!   -> B×(vocab + 2LH)`: the logits, then the new state. The state packs
//!   every layer's h, then every layer's c (`state.view(B, 2, L, H)`), zeros
//!   at the start. A sequence is a loop over steps (tracing unrolls loops, so
//!   a whole-sequence trace would fix its length), and everything is one
//!   tensor because a traced method can only be saved with a single output.
//!
//! The weights are constants of the traced graph, so tracing first turns
//! off `requires_grad` on the child's variables (an exported child is not
//! trained further).

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
    for (_, v) in child.variables() {
        let _ = v.f_set_requires_grad(false)?;
    }
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
    });
    match (failed, module) {
        (Some(e), _) => Err(ExportError::Build(format!("tracing the child failed: {e}"))),
        (None, module) => Ok(module?),
    }
}

/// Traces the CNN child and writes it to `path`.
pub fn save_cnn(child: &CnnChild, path: &Path) -> Result<(), ExportError> {
    save(&trace_cnn(child)?, path)
}

/// The traced language model's single step (evaluation: no dropout).
pub fn trace_lm_step(child: &LmChild) -> Result<CModule, ExportError> {
    let m = child.model();
    for (_, p) in m.params() {
        let _ = p.f_set_requires_grad(false)?;
    }
    let s = m.shape();
    let (layers, hidden) = (s.layers as i64, s.hidden);
    let ids = Tensor::zeros([2], (Kind::Int64, tch::Device::Cpu));
    let state = Tensor::zeros([2, 2 * layers * hidden], (Kind::Float, tch::Device::Cpu));
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("NasfleetLmStep", "forward", &[ids, state], &mut |xs: &[Tensor]| {
            let packed = xs[1].reshape([-1, 2, layers, hidden]);
            let state: Vec<CellState> = (0..layers)
                .map(|l| CellState { h: packed.select(1, 0).select(1, l), c: packed.select(1, 1).select(1, l) })
                .collect();
            let (logits, next) = m.forward(&xs[0].unsqueeze(0), &state, None);
            let h: Vec<Tensor> = next.iter().map(|st| st.h.shallow_clone()).collect();
            let c: Vec<Tensor> = next.iter().map(|st| st.c.shallow_clone()).collect();
            let h = Tensor::stack(&h, 1).reshape([-1, layers * hidden]);
            let c = Tensor::stack(&c, 1).reshape([-1, layers * hidden]);
            vec![Tensor::cat(&[logits, h, c], 1)]
        })
    })?;
    Ok(module)
}

/// Traces the language model's step and writes it to `path`.
pub fn save_lm_step(child: &LmChild, path: &Path) -> Result<(), ExportError> {
    save(&trace_lm_step(child)?, path)
}
