//! A language-model child's checkpoint file: the framed format of
//! [`crate::framed`] (a JSON header and raw little-endian f32 tensors, every
//! length checked before it is trusted) under the magic `NFLMCKPT`. The
//! header carries the job's identity (a checkpoint of another job,
//! architecture or recipe is never resumed), the epochs done, the metrics so
//! far and the RNG; the learning rate follows from the epoch.
//! Files are written atomically ([`crate::checkpoint_file`]), so a crash
//! leaves the previous checkpoint intact.

use std::path::Path;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use nasfleet_core::trainer::EpochMetrics;

pub(crate) use crate::framed::Blob;
use crate::checkpoint_file::{self, FileError};
use crate::framed::Frame;

const FRAME: Frame = Frame { magic: b"NFLMCKPT", format: 1, what: "a language-model checkpoint" };
/// The file name inside a job's checkpoint directory.
pub(crate) const FILE_NAME: &str = "lm.ckpt";

/// Everything that identifies a child's training run. The architecture and
/// the recipe are kept as the JSON text this build writes for them and
/// compared as text, which never depends on float parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Identity {
    pub job_id: String,
    pub arch: String,
    pub train: String,
    pub seed: u64,
}

/// The plain part of the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
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

pub(crate) fn encode(state: &State, blobs: &[Blob]) -> Result<Vec<u8>, String> {
    FRAME.encode(state, blobs)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<(State, Vec<Blob>), String> {
    FRAME.decode(bytes)
}

/// Writes `bytes` to `dir/FILE_NAME` atomically.
pub(crate) fn write(dir: &Path, bytes: &[u8]) -> Result<(), FileError> {
    checkpoint_file::write(&dir.join(FILE_NAME), bytes)
}

/// Reads `dir/FILE_NAME`; Ok(None) when there is none.
pub(crate) fn read(dir: &Path) -> Result<Option<Vec<u8>>, FileError> {
    checkpoint_file::read(&dir.join(FILE_NAME))
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
