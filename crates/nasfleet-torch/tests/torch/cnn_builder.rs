//! The child builder against the core's resolver and against PyTorch.
//!
//! Expected shapes and parameter counts were printed by the independent
//! PyTorch builder `crates/nasfleet-core/tests/golden/cnn_reference.py`:
//! `python cnn_reference.py ARCH.json C H W CLASSES` with the architectures
//! below (`GOLDEN` is the core's `cnn_skip_strides.json`).

use nasfleet_core::space::cnn::{CnnArch, CnnSpace};
use nasfleet_core::{ArchLimits, Architecture};
use nasfleet_torch::cnn::CnnNet;
use nasfleet_torch::tch::{nn, Device, Kind, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const GOLDEN: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../nasfleet-core/tests/golden/cnn_skip_strides.json"));

/// Strides of 2 and 3, two pooled layers, a three-way final concatenation
/// of different sizes, layers that take the image in the middle of the net.
const POOLED: &str = r#"{"version":1,"space":"cnn","layers":[
 {"filter_height":5,"filter_width":5,"stride_height":3,"stride_width":3,"filters":36,"inputs":[]},
 {"filter_height":3,"filter_width":1,"filters":24,"inputs":[0]},
 {"filter_height":7,"filter_width":7,"stride_height":1,"stride_width":2,"filters":64,"inputs":[]},
 {"filter_height":1,"filter_width":3,"filters":48,"inputs":[1,2]},
 {"filter_height":3,"filter_width":3,"stride_height":2,"stride_width":2,"filters":24,"inputs":[0,3]},
 {"filter_height":1,"filter_width":1,"filters":36,"inputs":[]},
 {"filter_height":5,"filter_width":3,"filters":48,"inputs":[2,4]}
],"max_pool_after":[1,5]}"#;

fn parse(json: &str) -> CnnArch {
    match Architecture::from_json(json.as_bytes(), &ArchLimits::default()).unwrap() {
        Architecture::Cnn(a) => a,
        other => panic!("not a cnn: {other:?}"),
    }
}

/// Builds `arch`, checks the VarStore's parameter count against the core's
/// estimate and the forward shapes against the resolved graph, and returns
/// (params, per-layer [input, conv, output] shapes, final shape).
#[allow(clippy::type_complexity)]
fn build_and_check(arch: &CnnArch, input: (usize, usize, usize), classes: usize) -> (u64, Vec<[[i64; 3]; 3]>, [i64; 3]) {
    let vs = nn::VarStore::new(Device::Cpu);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let net = CnnNet::build(&vs.root(), arch, input, classes, &mut rng, false).unwrap();
    let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    let graph = arch.resolve(input, classes);
    assert_eq!(counted as u64, graph.params, "VarStore parameters vs CnnArch::resolve");

    let x = Tensor::zeros([2, input.0 as i64, input.1 as i64, input.2 as i64], (Kind::Float, Device::Cpu));
    let (y, shapes) = net.forward_with_shapes(&x, true).unwrap();
    assert_eq!(y.size(), vec![2, classes as i64]);
    let to_i = |s: [usize; 3]| s.map(|v| v as i64);
    for (i, (got, want)) in shapes.layers.iter().zip(&graph.layers).enumerate() {
        assert_eq!(*got, [to_i(want.input_shape), to_i(want.conv_output_shape), to_i(want.output_shape)], "layer {i}");
    }
    assert_eq!(shapes.final_shape, to_i(graph.final_shape));
    (counted as u64, shapes.layers, shapes.final_shape)
}

#[test]
fn golden_arch_matches_pytorch_on_cifar_shape() {
    let (params, layers, final_shape) = build_and_check(&parse(GOLDEN), (3, 32, 32), 10);
    assert_eq!(params, 80250);
    // Layer 2 has no input (rule 1: the image); layer 3 concatenates
    // 24×32×32 with a zero-padded 36×16×32 (rule 3); layers 2 and 5 are
    // consumed by nobody and meet in the classifier (rule 2).
    assert_eq!(layers[2][0], [3, 32, 32]);
    assert_eq!(layers[3][0], [60, 32, 32]);
    assert_eq!(layers[4], [[100, 16, 32], [24, 16, 11], [24, 16, 11]]);
    assert_eq!(final_shape, [84, 16, 16]);
}

#[test]
fn pooled_strided_arch_matches_pytorch() {
    let arch = parse(POOLED);
    let (params, layers, final_shape) = build_and_check(&arch, (1, 28, 28), 10);
    assert_eq!(params, 102250);
    let expected = [
        [[1, 28, 28], [36, 10, 10], [36, 10, 10]],
        [[36, 10, 10], [24, 10, 10], [24, 5, 5]],
        [[1, 28, 28], [64, 28, 14], [64, 28, 14]],
        [[88, 28, 14], [48, 28, 14], [48, 28, 14]],
        [[84, 28, 14], [24, 14, 7], [24, 14, 7]],
        [[1, 28, 28], [36, 28, 28], [36, 14, 14]],
        [[88, 28, 14], [48, 28, 14], [48, 28, 14]],
    ];
    assert_eq!(layers, expected);
    assert_eq!(final_shape, [84, 28, 14]);
    let (params, _, final_shape) = build_and_check(&arch, (3, 32, 32), 100);
    assert_eq!((params, final_shape), (118044, [84, 32, 16]));
}

#[test]
fn sampled_architectures_from_every_space_variant_build_with_exact_counts() {
    let variants = [
        CnnSpace::default(),
        CnnSpace { predict_strides: true, ..Default::default() },
        CnnSpace { predict_strides: true, max_pool_after: vec![1, 3], ..Default::default() },
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for space in &variants {
        for layers in [1usize, 3, 6] {
            let tokens = space.schema(layers).sample_uniform(&mut rng);
            let arch = space.decode(&tokens).unwrap();
            // Small filter sets keep this fast; the counts are what matter.
            build_and_check(&arch, (1, 12, 12), 10);
            build_and_check(&arch, (3, 9, 7), 4);
        }
    }
}

#[test]
fn a_chain_with_no_skips_has_one_final_input() {
    let arch = parse(
        r#"{"version":1,"space":"cnn","layers":[
        {"filter_height":3,"filter_width":3,"filters":24,"inputs":[]},
        {"filter_height":3,"filter_width":3,"filters":24,"inputs":[0]},
        {"filter_height":3,"filter_width":3,"filters":24,"inputs":[1]}]}"#,
    );
    let (params, _, final_shape) = build_and_check(&arch, (1, 8, 8), 10);
    // 3·3·1·24 + 2·24, then twice 3·3·24·24 + 2·24, then 24·10 + 10.
    assert_eq!(params, (216 + 48) + 2 * (5184 + 48) + 250);
    assert_eq!(final_shape, [24, 8, 8]);
}

#[test]
fn the_same_seed_builds_the_same_weights() {
    let arch = parse(GOLDEN);
    let weights = |seed: u64| {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        CnnNet::build(&vs.root(), &arch, (3, 16, 16), 10, &mut rng, false).unwrap();
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::cat(&named.iter().map(|(_, t)| t.flatten(0, -1)).collect::<Vec<_>>(), 0)
    };
    assert!(weights(3).equal(&weights(3)));
    assert!(!weights(3).equal(&weights(4)));
}

#[test]
fn invalid_architectures_are_errors_not_panics() {
    let mut arch = parse(GOLDEN);
    arch.layers[1].inputs = vec![4]; // not an earlier layer
    let vs = nn::VarStore::new(Device::Cpu);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let err = CnnNet::build(&vs.root(), &arch, (3, 32, 32), 10, &mut rng, false).unwrap_err().to_string();
    assert!(err.contains("layers[1].inputs"), "{err}");
    let err = CnnNet::build(&vs.root(), &parse(GOLDEN), (3, 0, 32), 10, &mut rng, false).unwrap_err().to_string();
    assert!(err.contains("must all be positive"), "{err}");
}

#[test]
fn mixed_precision_runs_convolutions_in_bf16_with_fp32_logits_and_master_weights() {
    let arch = parse(GOLDEN);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let net = CnnNet::build(&vs.root(), &arch, (3, 16, 16), 10, &mut rng, true).unwrap();
    assert_eq!(net.compute_kind(), Kind::BFloat16);
    let x = Tensor::randn([4, 3, 16, 16], (Kind::BFloat16, Device::Cpu));
    let y = net.forward(&x, true).unwrap();
    assert_eq!((y.size(), y.kind()), (vec![4, 10], Kind::Float));
    let w = vs.trainable_variables();
    assert!(w.iter().all(|t| t.kind() == Kind::Float));
    let grads = Tensor::run_backward(&[y.sum(Kind::Float)], &w, false, false);
    assert!(grads.iter().all(|g| g.defined() && g.kind() == Kind::Float));
}
