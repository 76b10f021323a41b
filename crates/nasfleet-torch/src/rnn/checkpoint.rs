//! A language-model child's checkpoint file: a JSON header and raw tensors.
//!
//! ```text
//! magic "NFLMCKPT" | u32 LE format | u64 LE header length | header JSON | f32 LE tensors
//! ```
//! Raw little-endian f32 (not a libtorch format) round-trips exactly and
//! cannot change with a torch upgrade; every length is checked before it is
//! trusted. The header carries the job's identity (a checkpoint of another
//! job, architecture or recipe is never resumed), the epochs done, the metrics
//! so far and the RNG; the learning rate follows from the epoch.
//! Files are written to a sibling temporary file and renamed, so a crash
//! leaves the previous checkpoint intact.

use std::path::Path;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use nasfleet_core::trainer::EpochMetrics;

const MAGIC: &[u8; 8] = b"NFLMCKPT";
const FORMAT: u32 = 1;
/// The file name inside a job's checkpoint directory.
pub const FILE_NAME: &str = "lm.ckpt";

/// Everything that identifies a child's training run. The architecture and
/// the recipe are kept as the JSON text this build writes for them and
/// compared as text, which never depends on float parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub job_id: String,
    pub arch: String,
    pub train: String,
    pub seed: u64,
}

/// The plain part of the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub identity: Identity,
    pub epochs_done: usize,
    pub metrics: Vec<MetricBits>,
    pub rng: ChaCha8Rng,
    /// Adam's step count (None with SGD); its moments are tensors.
    pub adam_step: Option<u64>,
}

/// [`EpochMetrics`] with its floats as bit patterns: JSON float parsing is
/// not guaranteed to round-trip every f64, and a resumed child must report
/// exactly the history an uninterrupted one would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricBits {
    epoch: usize,
    train_loss: u64,
    valid_accuracy: Option<u64>,
    valid_perplexity: Option<u64>,
    seconds: u64,
}

impl From<&EpochMetrics> for MetricBits {
    fn from(m: &EpochMetrics) -> Self {
        MetricBits {
            epoch: m.epoch,
            train_loss: m.train_loss.to_bits(),
            valid_accuracy: m.valid_accuracy.map(f64::to_bits),
            valid_perplexity: m.valid_perplexity.map(f64::to_bits),
            seconds: m.seconds.to_bits(),
        }
    }
}

impl From<&MetricBits> for EpochMetrics {
    fn from(m: &MetricBits) -> Self {
        EpochMetrics {
            epoch: m.epoch,
            train_loss: f64::from_bits(m.train_loss),
            valid_accuracy: m.valid_accuracy.map(f64::from_bits),
            valid_perplexity: m.valid_perplexity.map(f64::from_bits),
            seconds: f64::from_bits(m.seconds),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorEntry {
    name: String,
    shape: Vec<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    state: State,
    tensors: Vec<TensorEntry>,
}

/// One tensor as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

pub fn encode(state: &State, blobs: &[Blob]) -> Result<Vec<u8>, String> {
    let header = Header {
        state: state.clone(),
        tensors: blobs.iter().map(|b| TensorEntry { name: b.name.clone(), shape: b.shape.clone() }).collect(),
    };
    let json = serde_json::to_vec(&header).map_err(|e| format!("cannot serialise the checkpoint header: {e}"))?;
    let data_len: usize = blobs.iter().map(|b| b.data.len() * 4).sum();
    let mut out = Vec::with_capacity(20 + json.len() + data_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for b in blobs {
        for x in &b.data {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<(State, Vec<Blob>), String> {
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err("not a language-model checkpoint (bad magic)".into());
    }
    let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if format != FORMAT {
        return Err(format!("checkpoint format {format} is not the supported format {FORMAT}"));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[12..20]);
    let header_len = u64::from_le_bytes(len8);
    let rest = &bytes[20..];
    if header_len > rest.len() as u64 {
        return Err(format!("header of {header_len} bytes exceeds the {} bytes left", rest.len()));
    }
    let (json, mut data) = rest.split_at(header_len as usize);
    let header: Header = serde_json::from_slice(json).map_err(|e| format!("invalid checkpoint header: {e}"))?;
    let mut blobs = Vec::with_capacity(header.tensors.len());
    for t in header.tensors {
        let numel = t
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| usize::try_from(d).ok().and_then(|d| acc.checked_mul(d)))
            .ok_or_else(|| format!("tensor {} has an invalid shape {:?}", t.name, t.shape))?;
        let want = numel.checked_mul(4).filter(|&n| n <= data.len()).ok_or_else(|| {
            format!("tensor {} {:?} needs {} bytes but {} are left", t.name, t.shape, numel.saturating_mul(4), data.len())
        })?;
        let (mine, tail) = data.split_at(want);
        data = tail;
        let values = mine.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        blobs.push(Blob { name: t.name, shape: t.shape, data: values });
    }
    if !data.is_empty() {
        return Err(format!("{} trailing bytes after the last tensor", data.len()));
    }
    Ok((header.state, blobs))
}

/// Writes `bytes` to `dir/FILE_NAME` atomically.
pub fn write(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(FILE_NAME))
}

/// Reads `dir/FILE_NAME`; Ok(None) when there is none.
pub fn read(dir: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(dir.join(FILE_NAME)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn state() -> State {
        State {
            identity: Identity { job_id: "j".into(), arch: "{\"a\":1}".into(), train: "{}".into(), seed: 3 },
            epochs_done: 2,
            metrics: vec![(&EpochMetrics { epoch: 1, train_loss: 0.1 + 0.2, valid_perplexity: Some(1.0 / 3.0), ..Default::default() }).into()],
            rng: ChaCha8Rng::seed_from_u64(9),
            adam_step: Some(7),
        }
    }

    #[test]
    fn round_trip_and_truncation_is_an_error() {
        let blobs = vec![Blob { name: "w".into(), shape: vec![2, 3], data: vec![1.0, -2.5, 3.0, 0.0, f32::MIN, 7.0] }];
        let bytes = encode(&state(), &blobs).unwrap();
        let (s, b) = decode(&bytes).unwrap();
        assert_eq!((s.clone(), b), (state(), blobs));
        let m = EpochMetrics::from(&s.metrics[0]);
        assert_eq!((m.train_loss, m.valid_perplexity), (0.1 + 0.2, Some(1.0 / 3.0)));
        let err = decode(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.contains("needs 24 bytes"), "{err}");
        assert!(decode(b"garbage that is long enough").unwrap_err().contains("magic"));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).unwrap_err().contains("trailing"));
    }
}
