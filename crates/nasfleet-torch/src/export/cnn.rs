//! [`CnnChild`]: a CNN child with its own variables, from an architecture,
//! a weights file or the trainer's last checkpoint.
//!
//! The weights file's names are the tch VarStore names, which are already
//! the `state_dict()` keys of the exported module (`layers.3.conv.weight`,
//! `layers.3.bn.running_var`, `fc.bias`, ...), plus PyTorch's
//! `layers.N.bn.num_batches_tracked` (always 0: it only matters with
//! `momentum=None`), so that `load_state_dict` is strict.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use nasfleet_core::space::cnn::CnnArch;
use nasfleet_core::Architecture;

use super::weights::{WeightsFile, WEIGHTS_FORMAT};
use super::{check_metadata, copy_named, ExportError};
use crate::cnn::checkpoint;
use crate::cnn::sgd::{FlatSgd, SgdConfig};
use crate::cnn::CnnNet;

/// A CNN child on the CPU, fp32, with its variables.
#[derive(Debug)]
pub struct CnnChild {
    vs: nn::VarStore,
    net: CnnNet,
    arch: CnnArch,
    input: (usize, usize, usize),
    classes: usize,
}

fn tracked(name: &str) -> bool {
    name.ends_with(".num_batches_tracked")
}

fn shape_text(input: (usize, usize, usize)) -> String {
    format!("{},{},{}", input.0, input.1, input.2)
}

impl CnnChild {
    /// `arch` for images of `input` = (C, H, W) and `classes` outputs, with
    /// the initial weights nasfleet draws from `seed`.
    pub fn new(arch: &CnnArch, input: (usize, usize, usize), classes: usize, seed: u64) -> Result<CnnChild, ExportError> {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let net = CnnNet::build(&vs.root(), arch, input, classes, &mut rng, false)?;
        Ok(CnnChild { vs, net, arch: arch.clone(), input, classes })
    }

    /// The child with the weights of `w`, which must be a weights file of
    /// this very architecture, input shape and class count.
    pub fn from_weights(
        arch: &CnnArch,
        input: (usize, usize, usize),
        classes: usize,
        w: &WeightsFile,
    ) -> Result<CnnChild, ExportError> {
        check_metadata(
            w,
            &Architecture::Cnn(arch.clone()),
            &[("input", shape_text(input)), ("classes", classes.to_string())],
        )?;
        let child = CnnChild::new(arch, input, classes, 0)?;
        copy_named(w, &child.variables(), &tracked)?;
        Ok(child)
    }

    /// The child as the trainer left it in checkpoint directory `dir` (the
    /// last finished epoch): parameters from the flat buffer, batch-norm
    /// statistics by name. Returns the child and the epochs it was trained.
    pub fn from_checkpoint(
        dir: &Path,
        arch: &CnnArch,
        input: (usize, usize, usize),
        classes: usize,
    ) -> Result<(CnnChild, usize), ExportError> {
        let loaded = checkpoint::load(dir)
            .map_err(|e| ExportError::Weights(e.to_string()))?
            .ok_or_else(|| ExportError::Weights(format!("{} holds no checkpoint", dir.display())))?;
        let identity: serde_json::Value = serde_json::from_str(&loaded.manifest.child)
            .map_err(|e| ExportError::Weights(format!("checkpoint in {}: unreadable identity: {e}", dir.display())))?;
        if identity["arch"] != Architecture::Cnn(arch.clone()).to_value() {
            return Err(ExportError::Weights(format!(
                "the checkpoint in {} is of another child ({})",
                dir.display(),
                identity["arch"]
            )));
        }
        let child = CnnChild::new(arch, input, classes, 0)?;
        let find = |name: &str| {
            loaded
                .tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| ExportError::Weights(format!("the checkpoint lacks tensor {name:?}")))
        };
        // The trainer's layout: the trainable variables in VarStore order in
        // one flat buffer, each padded to 16 values (`FlatSgd`).
        let mut sgd = FlatSgd::new(
            child.vs.trainable_variables(),
            SgdConfig { momentum: 0.0, nesterov: false, weight_decay: 0.0 },
        )?;
        sgd.load(find("params")?, find("momentum")?)?;
        for (name, var) in child.vs.variables().into_iter().filter(|(_, t)| !t.requires_grad()) {
            let src = find(&format!("buffer/{name}"))?;
            if src.size() != var.size() {
                return Err(ExportError::Weights(format!("checkpoint buffer {name} has shape {:?}", src.size())));
            }
            tch::no_grad(|| var.shallow_clone().f_copy_(src))?;
        }
        Ok((child, loaded.manifest.epochs_done))
    }

    /// The network (eval mode: `forward(x, false)`).
    pub fn net(&self) -> &CnnNet {
        &self.net
    }

    /// The architecture.
    pub fn arch(&self) -> &CnnArch {
        &self.arch
    }

    /// (C, H, W) of the input images.
    pub fn input(&self) -> (usize, usize, usize) {
        self.input
    }

    /// Every variable (parameters and batch-norm statistics) by name, sorted.
    pub fn variables(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Number of trainable values (what PyTorch's `parameters()` count).
    pub fn param_count(&self) -> u64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as u64).sum()
    }

    /// The weights file of this child: the exported module's `state_dict()`.
    pub fn weights(&self) -> Result<WeightsFile, ExportError> {
        let mut tensors = Vec::new();
        for (name, t) in self.variables() {
            tensors.push((name.clone(), t.f_detach()?.copy()));
            if let Some(prefix) = name.strip_suffix(".bn.running_var") {
                tensors.push((format!("{prefix}.bn.num_batches_tracked"), Tensor::from(0i64).f_to_kind(Kind::Int64)?));
            }
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let metadata = [
            ("format", WEIGHTS_FORMAT.to_string()),
            ("arch", Architecture::Cnn(self.arch.clone()).to_json()),
            ("input", shape_text(self.input)),
            ("classes", self.classes.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(WeightsFile { metadata, tensors })
    }
}
