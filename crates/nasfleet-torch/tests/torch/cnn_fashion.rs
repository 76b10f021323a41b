//! A short training run on real data: a small child learns Fashion-MNIST.
//!
//! Fashion-MNIST comes from the cache directory
//! (`nasfleet_data::default_cache_dir()/fashion-mnist`), fetched there on
//! first use from Debian's `dataset-fashion-mnist` or the dataset's site.
//! Ten balanced classes: chance is 0.10. A three-layer child (pooled after
//! its first layer) trained three epochs on 4,000 images at 14×14 reached
//! 0.78 validation accuracy on 1,000 held-out training images (in ~20 s on
//! one CPU thread); the test asks for at least 0.60, six times chance.

use nasfleet_core::config::{LrSchedule, TrainConfig};
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::trainer::{BasicContext, TrainJob, Trainer};
use nasfleet_core::{ArchLimits, Architecture};
use nasfleet_torch::cnn::CnnTrainer;
use nasfleet_torch::tch::Device;

const CHANCE: f64 = 0.10;
const REQUIRED: f64 = 0.60;

#[test]
fn a_small_child_learns_fashion_mnist_far_above_chance() {
    let arch = Architecture::from_json(
        br#"{"version":1,"space":"cnn","layers":[
        {"filter_height":3,"filter_width":3,"filters":24,"inputs":[]},
        {"filter_height":3,"filter_width":3,"filters":48,"inputs":[0]},
        {"filter_height":3,"filter_width":3,"filters":64,"inputs":[0,1]}],"max_pool_after":[0]}"#,
        &ArchLimits::default(),
    )
    .unwrap();
    let mut train = TrainConfig {
        dataset: "fashion-mnist".into(),
        epochs: 3,
        batch_size: 64,
        lr: 0.1,
        train_size: 4000,
        valid_size: 1000,
        schedule: LrSchedule::Cosine,
        ..TrainConfig::default()
    };
    train.image.resolution = Some(14);
    train.image.crop_padding = 0;
    train.image.class_balanced = true;
    let job = TrainJob { job_id: "fashion".into(), arch, train, reward: RewardConfig::default(), seed: 1 };

    // One intra-op thread: see `CnnTrainer::with_cpu_threads`.
    let mut trainer = CnnTrainer::new(nasfleet_data::default_cache_dir(), Device::Cpu).with_cpu_threads(1);
    let mut ctx = BasicContext { verbose: true, ..Default::default() };
    let out = trainer.train(&job, &mut ctx).unwrap();

    let best = out.metrics.iter().filter_map(|m| m.valid_accuracy).fold(0.0, f64::max);
    eprintln!("Fashion-MNIST (4,000 train / 1,000 valid, 14x14, 3 epochs): best valid accuracy {best:.4}");
    assert!(best >= REQUIRED, "validation accuracy {best} is not ≥ {REQUIRED} (chance {CHANCE})");
    assert!((out.reward - best.powi(3)).abs() < 1e-12);
    assert!(out.metrics.last().unwrap().train_loss < out.metrics[0].train_loss);
}
