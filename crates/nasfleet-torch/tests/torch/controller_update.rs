//! The REINFORCE update moves the policy the right way: a positive advantage
//! raises the probability of the sequence, a negative one lowers it, a zero
//! advantage leaves the weights untouched, and an entropy bonus raises the
//! entropy.

use nasfleet_core::config::ControllerConfig;
use nasfleet_core::space::cnn::{CnnSpace, DepthSchedule};
use nasfleet_core::space::rnn_cell::CellSpace;
use nasfleet_core::strategy::{Feedback, StrategyError};
use nasfleet_core::Space;
use nasfleet_torch::controller::{use_one_libtorch_thread, Controller};

/// A controller on this test thread, with libtorch single-threaded here as on
/// the policy thread (see `use_one_libtorch_thread`).
fn pinned(space: Space, cfg: ControllerConfig, seed: u64) -> Result<Controller, StrategyError> {
    use_one_libtorch_thread();
    Controller::with_parts(space, cfg, seed)
}


fn spaces() -> Vec<Space> {
    vec![
        Space::Cnn(CnnSpace { depth: DepthSchedule { start: 4, step: 0, every: 0, max: 4 }, ..Default::default() }),
        Space::RnnCell(CellSpace::default()),
    ]
}

/// A controller (paper defaults) whose baseline is 0.5, reached by an update
/// with zero advantage; returns it with a sequence it has not been updated on.
fn primed(space: Space, cfg: ControllerConfig) -> (Controller, Vec<u32>) {
    let cfg_has_bonus = cfg.entropy_weight != 0.0;
    let mut c = pinned(space, cfg, 17).unwrap();
    let s = c.sample(2).unwrap();
    let before = c.score(&[s[0].actions.clone()]).unwrap();
    // First batch: the baseline is the batch's own mean, so the advantage is 0.
    let stats = c.update(&[Feedback { actions: s[1].actions.clone(), reward: 0.5 }]).unwrap();
    assert_eq!(stats.baseline, 0.5);
    assert_eq!(c.baseline(), Some(0.5));
    if !cfg_has_bonus {
        // Zero gradient: Adam's step is exactly zero, the policy has not moved.
        assert_eq!((stats.loss, stats.grad_norm), (0.0, 0.0));
        assert_eq!(c.score(&[s[0].actions.clone()]).unwrap(), before);
    }
    (c, s[0].actions.clone())
}

fn log_prob(c: &Controller, a: &[u32]) -> f64 {
    c.score(&[a.to_vec()]).unwrap()[0].log_prob
}

#[test]
fn a_positive_advantage_raises_the_sequences_probability() {
    for space in spaces() {
        let (mut c, a) = primed(space.clone(), ControllerConfig::default());
        let before = log_prob(&c, &a);
        let stats = c.update(&[Feedback { actions: a.clone(), reward: 1.0 }]).unwrap();
        assert_eq!(stats.baseline, 0.5);
        assert!(stats.grad_norm > 0.0);
        let after = log_prob(&c, &a);
        assert!(after > before, "{}: log P went from {before} to {after}", space.kind());
    }
}

#[test]
fn a_negative_advantage_lowers_the_sequences_probability() {
    for space in spaces() {
        let (mut c, a) = primed(space.clone(), ControllerConfig::default());
        let before = log_prob(&c, &a);
        c.update(&[Feedback { actions: a.clone(), reward: 0.0 }]).unwrap();
        let after = log_prob(&c, &a);
        assert!(after < before, "{}: log P went from {before} to {after}", space.kind());
    }
}

#[test]
fn an_entropy_bonus_alone_raises_the_entropy() {
    for space in spaces() {
        let cfg = ControllerConfig { entropy_weight: 0.5, ..Default::default() };
        let (mut c, a) = primed(space.clone(), cfg);
        let before = c.score(std::slice::from_ref(&a)).unwrap()[0].entropy;
        // Reward equal to the baseline: only the bonus pushes.
        let stats = c.update(&[Feedback { actions: a.clone(), reward: 0.5 }]).unwrap();
        assert!(stats.grad_norm > 0.0);
        let after = c.score(&[a]).unwrap()[0].entropy;
        assert!(after > before, "{}: entropy went from {before} to {after}", space.kind());
    }
}

#[test]
fn invalid_batches_are_refused_and_change_nothing() {
    let space = spaces().remove(0);
    let mut c = pinned(space, ControllerConfig::default(), 1).unwrap();
    let a = c.sample(1).unwrap().remove(0).actions;
    let before = c.checkpoint().unwrap();
    for (batch, needle) in [
        (vec![], "empty"),
        (vec![Feedback { actions: a.clone(), reward: f64::NAN }], "not finite"),
        (vec![Feedback { actions: a[..5].to_vec(), reward: 1.0 }], "feedback 0"),
        (vec![Feedback { actions: a.clone(), reward: 1.0 }, Feedback { actions: vec![7; a.len()], reward: 1.0 }], "feedback 1"),
    ] {
        let err = c.update(&batch).unwrap_err();
        assert!(matches!(err, StrategyError::Feedback(_)) && err.to_string().contains(needle), "{err}");
    }
    assert_eq!(c.checkpoint().unwrap(), before);
    assert_eq!(c.policy_version(), 0);
}

#[test]
fn settings_that_break_the_update_are_refused() {
    let space = spaces().remove(0);
    let bad = [
        ControllerConfig { lr: 0.0, ..Default::default() },
        ControllerConfig { hidden: 0, ..Default::default() },
        ControllerConfig { baseline_decay: 1.0, ..Default::default() },
        ControllerConfig { grad_clip: Some(-1.0), ..Default::default() },
        ControllerConfig { entropy_weight: f64::INFINITY, ..Default::default() },
        ControllerConfig { init_range: f64::NAN, ..Default::default() },
    ];
    for cfg in bad {
        let err = pinned(space.clone(), cfg.clone(), 0).err().unwrap();
        assert!(matches!(err, StrategyError::Config(_)), "{cfg:?}: {err}");
    }
}
