//! The built cell against formulas written out by hand from the paper
//! (paper.md §5): the published NAS cell (TensorFlow Addons `NASCell`) and
//! the base-2 worked example, for random weights and inputs, in f64. The
//! formulas below use only the leaf weights, read by leaf index through
//! `leaf_weights`, and plain tch ops — never the builder's evaluation.

use nasfleet_core::space::rnn_cell::{Activation, CellArch, CellSpace, Combine};
use nasfleet_torch::rnn::{CellState, LmShape, RecurrentCell};
use nasfleet_torch::tch::{self, nn, Device, Kind, Tensor};
use rand::{Rng, SeedableRng};

/// The paper's cell as tokens (the same sequence as the core's golden test):
/// combine add=0 elem_mult=1; activation identity=0 tanh=1 sigmoid=2 relu=3.
const NASCELL_TOKENS: [u32; 34] = [
    0, 2, 0, 3, 0, 2, 1, 3, 0, 1, 0, 2, 0, 1, 0, 2, // leaves 0..7
    1, 1, 0, 1, 1, 1, 0, 2, // level 2: nodes 8..11
    1, 0, 0, 1, // level 3: nodes 12, 13
    1, 1, // root 14
    0, 1, 8, 12, // inject add/tanh into node 8; c_t = pre-activation of node 12
];

const B: i64 = 3;
const IN: i64 = 5;
const H: i64 = 4;

/// A cell in f64 with every variable redrawn from N(0, 0.7²) (wider than the
/// default init, so that no activation sits in its linear regime), and
/// random x, h, c ~ N(0, 1). The draws come from a ChaCha8 stream of `seed`,
/// not torch's global generator, which other tests of this binary advance
/// concurrently.
fn build(arch: &CellArch, leaf_bias: bool, seed: i64) -> (nn::VarStore, RecurrentCell, Tensor, Tensor, Tensor) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed as u64);
    let mut draw = |shape: &[i64]| normal(&mut rng, shape);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let cell = RecurrentCell::new(&vs.root(), arch, IN, H, leaf_bias).unwrap();
    vs.double();
    let mut vars = vs.variables().into_iter().collect::<Vec<_>>();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (_, mut v) in vars {
            v.copy_(&(draw(&v.size()) * 0.7));
        }
    });
    (vs, cell, draw(&[B, IN]), draw(&[B, H]), draw(&[B, H]))
}

/// Standard normal f64 values of `shape` (Box–Muller on `rng`'s uniforms).
fn normal(rng: &mut rand_chacha::ChaCha8Rng, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let values: Vec<f64> = (0..n)
        .map(|_| {
            let u1 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
            let u2 = rng.gen::<f64>();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect();
    Tensor::from_slice(&values).reshape(shape)
}

/// (x·Wx_k, h·Wh_k [+ b_k]) of leaf k.
fn leaf(cell: &RecurrentCell, k: usize, x: &Tensor, h: &Tensor) -> (Tensor, Tensor) {
    let w = cell.leaf_weights(k).unwrap();
    let hp = h.matmul(&w.wh);
    let hp = match w.bh {
        Some(b) => hp + b,
        None => hp,
    };
    (x.matmul(&w.wx), hp)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    let d = max_abs_diff(got, want);
    assert!(d < 1e-12, "{what}: max |built - formula| = {d:e}");
    // Guard against a vacuous pass (e.g. both all zero).
    assert!(want.abs().max().double_value(&[]) > 1e-3, "{what}: the formula's output is degenerate");
}

fn nascell_by_hand(cell: &RecurrentCell, x: &Tensor, h: &Tensor, c: &Tensor) -> (Tensor, Tensor) {
    let l = |k| leaf(cell, k, x, h);
    let (x0, h0) = l(0);
    let (x1, h1) = l(1);
    let (x2, h2) = l(2);
    let (x3, h3) = l(3);
    let (x4, h4) = l(4);
    let (x5, h5) = l(5);
    let (x6, h6) = l(6);
    let (x7, h7) = l(7);
    // Leaves: sigmoid(x0+h0), relu(x1+h1), sigmoid(x2+h2), relu(x3⊙h3),
    // tanh(x4+h4), sigmoid(x5+h5), tanh(x6+h6), sigmoid(x7+h7).
    let l0 = (x0 + h0).sigmoid();
    let l1 = (x1 + h1).relu();
    let l2 = (x2 + h2).sigmoid();
    let l3 = (x3 * h3).relu();
    let l4 = (x4 + h4).tanh();
    let l5 = (x5 + h5).sigmoid();
    let l6 = (x6 + h6).tanh();
    let l7 = (x7 + h7).sigmoid();
    // Level 2: tanh(l0⊙l1), tanh(l2+l3), tanh(l4⊙l5), sigmoid(l6+l7).
    let l2_0 = (l0 * l1).tanh();
    let l2_1 = (l2 + l3).tanh();
    let l2_2 = (l4 * l5).tanh();
    let l2_3 = (l6 + l7).sigmoid();
    // Inject: l2_0 = tanh(l2_0 + c_prev).
    let l2_0 = (l2_0 + c).tanh();
    // Level 3: new_c = l2_0 ⊙ l2_1, l3_1 = tanh(l2_2 + l2_3); h = tanh(new_c ⊙ l3_1).
    let new_c = l2_0 * l2_1;
    let l3_1 = (l2_2 + l2_3).tanh();
    let new_h = (&new_c * l3_1).tanh();
    (new_h, new_c)
}

#[test]
fn the_papers_nas_cell_matches_its_published_formula() {
    let arch = CellSpace::default().decode(&NASCELL_TOKENS).unwrap();
    for (seed, leaf_bias) in [(1, false), (2, false), (3, true)] {
        let (_vs, cell, x, h, c) = build(&arch, leaf_bias, seed);
        let got = cell.step(&x, &CellState { h: h.shallow_clone(), c: c.shallow_clone() });
        let (want_h, want_c) = nascell_by_hand(&cell, &x, &h, &c);
        assert_close(&format!("h_t (seed {seed}, bias {leaf_bias})"), &got.h, &want_h);
        assert_close(&format!("c_t (seed {seed}, bias {leaf_bias})"), &got.c, &want_c);
    }
}

#[test]
fn the_papers_base_2_example_matches_its_formula() {
    let arch = CellSpace { base: 2, extended: false }.decode(&[0, 1, 1, 3, 1, 2, 0, 3, 0, 1]).unwrap();
    let (_vs, cell, x, h, c) = build(&arch, false, 7);
    let got = cell.step(&x, &CellState { h: h.shallow_clone(), c: c.shallow_clone() });
    let (w1x, w2h) = leaf(&cell, 0, &x, &h);
    let (w3x, w4h) = leaf(&cell, 1, &x, &h);
    // a0 = tanh(W1 x + W2 h); a1 = relu((W3 x) ⊙ (W4 h));
    // a0' = relu(a0 + c_{t-1}); h_t = sigmoid(a0' ⊙ a1); c_t = (W3 x) ⊙ (W4 h).
    let a0 = (w1x + w2h).tanh();
    let a1 = (&w3x * &w4h).relu();
    let a0p = (a0 + &c).relu();
    let want_h = (a0p * a1).sigmoid();
    let want_c = w3x * w4h;
    assert_close("h_t", &got.h, &want_h);
    assert_close("c_t", &got.c, &want_c);
}

/// The core module doc's semantics, node by node, for any cell.
fn interpret(arch: &CellArch, cell: &RecurrentCell, x: &Tensor, h: &Tensor, c: &Tensor) -> (Tensor, Tensor) {
    let comb = |k: Combine, a: &Tensor, b: &Tensor| match k {
        Combine::Add => a + b,
        Combine::ElemMult => a * b,
        Combine::Max => a.maximum(b),
    };
    let act = |k: Activation, a: Tensor| match k {
        Activation::Identity => a,
        Activation::Tanh => a.tanh(),
        Activation::Sigmoid => a.sigmoid(),
        Activation::Relu => a.relu(),
        Activation::Sin => a.sin(),
    };
    let mut out: Vec<Tensor> = Vec::new();
    let mut pre_cell = None;
    for k in 0..arch.node_count() {
        let (a, b) = match arch.children(k) {
            None => leaf(cell, k, x, h),
            Some((l, r)) => (out[l].shallow_clone(), out[r].shallow_clone()),
        };
        let pre = comb(arch.nodes[k].combine, &a, &b);
        if k == arch.cell_node {
            pre_cell = Some(pre.shallow_clone());
        }
        let mut o = act(arch.nodes[k].activation, pre);
        if k == arch.inject.node {
            o = act(arch.inject.activation, comb(arch.inject.combine, &o, c));
        }
        out.push(o);
    }
    (out.pop().unwrap(), pre_cell.unwrap())
}

#[test]
fn random_cells_of_every_base_with_max_and_sin_follow_the_core_semantics() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut saw = (false, false, false, false);
    for (i, base) in [2usize, 4, 8, 16].iter().cycle().take(48).enumerate() {
        let space = CellSpace { base: *base, extended: true };
        let arch = space.decode(&space.schema().sample_uniform(&mut rng)).unwrap();
        saw.0 |= arch.nodes.iter().any(|n| n.combine == Combine::Max);
        saw.1 |= arch.nodes.iter().any(|n| n.activation == Activation::Sin);
        saw.2 |= arch.inject.node < arch.base;
        saw.3 |= arch.cell_node < arch.base;
        for leaf_bias in [false, true] {
            let (_vs, cell, x, h, c) = build(&arch, leaf_bias, 100 + i as i64);
            let got = cell.step(&x, &CellState { h: h.shallow_clone(), c: c.shallow_clone() });
            let (want_h, want_c) = interpret(&arch, &cell, &x, &h, &c);
            let (dh, dc) = (max_abs_diff(&got.h, &want_h), max_abs_diff(&got.c, &want_c));
            assert!(dh < 1e-12 && dc < 1e-12, "cell {i} (bias {leaf_bias}): |dh| {dh:e}, |dc| {dc:e}\n{}", arch.formula());
        }
    }
    assert_eq!(saw, (true, true, true, true), "the sample must cover max, sin, and leaf inject / c_t nodes");
}

#[test]
fn every_leaf_weight_receives_a_gradient() {
    // Leaf blocks are reordered inside the fused matrices; a mix-up would
    // leave some block unused. Through h_t and c_t every leaf matters.
    let arch = CellSpace::default().decode(&NASCELL_TOKENS).unwrap();
    let (vs, cell, x, h, c) = build(&arch, true, 5);
    let s = cell.step(&x, &CellState { h, c });
    (s.h.sum(Kind::Double) + s.c.sum(Kind::Double)).backward();
    for (name, v) in vs.variables() {
        let g = v.grad();
        for k in 0..arch.base {
            let block = if name == "bh" { g.narrow(0, k as i64 * H, H) } else { g.narrow(1, k as i64 * H, H) };
            assert!(block.abs().sum(Kind::Double).double_value(&[]) > 0.0, "{name}: block {k} has no gradient");
        }
    }
}

#[test]
fn parameter_count_and_budget_matching() {
    let arch = CellSpace::default().decode(&NASCELL_TOKENS).unwrap();
    let shape = LmShape { vocab: 50, hidden: 6, layers: 2, tie_weights: false, leaf_bias: true };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = nasfleet_torch::rnn::LanguageModel::new(Device::Cpu, &arch, shape, nasfleet_torch::rnn::LmInit::uniform(0.1), &mut rng).unwrap();
    // embedding 50·6 + decoder 50·6 + 50 + 2 layers × (8·6·6 + 8·6·6 + 8·6)
    assert_eq!(model.param_count(), 300 + 300 + 50 + 2 * (288 + 288 + 48));
    assert_eq!(shape.param_count(8), model.param_count());
    let tied = LmShape { tie_weights: true, ..shape };
    assert_eq!(tied.param_count(8), model.param_count() - 300);
    // The medium baselines (Zaremba's LSTM: 19.8M on a 10k vocabulary) give
    // a base-8 cell 533 hidden units: 2·10⁴·H + 10⁴ + 2·16·H² is
    // 19,760,848 for H = 533 and 19,814,992 for H = 534.
    let ptb = LmShape { vocab: 10_000, hidden: 1, layers: 2, tie_weights: false, leaf_bias: false };
    let h = ptb.hidden_for_budget(8, 19_800_000).unwrap();
    assert_eq!(h, 533);
    assert_eq!(LmShape { hidden: 533, ..ptb }.param_count(8), 19_760_848);
    assert!(LmShape { hidden: h, ..ptb }.param_count(8) <= 19_800_000);
    assert!(LmShape { hidden: h + 1, ..ptb }.param_count(8) > 19_800_000);
    assert_eq!(ptb.hidden_for_budget(8, 1000), None);
}
