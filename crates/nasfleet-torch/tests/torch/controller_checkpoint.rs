//! Exact checkpoints: train k steps, save, restore into a new controller (on
//! its own thread, built with another seed and already advanced, so nothing
//! survives by accident), continue; the samples, their log-probabilities and
//! the update statistics are bit-identical to an uninterrupted run — across a
//! depth-schedule change and with the entropy bonus and clipping on.

use nasfleet_core::config::{ExperimentConfig, StrategyKind};
use nasfleet_core::space::cnn::DepthSchedule;
use nasfleet_core::strategy::{build_pure_strategy, Feedback, SearchStrategy, StrategyError, SyntheticCnnReward};
use nasfleet_torch::controller::RlStrategy;

fn config(seed: u64) -> ExperimentConfig {
    let mut cfg = ExperimentConfig::default();
    cfg.search.seed = seed;
    cfg.cnn.depth = DepthSchedule { start: 2, step: 1, every: 12, max: 6 };
    cfg.controller.lr = 0.01;
    cfg.controller.entropy_weight = 0.01;
    cfg.controller.grad_clip = Some(0.5);
    cfg
}

/// Everything observable about `rounds` sample(4) → reward → update cycles,
/// floats as bits so that "equal" means bit-identical.
fn trace(s: &mut RlStrategy, rounds: usize) -> Vec<(Vec<u32>, u64, u64)> {
    let reward = SyntheticCnnReward::default();
    let space = config(0).space();
    let mut out = Vec::new();
    for _ in 0..rounds {
        let samples = s.sample(4).unwrap();
        let mut batch = Vec::new();
        for smp in samples {
            let r = reward.reward_of(&space.decode(&smp.actions).unwrap()).unwrap();
            out.push((smp.actions.clone(), smp.log_prob.to_bits(), smp.entropy.to_bits()));
            batch.push(Feedback { actions: smp.actions, reward: r });
        }
        let st = s.update(&batch).unwrap();
        for x in [st.loss, st.baseline, st.mean_reward, st.entropy, st.grad_norm] {
            out.push((vec![], x.to_bits(), st.policy_version));
        }
    }
    out
}

#[test]
fn a_restored_controller_continues_bit_for_bit() {
    let mut a = RlStrategy::new(&config(5)).unwrap();
    trace(&mut a, 5);
    let bytes = a.checkpoint().unwrap();
    let uninterrupted = trace(&mut a, 6);

    let mut b = RlStrategy::new(&config(99)).unwrap();
    trace(&mut b, 2);
    b.restore(&bytes).unwrap();
    assert_eq!((b.policy_version(), b.samples_drawn()), (5, 20));
    let resumed = trace(&mut b, 6);
    assert_eq!(resumed, uninterrupted);
    // The continuation crossed depth changes (12 samples per layer).
    assert!(resumed.iter().any(|(a, _, _)| a.len() == 3 * 3 + 3) && resumed.iter().any(|(a, _, _)| a.len() == 5 * 3 + 10));
    assert_eq!(a.checkpoint().unwrap(), b.checkpoint().unwrap());
}

#[test]
fn proposals_continue_identically_through_the_trait() {
    let reward = SyntheticCnnReward::default();
    let run = |s: &mut Box<dyn SearchStrategy>, rounds: usize| {
        let mut out = Vec::new();
        for _ in 0..rounds {
            let props = s.propose(3).unwrap();
            let fb: Vec<Feedback> = props
                .iter()
                .map(|p| Feedback { actions: p.actions.clone(), reward: reward.reward_of(&p.arch).unwrap() })
                .collect();
            let st = s.update(&fb).unwrap();
            out.push((props, st.loss.to_bits(), st.grad_norm.to_bits()));
        }
        out
    };
    let mut a: Box<dyn SearchStrategy> = Box::new(RlStrategy::new(&config(8)).unwrap());
    run(&mut a, 3);
    let bytes = a.checkpoint().unwrap();
    let want = run(&mut a, 3);
    let mut b: Box<dyn SearchStrategy> = Box::new(RlStrategy::new(&config(8)).unwrap());
    b.restore(&bytes).unwrap();
    assert_eq!(run(&mut b, 3), want);
}

#[test]
fn restore_refuses_foreign_or_damaged_checkpoints_and_keeps_its_state() {
    let mut c = RlStrategy::new(&config(1)).unwrap();
    trace(&mut c, 1);
    let good = c.checkpoint().unwrap();

    let mut other_net = config(1);
    other_net.controller.hidden = 20;
    let wrong_shape = RlStrategy::new(&other_net).unwrap().checkpoint().unwrap();
    let mut cells = config(1);
    cells.search.space = nasfleet_core::SpaceKind::RnnCell;
    let wrong_space = RlStrategy::new(&cells).unwrap().checkpoint().unwrap();
    let mut random_cfg = config(1);
    random_cfg.search.strategy = StrategyKind::Random;
    let random = build_pure_strategy(&random_cfg).unwrap().checkpoint().unwrap();

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (wrong_shape, "hidden 20"),
        (wrong_space, "space rnn-cell"),
        (random, "bad magic"),
        (good[..good.len() - 3].to_vec(), "needs"),
        ([good.as_slice(), &[0u8; 4]].concat(), "trailing"),
        (b"NFRLCKPT\x02\x00\x00\x00".iter().copied().chain([0u8; 8]).collect(), "format 2"),
        (vec![], "bad magic"),
    ];
    for (bytes, needle) in cases {
        let err = c.restore(&bytes).unwrap_err();
        assert!(matches!(err, StrategyError::Checkpoint(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        assert_eq!(c.checkpoint().unwrap(), good, "a refused restore changed the state");
    }
    assert_eq!(c.policy_version(), 1);
}

#[test]
fn a_restored_ppo_controller_continues_bit_for_bit() {
    let ppo = |seed| {
        let mut cfg = config(seed);
        cfg.controller.update = nasfleet_core::config::ControllerUpdate::Ppo;
        cfg.controller.ppo_epochs = 3;
        cfg
    };
    let mut a = RlStrategy::new(&ppo(5)).unwrap();
    let before = trace(&mut a, 5);
    let bytes = a.checkpoint().unwrap();
    let uninterrupted = trace(&mut a, 6);

    let mut b = RlStrategy::new(&ppo(99)).unwrap();
    trace(&mut b, 2);
    b.restore(&bytes).unwrap();
    assert_eq!((b.policy_version(), b.samples_drawn()), (5, 20));
    let resumed = trace(&mut b, 6);
    assert_eq!(resumed, uninterrupted);
    assert_eq!(a.checkpoint().unwrap(), b.checkpoint().unwrap());
    // PPO is a different update: the same seed under REINFORCE diverges
    // after the first update.
    let mut r = RlStrategy::new(&config(5)).unwrap();
    assert_ne!(trace(&mut r, 5), before);
}
