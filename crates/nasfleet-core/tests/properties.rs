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

mod rung_decisions {
    //! The early-stopping decision (`early_stop::decide`), which the queue's
    //! Lua mirrors: properties that pin it down beyond the hand examples.
    use nasfleet_core::early_stop::{decide, EarlyStopConfig, EarlyStopRule, RungDecision, RungRule};
    use proptest::prelude::*;

    fn rule() -> impl Strategy<Value = RungRule> {
        prop_oneof![
            (1u32..6).prop_map(|min_peers| RungRule::Median { min_peers }),
            (2u32..6, 1u32..6).prop_map(|(eta, min_peers)| RungRule::Asha { eta, min_peers }),
        ]
    }

    fn distinct(values: &[f64]) -> bool {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v.windows(2).all(|w| w[0] != w[1])
    }

    proptest! {
        #[test]
        fn the_order_of_the_peers_does_not_matter(r in rule(), v in 0.0f64..1.0, peers in prop::collection::vec(0.0f64..1.0, 0..30), rot in 0usize..30) {
            let mut other = peers.clone();
            other.reverse();
            if !other.is_empty() {
                let k = rot % other.len();
                other.rotate_left(k);
            }
            prop_assert_eq!(decide(r, v, &peers), decide(r, v, &other));
        }

        #[test]
        fn a_better_score_never_fares_worse(r in rule(), a in 0.0f64..1.0, b in 0.0f64..1.0, peers in prop::collection::vec(0.0f64..1.0, 0..30)) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            if decide(r, lo, &peers) == RungDecision::Continue {
                prop_assert_eq!(decide(r, hi, &peers), RungDecision::Continue);
            }
        }

        #[test]
        fn too_few_peers_always_continue(r in rule(), v in -1.0f64..1.0, peers in prop::collection::vec(0.0f64..1.0, 0..5)) {
            let min = match r { RungRule::Median { min_peers } | RungRule::Asha { min_peers, .. } => min_peers as usize };
            if peers.len() < min {
                prop_assert_eq!(decide(r, v, &peers), RungDecision::Continue);
            }
        }

        /// Judged each against all the others, exactly max(1, ⌊n/eta⌋) of n
        /// distinct children go on: ASHA keeps the top 1/eta.
        #[test]
        fn asha_keeps_the_top_fraction(eta in 2u32..6, values in prop::collection::vec(0.0f64..1.0, 2..40)) {
            prop_assume!(distinct(&values));
            let rule = RungRule::Asha { eta, min_peers: 1 };
            let n = values.len();
            let kept = (0..n)
                .filter(|&i| {
                    let peers: Vec<f64> = values.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, v)| *v).collect();
                    decide(rule, values[i], &peers) == RungDecision::Continue
                })
                .count();
            prop_assert_eq!(kept, (n / eta as usize).max(1));
        }

        /// Median: the best child always goes on, the worst always stops.
        #[test]
        fn the_median_keeps_the_best_and_stops_the_worst(values in prop::collection::vec(0.0f64..1.0, 3..40)) {
            prop_assume!(distinct(&values));
            let rule = RungRule::Median { min_peers: 1 };
            let judge = |i: usize| {
                let peers: Vec<f64> = values.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, v)| *v).collect();
                decide(rule, values[i], &peers)
            };
            let best = (0..values.len()).max_by(|&a, &b| values[a].total_cmp(&values[b])).unwrap();
            let worst = (0..values.len()).min_by(|&a, &b| values[a].total_cmp(&values[b])).unwrap();
            prop_assert_eq!(judge(best), RungDecision::Continue);
            prop_assert_eq!(judge(worst), RungDecision::Stop);
        }

        /// Rungs lie strictly inside the training and follow the rule.
        #[test]
        fn rungs_follow_the_schedule(epochs in 2usize..60, min_epochs in 1usize..10, eta in 2usize..5, warmup in 1usize..10) {
            let asha = EarlyStopConfig { rule: EarlyStopRule::Asha, min_epochs, eta, ..EarlyStopConfig::default() };
            let mut want = Vec::new();
            let mut r = min_epochs;
            while r < epochs {
                want.push(r);
                r *= eta;
            }
            prop_assert_eq!(asha.rungs(epochs), want);
            let median = EarlyStopConfig { rule: EarlyStopRule::Median, warmup_epochs: warmup, ..EarlyStopConfig::default() };
            prop_assert_eq!(median.rungs(epochs), (warmup..epochs).collect::<Vec<_>>());
            prop_assert_eq!(median.check(epochs).is_ok(), warmup < epochs);
            prop_assert_eq!(asha.check(epochs).is_ok(), min_epochs < epochs);
        }
    }
}
