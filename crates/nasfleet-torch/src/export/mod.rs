//! Taking a child home: its weights under the names of a plain PyTorch
//! module, that module's source, and a TorchScript file of the trained child.
//!
//! - [`weights`]: [`WeightsFile`], the safetensors file that `nasfleet train
//!   --save-weights` writes and `nasfleet export --weights` reads: tensors
//!   named as the exported module's `state_dict()` keys, the architecture and
//!   sizes in its metadata.
//! - [`cnn`]: [`CnnChild`], a CNN child (`CnnNet` and its variables) built
//!   from an architecture, from a weights file or from the trainer's last
//!   checkpoint, and its weights file.
//! - [`lm`]: [`LmChild`], the same for a recurrent cell's language model.
//! - [`python`]: the source of the PyTorch module (generated from the same
//!   resolved graph / cell the tch child is built from).
//! - [`torchscript`]: a traced TorchScript module of a child.
//!
//! The exported module is checked against the tch child, with the same
//! weights and inputs, by the `export` tests of this crate (the venv's torch
//! runs the generated file).

pub mod cnn;
pub mod lm;
pub mod python;
pub mod torchscript;
pub mod weights;

use std::path::PathBuf;

use thiserror::Error;

pub use cnn::CnnChild;
pub use lm::LmChild;
pub use weights::{WeightsFile, WEIGHTS_FORMAT};

/// Why an export could not be made. Every message names what does not fit.
#[derive(Debug, Error)]
pub enum ExportError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A weights file (or checkpoint) that does not belong to the child.
    #[error("{0}")]
    Weights(String),
    /// The child cannot be built.
    #[error("{0}")]
    Build(String),
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl From<crate::cnn::CnnError> for ExportError {
    fn from(e: crate::cnn::CnnError) -> Self {
        ExportError::Build(e.to_string())
    }
}

impl From<crate::rnn::RnnError> for ExportError {
    fn from(e: crate::rnn::RnnError) -> Self {
        ExportError::Build(e.to_string())
    }
}

/// Checks that `w` is a weights file of this build for `arch` (compared as
/// canonical JSON) and that its metadata `expected` keys hold the given values.
pub(crate) fn check_metadata(
    w: &WeightsFile,
    arch: &nasfleet_core::Architecture,
    expected: &[(&str, String)],
) -> Result<(), ExportError> {
    let format = w.meta("format")?;
    if format != WEIGHTS_FORMAT {
        return Err(ExportError::Weights(format!(
            "the weights file has format {format:?}, this build reads {WEIGHTS_FORMAT:?}"
        )));
    }
    let theirs = w.meta("arch")?;
    let ours = arch.to_json();
    let same = nasfleet_core::Architecture::from_json(theirs.as_bytes(), &nasfleet_core::ArchLimits::default())
        .map(|a| a.to_json() == ours)
        .unwrap_or(false);
    if !same {
        return Err(ExportError::Weights(format!(
            "the weights are of another child: they were trained for {theirs}, not for {ours}"
        )));
    }
    for (key, want) in expected {
        let got = w.meta(key)?;
        if got != want {
            return Err(ExportError::Weights(format!(
                "the weights were made for {key} = {got}, the config gives {want}"
            )));
        }
    }
    Ok(())
}

/// Checks that `w` holds every tensor of `targets` (name → tensor) with its
/// shape and no other tensor (`ignored` names excepted).
pub(crate) fn check_names_and_shapes(
    w: &WeightsFile,
    targets: &[(String, tch::Tensor)],
    ignored: &dyn Fn(&str) -> bool,
) -> Result<(), ExportError> {
    for (name, t) in targets {
        let src = w
            .get(name)
            .ok_or_else(|| ExportError::Weights(format!("the weights file lacks tensor {name:?} of this child")))?;
        if src.size() != t.size() {
            return Err(ExportError::Weights(format!(
                "tensor {name:?} has shape {:?} in the weights file, this child needs {:?}",
                src.size(),
                t.size()
            )));
        }
    }
    if let Some((extra, _)) = w.tensors.iter().find(|(n, _)| !ignored(n) && !targets.iter().any(|(m, _)| m == n)) {
        return Err(ExportError::Weights(format!("the weights file holds tensor {extra:?}, which this child has not")));
    }
    Ok(())
}

/// Copies the tensors of `w` into `targets` (name → variable), after
/// [`check_names_and_shapes`]. Nothing is written on a mismatch.
pub(crate) fn copy_named(
    w: &WeightsFile,
    targets: &[(String, tch::Tensor)],
    ignored: &dyn Fn(&str) -> bool,
) -> Result<(), ExportError> {
    check_names_and_shapes(w, targets, ignored)?;
    tch::no_grad(|| -> Result<(), ExportError> {
        for (name, t) in targets {
            if let Some(src) = w.get(name) {
                t.shallow_clone().f_copy_(&src.f_to_kind(t.kind())?.f_to_device(t.device())?)?;
            }
        }
        Ok(())
    })
}
