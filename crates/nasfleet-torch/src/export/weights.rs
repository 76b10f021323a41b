//! The exported weights file: [safetensors](https://github.com/huggingface/safetensors),
//! written and read here in a few lines rather than through a crate.
//!
//! ```text
//! u64 LE header length N | N bytes of JSON header | raw little-endian tensor bytes
//! header = {"__metadata__": {"format": "nasfleet-weights-1", "arch": "<canonical JSON>", ...},
//!           "<name>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}
//! ```
//! Tensors are named as the exported PyTorch module's `state_dict()` keys,
//! so `model.load_state_dict(load_safetensors(path))` loads them strictly.
//! The metadata names the architecture (its canonical JSON) and the sizes
//! the module needs, so a weights file of another child is refused with a
//! message rather than loaded by accident. Only `F32` and `I64` (batch
//! norm's `num_batches_tracked`) tensors occur. Every length and offset is
//! checked before it is trusted.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};
use tch::{Device, Kind, Tensor};

use super::ExportError;

/// The `format` value of this build's weights files.
pub const WEIGHTS_FORMAT: &str = "nasfleet-weights-1";

/// A weights file in memory: its metadata and its tensors (on the CPU), in
/// file order.
#[derive(Debug)]
pub struct WeightsFile {
    /// String metadata (`format`, `arch`, sizes).
    pub metadata: BTreeMap<String, String>,
    /// Tensors by name, in the order of the file.
    pub tensors: Vec<(String, Tensor)>,
}

impl WeightsFile {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Metadata `key`, or an error naming the file and the key.
    pub fn meta(&self, key: &str) -> Result<&str, ExportError> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| ExportError::Weights(format!("the weights file's metadata lacks {key:?}")))
    }

    /// The bytes of the file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ExportError> {
        let mut header = Map::new();
        header.insert("__metadata__".into(), json!(self.metadata));
        let mut data: Vec<u8> = Vec::new();
        for (name, t) in &self.tensors {
            let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
            let (dtype, bytes) = match t.kind() {
                Kind::Float => {
                    let v = Vec::<f32>::try_from(&t.f_view([-1])?)?;
                    ("F32", v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
                }
                Kind::Int64 => {
                    let v = Vec::<i64>::try_from(&t.f_view([-1])?)?;
                    ("I64", v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
                }
                k => return Err(ExportError::Weights(format!("tensor {name} has kind {k:?}; only f32 and i64 are written"))),
            };
            let begin = data.len();
            data.extend_from_slice(&bytes);
            header.insert(
                name.clone(),
                json!({"dtype": dtype, "shape": t.size(), "data_offsets": [begin, data.len()]}),
            );
        }
        let mut text = serde_json::to_vec(&Value::Object(header)).map_err(|e| ExportError::Weights(e.to_string()))?;
        // The data starts 8-byte aligned, as the reference writer does it.
        while (8 + text.len()) % 8 != 0 {
            text.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + text.len() + data.len());
        out.extend_from_slice(&(text.len() as u64).to_le_bytes());
        out.extend_from_slice(&text);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Writes the file atomically (a temporary file renamed over `path`).
    pub fn write(&self, path: &Path) -> Result<(), ExportError> {
        let bytes = self.to_bytes()?;
        nasfleet_util::write_atomic(path, &bytes).map_err(|e| ExportError::Io { path: path.to_path_buf(), source: e })
    }

    /// Reads a weights file; errors name the file and what is wrong.
    pub fn read(path: &Path) -> Result<WeightsFile, ExportError> {
        let bytes = std::fs::read(path).map_err(|e| ExportError::Io { path: path.to_path_buf(), source: e })?;
        WeightsFile::from_bytes(&bytes)
            .map_err(|e| ExportError::Weights(format!("{} is not a nasfleet weights file: {e}", path.display())))
    }

    /// Parses the bytes of a safetensors file written by [`WeightsFile::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<WeightsFile, String> {
        let n = bytes.get(..8).ok_or("shorter than its 8-byte header length")?;
        let n = u64::from_le_bytes(n.try_into().map_err(|_| "bad length prefix")?);
        let end = 8u64.checked_add(n).filter(|&e| e <= bytes.len() as u64).ok_or("the header length exceeds the file")?;
        let header: Map<String, Value> = serde_json::from_slice(&bytes[8..end as usize])
            .map_err(|e| format!("the header is not a JSON object: {e}"))?;
        let data = &bytes[end as usize..];
        let mut metadata = BTreeMap::new();
        let mut entries: Vec<(usize, String, Tensor)> = Vec::new();
        for (name, v) in header {
            if name == "__metadata__" {
                let m: BTreeMap<String, String> =
                    serde_json::from_value(v).map_err(|e| format!("__metadata__ is not a string map: {e}"))?;
                metadata = m;
                continue;
            }
            let dtype = v["dtype"].as_str().ok_or_else(|| format!("tensor {name} has no dtype"))?;
            let shape: Vec<i64> = serde_json::from_value(v["shape"].clone()).map_err(|e| format!("tensor {name}: shape {e}"))?;
            let offs: [usize; 2] =
                serde_json::from_value(v["data_offsets"].clone()).map_err(|e| format!("tensor {name}: data_offsets {e}"))?;
            if shape.iter().any(|&d| d < 0) {
                return Err(format!("tensor {name} has a negative dimension"));
            }
            let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d as usize)).ok_or("shape overflows")?;
            let width = match dtype {
                "F32" => 4,
                "I64" => 8,
                other => return Err(format!("tensor {name} has dtype {other}; only F32 and I64 are read")),
            };
            let raw = data
                .get(offs[0]..offs[1])
                .filter(|r| Some(r.len()) == count.checked_mul(width))
                .ok_or_else(|| format!("tensor {name}'s data_offsets {offs:?} do not fit its shape or the file"))?;
            let t = if width == 4 {
                let v: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                Tensor::from_slice(&v)
            } else {
                let v: Vec<i64> = raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                Tensor::from_slice(&v)
            };
            entries.push((offs[0], name, t.reshape(shape.as_slice())));
        }
        entries.sort_by_key(|(o, _, _)| *o);
        Ok(WeightsFile { metadata, tensors: entries.into_iter().map(|(_, n, t)| (n, t)).collect() })
    }
}
