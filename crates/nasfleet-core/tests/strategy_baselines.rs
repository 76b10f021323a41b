//! The two strategies without libtorch — random search and regularised
//! evolution — and the synthetic CNN reward: determinism per seed, the depth
//! schedule, the evolution rules, exact checkpoints, and feedback checks.

use nasfleet_core::config::{EvolutionConfig, ExperimentConfig, StrategyKind};
use nasfleet_core::space::cnn::{CnnLayer, CnnSpace, DepthSchedule};
use nasfleet_core::space::rnn_cell::CellSpace;
use nasfleet_core::strategy::{
    build_pure_strategy, schema_for_tokens, Feedback, Proposal, RandomSearch, RegularizedEvolution, SearchStrategy,
    StrategyError, SyntheticCnnReward,
};
use nasfleet_core::{Architecture, Space};

fn cnn(depth: DepthSchedule) -> Space {
    Space::Cnn(CnnSpace { depth, ..Default::default() })
}

fn fixed6() -> Space {
    cnn(DepthSchedule { start: 6, step: 2, every: 0, max: 20 })
}

fn reward(p: &Proposal) -> f64 {
    SyntheticCnnReward::default().reward_of(&p.arch).unwrap()
}

/// Runs `rounds` propose(batch) → synthetic reward → update cycles; returns
/// every proposal and reward in order.
fn drive(s: &mut dyn SearchStrategy, rounds: usize, batch: usize) -> Vec<(Vec<u32>, f64)> {
    let mut out = Vec::new();
    for _ in 0..rounds {
        let props = s.propose(batch).unwrap();
        let fb: Vec<Feedback> = props.iter().map(|p| Feedback { actions: p.actions.clone(), reward: reward(p) }).collect();
        s.update(&fb).unwrap();
        out.extend(fb.into_iter().map(|f| (f.actions, f.reward)));
    }
    out
}

fn evolution(space: Space, population: usize, sample_size: usize, seed: u64) -> RegularizedEvolution {
    RegularizedEvolution::new(space, &EvolutionConfig { population, sample_size }, seed).unwrap()
}

#[test]
fn random_search_is_deterministic_per_seed() {
    let a = drive(&mut RandomSearch::new(fixed6(), 7), 5, 4);
    let b = drive(&mut RandomSearch::new(fixed6(), 7), 5, 4);
    let c = drive(&mut RandomSearch::new(fixed6(), 8), 5, 4);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn random_search_follows_the_depth_schedule() {
    let space = cnn(DepthSchedule { start: 2, step: 3, every: 4, max: 8 });
    let mut s = RandomSearch::new(space.clone(), 1);
    let layers: Vec<usize> = s
        .propose(14)
        .unwrap()
        .iter()
        .map(|p| match &p.arch {
            Architecture::Cnn(a) => a.layers.len(),
            other => panic!("not a cnn: {other:?}"),
        })
        .collect();
    assert_eq!(layers, [2, 2, 2, 2, 5, 5, 5, 5, 8, 8, 8, 8, 8, 8]);
    assert_eq!(s.samples_drawn(), 14);
}

#[test]
fn random_search_samples_every_value_of_the_cell_space() {
    let space = Space::RnnCell(CellSpace::default());
    let mut s = RandomSearch::new(space.clone(), 3);
    let props = s.propose(200).unwrap();
    let schema = space.schema(1);
    // Each token position takes every value of its step over 200 uniform draws.
    for pos in [0usize, 1, schema.token_count() - 1] {
        let mut seen: Vec<u32> = props.iter().map(|p| p.actions[pos]).collect();
        seen.sort_unstable();
        seen.dedup();
        let step = &schema.steps[pos];
        assert_eq!(seen.len(), schema.choices(step), "position {pos}");
    }
}

#[test]
fn evolution_is_deterministic_per_seed() {
    let a = drive(&mut evolution(fixed6(), 20, 5, 11), 30, 4);
    let b = drive(&mut evolution(fixed6(), 20, 5, 11), 30, 4);
    let c = drive(&mut evolution(fixed6(), 20, 5, 12), 30, 4);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn evolution_is_random_until_the_population_is_full_then_mutates_one_token() {
    let space = fixed6();
    let mut e = evolution(space.clone(), 8, 3, 5);
    let mut r = RandomSearch::new(space.clone(), 5);
    // Proposals before any feedback are exactly the random search's (same seed,
    // same RNG use): the population is empty.
    let first = e.propose(8).unwrap();
    assert_eq!(first, r.propose(8).unwrap());
    let fb: Vec<Feedback> =
        first.iter().enumerate().map(|(k, p)| Feedback { actions: p.actions.clone(), reward: k as f64 }).collect();
    e.update(&fb).unwrap();
    assert_eq!(e.population().count(), 8);
    for child in e.propose(50).unwrap() {
        let parents: Vec<&Vec<u32>> = fb.iter().map(|f| &f.actions).collect();
        let diffs: Vec<usize> = parents
            .iter()
            .map(|p| p.iter().zip(&child.actions).filter(|(a, b)| a != b).count())
            .collect();
        assert!(diffs.contains(&1), "child differs from every member by {diffs:?} tokens");
        schema_for_tokens(&space, &child.actions).unwrap();
    }
}

#[test]
fn evolution_tournaments_favour_the_best_member() {
    // Four members, tournaments of four draws with replacement: the best is
    // drawn with probability 1 − (3/4)^4 ≈ 0.68, against 1/4 for a tournament
    // of one, so most of 40 children must be one token away from it.
    let space = fixed6();
    let mut e = evolution(space.clone(), 4, 4, 9);
    let p = e.propose(4).unwrap();
    let fb: Vec<Feedback> = p
        .iter()
        .zip([0.1, 0.9, 0.2, 0.3])
        .map(|(p, r)| Feedback { actions: p.actions.clone(), reward: r })
        .collect();
    e.update(&fb).unwrap();
    let from_best = e
        .propose(40)
        .unwrap()
        .iter()
        .filter(|c| c.actions.iter().zip(&p[1].actions).filter(|(a, b)| a != b).count() == 1)
        .count();
    assert!(from_best >= 18, "{from_best} of 40 children descend from the best member");
}

#[test]
fn evolution_ages_out_the_oldest_member() {
    let space = fixed6();
    let mut e = evolution(space.clone(), 3, 1, 2);
    let p = RandomSearch::new(space, 4).propose(5).unwrap();
    for (k, prop) in p.iter().enumerate() {
        e.update(&[Feedback { actions: prop.actions.clone(), reward: 10.0 - k as f64 }]).unwrap();
    }
    let left: Vec<Vec<u32>> = e.population().map(|m| m.actions.clone()).collect();
    // The two best (oldest) are gone: aging, not fitness, decides who dies.
    assert_eq!(left, vec![p[2].actions.clone(), p[3].actions.clone(), p[4].actions.clone()]);
}

#[test]
fn evolution_extends_shallower_parents_when_the_schedule_deepens() {
    let space = cnn(DepthSchedule { start: 2, step: 2, every: 4, max: 6 });
    let mut e = evolution(space.clone(), 4, 2, 1);
    let p = e.propose(4).unwrap();
    let fb: Vec<Feedback> = p.iter().map(|p| Feedback { actions: p.actions.clone(), reward: reward(p) }).collect();
    e.update(&fb).unwrap();
    for child in e.propose(4).unwrap() {
        // Scheduled depth is now 4 layers: a 2-layer parent's tokens are its prefix.
        let Architecture::Cnn(a) = &child.arch else { panic!("not a cnn") };
        assert_eq!(a.layers.len(), 4);
        let prefix_len = fb[0].actions.len();
        let close = fb.iter().any(|f| {
            f.actions.iter().zip(&child.actions[..prefix_len]).filter(|(x, y)| x != y).count() <= 1
        });
        assert!(close, "child {:?} keeps no parent's layers", child.actions);
    }
}

#[test]
fn evolution_beats_random_search_on_the_synthetic_reward() {
    let tail_mean = |v: &[(Vec<u32>, f64)]| v[v.len() - 200..].iter().map(|x| x.1).sum::<f64>() / 200.0;
    let evo = drive(&mut evolution(fixed6(), 50, 10, 0), 250, 8);
    let rnd = drive(&mut RandomSearch::new(fixed6(), 0), 250, 8);
    let (e, r) = (tail_mean(&evo), tail_mean(&rnd));
    assert!((r - 0.375).abs() < 0.03, "random search's mean {r} should be near 0.375");
    assert!(e > r + 0.25, "evolution {e} vs random {r}");
}

fn checkpoint_continues_bit_for_bit(mut make: impl FnMut() -> Box<dyn SearchStrategy>) {
    let mut a = make();
    drive(a.as_mut(), 12, 4);
    let bytes = a.checkpoint().unwrap();
    let after_a = drive(a.as_mut(), 12, 4);
    let mut b = make();
    drive(b.as_mut(), 3, 2); // diverge first: restore must replace everything
    b.restore(&bytes).unwrap();
    assert_eq!(b.policy_version(), 12);
    assert_eq!(b.samples_drawn(), 48);
    assert_eq!(drive(b.as_mut(), 12, 4), after_a);
    assert_eq!(a.checkpoint().unwrap(), b.checkpoint().unwrap());
}

#[test]
fn random_search_checkpoint_restores_exactly() {
    let space = cnn(DepthSchedule { start: 2, step: 1, every: 10, max: 8 });
    checkpoint_continues_bit_for_bit(|| Box::new(RandomSearch::new(space.clone(), 21)));
}

#[test]
fn evolution_checkpoint_restores_exactly() {
    let space = cnn(DepthSchedule { start: 2, step: 1, every: 10, max: 8 });
    checkpoint_continues_bit_for_bit(|| Box::new(evolution(space.clone(), 10, 3, 21)));
}

#[test]
fn checkpoints_refuse_other_strategies_spaces_and_garbage() {
    let random = RandomSearch::new(fixed6(), 1).checkpoint().unwrap();
    let mut e = evolution(fixed6(), 5, 2, 1);
    let err = e.restore(&random).unwrap_err().to_string();
    assert!(err.contains("\"random\"") && err.contains("\"evolution\""), "{err}");
    let mut on_cells = RandomSearch::new(Space::RnnCell(CellSpace::default()), 1);
    let err = on_cells.restore(&random).unwrap_err().to_string();
    assert!(err.contains("\"cnn\"") && err.contains("\"rnn-cell\""), "{err}");
    assert!(matches!(e.restore(b"\x00garbage"), Err(StrategyError::Checkpoint(_))));
    // A population larger than configured is refused.
    let mut big = evolution(fixed6(), 6, 2, 1);
    drive(&mut big, 2, 3);
    let err = e.restore(&big.checkpoint().unwrap()).unwrap_err().to_string();
    assert!(err.contains("population of 6 exceeds"), "{err}");
}

#[test]
fn feedback_is_checked_before_any_state_changes() {
    let mut e = evolution(fixed6(), 5, 2, 1);
    let good = e.propose(1).unwrap().remove(0).actions;
    let cases: Vec<(Vec<Feedback>, &str)> = vec![
        (vec![], "empty"),
        (vec![Feedback { actions: good.clone(), reward: f64::NAN }], "feedback 0: reward NaN"),
        (
            vec![Feedback { actions: good.clone(), reward: 1.0 }, Feedback { actions: vec![0; 5], reward: 1.0 }],
            "feedback 1: ",
        ),
        (
            vec![Feedback {
                actions: {
                    let mut t = good.clone();
                    t[0] = 9;
                    t
                },
                reward: 1.0,
            }],
            "token 0 (layer 0 filter_height) is 9",
        ),
    ];
    for (batch, needle) in cases {
        let err = e.update(&batch).unwrap_err();
        assert!(matches!(err, StrategyError::Feedback(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        assert_eq!(e.population().count(), 0);
        assert_eq!(e.policy_version(), 0);
    }
    // Deeper than the schedule's maximum (20 layers): refused before replay.
    let deep = RandomSearch::new(cnn(DepthSchedule { start: 21, step: 0, every: 0, max: 21 }), 0)
        .propose(1)
        .unwrap()
        .remove(0)
        .actions;
    let err = e.update(&[Feedback { actions: deep, reward: 1.0 }]).unwrap_err().to_string();
    assert!(err.contains("21 layers is deeper than the depth schedule's maximum of 20"), "{err}");
    let mut r = RandomSearch::new(fixed6(), 1);
    assert!(r.update(&[Feedback { actions: good, reward: f64::INFINITY }]).is_err());
    assert_eq!(r.policy_version(), 0);
}

#[test]
fn build_pure_strategy_selects_by_config() {
    let mut cfg = ExperimentConfig::default();
    cfg.search.strategy = StrategyKind::Random;
    assert_eq!(build_pure_strategy(&cfg).unwrap().name(), "random");
    cfg.search.strategy = StrategyKind::Evolution;
    assert_eq!(build_pure_strategy(&cfg).unwrap().name(), "evolution");
    cfg.evolution.sample_size = cfg.evolution.population + 1;
    assert!(matches!(build_pure_strategy(&cfg), Err(StrategyError::Config(_))));
    cfg.search.strategy = StrategyKind::Rl;
    let err = build_pure_strategy(&cfg).err().unwrap().to_string();
    assert!(err.contains("libtorch"), "{err}");
}

#[test]
fn synthetic_reward_has_its_optimum_at_the_target() {
    let space = CnnSpace::default();
    let target = |n: usize| nasfleet_core::space::CnnArch {
        layers: (0..n)
            .map(|i| CnnLayer {
                filter_height: 3,
                filter_width: 3,
                stride_height: 1,
                stride_width: 1,
                filters: 64,
                inputs: if i == 0 { vec![] } else { vec![i - 1] },
            })
            .collect(),
        max_pool_after: vec![],
    };
    let r = SyntheticCnnReward::default();
    assert_eq!(r.reward(&target(1)), 1.0);
    assert_eq!(r.reward(&target(6)), 1.0);
    let mut a = target(3);
    a.layers[1].filters = 24; // layer score 1 − 1/9
    a.layers[2].inputs = vec![0, 1]; // one of three skip bits wrong
    let want = 0.5 * (8.0 / 9.0) + 0.5 * (2.0 / 3.0);
    assert!((r.reward(&a) - want).abs() < 1e-12, "{} vs {want}", r.reward(&a));
    // Every sampled architecture scores in [0, 1].
    let mut s = RandomSearch::new(Space::Cnn(space), 0);
    assert!(s.propose(50).unwrap().iter().map(reward).all(|x| (0.0..=1.0).contains(&x)));
    assert!(r.reward_of(&Space::Nb201.decode(&[0; 6]).unwrap()).is_err());
}
