//! Sampling: deterministic given the seed, follows the depth schedule, emits
//! valid architectures of every space, reports the log-probabilities the
//! policy assigns, and draws each decision with the policy's probabilities.
//! Also: the initialisation, the policy thread, and `RlStrategy::new`
//! refusing bad settings.

use nasfleet_core::config::{ControllerConfig, ExperimentConfig};
use nasfleet_core::space::cnn::{CnnSpace, DepthSchedule};
use nasfleet_core::space::rnn_cell::CellSpace;
use nasfleet_core::strategy::{SearchStrategy, StrategyError};
use nasfleet_core::{ArchLimits, Space, SpaceKind};
use nasfleet_torch::controller::{use_one_libtorch_thread, Controller, RlStrategy};

/// A controller on this test thread, with libtorch single-threaded here as on
/// the policy thread (see `use_one_libtorch_thread`).
fn pinned(space: Space, cfg: ControllerConfig, seed: u64) -> Result<Controller, StrategyError> {
    use_one_libtorch_thread();
    Controller::with_parts(space, cfg, seed)
}


fn cnn(start: usize, every: u64) -> Space {
    Space::Cnn(CnnSpace { depth: DepthSchedule { start, step: 2, every, max: 20 }, ..Default::default() })
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let run = |seed| {
        let mut c = pinned(cnn(6, 0), ControllerConfig::default(), seed).unwrap();
        let mut v = c.sample(3).unwrap();
        v.extend(c.sample(5).unwrap());
        v
    };
    assert_eq!(run(4), run(4));
    assert_ne!(run(4)[0].actions, run(5)[0].actions);
}

#[test]
fn samples_follow_the_depth_schedule_and_decode_to_valid_architectures() {
    let mut c = pinned(cnn(2, 3), ControllerConfig::default(), 0).unwrap();
    let space = c.space().clone();
    // One call spanning three depths: 2, 2, 2, 4, 4, 4, 6.
    let props = c.propose(7).unwrap();
    let layers: Vec<usize> = props
        .iter()
        .map(|p| {
            p.arch.validate(&ArchLimits::default()).unwrap();
            assert_eq!(space.encode(&p.arch).unwrap(), p.actions);
            match &p.arch {
                nasfleet_core::Architecture::Cnn(a) => a.layers.len(),
                other => panic!("not a cnn: {other:?}"),
            }
        })
        .collect();
    assert_eq!(layers, [2, 2, 2, 4, 4, 4, 6]);
    assert_eq!(c.samples_drawn(), 7);
    for space in [Space::RnnCell(CellSpace::default()), Space::Nb201] {
        let mut c = pinned(space.clone(), ControllerConfig::default(), 0).unwrap();
        for p in c.propose(20).unwrap() {
            p.arch.validate(&ArchLimits::default()).unwrap();
            assert_eq!(space.encode(&p.arch).unwrap(), p.actions);
        }
    }
}

#[test]
fn sampled_log_probs_are_the_policys() {
    for space in [cnn(5, 0), Space::RnnCell(CellSpace::default()), Space::Nb201] {
        let cfg = ControllerConfig { init_range: 0.5, ..Default::default() };
        let mut c = pinned(space, cfg, 2).unwrap();
        let samples = c.sample(6).unwrap();
        let actions: Vec<Vec<u32>> = samples.iter().map(|s| s.actions.clone()).collect();
        for (s, scored) in samples.iter().zip(c.score(&actions).unwrap()) {
            assert!((s.log_prob - scored.log_prob).abs() < 1e-4, "{} vs {}", s.log_prob, scored.log_prob);
            assert!((s.entropy - scored.entropy).abs() < 1e-4, "{} vs {}", s.entropy, scored.entropy);
        }
    }
}

#[test]
fn the_policy_view_is_the_likeliest_sequence_with_its_probabilities_and_changes_nothing() {
    for space in [cnn(5, 0), Space::RnnCell(CellSpace::default()), Space::Nb201] {
        let cfg = ControllerConfig { init_range: 0.5, ..Default::default() };
        let mut viewed = pinned(space.clone(), cfg.clone(), 3).unwrap();
        let mut plain = pinned(space.clone(), cfg, 3).unwrap();
        let v = viewed.policy_view();
        assert_eq!(v.actions.len(), v.probs.len(), "one row per token");
        space.decode(&v.actions).expect("the likeliest sequence is an architecture of the space");
        let mut log_p = 0.0;
        for (a, row) in v.actions.iter().zip(&v.probs) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-3, "a distribution: {row:?}");
            let best = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(row[*a as usize], best, "the chosen token is the likeliest: {row:?}");
            log_p += row[*a as usize].ln();
        }
        // The rows are the policy's conditional probabilities along that sequence.
        let scored = viewed.score(std::slice::from_ref(&v.actions)).unwrap();
        assert!((scored[0].log_prob - log_p).abs() < 2e-3 * v.actions.len() as f64, "{} vs {log_p}", scored[0].log_prob);
        // A restored controller shows the same view (a resumed run writes the same lines).
        let mut restored = pinned(space.clone(), ControllerConfig { init_range: 0.5, ..Default::default() }, 99).unwrap();
        restored.restore(&viewed.checkpoint().unwrap()).unwrap();
        assert_eq!(restored.policy_view(), v);
        // No RNG drawn, no sample counted: what follows is as without the view.
        assert_eq!(viewed.samples_drawn(), 0);
        assert_eq!(viewed.sample(4).unwrap()[3].actions, plain.sample(4).unwrap()[3].actions);
    }
}

#[test]
fn choices_are_drawn_with_the_policys_probabilities() {
    // Zero head weights make every decision's distribution softmax(bias),
    // whatever the LSTM does: the empirical frequencies must match it.
    let mut c = pinned(Space::Nb201, ControllerConfig::default(), 9).unwrap();
    c.set_parameter("head.0.weight", &[0.0; 5 * 35]).unwrap();
    let bias = [1.0f32, 0.0, -1.0, 2.0, 0.5];
    c.set_parameter("head.0.bias", &bias).unwrap();
    let z: f64 = bias.iter().map(|&b| (b as f64).exp()).sum();
    let n = 2000;
    let mut counts = [0usize; 5];
    for s in c.sample(n).unwrap() {
        for t in s.actions {
            counts[t as usize] += 1;
        }
    }
    for (k, &b) in bias.iter().enumerate() {
        let want = (b as f64).exp() / z;
        let got = counts[k] as f64 / (6 * n) as f64;
        assert!((got - want).abs() < 0.015, "token {k}: frequency {got}, probability {want}");
    }
}

#[test]
fn anchor_bits_are_drawn_with_the_policys_probabilities() {
    // For an autoregressive policy E[−log P(sample)] equals the expected sum
    // of per-decision entropies along the sampled path. Drawing skip bits
    // with 1 − p instead of p (or any other bias) breaks the equality; with
    // peaked weights the gap would be many nats.
    let cfg = ControllerConfig { init_range: 1.0, ..Default::default() };
    let mut c = pinned(cnn(6, 0), cfg, 3).unwrap();
    let samples = c.sample(1500).unwrap();
    let n = samples.len() as f64;
    let neg_log_p = samples.iter().map(|s| -s.log_prob).sum::<f64>() / n;
    let entropy = samples.iter().map(|s| s.entropy).sum::<f64>() / n;
    assert!((neg_log_p - entropy).abs() < 0.3, "E[-log P] {neg_log_p} vs E[H] {entropy}");
}

#[test]
fn weights_start_uniform_in_the_init_range() {
    let c = pinned(cnn(6, 0), ControllerConfig::default(), 0).unwrap();
    let all: Vec<f32> = c.parameters().iter().flat_map(|p| c.parameter(&p.name).unwrap()).collect();
    assert!(all.iter().all(|x| x.abs() <= 0.08));
    let max = all.iter().copied().fold(f32::MIN, f32::max);
    let min = all.iter().copied().fold(f32::MAX, f32::min);
    assert!(max > 0.079 && min < -0.079, "range [{min}, {max}]");
    let mean = all.iter().map(|&x| x as f64).sum::<f64>() / all.len() as f64;
    assert!(mean.abs() < 0.002, "mean {mean}");
    let other = pinned(cnn(6, 0), ControllerConfig::default(), 1).unwrap();
    assert_ne!(c.parameter("start"), other.parameter("start"));
    assert_eq!(c.parameter("nope"), None);
}

#[test]
fn the_handle_is_send_and_talks_plain_data() {
    fn assert_send<T: Send>() {}
    assert_send::<RlStrategy>();
    let cfg = ExperimentConfig::default();
    let mut s = RlStrategy::new(&cfg).unwrap();
    // The handle moves to another thread; the policy stays on its own.
    let s2 = std::thread::spawn(move || {
        let got = s.sample(2).unwrap();
        assert_eq!(s.samples_drawn(), 2);
        let scored = s.score(got.iter().map(|g| g.actions.clone()).collect()).unwrap();
        assert!((scored[0].log_prob - got[0].log_prob).abs() < 1e-4);
        assert!(matches!(s.update(&[]), Err(StrategyError::Feedback(_))));
        s
    })
    .join()
    .unwrap();
    assert_eq!(s2.policy_version(), 0);
    drop(s2); // joins the policy thread
}

#[test]
fn rl_strategy_proposes_and_refuses_bad_settings() {
    let mut cfg = ExperimentConfig::default();
    cfg.search.space = SpaceKind::Nb201;
    let mut s = RlStrategy::new(&cfg).unwrap();
    assert_eq!(s.name(), "rl");
    assert_eq!(s.propose(4).unwrap().len(), 4);
    assert_eq!(s.samples_drawn(), 4);
    cfg.controller.lr = -1.0;
    let err = RlStrategy::new(&cfg).err().unwrap();
    assert!(matches!(err, StrategyError::Config(_)) && err.to_string().contains("controller.lr"), "{err}");
}
