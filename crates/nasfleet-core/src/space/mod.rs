//! The three search spaces and the space-independent architecture type.

pub mod cnn;
pub mod nb201;
pub mod rnn_cell;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::arch::Architecture;
use crate::error::ArchError;
use crate::limits::ArchLimits;
use crate::schema::TokenSchema;

pub use cnn::{CnnArch, CnnSpace};
pub use nb201::Nb201Arch;
pub use rnn_cell::{CellArch, CellSpace};

/// Which search space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpaceKind {
    /// The paper's CIFAR-10 convolutional space (`"cnn"`).
    #[serde(rename = "cnn")]
    Cnn,
    /// The paper's recurrent-cell space for language models (`"rnn-cell"`).
    #[serde(rename = "rnn-cell")]
    RnnCell,
    /// The NAS-Bench-201 cell space (`"nb201"`).
    #[serde(rename = "nb201")]
    Nb201,
}

impl SpaceKind {
    /// The space's name in configs and JSON: `cnn`, `rnn-cell` or `nb201`.
    pub fn name(self) -> &'static str {
        match self {
            SpaceKind::Cnn => "cnn",
            SpaceKind::RnnCell => "rnn-cell",
            SpaceKind::Nb201 => "nb201",
        }
    }
}

impl fmt::Display for SpaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SpaceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cnn" => Ok(SpaceKind::Cnn),
            "rnn-cell" | "rnn_cell" => Ok(SpaceKind::RnnCell),
            "nb201" => Ok(SpaceKind::Nb201),
            other => Err(format!("unknown search space {other:?} (expected cnn, rnn-cell or nb201)")),
        }
    }
}

/// A search space with its settings: the one object the controller and the
/// strategies talk to, so none of them knows which space it searches.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// The CNN space with its value sets and depth schedule.
    Cnn(CnnSpace),
    /// The recurrent-cell space with its base and value sets.
    RnnCell(CellSpace),
    /// The NAS-Bench-201 cell space (no settings).
    Nb201,
}

impl Space {
    /// Which space this is.
    pub fn kind(&self) -> SpaceKind {
        match self {
            Space::Cnn(_) => SpaceKind::Cnn,
            Space::RnnCell(_) => SpaceKind::RnnCell,
            Space::Nb201 => SpaceKind::Nb201,
        }
    }

    /// Layer count of the next sample after `samples_drawn` samples (the CNN
    /// depth schedule; 1 for spaces without depth).
    pub fn layers_at(&self, samples_drawn: u64) -> usize {
        match self {
            Space::Cnn(s) => s.depth.layers_at(samples_drawn),
            _ => 1,
        }
    }

    /// The schema for `layers` layers (ignored by spaces without depth).
    pub fn schema(&self, layers: usize) -> TokenSchema {
        match self {
            Space::Cnn(s) => s.schema(layers),
            Space::RnnCell(s) => s.schema(),
            Space::Nb201 => Nb201Arch::schema(),
        }
    }

    /// The decision types, identical for every depth.
    pub fn decision_types(&self) -> Vec<crate::schema::DecisionType> {
        self.schema(1).decisions
    }

    /// The architecture a complete token sequence of this space stands for.
    pub fn decode(&self, tokens: &[u32]) -> Result<Architecture, ArchError> {
        Ok(match self {
            Space::Cnn(s) => Architecture::Cnn(s.decode(tokens)?),
            Space::RnnCell(s) => Architecture::RnnCell(s.decode(tokens)?),
            Space::Nb201 => Architecture::Nb201(Nb201Arch::decode(tokens)?),
        })
    }

    /// The tokens of `arch`, the inverse of [`decode`](Self::decode); refuses
    /// an architecture of another space or one this space cannot emit.
    pub fn encode(&self, arch: &Architecture) -> Result<Vec<u32>, ArchError> {
        match (self, arch) {
            (Space::Cnn(s), Architecture::Cnn(a)) => s.encode(a),
            (Space::RnnCell(s), Architecture::RnnCell(a)) => s.encode(a),
            (Space::Nb201, Architecture::Nb201(a)) => Ok(a.encode()),
            (s, a) => Err(ArchError::invalid(
                "space",
                format!("architecture of space {} cannot be encoded in space {}", a.kind(), s.kind()),
            )),
        }
    }

    /// Checks the space's own settings against the limits.
    pub fn check(&self, limits: &ArchLimits) -> Result<(), ArchError> {
        match self {
            Space::RnnCell(s) => s.check(limits),
            Space::Cnn(s) => {
                let sets = [
                    ("cnn.filter_heights", &s.filter_heights),
                    ("cnn.filter_widths", &s.filter_widths),
                    ("cnn.strides", &s.strides),
                    ("cnn.num_filters", &s.num_filters),
                ];
                for (name, set) in sets {
                    if set.is_empty() {
                        return Err(ArchError::invalid(name, "must not be empty"));
                    }
                }
                if s.depth.start == 0 || s.depth.max > limits.max_layers {
                    return Err(ArchError::invalid(
                        "cnn.depth",
                        format!("layers must stay within 1..={}", limits.max_layers),
                    ));
                }
                // Every value the space can emit must pass the hard limits.
                let probe = |h: u32, w: u32, st: u32, f: u32| CnnArch {
                    layers: vec![cnn::CnnLayer {
                        filter_height: h,
                        filter_width: w,
                        stride_height: st,
                        stride_width: st,
                        filters: f,
                        inputs: vec![],
                    }],
                    max_pool_after: vec![],
                };
                for &h in &s.filter_heights {
                    probe(h, 1, 1, 1).validate(limits).map_err(|e| prefix("cnn.filter_heights", e))?;
                }
                for &w in &s.filter_widths {
                    probe(1, w, 1, 1).validate(limits).map_err(|e| prefix("cnn.filter_widths", e))?;
                }
                for &st in &s.strides {
                    probe(1, 1, st, 1).validate(limits).map_err(|e| prefix("cnn.strides", e))?;
                }
                for &f in &s.num_filters {
                    probe(1, 1, 1, f).validate(limits).map_err(|e| prefix("cnn.num_filters", e))?;
                }
                Ok(())
            }
            Space::Nb201 => Ok(()),
        }
    }
}

fn prefix(field: &str, e: ArchError) -> ArchError {
    match e {
        ArchError::Invalid { message, .. } => ArchError::invalid(field, message),
        other => other,
    }
}
