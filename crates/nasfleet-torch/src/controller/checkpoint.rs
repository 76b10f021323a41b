//! The controller's checkpoint bytes: a JSON header and raw tensors.
//!
//! ```text
//! magic "NFRLCKPT" | u32 LE format | u64 LE header length | header JSON | tensors
//! ```
//! The header holds the plain state (versions, RNG, baseline) and the name and
//! shape of every tensor; the tensors follow in that order as little-endian
//! f32. Raw f32 rather than a libtorch serialisation format: it round-trips
//! exactly, is readable without libtorch, and cannot change with a torch
//! upgrade. Decoding checks every length before allocating.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use nasfleet_core::strategy::StrategyError;

const MAGIC: &[u8; 8] = b"NFRLCKPT";
pub(crate) const FORMAT: u32 = 1;

/// One tensor as plain data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Blob {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorEntry {
    name: String,
    shape: Vec<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header<S> {
    state: S,
    tensors: Vec<TensorEntry>,
}

fn bad(message: impl Into<String>) -> StrategyError {
    StrategyError::Checkpoint(message.into())
}

pub(crate) fn encode<S: Serialize>(state: &S, blobs: &[Blob]) -> Result<Vec<u8>, StrategyError> {
    let header = Header {
        state,
        tensors: blobs.iter().map(|b| TensorEntry { name: b.name.clone(), shape: b.shape.clone() }).collect(),
    };
    let json = serde_json::to_vec(&header).map_err(|e| bad(format!("cannot serialise the controller state: {e}")))?;
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

pub(crate) fn decode<S: DeserializeOwned>(bytes: &[u8]) -> Result<(S, Vec<Blob>), StrategyError> {
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err(bad("not an RL controller checkpoint (bad magic)"));
    }
    let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if format != FORMAT {
        return Err(bad(format!("checkpoint format {format} is not the supported format {FORMAT}")));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[12..20]);
    let header_len = u64::from_le_bytes(len8);
    let rest = &bytes[20..];
    if header_len > rest.len() as u64 {
        return Err(bad(format!("header of {header_len} bytes exceeds the {} bytes left", rest.len())));
    }
    let (json, mut data) = rest.split_at(header_len as usize);
    let header: Header<S> =
        serde_json::from_slice(json).map_err(|e| bad(format!("invalid controller checkpoint header: {e}")))?;
    let mut blobs = Vec::with_capacity(header.tensors.len());
    for t in header.tensors {
        let numel = t
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| usize::try_from(d).ok().and_then(|d| acc.checked_mul(d)))
            .ok_or_else(|| bad(format!("tensor {} has an invalid shape {:?}", t.name, t.shape)))?;
        let want = numel.checked_mul(4).filter(|&n| n <= data.len()).ok_or_else(|| {
            bad(format!("tensor {} {:?} needs {} bytes but {} are left", t.name, t.shape, numel.saturating_mul(4), data.len()))
        })?;
        let (mine, tail) = data.split_at(want);
        data = tail;
        let values = mine.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        blobs.push(Blob { name: t.name, shape: t.shape, data: values });
    }
    if !data.is_empty() {
        return Err(bad(format!("{} trailing bytes after the last tensor", data.len())));
    }
    Ok((header.state, blobs))
}
