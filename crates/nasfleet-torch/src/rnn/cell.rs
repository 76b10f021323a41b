//! A sampled recurrent cell as a tch module.
//!
//! Semantics are exactly those of [`nasfleet_core::space::rnn_cell`]:
//! ```text
//! leaf k:      pre_k = combine_k(x_t·Wx_k, h_{t-1}·Wh_k [+ b_k])
//! internal k:  pre_k = combine_k(out_left, out_right)
//! every k:     out_k = act_k(pre_k)
//! inject node: out_k = inject_act(inject_combine(out_k, c_{t-1}))
//! c_t = pre_{cell node}      h_t = out_root
//! ```
//! The leaf projections are the only weights (the optional bias on the
//! h-projection is TensorFlow `NASCell`'s; off by default).
//!
//! # Why the weights are laid out as they are
//!
//! All `base` x-projections are one matrix `wx: [input, base·H]` and all
//! h-projections one matrix `wh: [H, base·H]`, so a step costs one matmul for
//! the whole bottom level, and a language model projects a whole BPTT segment
//! of inputs with one matmul outside the time loop
//! ([`RecurrentCell::project_inputs`]). The column blocks are ordered by
//! (combination, activation), not by leaf index: leaves that share a
//! combination are then one contiguous slice, combined by one op, and leaves
//! that also share an activation are activated by one op. The NAS cell's
//! bottom level becomes ~6 elementwise kernels instead of 16. Which block
//! belongs to which leaf is a private detail; [`RecurrentCell::leaf_weights`]
//! returns leaf k's blocks for anyone who needs them by name (the tests).

use nasfleet_core::space::rnn_cell::{Activation, CellArch, Combine};
use nasfleet_core::ArchLimits;
use tch::{nn, Tensor};

use super::RnnError;

/// The recurrent state of one cell layer: h and c, each `[batch, hidden]`.
#[derive(Debug)]
pub struct CellState {
    /// Hidden state, `[batch, hidden]`.
    pub h: Tensor,
    /// Cell state (the memory `c_t`), `[batch, hidden]`.
    pub c: Tensor,
}

impl CellState {
    /// All-zero h and c of `batch` rows (fp32, on `device`).
    pub fn zeros(batch: i64, hidden: i64, device: tch::Device) -> Self {
        let z = Tensor::zeros([batch, hidden], (tch::Kind::Float, device));
        CellState { h: z.shallow_clone(), c: z }
    }

    /// The same values cut from the autograd graph (truncated BPTT).
    pub fn detach(&self) -> Self {
        CellState { h: self.h.detach(), c: self.c.detach() }
    }
}

/// Views of one leaf's weights: `x·wx + h·wh (+ bh)`.
#[derive(Debug)]
pub struct LeafWeights {
    /// `[input, hidden]`
    pub wx: Tensor,
    /// `[hidden, hidden]`
    pub wh: Tensor,
    /// `[hidden]`, when the cell has leaf biases.
    pub bh: Option<Tensor>,
}

/// Consecutive leaves (column blocks) sharing one activation inside a
/// [`CombineRun`].
#[derive(Debug, Clone)]
struct ActGroup {
    activation: Activation,
    leaves: Vec<usize>,
}

/// Consecutive leaves (column blocks) sharing one combination.
#[derive(Debug, Clone)]
struct CombineRun {
    combine: Combine,
    len: i64,
    groups: Vec<ActGroup>,
    /// Widths (columns) of the groups, for `split_with_sizes`.
    group_widths: Vec<i64>,
}

/// A recurrent cell built from a [`CellArch`].
#[derive(Debug)]
pub struct RecurrentCell {
    arch: CellArch,
    input: i64,
    hidden: i64,
    wx: Tensor,
    wh: Tensor,
    bh: Option<Tensor>,
    /// Column block of each leaf.
    block: Vec<i64>,
    runs: Vec<CombineRun>,
    /// Widths (columns) of the runs, for `split_with_sizes`.
    run_widths: Vec<i64>,
}

fn combine_rank(c: Combine) -> u8 {
    match c {
        Combine::Add => 0,
        Combine::ElemMult => 1,
        Combine::Max => 2,
    }
}

fn act_rank(a: Activation) -> u8 {
    match a {
        Activation::Identity => 0,
        Activation::Tanh => 1,
        Activation::Sigmoid => 2,
        Activation::Relu => 3,
        Activation::Sin => 4,
    }
}

pub(crate) fn combine(c: Combine, a: &Tensor, b: &Tensor) -> Tensor {
    match c {
        Combine::Add => a + b,
        Combine::ElemMult => a * b,
        Combine::Max => a.maximum(b),
    }
}

pub(crate) fn activate(a: Activation, x: Tensor) -> Tensor {
    match a {
        Activation::Identity => x,
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => x.sigmoid(),
        Activation::Relu => x.relu(),
        Activation::Sin => x.sin(),
    }
}

impl RecurrentCell {
    /// Creates the cell's variables under `p` (`wx`, `wh`, and `bh` with
    /// `leaf_bias`), initialised like PyTorch's RNNs: uniform in ±1/√hidden.
    pub fn new(p: &nn::Path, arch: &CellArch, input: i64, hidden: i64, leaf_bias: bool) -> Result<Self, RnnError> {
        arch.validate(&ArchLimits::default())?;
        if input < 1 || hidden < 1 {
            return Err(RnnError::Shape(format!("cell sizes must be positive (input {input}, hidden {hidden})")));
        }
        let base = arch.base;
        let mut order: Vec<usize> = (0..base).collect();
        order.sort_by_key(|&k| (combine_rank(arch.nodes[k].combine), act_rank(arch.nodes[k].activation), k));
        let mut block = vec![0i64; base];
        let mut runs: Vec<CombineRun> = Vec::new();
        for (slot, &k) in order.iter().enumerate() {
            block[k] = slot as i64;
            let node = arch.nodes[k];
            if !matches!(runs.last(), Some(r) if r.combine == node.combine) {
                runs.push(CombineRun { combine: node.combine, len: 0, groups: Vec::new(), group_widths: Vec::new() });
            }
            let run = runs.last_mut().expect("a run was just pushed");
            run.len += 1;
            if !matches!(run.groups.last(), Some(g) if g.activation == node.activation) {
                run.groups.push(ActGroup { activation: node.activation, leaves: Vec::new() });
            }
            run.groups.last_mut().expect("a group was just pushed").leaves.push(k);
        }
        for run in &mut runs {
            run.group_widths = run.groups.iter().map(|g| g.leaves.len() as i64 * hidden).collect();
        }
        let run_widths = runs.iter().map(|r| r.len * hidden).collect();
        let width = base as i64 * hidden;
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = nn::Init::Uniform { lo: -bound, up: bound };
        let wx = p.var("wx", &[input, width], init);
        let wh = p.var("wh", &[hidden, width], init);
        let bh = leaf_bias.then(|| p.var("bh", &[width], init));
        Ok(RecurrentCell { arch: arch.clone(), input, hidden, wx, wh, bh, block, runs, run_widths })
    }

    /// The architecture the cell was built from.
    pub fn arch(&self) -> &CellArch {
        &self.arch
    }

    /// Width of the input `x_t`.
    pub fn input_size(&self) -> i64 {
        self.input
    }

    /// Width of `h_t` and `c_t`.
    pub fn hidden_size(&self) -> i64 {
        self.hidden
    }

    /// Leaf `k`'s weights, as views of the fused matrices.
    pub fn leaf_weights(&self, k: usize) -> Option<LeafWeights> {
        let b = *self.block.get(k)?;
        let h = self.hidden;
        Some(LeafWeights {
            wx: self.wx.narrow(1, b * h, h),
            wh: self.wh.narrow(1, b * h, h),
            bh: self.bh.as_ref().map(|t| t.narrow(0, b * h, h)),
        })
    }

    /// `x · wx` for inputs of any leading shape `[..., input]` →
    /// `[..., base·hidden]`: every leaf's x-projection at once.
    pub fn project_inputs(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.wx)
    }

    /// One step from raw inputs `x: [batch, input]`.
    pub fn step(&self, x: &Tensor, state: &CellState) -> CellState {
        self.step_projected(&self.project_inputs(x), &state.h, &state.c)
    }

    /// One step from projected inputs `xp: [batch, base·hidden]`.
    /// `h_in` is the h_{t-1} that feeds the leaf projections (the caller
    /// applies variational dropout to it); it is used nowhere else.
    pub fn step_projected(&self, xp: &Tensor, h_in: &Tensor, c_prev: &Tensor) -> CellState {
        let h = self.hidden;
        let hp = match &self.bh {
            Some(b) => b.addmm(h_in, &self.wh),
            None => h_in.matmul(&self.wh),
        };
        let n = self.arch.node_count();
        let (inject, cell_node) = (self.arch.inject, self.arch.cell_node);
        let mut out: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        let mut c_t: Option<Tensor> = None;
        // `split` rather than one `narrow` per slice: one autograd node per
        // split, whose backward is a single concatenation, instead of one
        // zero-filled full-width gradient per slice.
        let (xs, hs) = if self.runs.len() == 1 {
            (vec![xp.shallow_clone()], vec![hp])
        } else {
            (xp.split_with_sizes(&self.run_widths, 1), hp.split_with_sizes(&self.run_widths, 1))
        };
        for ((run, xs), hs) in self.runs.iter().zip(xs).zip(hs) {
            let pre = combine(run.combine, &xs, &hs);
            let parts = if run.groups.len() == 1 { vec![pre] } else { pre.split_with_sizes(&run.group_widths, 1) };
            for (g, pre_g) in run.groups.iter().zip(parts) {
                let out_g = activate(g.activation, pre_g.shallow_clone());
                let outs = if g.leaves.len() == 1 { vec![out_g] } else { out_g.split(h, 1) };
                for (i, (&k, o)) in g.leaves.iter().zip(outs).enumerate() {
                    if k == cell_node {
                        c_t = Some(pre_g.narrow(1, i as i64 * h, h));
                    }
                    out[k] = Some(o);
                }
            }
        }
        let take = |out: &Vec<Option<Tensor>>, k: usize| -> Tensor {
            out[k].as_ref().map(Tensor::shallow_clone).expect("children precede their parent in level order")
        };
        let inject_into = |o: Tensor| activate(inject.activation, combine(inject.combine, &o, c_prev));
        if inject.node < self.arch.base {
            let o = take(&out, inject.node);
            out[inject.node] = Some(inject_into(o));
        }
        for k in self.arch.base..n {
            let (l, r) = self.arch.children(k).expect("nodes past the leaves are internal");
            let node = self.arch.nodes[k];
            let pre = combine(node.combine, &take(&out, l), &take(&out, r));
            if k == cell_node {
                c_t = Some(pre.shallow_clone());
            }
            let mut o = activate(node.activation, pre);
            if k == inject.node {
                o = inject_into(o);
            }
            out[k] = Some(o);
        }
        CellState {
            h: take(&out, n - 1),
            c: c_t.expect("a validated cell's c_t node is a non-root node"),
        }
    }
}
