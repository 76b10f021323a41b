//! The controller learns: on the core's synthetic CNN reward (target layers
//! 3×3 with 64 filters, chain skips), the RL controller's last 200 samples
//! beat random search's by a wide margin within a fixed budget (fixed seed,
//! CPU, a few seconds). Both run behind the `SearchStrategy` trait, as the
//! system drives them: the controller as `RlStrategy` (on its policy thread),
//! random search from the core's `build_pure_strategy`.

use nasfleet_core::config::{ExperimentConfig, StrategyKind};
use nasfleet_core::space::cnn::DepthSchedule;
use nasfleet_core::strategy::{build_pure_strategy, Feedback, SearchStrategy, SyntheticCnnReward};
use nasfleet_torch::controller::RlStrategy;

const ROUNDS: usize = 100;
const BATCH: usize = 8;

fn config(strategy: StrategyKind) -> ExperimentConfig {
    let mut cfg = ExperimentConfig::default();
    cfg.search.strategy = strategy;
    cfg.search.seed = 3;
    cfg.search.batch = BATCH;
    cfg.cnn.depth = DepthSchedule { start: 6, step: 2, every: 0, max: 20 };
    // The paper's 0.0006 is tuned for 12,800 real children; a larger step
    // lets an 800-sample budget show learning.
    cfg.controller.lr = 0.05;
    cfg
}

/// Rewards of every sample, in order, over ROUNDS propose → reward → update cycles.
fn run(s: &mut dyn SearchStrategy) -> Vec<f64> {
    let reward = SyntheticCnnReward::default();
    let mut all = Vec::new();
    for round in 0..ROUNDS {
        let props = s.propose(BATCH).unwrap();
        assert!(props.iter().all(|p| p.policy_version == round as u64));
        let batch: Vec<Feedback> = props
            .into_iter()
            .map(|p| Feedback { reward: reward.reward_of(&p.arch).unwrap(), actions: p.actions })
            .collect();
        all.extend(batch.iter().map(|f| f.reward));
        let stats = s.update(&batch).unwrap();
        assert_eq!(stats.policy_version, round as u64 + 1);
        assert!(stats.loss.is_finite() && stats.grad_norm.is_finite());
    }
    all
}

fn tail_mean(v: &[f64]) -> f64 {
    v[v.len() - 200..].iter().sum::<f64>() / 200.0
}

#[test]
fn rl_beats_random_search_on_the_synthetic_reward() {
    let mut rl: Box<dyn SearchStrategy> = Box::new(RlStrategy::new(&config(StrategyKind::Rl)).unwrap());
    let mut random = build_pure_strategy(&config(StrategyKind::Random)).unwrap();
    assert_eq!((rl.name(), random.name()), ("rl", "random"));
    let rl_rewards = run(rl.as_mut());
    let random_rewards = run(random.as_mut());
    let (r, u) = (tail_mean(&rl_rewards), tail_mean(&random_rewards));
    eprintln!("mean reward of the last 200 samples: rl {r:.4}, random {u:.4}");
    // Random search sits at its expectation, 0.375; the controller starts
    // there (its first 200 samples are near-uniform) and must end far above.
    assert!((u - 0.375).abs() < 0.03, "random search {u}");
    assert!(r > u + 0.25, "rl {r} vs random {u}");
}

#[test]
fn ppo_updates_learn_too() {
    let mut cfg = config(StrategyKind::Rl);
    cfg.controller.update = nasfleet_core::config::ControllerUpdate::Ppo;
    let mut ppo = RlStrategy::new(&cfg).unwrap();
    let mut random = build_pure_strategy(&config(StrategyKind::Random)).unwrap();
    let (p, u) = (tail_mean(&run(&mut ppo)), tail_mean(&run(random.as_mut())));
    eprintln!("mean reward of the last 200 samples: rl-ppo {p:.4}, random {u:.4}");
    assert!(p > u + 0.25, "rl-ppo {p} vs random {u}");
}
