//! Property tests: every token sequence the sampler can emit decodes to a
//! valid architecture that re-encodes to the same tokens and survives a JSON
//! round trip; decoding arbitrary tokens and parsing arbitrary JSON never
//! panic.

use nasfleet_core::space::cnn::{CnnSpace, DepthSchedule};
use nasfleet_core::space::rnn_cell::CellSpace;
use nasfleet_core::{ArchLimits, Architecture, Space};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn spaces() -> impl Strategy<Value = (Space, usize)> {
    prop_oneof![
        (any::<bool>(), prop::sample::subsequence(vec![0usize, 3, 7, 12], 0..3), 1usize..=20).prop_map(
            |(strides, pool, layers)| {
                let s = CnnSpace {
                    predict_strides: strides,
                    max_pool_after: pool,
                    depth: DepthSchedule { max: 20, ..Default::default() },
                    ..Default::default()
                };
                (Space::Cnn(s), layers)
            }
        ),
        (prop::sample::select(vec![2usize, 4, 8, 16]), any::<bool>())
            .prop_map(|(base, extended)| (Space::RnnCell(CellSpace { base, extended }), 1)),
        Just((Space::Nb201, 1)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn sampled_tokens_round_trip((space, layers) in spaces(), seed in any::<u64>()) {
        let schema = space.schema(layers);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tokens = schema.sample_uniform(&mut rng);
        prop_assert_eq!(tokens.len(), schema.token_count());
        schema.check_tokens(&tokens).unwrap();
        let arch = space.decode(&tokens).unwrap();
        arch.validate(&ArchLimits::default()).unwrap();
        prop_assert_eq!(space.encode(&arch).unwrap(), tokens);
        let json = arch.to_json();
        let back = Architecture::from_json(json.as_bytes(), &ArchLimits::default()).unwrap();
        prop_assert_eq!(&back, &arch);
        if let Architecture::Cnn(a) = &arch {
            // Resolution never panics and every layer has a non-empty output.
            let g = a.resolve((3, 32, 32), 10);
            prop_assert!(g.layers.iter().all(|l| l.output_shape.iter().all(|&d| d > 0)));
            prop_assert!(!g.final_inputs.is_empty());
        }
    }

    #[test]
    fn decoding_arbitrary_tokens_never_panics((space, _l) in spaces(), tokens in prop::collection::vec(any::<u32>(), 0..300)) {
        let _ = space.decode(&tokens);
    }

    #[test]
    fn decoding_near_valid_tokens_never_panics((space, layers) in spaces(), seed in any::<u64>(), pos in any::<prop::sample::Index>(), v in 0u32..70) {
        let mut tokens = space.schema(layers).sample_uniform(&mut ChaCha8Rng::seed_from_u64(seed));
        if !tokens.is_empty() {
            let i = pos.index(tokens.len());
            tokens[i] = v;
        }
        if let Ok(a) = space.decode(&tokens) {
            prop_assert_eq!(space.encode(&a).unwrap(), tokens);
        }
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Architecture::from_json(&bytes, &ArchLimits::default());
    }

    #[test]
    fn parsing_mutated_json_never_panics((space, layers) in spaces(), seed in any::<u64>(), cut in any::<prop::sample::Index>(), junk in "[\\[\\]{}:,\"0-9a-z -]{0,12}") {
        let tokens = space.schema(layers).sample_uniform(&mut ChaCha8Rng::seed_from_u64(seed));
        let json = space.decode(&tokens).unwrap().to_json();
        let i = cut.index(json.len());
        let mutated = format!("{}{}{}", &json[..i], junk, &json[i..]);
        let _ = Architecture::from_json(mutated.as_bytes(), &ArchLimits::default());
    }

    #[test]
    fn arbitrary_json_values_never_panic(v in arb_json()) {
        let _ = Architecture::from_value(v, &ArchLimits::default());
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop::sample::select(vec!["cnn", "rnn-cell", "nb201", "add", "tanh", "none", "x"]).prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec!["version", "space", "layers", "filters", "inputs", "nodes", "base", "ops", "inject", "cell_node", "filter_height"]).prop_map(String::from),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
