//! Framed checkpoint bytes, shared by the controller's and the language-model
//! child's checkpoints:
//!
//! ```text
//! magic (8 bytes) | u32 LE format | u64 LE header length | header JSON | f32 LE tensors
//! ```
//! The header holds the caller's plain state and the name and shape of every
//! tensor; the tensors follow in that order as little-endian f32. Raw f32
//! rather than a libtorch serialisation format: it round-trips exactly, is
//! readable without libtorch, and cannot change with a torch upgrade.
//! Decoding checks every length before it trusts or allocates it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// One tensor as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    /// The tensor's name (unique within a file).
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

impl Blob {
    /// `t`'s values as fp32 on the host, under `name`.
    pub fn of(name: impl Into<String>, t: &Tensor) -> Blob {
        Blob { name: name.into(), shape: t.size(), data: to_f32s(t) }
    }
}

/// Overwrites a variable with `values` (row-major, on the host), outside
/// autograd, on whatever device the variable lives.
pub(crate) fn copy_into(p: &Tensor, values: &[f32]) {
    let src = Tensor::from_slice(values).reshape(p.size()).to_device(p.device());
    tch::no_grad(|| p.shallow_clone().copy_(&src));
}

/// A tensor's values, row-major, as a host `Vec<f32>` (any kind, any device).
pub(crate) fn to_f32s(t: &Tensor) -> Vec<f32> {
    let flat = t.detach().to_kind(Kind::Float).to_device(Device::Cpu).contiguous().view(-1);
    let n = flat.numel();
    let mut out = vec![0f32; n];
    flat.copy_data(&mut out, n);
    out
}

/// One kind of framed file: its magic, the format this build writes and
/// reads, and what to call it in error messages.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// The first eight bytes of every file of this kind.
    pub magic: &'static [u8; 8],
    /// The format version this build writes and the only one it reads.
    pub format: u32,
    /// With its article, e.g. "an RL controller checkpoint".
    pub what: &'static str,
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

const PREFIX_LEN: usize = 8 + 4 + 8;

impl Frame {
    /// The bytes of a file holding `state` and `blobs` (see the module docs).
    pub fn encode<S: Serialize>(&self, state: &S, blobs: &[Blob]) -> Result<Vec<u8>, String> {
        let header = Header {
            state,
            tensors: blobs.iter().map(|b| TensorEntry { name: b.name.clone(), shape: b.shape.clone() }).collect(),
        };
        let json = serde_json::to_vec(&header).map_err(|e| format!("cannot serialise the header of {}: {e}", self.what))?;
        let data_len: usize = blobs.iter().map(|b| b.data.len() * 4).sum();
        let mut out = Vec::with_capacity(PREFIX_LEN + json.len() + data_len);
        out.extend_from_slice(self.magic);
        out.extend_from_slice(&self.format.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for b in blobs {
            for x in &b.data {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// The state and tensors of `bytes`, after checking the magic, the format
    /// and every length; an error says what does not fit.
    pub fn decode<S: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(S, Vec<Blob>), String> {
        if bytes.len() < PREFIX_LEN || &bytes[..8] != self.magic {
            return Err(format!("not {} (bad magic)", self.what));
        }
        let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if format != self.format {
            return Err(format!("checkpoint format {format} is not the supported format {}", self.format));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[12..PREFIX_LEN]);
        let header_len = u64::from_le_bytes(len8);
        let rest = &bytes[PREFIX_LEN..];
        if header_len > rest.len() as u64 {
            return Err(format!("header of {header_len} bytes exceeds the {} bytes left", rest.len()));
        }
        let (json, mut data) = rest.split_at(header_len as usize);
        let header: Header<S> =
            serde_json::from_slice(json).map_err(|e| format!("invalid header of {}: {e}", self.what))?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Frame = Frame { magic: b"NFTESTCK", format: 3, what: "a test checkpoint" };

    #[test]
    fn round_trip_and_every_damage_is_named() {
        let blobs = vec![
            Blob { name: "w".into(), shape: vec![2, 3], data: vec![1.0, -2.5, 3.0, 0.0, f32::MIN, 7.0] },
            Blob { name: "b".into(), shape: vec![0], data: vec![] },
        ];
        let state = (7u64, "s".to_string());
        let bytes = FRAME.encode(&state, &blobs).unwrap();
        assert_eq!(FRAME.decode::<(u64, String)>(&bytes).unwrap(), (state, blobs));

        let err = |b: &[u8]| FRAME.decode::<(u64, String)>(b).unwrap_err();
        assert!(err(&bytes[..bytes.len() - 1]).contains("tensor w [2, 3] needs 24 bytes but 23 are left"));
        assert!(err(b"garbage that is long enough").contains("not a test checkpoint (bad magic)"));
        assert!(err(&[]).contains("bad magic"));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(err(&extra).contains("1 trailing bytes"));
        let mut other_format = bytes.clone();
        other_format[8] = 9;
        assert!(err(&other_format).contains("format 9 is not the supported format 3"));
        let mut long_header = bytes.clone();
        long_header[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(&long_header).contains("exceeds"));
        let wrong_state = FRAME.encode(&"just a string", &[]).unwrap();
        assert!(err(&wrong_state).contains("invalid header of a test checkpoint"));
    }

    #[test]
    fn blobs_of_tensors_of_any_kind() {
        let t = Tensor::from_slice(&[1.5f64, -2.0, 0.25, 4.0]).view([2, 2]).to_kind(Kind::BFloat16);
        assert_eq!(Blob::of("x", &t), Blob { name: "x".into(), shape: vec![2, 2], data: vec![1.5, -2.0, 0.25, 4.0] });
    }
}
