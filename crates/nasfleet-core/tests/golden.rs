//! Golden tests: numbers derived independently of this crate.
//!
//! CNN shapes and parameter counts were printed by `golden/cnn_reference.py`
//! (plain PyTorch, run as `python golden/cnn_reference.py
//! golden/cnn_skip_strides.json [C H W CLASSES]`). The cell formulas are the
//! paper's (paper.md §5, TensorFlow Addons `NASCell`), written out by hand.

use nasfleet_core::space::cnn::CnnSpace;
use nasfleet_core::space::rnn_cell::CellSpace;
use nasfleet_core::{ArchLimits, Architecture};

fn golden_cnn() -> nasfleet_core::space::CnnArch {
    let text = include_str!("golden/cnn_skip_strides.json");
    match Architecture::from_json(text.as_bytes(), &ArchLimits::default()).unwrap() {
        Architecture::Cnn(a) => a,
        other => panic!("not a cnn: {other:?}"),
    }
}

/// A layer's (input, conv output, output after pool) shapes as [C, H, W], and its parameters.
type LayerShapes = ([usize; 3], [usize; 3], [usize; 3], u64);

#[test]
fn cnn_three_rules_shapes_and_params_match_pytorch_cifar() {
    let g = golden_cnn().resolve((3, 32, 32), 10);
    // (input, conv output, output after pool, params) per layer, from PyTorch.
    let expected: [LayerShapes; 6] = [
        ([3, 32, 32], [24, 32, 32], [24, 32, 32], 696),
        ([24, 32, 32], [36, 16, 32], [36, 16, 32], 13032),
        ([3, 32, 32], [48, 32, 32], [48, 16, 16], 1104), // rule 1: no input -> image
        ([60, 32, 32], [64, 16, 16], [64, 16, 16], 34688), // rule 3: 24x32x32 ++ 36x16x32
        ([100, 16, 32], [24, 16, 11], [24, 16, 11], 16848),
        ([24, 16, 11], [36, 16, 11], [36, 16, 11], 13032),
    ];
    for (i, (l, e)) in g.layers.iter().zip(expected.iter()).enumerate() {
        assert_eq!((l.input_shape, l.conv_output_shape, l.output_shape, l.params), *e, "layer {i}");
    }
    assert!(g.layers[2].takes_image && g.layers[0].takes_image && !g.layers[3].takes_image);
    // rule 2: layers 2 and 5 are consumed by nobody; padded 48x16x16 ++ 36x16x11.
    assert_eq!(g.final_inputs, vec![2, 5]);
    assert_eq!(g.final_shape, [84, 16, 16]);
    assert_eq!(g.classifier_params, 850);
    assert_eq!(g.params, 80250);
}

#[test]
fn cnn_golden_on_fashion_mnist_shape() {
    let g = golden_cnn().resolve((1, 28, 28), 10);
    let outs: Vec<[usize; 3]> = g.layers.iter().map(|l| l.output_shape).collect();
    assert_eq!(
        outs,
        vec![[24, 28, 28], [36, 14, 28], [48, 14, 14], [64, 14, 14], [24, 14, 10], [36, 14, 10]]
    );
    assert_eq!(g.final_shape, [84, 14, 14]);
    assert_eq!(g.params, 79146);
}

#[test]
fn cnn_flops_by_hand() {
    // MACs of layer 0: 3*3*3*24 weights, each applied at 32*32 positions.
    let g = golden_cnn().resolve((3, 32, 32), 10);
    assert_eq!(g.layers[0].macs, 3 * 3 * 3 * 24 * 32 * 32);
    // Layer 3 runs at its strided output size 16x16.
    assert_eq!(g.layers[3].macs, 3 * 3 * 60 * 64 * 16 * 16);
    let total: u64 = g.layers.iter().map(|l| l.macs).sum::<u64>() + 84 * 10;
    assert_eq!(g.macs, total);
    assert_eq!(g.flops(), 2 * total);
}

#[test]
fn golden_cnn_encodes_and_decodes_in_the_strided_space() {
    let space = CnnSpace { predict_strides: true, max_pool_after: vec![2], ..Default::default() };
    let arch = golden_cnn();
    let tokens = space.encode(&arch).unwrap();
    assert_eq!(tokens.len(), 6 * 5 + 15);
    assert_eq!(space.decode(&tokens).unwrap(), arch);
    // The default space predicts no strides: membership must fail and say where.
    let err = CnnSpace::default().encode(&arch).unwrap_err().to_string();
    assert!(err.contains("layers[1].stride_height"), "{err}");
}

/// The paper's cell (TensorFlow Addons `NASCell`), as tokens:
/// combine add=0 elem_mult=1; activation identity=0 tanh=1 sigmoid=2 relu=3.
const NASCELL_TOKENS: [u32; 34] = [
    0, 2, 0, 3, 0, 2, 1, 3, 0, 1, 0, 2, 0, 1, 0, 2, // leaves 0..7
    1, 1, 0, 1, 1, 1, 0, 2, // level 2: nodes 8..11
    1, 0, 0, 1, // level 3: nodes 12, 13
    1, 1, // root 14
    0, 1, 8, 12, // inject add/tanh into node 8; c_t = pre-activation of node 12
];

#[test]
fn paper_cell_decodes_to_the_published_formula() {
    let space = CellSpace::default();
    let cell = space.decode(&NASCELL_TOKENS).unwrap();
    let expected = "\
n0 = sigmoid(W1·x_t + W2·h_{t-1})
n1 = relu(W3·x_t + W4·h_{t-1})
n2 = sigmoid(W5·x_t + W6·h_{t-1})
n3 = relu(W7·x_t ⊙ W8·h_{t-1})
n4 = tanh(W9·x_t + W10·h_{t-1})
n5 = sigmoid(W11·x_t + W12·h_{t-1})
n6 = tanh(W13·x_t + W14·h_{t-1})
n7 = sigmoid(W15·x_t + W16·h_{t-1})
n8 = tanh(n0 ⊙ n1)
n8' = tanh(n8 + c_{t-1})
n9 = tanh(n2 + n3)
n10 = tanh(n4 ⊙ n5)
n11 = sigmoid(n6 + n7)
n12 = n8' ⊙ n9
n13 = tanh(n10 + n11)
n14 = tanh(n12 ⊙ n13)
h_t = n14
c_t = n8' ⊙ n9";
    assert_eq!(cell.formula(), expected);
    assert_eq!(space.encode(&cell).unwrap(), NASCELL_TOKENS.to_vec());
}

#[test]
fn paper_base2_worked_example() {
    let space = CellSpace { base: 2, extended: false };
    let cell = space.decode(&[0, 1, 1, 3, 1, 2, 0, 3, 0, 1]).unwrap();
    let expected = "\
n0 = tanh(W1·x_t + W2·h_{t-1})
n0' = relu(n0 + c_{t-1})
n1 = relu(W3·x_t ⊙ W4·h_{t-1})
n2 = sigmoid(n0' ⊙ n1)
h_t = n2
c_t = W3·x_t ⊙ W4·h_{t-1}";
    assert_eq!(cell.formula(), expected);
}

#[test]
fn cell_space_size_is_the_papers_order_of_magnitude() {
    let log10 = CellSpace::default().schema().log10_size();
    // 8^16 * 14^2 = 5.5e16 ("about 6 x 10^16" in the paper)
    assert!((log10 - (5.517e16f64).log10()).abs() < 1e-3, "{log10}");
}
