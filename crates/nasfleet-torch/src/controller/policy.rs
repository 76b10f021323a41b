//! The policy network: a stacked LSTM stepped one token at a time over any
//! [`TokenSchema`], with one embedding table and one softmax head per decision
//! type and the paper's anchor-point attention for skip connections.
//!
//! One walk over a schema serves both uses, with a [`Decide`] that either
//! samples tokens (no gradients, own RNG) or replays stored tokens (with
//! gradients, for the REINFORCE update and for scoring). Rows of a batch
//! share a schema; they differ only in their tokens.
//!
//! Variables and their names (those of the PyTorch reference module, so its
//! `state_dict` keys are ours):
//!
//! | name | shape | role |
//! |---|---|---|
//! | `start` | [1, H] | learned input of the first step |
//! | `lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}` | [4H, H] / [4H] | the LSTM (PyTorch layout) |
//! | `embed.{d}.weight` | [C_d, H] | input after a token of decision type d |
//! | `head.{d}.{weight,bias}` | [C_d, H] / [C_d] | logits of decision type d |
//! | `w_prev.weight`, `w_curr.weight` | [H, H] | anchor attention, no bias |
//! | `v.weight` | [1, H] | anchor attention, no bias |
//!
//! At an anchor step for layer i, with h_i the top LSTM layer's output:
//! `logit_j = vᵀ tanh(W_prev h_j + W_curr h_i)` for every earlier layer j,
//! `P(j feeds i) = sigmoid(logit_j)`, decided independently; the next input is
//! the mean of the selected h_j (gradients flow through it, as in ENAS), or the
//! configured default when none is selected. Layer 0's anchor emits no token
//! but still runs the LSTM: its output is h_0, what later layers attend to.

use nasfleet_core::config::EmptyAnchorInput;
use nasfleet_core::schema::{DecisionType, StepKind, TokenSchema};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::nn;
use tch::{Device, Kind, Tensor};

/// The network's hyper-parameters.
#[derive(Debug, Clone)]
pub(crate) struct PolicyShape {
    pub hidden: i64,
    pub lstm_layers: i64,
    /// Choice count of every decision type, in the space's order.
    pub choices: Vec<i64>,
    pub empty_anchor: EmptyAnchorInput,
}

impl PolicyShape {
    pub(crate) fn new(decisions: &[DecisionType], hidden: usize, lstm_layers: usize, empty_anchor: EmptyAnchorInput) -> Self {
        PolicyShape {
            hidden: hidden as i64,
            lstm_layers: lstm_layers as i64,
            choices: decisions.iter().map(|d| d.choices.len() as i64).collect(),
            empty_anchor,
        }
    }
}

pub(crate) struct Policy {
    /// The store the variables were created in (their names come from its
    /// paths); the fields below share their storage.
    _vs: nn::VarStore,
    /// Every variable, sorted by name: the order of initialisation, of the
    /// optimiser's moments and of checkpoints.
    params: Vec<(String, Tensor)>,
    shape: PolicyShape,
    /// Per LSTM layer: (w_ih, w_hh, b_ih, b_hh), PyTorch's layout and gate order.
    lstm: Vec<[Tensor; 4]>,
    start: Tensor,
    embed: Vec<Tensor>,
    heads: Vec<(Tensor, Tensor)>,
    w_prev: Tensor,
    w_curr: Tensor,
    v: Tensor,
}

impl Policy {
    /// Builds the network on the CPU and draws every weight uniformly from
    /// [-init_range, init_range] with `rng`. The controller is tiny (35
    /// hidden units, batch ≤ a few hundred) and stepped token by token, so
    /// the CPU beats a GPU's launch latency and leaves the GPUs to children.
    /// Weights come from our RNG, not torch's global one, so a seed means the
    /// same network everywhere and other threads' torch RNG use is untouched.
    pub(crate) fn new(shape: PolicyShape, init_range: f64, rng: &mut ChaCha8Rng) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let h = shape.hidden;
        let zero = nn::Init::Const(0.0);
        // Stepped as one `lstm_cell` per layer rather than through
        // `nn::LSTM::step` (libtorch's full `lstm` op): the same arithmetic,
        // but the full op's per-call packing of states costs about twice the
        // cells' time at this size, for every token.
        let lstm = (0..shape.lstm_layers)
            .map(|k| {
                let p = &root / "lstm";
                [
                    p.var(&format!("weight_ih_l{k}"), &[4 * h, h], zero),
                    p.var(&format!("weight_hh_l{k}"), &[4 * h, h], zero),
                    p.var(&format!("bias_ih_l{k}"), &[4 * h], zero),
                    p.var(&format!("bias_hh_l{k}"), &[4 * h], zero),
                ]
            })
            .collect();
        let start = root.var("start", &[1, h], zero);
        let embed = shape
            .choices
            .iter()
            .enumerate()
            .map(|(d, &c)| (&root / "embed" / d).var("weight", &[c, h], zero))
            .collect();
        let heads = shape
            .choices
            .iter()
            .enumerate()
            .map(|(d, &c)| {
                let p = &root / "head" / d;
                (p.var("weight", &[c, h], zero), p.var("bias", &[c], zero))
            })
            .collect();
        let w_prev = (&root / "w_prev").var("weight", &[h, h], zero);
        let w_curr = (&root / "w_curr").var("weight", &[h, h], zero);
        let v = (&root / "v").var("weight", &[1, h], zero);
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let policy = Policy { _vs: vs, params, shape, lstm, start, embed, heads, w_prev, w_curr, v };
        for (_, p) in &policy.params {
            let values: Vec<f32> =
                (0..p.numel()).map(|_| ((rng.gen::<f64>() * 2.0 - 1.0) * init_range) as f32).collect();
            copy_into(p, &values);
        }
        policy
    }

    pub(crate) fn shape(&self) -> &PolicyShape {
        &self.shape
    }

    pub(crate) fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    pub(crate) fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Samples one token sequence per row (`batch` rows) without gradients.
    /// RNG use is fixed by the schema and the batch size: at each choice step
    /// one uniform per row, at each anchor step one per row and earlier layer
    /// (row-major), each inverted through the step's distribution.
    pub(crate) fn sample(&self, schema: &TokenSchema, batch: usize, rng: &mut ChaCha8Rng) -> Vec<SampledRow> {
        let mut s = Sampler {
            rng,
            rows: (0..batch)
                .map(|_| SampledRow { actions: Vec::with_capacity(schema.token_count()), log_prob: 0.0, entropy: 0.0 })
                .collect(),
        };
        tch::no_grad(|| self.walk(schema, batch as i64, &mut s));
        s.rows
    }

    /// The likeliest sequence, built one token at a time by taking the
    /// likeliest choice (a skip when its probability exceeds ½), with each
    /// token's choice probabilities given the tokens before it. No RNG, no
    /// gradients.
    pub(crate) fn greedy(&self, schema: &TokenSchema) -> (Vec<u32>, Vec<Vec<f64>>) {
        let mut g = Greedy { actions: Vec::with_capacity(schema.token_count()), probs: Vec::new() };
        tch::no_grad(|| self.walk(schema, 1, &mut g));
        (g.actions, g.probs)
    }

    /// Log-probabilities and entropies (each `[rows]`, summed over tokens)
    /// of stored sequences of one schema under the current weights, with
    /// gradients for the log-probabilities, and for the entropies only when
    /// `entropy_grad` (an entropy bonus is on): otherwise they are statistics,
    /// and leaving them out of the graph shortens the backward pass.
    /// The caller has checked the tokens against the schema.
    pub(crate) fn replay(&self, schema: &TokenSchema, actions: &[&[u32]], entropy_grad: bool) -> (Tensor, Tensor) {
        let mut r = Replay::new(actions);
        self.walk(schema, actions.len() as i64, &mut r);
        r.finish(entropy_grad)
    }

    fn empty_anchor_input(&self, rows: i64) -> Tensor {
        match self.shape.empty_anchor {
            EmptyAnchorInput::Zeros => Tensor::zeros([rows, self.shape.hidden], (Kind::Float, Device::Cpu)),
            EmptyAnchorInput::Start => self.start.expand([rows, self.shape.hidden], false),
        }
    }

    /// One LSTM step: every layer's (h, c) advances; returns the top h.
    fn step(&self, x: &Tensor, state: &mut [(Tensor, Tensor)]) -> Tensor {
        let mut input = x.shallow_clone();
        for ([w_ih, w_hh, b_ih, b_hh], (h, c)) in self.lstm.iter().zip(state.iter_mut()) {
            let (h2, c2) = input.lstm_cell(&[&*h, &*c], w_ih, w_hh, Some(b_ih), Some(b_hh));
            input = h2.shallow_clone();
            *h = h2;
            *c = c2;
        }
        input
    }

    fn walk(&self, schema: &TokenSchema, rows: i64, decide: &mut impl Decide) {
        let zeros = || Tensor::zeros([rows, self.shape.hidden], (Kind::Float, Device::Cpu));
        let mut state: Vec<(Tensor, Tensor)> = self.lstm.iter().map(|_| (zeros(), zeros())).collect();
        let mut x = self.start.expand([rows, self.shape.hidden], false);
        // h_j and W_prev·h_j of every anchor so far, each [rows, H].
        let mut anchors: Vec<Tensor> = Vec::new();
        let mut keys: Vec<Tensor> = Vec::new();
        let mut pos = 0;
        for step in &schema.steps {
            let h = self.step(&x, &mut state);
            match step.kind {
                StepKind::Choice { decision } => {
                    let (w, b) = &self.heads[decision];
                    let log_probs = h.linear(w, Some(b)).log_softmax(-1, Kind::Float);
                    let tokens = decide.choice(pos, &log_probs);
                    x = self.embed[decision].index_select(0, &Tensor::from_slice(&tokens));
                    pos += 1;
                }
                StepKind::Anchor { layer } => {
                    x = if layer == 0 {
                        self.empty_anchor_input(rows)
                    } else {
                        let query = h.linear(&self.w_curr, None::<Tensor>).unsqueeze(1);
                        let logits =
                            (Tensor::stack(&keys, 1) + query).tanh().linear(&self.v, None::<Tensor>).squeeze_dim(-1);
                        let bits = decide.anchor(pos, &logits);
                        let selected = Tensor::from_slice(&bits).reshape([rows, layer as i64]).to_kind(Kind::Float);
                        let sum = selected.unsqueeze(1).bmm(&Tensor::stack(&anchors, 1)).squeeze_dim(1);
                        let count = selected.sum_dim_intlist(1i64, true, Kind::Float);
                        let mean = sum / count.clamp_min(1.0);
                        match self.shape.empty_anchor {
                            // No selection: the sum is zero, and so is the "mean".
                            EmptyAnchorInput::Zeros => mean,
                            EmptyAnchorInput::Start => mean.where_self(&count.gt(0.0), &self.empty_anchor_input(rows)),
                        }
                    };
                    keys.push(h.linear(&self.w_prev, None::<Tensor>));
                    anchors.push(h);
                    pos += layer;
                }
            }
        }
    }
}

pub(crate) use crate::framed::{copy_into, to_f32s};

/// What a walk does at each decision.
trait Decide {
    /// A choice step: `log_probs` is `[rows, C]`; returns one token per row.
    fn choice(&mut self, pos: usize, log_probs: &Tensor) -> Vec<i64>;
    /// An anchor step: `logits` is `[rows, i]`; returns the bits row-major.
    fn anchor(&mut self, pos: usize, logits: &Tensor) -> Vec<i64>;
}

/// One sampled sequence with its log-probability and entropy (nats, summed
/// over its tokens).
#[derive(Debug, Clone)]
pub(crate) struct SampledRow {
    pub actions: Vec<u32>,
    pub log_prob: f64,
    pub entropy: f64,
}

struct Sampler<'a> {
    rng: &'a mut ChaCha8Rng,
    rows: Vec<SampledRow>,
}

impl Decide for Sampler<'_> {
    fn choice(&mut self, _pos: usize, log_probs: &Tensor) -> Vec<i64> {
        let lp = to_f32s(log_probs);
        let c = lp.len() / self.rows.len().max(1);
        let mut out = Vec::with_capacity(self.rows.len());
        for (b, row) in self.rows.iter_mut().enumerate() {
            let lp = &lp[b * c..(b + 1) * c];
            let probs: Vec<f64> = lp.iter().map(|&l| (l as f64).exp()).collect();
            // Inverse CDF, scaled by the total so rounding never leaves u
            // beyond the last bucket.
            let u = self.rng.gen::<f64>() * probs.iter().sum::<f64>();
            let mut cum = 0.0;
            let mut k = probs.iter().rposition(|&p| p > 0.0).unwrap_or(c - 1);
            for (i, p) in probs.iter().enumerate() {
                cum += p;
                if u < cum {
                    k = i;
                    break;
                }
            }
            row.actions.push(k as u32);
            row.log_prob += lp[k] as f64;
            row.entropy -= probs.iter().zip(lp).map(|(p, &l)| if *p > 0.0 { p * l as f64 } else { 0.0 }).sum::<f64>();
            out.push(k as i64);
        }
        out
    }

    fn anchor(&mut self, _pos: usize, logits: &Tensor) -> Vec<i64> {
        let lg = to_f32s(logits);
        let i = lg.len() / self.rows.len().max(1);
        let mut out = Vec::with_capacity(lg.len());
        for (b, row) in self.rows.iter_mut().enumerate() {
            for &l in &lg[b * i..(b + 1) * i] {
                let l = l as f64;
                let p = sigmoid(l);
                let bit = self.rng.gen::<f64>() < p;
                let (lp1, lp0) = (log_sigmoid(l), log_sigmoid(-l));
                row.actions.push(bit as u32);
                row.log_prob += if bit { lp1 } else { lp0 };
                row.entropy -= p * lp1 + (1.0 - p) * lp0;
                out.push(bit as i64);
            }
        }
        out
    }
}

/// Greedy decoding of one row ([`Policy::greedy`]).
struct Greedy {
    actions: Vec<u32>,
    probs: Vec<Vec<f64>>,
}

impl Decide for Greedy {
    fn choice(&mut self, _pos: usize, log_probs: &Tensor) -> Vec<i64> {
        let p: Vec<f64> = to_f32s(log_probs).iter().map(|&l| (l as f64).exp()).collect();
        // The first of equal maxima, so ties break the same way every time.
        let k = p.iter().enumerate().fold(0, |best, (i, &x)| if x > p[best] { i } else { best });
        self.actions.push(k as u32);
        self.probs.push(p);
        vec![k as i64]
    }

    fn anchor(&mut self, _pos: usize, logits: &Tensor) -> Vec<i64> {
        to_f32s(logits)
            .iter()
            .map(|&l| {
                let p = sigmoid(l as f64);
                let bit = p > 0.5;
                self.actions.push(bit as u32);
                self.probs.push(vec![1.0 - p, p]);
                bit as i64
            })
            .collect()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// log(sigmoid(x)) without overflow for large |x|.
fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

/// Replays stored tokens. Rather than one gather per step, it keeps each
/// step's log-probabilities (choices) or logits (anchors) and scores them all
/// at the end with a handful of ops on the concatenation: the backward pass
/// of a controller this small is dominated by the number of graph nodes, not
/// by arithmetic.
struct Replay<'a> {
    actions: &'a [&'a [u32]],
    /// Per choice step: log-probabilities `[rows, C]`.
    choice_log_probs: Vec<Tensor>,
    /// Per row: index of each chosen token in the concatenation of all
    /// choice steps' columns.
    choice_index: Vec<Vec<i64>>,
    columns: i64,
    /// Per anchor step: logits `[rows, i]`.
    anchor_logits: Vec<Tensor>,
    /// Per row: +1 for a selected skip, −1 otherwise, in concatenation order
    /// (log P(bit) = log sigmoid(sign · logit)).
    anchor_signs: Vec<Vec<f32>>,
}

impl<'a> Replay<'a> {
    fn new(actions: &'a [&'a [u32]]) -> Self {
        Replay {
            actions,
            choice_log_probs: Vec::new(),
            choice_index: vec![Vec::new(); actions.len()],
            columns: 0,
            anchor_logits: Vec::new(),
            anchor_signs: vec![Vec::new(); actions.len()],
        }
    }

    /// Per-row log-probabilities and entropies, each `[rows]`.
    fn finish(self, entropy_grad: bool) -> (Tensor, Tensor) {
        let rows = self.actions.len() as i64;
        let maybe_detach = |t: &Tensor| if entropy_grad { t.shallow_clone() } else { t.detach() };
        let row_sum = |t: Tensor| t.sum_dim_intlist(1i64, false, Kind::Float);
        // Terms of log P and of the entropy: one for the choices, one for the skips.
        let (mut log_prob, mut entropy) = (Vec::new(), Vec::new());
        if !self.choice_log_probs.is_empty() {
            let all = Tensor::cat(&self.choice_log_probs, 1);
            let idx: Vec<i64> = self.choice_index.concat();
            let idx = Tensor::from_slice(&idx).reshape([rows, -1]);
            log_prob.push(row_sum(all.gather(1, &idx, false)));
            let lp = maybe_detach(&all);
            entropy.push(-row_sum(lp.exp() * &lp));
        }
        if !self.anchor_logits.is_empty() {
            let logits = Tensor::cat(&self.anchor_logits, 1);
            let signs: Vec<f32> = self.anchor_signs.concat();
            let signs = Tensor::from_slice(&signs).reshape([rows, -1]);
            log_prob.push(row_sum((&logits * signs).log_sigmoid()));
            let l = maybe_detach(&logits);
            let (p, lp1, lp0) = (l.sigmoid(), l.log_sigmoid(), (-&l).log_sigmoid());
            entropy.push(-row_sum(&p * lp1 + (1f64 - &p) * lp0));
        }
        let total = |terms: Vec<Tensor>| {
            terms.into_iter().reduce(|a, b| a + b).unwrap_or_else(|| Tensor::zeros([rows], (Kind::Float, Device::Cpu)))
        };
        (total(log_prob), total(entropy))
    }
}

impl Decide for Replay<'_> {
    fn choice(&mut self, pos: usize, log_probs: &Tensor) -> Vec<i64> {
        let tokens: Vec<i64> = self.actions.iter().map(|a| a[pos] as i64).collect();
        for (row, &t) in self.choice_index.iter_mut().zip(&tokens) {
            row.push(self.columns + t);
        }
        self.columns += log_probs.size()[1];
        self.choice_log_probs.push(log_probs.shallow_clone());
        tokens
    }

    fn anchor(&mut self, pos: usize, logits: &Tensor) -> Vec<i64> {
        let i = logits.size()[1] as usize;
        let mut bits = Vec::with_capacity(self.actions.len() * i);
        for (a, signs) in self.actions.iter().zip(&mut self.anchor_signs) {
            for &t in &a[pos..pos + i] {
                bits.push(t as i64);
                signs.push(if t == 1 { 1.0 } else { -1.0 });
            }
        }
        self.anchor_logits.push(logits.shallow_clone());
        bits
    }
}
