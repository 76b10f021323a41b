//! The language-model child: embedding → stacked sampled cells → softmax.
//!
//! ```text
//! e_t   = E'[w_t]                         E' = E with word dropout (rows zeroed)
//! x⁰_t  = e_t ⊙ m_in                      one mask per sequence (locked)
//! x^l_t = h^l_t ⊙ m_out^l,  h^l_t = cell_l(x^{l-1}_t, h^l_{t-1} ⊙ m_rec^l, c^l_{t-1})
//! logits_t = x^L_t · Dᵀ + d               D = E when weights are tied
//! ```
//! The embedding width equals the hidden size (so E and D can be shared).
//! Every dropout mask is drawn from the trainer's ChaCha8 RNG on the CPU,
//! never from libtorch's global generator: the masks are small (`[batch,
//! hidden]` per layer, `[vocab]` for word dropout, the same at every time
//! step), and owning the randomness makes a checkpoint capture it exactly, so
//! a resumed child continues bit for bit (as the controller does).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};

use nasfleet_core::space::rnn_cell::CellArch;

use super::cell::{CellState, RecurrentCell};
use super::RnnError;

/// The sizes of a language model (everything but the cell's wiring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LmShape {
    /// Vocabulary size (the softmax's width).
    pub vocab: i64,
    /// Hidden size of every cell, and the embedding width.
    pub hidden: i64,
    /// Number of stacked cells.
    pub layers: usize,
    /// Share the embedding matrix with the softmax weights.
    pub tie_weights: bool,
    /// Give each leaf's hidden-state projection a bias.
    pub leaf_bias: bool,
}

impl LmShape {
    /// Trainable parameters of a model of this shape around a cell with
    /// `base` leaves. Every cell of a base has the same count: only the leaf
    /// projections carry weights.
    pub fn param_count(&self, base: usize) -> u64 {
        let (v, h, b) = (self.vocab as u64, self.hidden as u64, base as u64);
        let per_layer = 2 * b * h * h + if self.leaf_bias { b * h } else { 0 };
        let embeddings = if self.tie_weights { v * h } else { 2 * v * h };
        embeddings + v + self.layers as u64 * per_layer
    }

    /// The largest hidden size whose model has at most `budget` parameters
    /// (None when not even hidden = 1 fits).
    pub fn hidden_for_budget(mut self, base: usize, budget: u64) -> Option<i64> {
        self.hidden = 1;
        if self.param_count(base) > budget {
            return None;
        }
        // param_count is increasing in hidden: binary search.
        let (mut lo, mut hi) = (1i64, 1i64 << 20);
        while lo < hi {
            let mid = (lo + hi + 1) / 2;
            self.hidden = mid;
            if self.param_count(base) <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Some(lo)
    }
}

/// Half-widths of the uniform initialisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LmInit {
    /// Embedding, softmax weights and bias.
    pub range: f64,
    /// The cells' projections.
    pub cell_range: f64,
}

impl LmInit {
    /// Everything in ±`range` (Zaremba et al.'s scheme).
    pub fn uniform(range: f64) -> Self {
        LmInit { range, cell_range: range }
    }
}

/// Dropout probabilities (0 = off).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Dropouts {
    /// Word dropout: whole embedding rows (one mask per vocabulary entry).
    pub embed: f64,
    /// Dropout of the first cell's input, one mask per sequence.
    pub input: f64,
    /// Variational dropout of each cell's recurrent input `h_{t-1}`.
    pub recurrent: f64,
    /// Dropout of each cell's output.
    pub output: f64,
}

/// The masks of one training segment, already scaled by 1/(1−p).
#[derive(Debug)]
pub struct Masks {
    /// `[vocab, 1]`
    embed: Option<Tensor>,
    /// `[batch, hidden]` each.
    input: Option<Tensor>,
    recurrent: Vec<Option<Tensor>>,
    output: Vec<Option<Tensor>>,
}

/// The model and its variables.
pub struct LanguageModel {
    vs: nn::VarStore,
    /// Every variable sorted by name: the order of initialisation, of the
    /// optimiser and of checkpoints.
    params: Vec<(String, Tensor)>,
    shape: LmShape,
    embedding: Tensor,
    cells: Vec<RecurrentCell>,
    decoder_w: Tensor,
    decoder_b: Tensor,
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageModel").field("shape", &self.shape).field("device", &self.vs.device()).finish()
    }
}

/// `n` keep-masks values: 0 with probability p, else 1/(1−p).
fn mask_values(rng: &mut ChaCha8Rng, n: usize, p: f64) -> Vec<f32> {
    let keep = (1.0 / (1.0 - p)) as f32;
    let p = p as f32;
    (0..n).map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep }).collect()
}

impl LanguageModel {
    /// Builds the model on `device` and draws every weight uniformly with
    /// `rng`, variable by variable in name order: the cells' from
    /// ±`init.cell_range`, the embedding and softmax from ±`init.range`.
    pub fn new(
        device: Device,
        arch: &CellArch,
        shape: LmShape,
        init: LmInit,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self, RnnError> {
        if shape.vocab < 1 || shape.hidden < 1 || shape.layers < 1 {
            return Err(RnnError::Shape(format!(
                "vocabulary {}, hidden {} and layers {} must all be positive",
                shape.vocab, shape.hidden, shape.layers
            )));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let zero = nn::Init::Const(0.0);
        let embedding = root.var("embedding", &[shape.vocab, shape.hidden], zero);
        let cells = (0..shape.layers)
            .map(|l| RecurrentCell::new(&(&root / format!("cell{l}")), arch, shape.hidden, shape.hidden, shape.leaf_bias))
            .collect::<Result<Vec<_>, _>>()?;
        let decoder_w = if shape.tie_weights {
            embedding.shallow_clone()
        } else {
            root.var("decoder_weight", &[shape.vocab, shape.hidden], zero)
        };
        let decoder_b = root.var("decoder_bias", &[shape.vocab], zero);
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, p) in &params {
            let r = if name.starts_with("cell") { init.cell_range } else { init.range } as f32;
            let values: Vec<f32> = (0..p.numel()).map(|_| (rng.gen::<f32>() * 2.0 - 1.0) * r).collect();
            copy_into(p, &values);
        }
        Ok(LanguageModel { vs, params, shape, embedding, cells, decoder_w, decoder_b })
    }

    /// The model's sizes.
    pub fn shape(&self) -> LmShape {
        self.shape
    }

    /// The device the variables live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The variables, sorted by name.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Total number of parameter values (a tied matrix counted once).
    pub fn param_count(&self) -> u64 {
        self.params.iter().map(|(_, p)| p.numel() as u64).sum()
    }

    /// The stacked cells, bottom first.
    pub fn cells(&self) -> &[RecurrentCell] {
        &self.cells
    }

    /// All-zero recurrent state of every layer for `batch` sequences.
    pub fn zero_state(&self, batch: i64) -> Vec<CellState> {
        (0..self.shape.layers).map(|_| CellState::zeros(batch, self.shape.hidden, self.device())).collect()
    }

    /// Draws one segment's masks. RNG use is fixed by the shapes and which
    /// dropouts are on: word mask, input mask, then per layer recurrent and
    /// output masks.
    pub fn draw_masks(&self, d: &Dropouts, batch: i64, rng: &mut ChaCha8Rng) -> Masks {
        let (v, h) = (self.shape.vocab, self.shape.hidden);
        let dev = self.device();
        let mut draw = |p: f64, dims: &[i64]| -> Option<Tensor> {
            (p > 0.0).then(|| {
                let n = dims.iter().product::<i64>() as usize;
                Tensor::from_slice(&mask_values(rng, n, p)).reshape(dims).to_device(dev)
            })
        };
        let embed = draw(d.embed, &[v, 1]);
        let input = draw(d.input, &[batch, h]);
        let mut recurrent = Vec::with_capacity(self.shape.layers);
        let mut output = Vec::with_capacity(self.shape.layers);
        for _ in 0..self.shape.layers {
            recurrent.push(draw(d.recurrent, &[batch, h]));
            output.push(draw(d.output, &[batch, h]));
        }
        Masks { embed, input, recurrent, output }
    }

    /// Runs a segment `ids: [T, batch]` (int64) from `state`; returns the
    /// logits `[T·batch, vocab]` and the final state of every layer.
    /// Without masks (evaluation) no dropout is applied.
    pub fn forward(&self, ids: &Tensor, state: &[CellState], masks: Option<&Masks>) -> (Tensor, Vec<CellState>) {
        let m = |f: fn(&Masks) -> Option<&Tensor>| masks.and_then(f);
        let weight = match m(|m| m.embed.as_ref()) {
            Some(mask) => &self.embedding * mask,
            None => self.embedding.shallow_clone(),
        };
        let mut x = Tensor::embedding(&weight, ids, -1, false, false);
        if let Some(mask) = m(|m| m.input.as_ref()) {
            x = &x * mask;
        }
        let steps = ids.size()[0];
        let mut next = Vec::with_capacity(self.cells.len());
        for (l, (cell, s)) in self.cells.iter().zip(state).enumerate() {
            // All time steps' x-projections in one matmul, outside the loop,
            // cut into steps by one `unbind`: its backward stacks the steps'
            // gradients, where indexing step t would zero-fill a gradient of
            // the whole [T, batch, base·H] projection once per step.
            let xp = cell.project_inputs(&x).unbind(0);
            let rec_mask = masks.and_then(|m| m.recurrent[l].as_ref());
            let mut st = CellState { h: s.h.shallow_clone(), c: s.c.shallow_clone() };
            let mut outs = Vec::with_capacity(steps as usize);
            for xp_t in &xp {
                let h_in = match rec_mask {
                    Some(mask) => &st.h * mask,
                    None => st.h.shallow_clone(),
                };
                st = cell.step_projected(xp_t, &h_in, &st.c);
                outs.push(st.h.shallow_clone());
            }
            x = Tensor::stack(&outs, 0);
            if let Some(mask) = masks.and_then(|m| m.output[l].as_ref()) {
                x = &x * mask;
            }
            next.push(st);
        }
        let flat = x.reshape([-1, self.shape.hidden]);
        (flat.linear(&self.decoder_w, Some(&self.decoder_b)), next)
    }

    /// Sets the softmax bias to the log of add-one-smoothed unigram
    /// frequencies of `tokens`: the model starts at the unigram perplexity
    /// and its first updates go to context instead of word frequencies.
    pub fn init_output_bias_unigram(&self, tokens: &[u32]) {
        let v = self.shape.vocab as usize;
        let mut counts = vec![1.0f64; v];
        for &t in tokens {
            if let Some(c) = counts.get_mut(t as usize) {
                *c += 1.0;
            }
        }
        let total: f64 = counts.iter().sum();
        let log_p: Vec<f32> = counts.iter().map(|c| (c / total).ln() as f32).collect();
        copy_into(&self.decoder_b, &log_p);
    }

    /// Zeroes every variable's gradient (where one is defined).
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }
}

pub(crate) use crate::framed::copy_into;
