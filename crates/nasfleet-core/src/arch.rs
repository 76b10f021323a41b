//! The space-independent architecture type and its versioned JSON form — the
//! form that travels in jobs and that `nasfleet space check` reads.
//!
//! ```json
//! {"version": 1, "space": "cnn", "layers": [...], "max_pool_after": []}
//! ```
//! Parsing is strict (unknown fields are errors: an architecture is a
//! contract, and a typo must not silently become a default) and defensive:
//! the size cap is checked before any parsing, serde_json's recursion limit
//! turns deep nesting into an error, and every error names the JSON path.

use serde::{Deserialize, Serialize};

use crate::error::ArchError;
use crate::limits::ArchLimits;
use crate::space::{CellArch, CnnArch, Nb201Arch, SpaceKind};

/// Version of the JSON form written by this build.
pub const ARCH_FORMAT_VERSION: u64 = 1;

/// An architecture of any search space; the JSON tag `space` says which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "space")]
pub enum Architecture {
    /// A CNN of the paper's convolutional space (`"space": "cnn"`).
    #[serde(rename = "cnn")]
    Cnn(CnnArch),
    /// A recurrent cell of the paper's RNN-cell space (`"space": "rnn-cell"`).
    #[serde(rename = "rnn-cell")]
    RnnCell(CellArch),
    /// A NAS-Bench-201 cell (`"space": "nb201"`).
    #[serde(rename = "nb201")]
    Nb201(Nb201Arch),
}

#[derive(Serialize)]
struct Versioned<'a> {
    version: u64,
    #[serde(flatten)]
    arch: &'a Architecture,
}

impl Architecture {
    /// The search space this architecture belongs to.
    pub fn kind(&self) -> SpaceKind {
        match self {
            Architecture::Cnn(_) => SpaceKind::Cnn,
            Architecture::RnnCell(_) => SpaceKind::RnnCell,
            Architecture::Nb201(_) => SpaceKind::Nb201,
        }
    }

    /// Structural validation against hard limits.
    pub fn validate(&self, limits: &ArchLimits) -> Result<(), ArchError> {
        match self {
            Architecture::Cnn(a) => a.validate(limits),
            Architecture::RnnCell(a) => a.validate(limits),
            Architecture::Nb201(_) => Ok(()),
        }
    }

    /// The versioned JSON form on one line (what travels in jobs).
    pub fn to_json(&self) -> String {
        // Serialising plain structs and enums to a String cannot fail.
        serde_json::to_string(&Versioned { version: ARCH_FORMAT_VERSION, arch: self }).unwrap_or_default()
    }

    /// The versioned JSON form, indented for people.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&Versioned { version: ARCH_FORMAT_VERSION, arch: self }).unwrap_or_default()
    }

    /// The versioned JSON form as a value, to embed in a larger document.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(Versioned { version: ARCH_FORMAT_VERSION, arch: self }).unwrap_or_default()
    }

    /// Parses and validates: size cap, JSON syntax, version, schema (with the
    /// path of the offending field), then the limits.
    pub fn from_json(bytes: &[u8], limits: &ArchLimits) -> Result<Self, ArchError> {
        if bytes.len() > limits.max_payload_bytes {
            return Err(ArchError::PayloadTooLarge { size: bytes.len(), max: limits.max_payload_bytes });
        }
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ArchError::Json { path: format!("line {} column {}", e.line(), e.column()), message: e.to_string() })?;
        Self::from_value(value, limits)
    }

    /// As [`Architecture::from_json`] for an already parsed value (a job
    /// carries the architecture as a nested JSON object).
    pub fn from_value(value: serde_json::Value, limits: &ArchLimits) -> Result<Self, ArchError> {
        let serde_json::Value::Object(mut map) = value else {
            return Err(ArchError::Json { path: ".".into(), message: "expected a JSON object".into() });
        };
        match map.remove("version") {
            None => return Err(ArchError::invalid("version", "missing (this build writes version 1)")),
            Some(v) => match v.as_u64() {
                Some(ARCH_FORMAT_VERSION) => {}
                Some(found) => return Err(ArchError::Version { found, supported: ARCH_FORMAT_VERSION }),
                None => return Err(ArchError::invalid("version", format!("{v} is not an integer"))),
            },
        }
        // Dispatch on "space" by hand rather than through serde's internally
        // tagged enum: that one buffers the content and loses the JSON path
        // the error messages need ("layers[3].filters").
        let space = match map.remove("space") {
            None => return Err(ArchError::invalid("space", "missing (expected cnn, rnn-cell or nb201)")),
            Some(serde_json::Value::String(s)) => s,
            Some(v) => return Err(ArchError::invalid("space", format!("{v} is not a string"))),
        };
        let rest = serde_json::Value::Object(map);
        let arch = match space.as_str() {
            "cnn" => Architecture::Cnn(typed(rest)?),
            "rnn-cell" => Architecture::RnnCell(typed(rest)?),
            "nb201" => Architecture::Nb201(typed(rest)?),
            other => {
                return Err(ArchError::invalid(
                    "space",
                    format!("unknown search space {other:?} (expected cnn, rnn-cell or nb201)"),
                ))
            }
        };
        arch.validate(limits)?;
        Ok(arch)
    }

    /// One-line human summary. For a CNN this needs the input shape and class
    /// count to count parameters and FLOPs.
    pub fn summary(&self, input: (usize, usize, usize), classes: usize) -> String {
        match self {
            Architecture::Cnn(a) => {
                let g = a.resolve(input, classes);
                let skips: usize = a.layers.iter().map(|l| l.inputs.len()).sum();
                format!(
                    "cnn: {} layers, {} skip inputs, {} params, {} FLOPs per {}x{}x{} image ({} classes)",
                    a.layers.len(),
                    skips,
                    g.params,
                    g.flops(),
                    input.0,
                    input.1,
                    input.2,
                    classes
                )
            }
            Architecture::RnnCell(a) => {
                format!("rnn-cell (base {}): {}", a.base, a.formula().replace('\n', "; "))
            }
            Architecture::Nb201(a) => format!("nb201: {} (NASLib tuple {:?})", a, a.to_naslib_tuple()),
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ArchError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        ArchError::Json { path: if path == "?" { ".".into() } else { path }, message: e.inner().to_string() }
    })
}
