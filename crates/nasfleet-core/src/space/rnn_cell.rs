//! The paper's recurrent-cell search space (Zoph & Le 2017, §3.3 / §5).
//!
//! A cell maps (x_t, h_{t-1}, c_{t-1}) to (h_t, c_t) through a full binary tree
//! of `2·base − 1` nodes, numbered in level order: leaves `0..base`, then the
//! next level, …, the root last. Every node has a combination and an
//! activation; a leaf `k` combines `W_{2k+1}·x_t` with `W_{2k+2}·h_{t-1}` (the
//! only weights of the cell), an internal node combines its two children's
//! outputs. The *cell inject* (combination, activation) merges c_{t-1} into the
//! output of one node, and the *cell indices* say which node that is and which
//! node's pre-activation becomes c_t. h_t is the root's output.
//!
//! Exact semantics (the torch builder implements the same):
//! ```text
//! pre_k = combine_k(a, b)          a, b = leaf projections or children outputs
//! out_k = act_k(pre_k)
//! out_k = inject_act(inject_combine(out_k, c_{t-1}))   only for k = inject node
//! c_t   = pre_{cell node}          h_t = out_root
//! ```
//! The two index decisions range over the `2·base − 2` non-root nodes. With
//! base 8 the space holds 8^16 · 14² ≈ 5.5·10^16 cells, the paper's "about
//! 6·10^16".
//!
//! Token order: (combination, activation) for each node in level order, then
//! the inject combination and activation, then the inject node, then the
//! cell (c_t) node.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use crate::error::ArchError;
use crate::limits::ArchLimits;
use crate::schema::{DecisionType, Step, StepKind, TokenSchema};

/// How a node merges its two inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Element-wise sum.
    Add,
    /// Element-wise product.
    ElemMult,
    /// Extended set (control experiment 1).
    Max,
}

/// The non-linearity a node applies to its combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// No activation.
    Identity,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// max(0, x).
    Relu,
    /// Extended set (control experiment 1).
    Sin,
}

impl Combine {
    /// The name in JSON, token schemas and formulas (`add`, `elem_mult`, `max`).
    pub fn name(self) -> &'static str {
        match self {
            Combine::Add => "add",
            Combine::ElemMult => "elem_mult",
            Combine::Max => "max",
        }
    }
}

impl Activation {
    /// The name in JSON, token schemas and formulas (`tanh`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Sin => "sin",
        }
    }
}

/// Settings of the cell space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CellSpace {
    /// Number of leaves; a power of two ≥ 2. Paper: 8.
    pub base: usize,
    /// Adds `max` to the combinations and `sin` to the activations.
    pub extended: bool,
}

impl Default for CellSpace {
    fn default() -> Self {
        CellSpace { base: 8, extended: false }
    }
}

/// Decision type of every combination (nodes and the inject).
pub const D_COMBINE: usize = 0;
/// Decision type of every activation (nodes and the inject).
pub const D_ACTIVATION: usize = 1;
/// Decision type of the two node indices (inject node, cell node), over the
/// `2·base − 2` non-root nodes.
pub const D_CELL_INDEX: usize = 2;

/// One node of the cell's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellNode {
    /// How the node merges its two inputs.
    pub combine: Combine,
    /// The activation applied to the merge.
    pub activation: Activation,
}

/// How c_{t-1} enters the cell: merged into one node's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellInject {
    /// How the node's output and c_{t-1} are merged.
    pub combine: Combine,
    /// The activation applied to that merge.
    pub activation: Activation,
    /// The node whose output receives c_{t-1}.
    pub node: usize,
}

/// A recurrent cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellArch {
    /// Number of leaves (a power of two ≥ 2).
    pub base: usize,
    /// `2·base − 1` nodes in level order (leaves first, root last).
    pub nodes: Vec<CellNode>,
    /// Where c_{t-1} enters.
    pub inject: CellInject,
    /// The node whose pre-activation becomes c_t.
    pub cell_node: usize,
}

impl CellSpace {
    /// The combinations this space offers, in token order.
    pub fn combines(&self) -> Vec<Combine> {
        let mut v = vec![Combine::Add, Combine::ElemMult];
        if self.extended {
            v.push(Combine::Max);
        }
        v
    }

    /// The activations this space offers, in token order.
    pub fn activations(&self) -> Vec<Activation> {
        let mut v = vec![Activation::Identity, Activation::Tanh, Activation::Sigmoid, Activation::Relu];
        if self.extended {
            v.push(Activation::Sin);
        }
        v
    }

    /// Checks the settings against the limits (`base` a power of two in
    /// `2..=max_cell_base`).
    pub fn check(&self, limits: &ArchLimits) -> Result<(), ArchError> {
        check_base(self.base, limits, "rnn_cell.base")
    }

    /// The token schema (see the module documentation for the order).
    pub fn schema(&self) -> TokenSchema {
        let nodes = 2 * self.base - 1;
        let decisions = vec![
            DecisionType { name: "combine".into(), choices: self.combines().iter().map(|c| c.name().into()).collect() },
            DecisionType {
                name: "activation".into(),
                choices: self.activations().iter().map(|a| a.name().into()).collect(),
            },
            DecisionType { name: "cell_index".into(), choices: (0..nodes - 1).map(|n| format!("node {n}")).collect() },
        ];
        let mut steps = Vec::new();
        for k in 0..nodes {
            steps.push(Step { name: format!("node {k} combine"), kind: StepKind::Choice { decision: D_COMBINE } });
            steps.push(Step { name: format!("node {k} activation"), kind: StepKind::Choice { decision: D_ACTIVATION } });
        }
        steps.push(Step { name: "inject combine".into(), kind: StepKind::Choice { decision: D_COMBINE } });
        steps.push(Step { name: "inject activation".into(), kind: StepKind::Choice { decision: D_ACTIVATION } });
        steps.push(Step { name: "inject node".into(), kind: StepKind::Choice { decision: D_CELL_INDEX } });
        steps.push(Step { name: "cell node".into(), kind: StepKind::Choice { decision: D_CELL_INDEX } });
        TokenSchema { decisions, steps }
    }

    /// The cell a complete token sequence stands for.
    pub fn decode(&self, tokens: &[u32]) -> Result<CellArch, ArchError> {
        self.schema().check_tokens(tokens)?;
        let combines = self.combines();
        let acts = self.activations();
        let t = |i: usize| tokens[i] as usize;
        let n = 2 * self.base - 1;
        let nodes = (0..n)
            .map(|k| CellNode { combine: combines[t(2 * k)], activation: acts[t(2 * k + 1)] })
            .collect();
        let inject = CellInject { combine: combines[t(2 * n)], activation: acts[t(2 * n + 1)], node: t(2 * n + 2) };
        Ok(CellArch { base: self.base, nodes, inject, cell_node: t(2 * n + 3) })
    }

    /// The tokens of `arch`, the inverse of [`decode`](Self::decode); refuses
    /// another base or an extended op in a non-extended space.
    pub fn encode(&self, arch: &CellArch) -> Result<Vec<u32>, ArchError> {
        if arch.base != self.base {
            return Err(ArchError::invalid("base", format!("{} differs from the space's base {}", arch.base, self.base)));
        }
        let combines = self.combines();
        let acts = self.activations();
        let ci = |field: String, c: Combine| {
            combines.iter().position(|&x| x == c).map(|p| p as u32).ok_or_else(|| {
                ArchError::invalid(field, format!("combination {} needs `extended = true`", c.name()))
            })
        };
        let ai = |field: String, a: Activation| {
            acts.iter().position(|&x| x == a).map(|p| p as u32).ok_or_else(|| {
                ArchError::invalid(field, format!("activation {} needs `extended = true`", a.name()))
            })
        };
        let mut out = Vec::new();
        for (k, node) in arch.nodes.iter().enumerate() {
            out.push(ci(format!("nodes[{k}].combine"), node.combine)?);
            out.push(ai(format!("nodes[{k}].activation"), node.activation)?);
        }
        out.push(ci("inject.combine".into(), arch.inject.combine)?);
        out.push(ai("inject.activation".into(), arch.inject.activation)?);
        out.push(arch.inject.node as u32);
        out.push(arch.cell_node as u32);
        self.schema().check_tokens(&out)?;
        Ok(out)
    }
}

fn check_base(base: usize, limits: &ArchLimits, field: &str) -> Result<(), ArchError> {
    if base < 2 || !base.is_power_of_two() || base > limits.max_cell_base {
        return Err(ArchError::invalid(
            field,
            format!("{base} is not a power of two in 2..={}", limits.max_cell_base),
        ));
    }
    Ok(())
}

impl CellArch {
    /// Nodes of the tree: `2·base − 1`.
    pub fn node_count(&self) -> usize {
        2 * self.base - 1
    }

    /// Index of the root (the last node), whose output is h_t.
    pub fn root(&self) -> usize {
        self.node_count() - 1
    }

    /// Children of internal node `k` (level order), `None` for a leaf.
    pub fn children(&self, k: usize) -> Option<(usize, usize)> {
        children(self.base, k)
    }

    /// Structural validation against hard limits: the base, the node count
    /// and the two node indices.
    pub fn validate(&self, limits: &ArchLimits) -> Result<(), ArchError> {
        check_base(self.base, limits, "base")?;
        let n = self.node_count();
        if self.nodes.len() != n {
            return Err(ArchError::invalid(
                "nodes",
                format!("base {} needs {} nodes, found {}", self.base, n, self.nodes.len()),
            ));
        }
        for (field, v) in [("inject.node", self.inject.node), ("cell_node", self.cell_node)] {
            if v >= n - 1 {
                return Err(ArchError::invalid(field, format!("{v} is not a non-root node index in 0..={}", n - 2)));
            }
        }
        Ok(())
    }

    /// Readable formula of the cell, one assignment per line, ending with
    /// `h_t = …` and `c_t = …`. Leaf `k` uses `W{2k+1}·x_t` and `W{2k+2}·h_{t-1}`.
    /// An identity activation is not written; `n5'` is node 5 after the inject.
    pub fn formula(&self) -> String {
        let n = self.node_count();
        let pre = |k: usize| -> String {
            let (a, b) = match self.children(k) {
                None => (format!("W{}·x_t", 2 * k + 1), format!("W{}·h_{{t-1}}", 2 * k + 2)),
                Some((l, r)) => (self.out_name(l), self.out_name(r)),
            };
            combine_expr(self.nodes[k].combine, &a, &b)
        };
        let mut s = String::new();
        for k in 0..n {
            let _ = writeln!(s, "n{k} = {}", act_expr(self.nodes[k].activation, &pre(k)));
            if k == self.inject.node {
                let merged = combine_expr(self.inject.combine, &format!("n{k}"), "c_{t-1}");
                let _ = writeln!(s, "n{k}' = {}", act_expr(self.inject.activation, &merged));
            }
        }
        let _ = writeln!(s, "h_t = n{}", n - 1);
        let _ = write!(s, "c_t = {}", pre(self.cell_node));
        s
    }

    fn out_name(&self, k: usize) -> String {
        if k == self.inject.node {
            format!("n{k}'")
        } else {
            format!("n{k}")
        }
    }
}

/// Children of node `k` in a level-ordered full binary tree with `base` leaves.
pub fn children(base: usize, k: usize) -> Option<(usize, usize)> {
    if k < base {
        return None;
    }
    // Level starts: base, base + base/2, ...; node k's children are in the
    // previous level at positions 2i, 2i+1.
    let (mut start, mut width, mut prev_start) = (base, base / 2, 0);
    while k >= start + width {
        prev_start = start;
        start += width;
        width /= 2;
    }
    let i = k - start;
    Some((prev_start + 2 * i, prev_start + 2 * i + 1))
}

fn combine_expr(c: Combine, a: &str, b: &str) -> String {
    match c {
        Combine::Add => format!("{a} + {b}"),
        Combine::ElemMult => format!("{a} ⊙ {b}"),
        Combine::Max => format!("max({a}, {b})"),
    }
}

fn act_expr(a: Activation, inner: &str) -> String {
    match a {
        Activation::Identity => inner.to_string(),
        other => format!("{}({inner})", other.name()),
    }
}
