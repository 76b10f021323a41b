//! The NAS-Bench-201 cell: 4 nodes, 6 edges, one of 5 operations per edge
//! (15,625 cells).
//!
//! Two external spellings exist and both are supported:
//! - the NB201 string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, whose edges are
//!   grouped by *target* node: (0→1) | (0→2),(1→2) | (0→3),(1→3),(2→3);
//! - NASLib's index tuple, ordered by *source* node: (0→1),(0→2),(0→3),(1→2),
//!   (1→3),(2→3), with its own op numbering (0 skip_connect, 1 none,
//!   2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3).
//!
//! Internally (and in the controller's tokens) edges follow the tuple order and
//! ops follow NB201's own `OPS` list order (none, skip_connect, nor_conv_1x1,
//! nor_conv_3x3, avg_pool_3x3).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::ArchError;
use crate::schema::{DecisionType, Step, StepKind, TokenSchema};

/// One operation on an edge, in NB201's `OPS` order (this order is the token value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nb201Op {
    /// No connection: the edge contributes zeros (`none`).
    None,
    /// Identity (`skip_connect`).
    SkipConnect,
    /// ReLU, 1×1 convolution, batch norm (`nor_conv_1x1`).
    #[serde(rename = "nor_conv_1x1")]
    NorConv1x1,
    /// ReLU, 3×3 convolution, batch norm (`nor_conv_3x3`).
    #[serde(rename = "nor_conv_3x3")]
    NorConv3x3,
    /// 3×3 average pooling, stride 1 (`avg_pool_3x3`).
    #[serde(rename = "avg_pool_3x3")]
    AvgPool3x3,
}

impl Nb201Op {
    /// Every op, in token order (an op's token is its index here).
    pub const ALL: [Nb201Op; 5] = [
        Nb201Op::None,
        Nb201Op::SkipConnect,
        Nb201Op::NorConv1x1,
        Nb201Op::NorConv3x3,
        Nb201Op::AvgPool3x3,
    ];

    /// The name used in NB201 strings.
    pub fn name(self) -> &'static str {
        match self {
            Nb201Op::None => "none",
            Nb201Op::SkipConnect => "skip_connect",
            Nb201Op::NorConv1x1 => "nor_conv_1x1",
            Nb201Op::NorConv3x3 => "nor_conv_3x3",
            Nb201Op::AvgPool3x3 => "avg_pool_3x3",
        }
    }

    /// The op of an NB201-string name (`"nor_conv_3x3"`), if it is one.
    pub fn from_name(s: &str) -> Option<Nb201Op> {
        Nb201Op::ALL.iter().copied().find(|op| op.name() == s)
    }

    /// Token value (index in NB201's `OPS` list).
    pub fn token(self) -> u32 {
        Nb201Op::ALL.iter().position(|&o| o == self).unwrap_or(0) as u32
    }

    /// NASLib's op index.
    pub fn naslib_index(self) -> u8 {
        match self {
            Nb201Op::SkipConnect => 0,
            Nb201Op::None => 1,
            Nb201Op::NorConv3x3 => 2,
            Nb201Op::NorConv1x1 => 3,
            Nb201Op::AvgPool3x3 => 4,
        }
    }

    /// The op of a NASLib op index (0..=4), if it is one.
    pub fn from_naslib_index(i: u8) -> Option<Nb201Op> {
        Some(match i {
            0 => Nb201Op::SkipConnect,
            1 => Nb201Op::None,
            2 => Nb201Op::NorConv3x3,
            3 => Nb201Op::NorConv1x1,
            4 => Nb201Op::AvgPool3x3,
            _ => return None,
        })
    }
}

/// Edges (from, to) in the internal / NASLib tuple order, 0-based nodes.
pub const EDGES: [(usize, usize); 6] = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];

/// Position in [`EDGES`] of each edge as the NB201 string lists them.
const STRING_ORDER: [usize; 6] = [0, 1, 3, 2, 4, 5];

/// A NAS-Bench-201 cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nb201Arch {
    /// One op per edge, in [`EDGES`] order.
    pub ops: [Nb201Op; 6],
}

impl Nb201Arch {
    /// The token schema: six choice steps, one per edge in [`EDGES`] order,
    /// over the five ops.
    pub fn schema() -> TokenSchema {
        TokenSchema {
            decisions: vec![DecisionType {
                name: "op".into(),
                choices: Nb201Op::ALL.iter().map(|o| o.name().to_string()).collect(),
            }],
            steps: EDGES
                .iter()
                .map(|(a, b)| Step {
                    name: format!("edge {}->{}", a, b),
                    kind: StepKind::Choice { decision: 0 },
                })
                .collect(),
        }
    }

    /// The six tokens (each op's [`Nb201Op::token`]), in [`EDGES`] order.
    pub fn encode(&self) -> Vec<u32> {
        self.ops.iter().map(|o| o.token()).collect()
    }

    /// The cell of six tokens, the inverse of [`encode`](Self::encode).
    pub fn decode(tokens: &[u32]) -> Result<Self, ArchError> {
        if tokens.len() != 6 {
            return Err(ArchError::TokenCount { expected: 6, found: tokens.len() });
        }
        let mut ops = [Nb201Op::None; 6];
        for (i, &t) in tokens.iter().enumerate() {
            ops[i] = *Nb201Op::ALL.get(t as usize).ok_or_else(|| ArchError::TokenOutOfRange {
                position: i,
                step: format!("edge {}->{}", EDGES[i].0, EDGES[i].1),
                value: t,
                choices: 5,
            })?;
        }
        Ok(Nb201Arch { ops })
    }

    /// NASLib's index tuple (NASLib op indices, in [`EDGES`] order).
    pub fn to_naslib_tuple(&self) -> [u8; 6] {
        self.ops.map(|o| o.naslib_index())
    }

    /// The cell of a NASLib index tuple; an index outside 0..=4 is an error.
    pub fn from_naslib_tuple(t: [u8; 6]) -> Result<Self, ArchError> {
        let mut ops = [Nb201Op::None; 6];
        for (i, &v) in t.iter().enumerate() {
            ops[i] = Nb201Op::from_naslib_index(v).ok_or_else(|| {
                ArchError::invalid(format!("ops[{i}]"), format!("NASLib op index {v} is not in 0..=4"))
            })?;
        }
        Ok(Nb201Arch { ops })
    }

    /// `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`
    pub fn to_nb201_string(&self) -> String {
        let name = |k: usize| {
            let e = STRING_ORDER[k];
            format!("{}~{}", self.ops[e].name(), EDGES[e].0)
        };
        format!(
            "|{}|+|{}|{}|+|{}|{}|{}|",
            name(0),
            name(1),
            name(2),
            name(3),
            name(4),
            name(5)
        )
    }

    /// Parses an NB201 string (the form [`to_nb201_string`](Self::to_nb201_string)
    /// writes); errors say which group or edge is wrong.
    pub fn parse_nb201_str(s: &str) -> Result<Self, ArchError> {
        let bad = |why: String| ArchError::invalid("nb201 string", format!("{why} in {s:?}"));
        let groups: Vec<&str> = s.trim().split('+').collect();
        if groups.len() != 3 {
            return Err(bad(format!("expected 3 '+'-separated node groups, found {}", groups.len())));
        }
        let mut ops = [Nb201Op::None; 6];
        let mut k = 0;
        for (node, g) in groups.iter().enumerate() {
            let g = g.trim();
            if !(g.starts_with('|') && g.ends_with('|') && g.len() >= 2) {
                return Err(bad(format!("node group {} is not enclosed in '|'", node + 1)));
            }
            let items: Vec<&str> = g[1..g.len() - 1].split('|').collect();
            if items.len() != node + 1 {
                return Err(bad(format!(
                    "node {} must have {} incoming edges, found {}",
                    node + 1,
                    node + 1,
                    items.len()
                )));
            }
            for (src, item) in items.iter().enumerate() {
                let (op, from) = item
                    .split_once('~')
                    .ok_or_else(|| bad(format!("edge {item:?} lacks '~source'")))?;
                let op = Nb201Op::from_name(op).ok_or_else(|| bad(format!("unknown op {op:?}")))?;
                if from.parse::<usize>().ok() != Some(src) {
                    return Err(bad(format!("edge {item:?} must come from node {src}")));
                }
                ops[STRING_ORDER[k]] = op;
                k += 1;
            }
        }
        Ok(Nb201Arch { ops })
    }
}

impl fmt::Display for Nb201Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_nb201_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_tuple_forms_agree() {
        // NB201's best-known CIFAR-10 cell, written in both forms by hand.
        let s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|";
        let a = Nb201Arch::parse_nb201_str(s).unwrap();
        assert_eq!(a.to_nb201_string(), s);
        // edges (0→1),(0→2),(0→3),(1→2),(1→3),(2→3)
        assert_eq!(a.to_naslib_tuple(), [2, 2, 0, 2, 2, 2]);
        assert_eq!(Nb201Arch::from_naslib_tuple([2, 2, 0, 2, 2, 2]).unwrap(), a);
        // The (0→3) edge is 4th in the string but 3rd in the tuple.
        let s2 = "|none~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|";
        assert_eq!(Nb201Arch::parse_nb201_str(s2).unwrap().to_naslib_tuple(), [1, 1, 4, 1, 1, 1]);
    }

    #[test]
    fn bad_strings_are_errors() {
        for s in ["", "|a~0|", "|none~0|+|none~0|+|none~0|", "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
                  "|none~0|+|none~0|none~1|+|conv~0|none~1|none~2|"] {
            assert!(Nb201Arch::parse_nb201_str(s).is_err(), "{s}");
        }
        assert!(Nb201Arch::from_naslib_tuple([0, 0, 0, 0, 0, 5]).is_err());
    }
}
