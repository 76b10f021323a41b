//! [`LmChild`]: a recurrent cell's language model with its own variables,
//! from an architecture, a weights file or the trainer's last checkpoint.
//!
//! The tch cell keeps all leaf projections in two fused matrices whose column
//! blocks are ordered for speed, not by leaf. The exported names are the
//! readable module's: per cell, `cells.L.wx` `[base, input, hidden]` and
//! `cells.L.wh` `[base, hidden, hidden]` (and `cells.L.bh` `[base, hidden]`
//! with leaf biases) with leaf k at index k, so leaf k computes
//! `x @ wx[k]` and `h @ wh[k] (+ bh[k])`; then `embedding.weight`,
//! `decoder.weight` (the embedding again when tied) and `decoder.bias`.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use nasfleet_core::space::rnn_cell::CellArch;
use nasfleet_core::Architecture;

use super::weights::{WeightsFile, WEIGHTS_FORMAT};
use super::{check_metadata, ExportError};
use crate::framed::{copy_into, Frame};
use crate::rnn::{LanguageModel, LmInit, LmShape};

/// A language-model child on the CPU.
#[derive(Debug)]
pub struct LmChild {
    model: LanguageModel,
    arch: CellArch,
}

/// The language-model trainer's checkpoint file (see `rnn::checkpoint`).
const LM_FRAME: Frame = Frame { magic: b"NFLMCKPT", format: 1, what: "a language-model checkpoint" };
const LM_CHECKPOINT: &str = "lm.ckpt";

impl LmChild {
    /// A model of `shape` around `arch`, weights drawn from `seed` (±0.1).
    pub fn new(arch: &CellArch, shape: LmShape, seed: u64) -> Result<LmChild, ExportError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let model = LanguageModel::new(Device::Cpu, arch, shape, LmInit::uniform(0.1), &mut rng)?;
        Ok(LmChild { model, arch: arch.clone() })
    }

    /// The child with the weights of `w`, which must be a weights file of
    /// this very cell with `layers`, `tie_weights` and `leaf_bias` as given;
    /// the vocabulary and hidden sizes are the file's.
    pub fn from_weights(
        arch: &CellArch,
        layers: usize,
        tie_weights: bool,
        leaf_bias: bool,
        w: &WeightsFile,
    ) -> Result<LmChild, ExportError> {
        check_metadata(
            w,
            &Architecture::RnnCell(arch.clone()),
            &[
                ("layers", layers.to_string()),
                ("tie_weights", tie_weights.to_string()),
                ("leaf_bias", leaf_bias.to_string()),
            ],
        )?;
        let size = |key: &str| -> Result<i64, ExportError> {
            w.meta(key)?
                .parse::<i64>()
                .map_err(|_| ExportError::Weights(format!("the weights file's {key} is not a number")))
        };
        let shape = LmShape { vocab: size("vocab")?, hidden: size("hidden")?, layers, tie_weights, leaf_bias };
        let child = LmChild::new(arch, shape, 0)?;
        child.load(w)?;
        Ok(child)
    }

    /// The child as the trainer left it in checkpoint directory `dir` (the
    /// last finished epoch). Returns the child and the epochs it was trained.
    pub fn from_checkpoint(dir: &Path, arch: &CellArch) -> Result<(LmChild, usize), ExportError> {
        let path = dir.join(LM_CHECKPOINT);
        let bytes = std::fs::read(&path).map_err(|e| ExportError::Io { path: path.clone(), source: e })?;
        let (state, blobs): (serde_json::Value, _) =
            LM_FRAME.decode(&bytes).map_err(|e| ExportError::Weights(format!("{}: {e}", path.display())))?;
        let ours = Architecture::RnnCell(arch.clone()).to_json();
        if state["identity"]["arch"].as_str() != Some(ours.as_str()) {
            return Err(ExportError::Weights(format!("the checkpoint {} is of another child", path.display())));
        }
        let blob = |name: &str| blobs.iter().find(|b| b.name == name);
        let embedding =
            blob("embedding").ok_or_else(|| ExportError::Weights(format!("{}: no embedding", path.display())))?;
        let (vocab, hidden) = match embedding.shape.as_slice() {
            [v, h] => (*v, *h),
            s => return Err(ExportError::Weights(format!("{}: embedding of shape {s:?}", path.display()))),
        };
        let shape = LmShape {
            vocab,
            hidden,
            layers: (0..).take_while(|l| blob(&format!("cell{l}.wx")).is_some()).count(),
            tie_weights: blob("decoder_weight").is_none(),
            leaf_bias: blob("cell0.bh").is_some(),
        };
        let child = LmChild::new(arch, shape, 0)?;
        for (name, p) in child.model.params() {
            let b = blob(name).ok_or_else(|| ExportError::Weights(format!("{}: no tensor {name}", path.display())))?;
            if b.shape != p.size() {
                return Err(ExportError::Weights(format!("{}: tensor {name} has shape {:?}", path.display(), b.shape)));
            }
            copy_into(p, &b.data);
        }
        let epochs = state["epochs_done"].as_u64().unwrap_or(0) as usize;
        Ok((child, epochs))
    }

    /// The model (evaluation: `forward(ids, &zero_state, None)`).
    pub fn model(&self) -> &LanguageModel {
        &self.model
    }

    /// The cell architecture.
    pub fn arch(&self) -> &CellArch {
        &self.arch
    }

    /// The exported module's `state_dict()`: copies, by readable names.
    pub fn state_dict(&self) -> Result<Vec<(String, Tensor)>, ExportError> {
        let m = &self.model;
        let embedding = named(m, "embedding")?.f_detach()?.copy();
        let decoder = if m.shape().tie_weights { embedding.copy() } else { named(m, "decoder_weight")?.f_detach()?.copy() };
        let mut out = vec![("embedding.weight".to_string(), embedding)];
        for (l, cell) in m.cells().iter().enumerate() {
            let leaves = (0..self.arch.base)
                .map(|k| cell.leaf_weights(k).ok_or_else(|| ExportError::Build(format!("cell {l} has no leaf {k}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let stack = |f: &dyn Fn(&crate::rnn::LeafWeights) -> Option<Tensor>| -> Result<Option<Tensor>, ExportError> {
                let parts: Option<Vec<Tensor>> = leaves.iter().map(f).collect();
                Ok(match parts {
                    Some(p) => Some(Tensor::f_stack(&p, 0)?.f_detach()?.f_contiguous()?),
                    None => None,
                })
            };
            let some = |t: Option<Tensor>| t.ok_or_else(|| ExportError::Build("internal: missing leaf weights".into()));
            out.push((format!("cells.{l}.wx"), some(stack(&|lw| Some(lw.wx.shallow_clone()))?)?));
            out.push((format!("cells.{l}.wh"), some(stack(&|lw| Some(lw.wh.shallow_clone()))?)?));
            if let Some(bh) = stack(&|lw| lw.bh.as_ref().map(Tensor::shallow_clone))? {
                out.push((format!("cells.{l}.bh"), bh));
            }
        }
        out.push(("decoder.weight".to_string(), decoder));
        out.push(("decoder.bias".to_string(), named(m, "decoder_bias")?.f_detach()?.copy()));
        Ok(out)
    }

    /// Number of trainable values (a tied matrix counted once, as PyTorch's
    /// `parameters()` does).
    pub fn param_count(&self) -> u64 {
        self.model.param_count()
    }

    /// The weights file of this child.
    pub fn weights(&self) -> Result<WeightsFile, ExportError> {
        let s = self.model.shape();
        let metadata = [
            ("format", WEIGHTS_FORMAT.to_string()),
            ("arch", Architecture::RnnCell(self.arch.clone()).to_json()),
            ("vocab", s.vocab.to_string()),
            ("hidden", s.hidden.to_string()),
            ("layers", s.layers.to_string()),
            ("tie_weights", s.tie_weights.to_string()),
            ("leaf_bias", s.leaf_bias.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(WeightsFile { metadata, tensors: self.state_dict()? })
    }

    /// Loads the tensors of `w` (readable names) into the fused variables,
    /// after checking every name and shape.
    fn load(&self, w: &WeightsFile) -> Result<(), ExportError> {
        super::check_names_and_shapes(w, &self.state_dict()?, &|_| false)?;
        let get = |name: &str| w.get(name).ok_or_else(|| ExportError::Weights(format!("no tensor {name}")));
        let m = &self.model;
        tch::no_grad(|| -> Result<(), ExportError> {
            named(m, "embedding")?.f_copy_(get("embedding.weight")?)?;
            if !m.shape().tie_weights {
                named(m, "decoder_weight")?.f_copy_(get("decoder.weight")?)?;
            }
            named(m, "decoder_bias")?.f_copy_(get("decoder.bias")?)?;
            for (l, cell) in m.cells().iter().enumerate() {
                let wx = get(&format!("cells.{l}.wx"))?;
                let wh = get(&format!("cells.{l}.wh"))?;
                let bh = w.get(&format!("cells.{l}.bh"));
                for k in 0..self.arch.base {
                    let lw = cell.leaf_weights(k).ok_or_else(|| ExportError::Build(format!("no leaf {k}")))?;
                    let k = k as i64;
                    lw.wx.shallow_clone().f_copy_(&wx.f_get(k)?)?;
                    lw.wh.shallow_clone().f_copy_(&wh.f_get(k)?)?;
                    if let (Some(dst), Some(src)) = (lw.bh, bh) {
                        dst.shallow_clone().f_copy_(&src.f_get(k)?)?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// The model's variable `name` (a handle sharing its storage).
fn named(m: &LanguageModel, name: &str) -> Result<Tensor, ExportError> {
    m.params()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.shallow_clone())
        .ok_or_else(|| ExportError::Build(format!("internal: the model has no variable {name}")))
}
