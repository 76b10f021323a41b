//! Per-epoch checkpoints of a child, so a preempted job resumes where it
//! stopped and continues bit for bit (on the CPU; GPU kernels may not be
//! deterministic).
//!
//! A checkpoint directory holds
//! - `cnn-weights-eN.safetensors`: the flat parameters, the flat momentum
//!   buffer and every batch-norm running statistic by VarStore name
//!   (safetensors: exact, readable from Python, independent of libtorch's
//!   own serialisation);
//! - `cnn-manifest.json`: the format, the child's identity (job id,
//!   architecture, seed, recipe), the epochs done, the ChaCha8 state of the
//!   data stream, the metrics so far and the weights file's name.
//!
//! Both are written atomically (`crate::checkpoint_file`); the manifest's
//! rename is the commit point, and older weight files are removed after it,
//! so a crash at any moment leaves a manifest that points at a complete file.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use nasfleet_core::trainer::EpochMetrics;

use super::CnnError;
use crate::checkpoint_file::{self, FileError};

/// 2: the flat parameter and momentum buffers pad every variable to 16
/// values (format 1 had them back to back), so a format-1 checkpoint is
/// reported and ignored rather than restored into the wrong offsets.
const FORMAT: u32 = 2;
const MANIFEST: &str = "cnn-manifest.json";
const WEIGHTS_PREFIX: &str = "cnn-weights-e";

/// The plain state of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest format (`FORMAT`); set by [`save`], checked by [`load`].
    pub format: u32,
    /// What the checkpoint belongs to; a resume requires equality.
    pub child: String,
    /// Epochs completed and saved; training resumes with the next one.
    pub epochs_done: usize,
    /// The data stream (order, crops, flips) after `epochs_done` epochs.
    pub rng: ChaCha8Rng,
    /// Every completed epoch's metrics, in order.
    pub metrics: Vec<EpochMetrics>,
    /// File name of the tensors, in the same directory.
    pub weights: String,
}

fn err(path: &Path, message: impl std::fmt::Display) -> CnnError {
    CnnError::Checkpoint { path: path.to_path_buf(), message: message.to_string() }
}

impl From<FileError> for CnnError {
    fn from(e: FileError) -> Self {
        err(&e.path, e.source)
    }
}

/// Writes `tensors` and `manifest` (whose `weights` field is set here) into `dir`.
pub fn save(dir: &Path, mut manifest: Manifest, tensors: &[(String, Tensor)]) -> Result<(), CnnError> {
    let weights = format!("{WEIGHTS_PREFIX}{}.safetensors", manifest.epochs_done);
    let host = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<Vec<_>, CnnError>>()?;
    checkpoint_file::write_with(&dir.join(&weights), |tmp| {
        Tensor::write_safetensors(&host, tmp).map_err(std::io::Error::other)
    })?;

    manifest.format = FORMAT;
    manifest.weights = weights.clone();
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| err(dir, e))?;
    checkpoint_file::write(&dir.join(MANIFEST), &json)?;

    // Older weights are garbage now; failing to remove one only wastes space.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(WEIGHTS_PREFIX) && name != weights {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// A checkpoint read back: its manifest and tensors (on the CPU).
#[derive(Debug)]
pub struct Loaded {
    /// The manifest.
    pub manifest: Manifest,
    /// The tensors of the weights file by name (see the trainer's `state_tensors`).
    pub tensors: Vec<(String, Tensor)>,
}

/// The checkpoint in `dir`, if there is one. `Ok(None)` when the directory
/// holds no manifest; an unreadable one is an error naming the file.
pub fn load(dir: &Path) -> Result<Option<Loaded>, CnnError> {
    let path = dir.join(MANIFEST);
    let Some(bytes) = checkpoint_file::read(&path)? else {
        return Ok(None);
    };
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| err(&path, e))?;
    if manifest.format != FORMAT {
        return Err(err(&path, format!("format {} is not the supported {FORMAT}", manifest.format)));
    }
    // The manifest names a plain file of this directory, never a path.
    if manifest.weights.contains('/') || manifest.weights.contains('\\') || manifest.weights.starts_with('.') {
        return Err(err(&path, format!("weights file name {:?} is not a plain file name", manifest.weights)));
    }
    let wpath: PathBuf = dir.join(&manifest.weights);
    let tensors = Tensor::read_safetensors(&wpath).map_err(|e| err(&wpath, e))?;
    Ok(Some(Loaded { manifest, tensors }))
}
