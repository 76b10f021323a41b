//! The CNN trainer's paths on tiny in-memory data (CPU, seconds): reward,
//! budget refusals, divergence, preemption and bit-identical resume.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use nasfleet_core::config::{LrSchedule, TrainConfig};
use nasfleet_core::cost::CostMetric;
use nasfleet_core::reward::{CostMode, CostRule, RewardConfig};
use nasfleet_core::space::cnn::CnnArch;
use nasfleet_core::trainer::{EpochMetrics, TrainContext, TrainError, TrainJob, Trainer};
use nasfleet_core::{ArchLimits, Architecture};
use nasfleet_data::ImageSet;
use nasfleet_torch::cnn::CnnTrainer;
use nasfleet_torch::tch::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ARCH: &str = r#"{"version":1,"space":"cnn","layers":[
 {"filter_height":3,"filter_width":3,"filters":24,"inputs":[]},
 {"filter_height":3,"filter_width":1,"stride_height":2,"stride_width":2,"filters":24,"inputs":[0]},
 {"filter_height":1,"filter_width":3,"filters":36,"inputs":[0,1]}],"max_pool_after":[0]}"#;

fn arch() -> Architecture {
    Architecture::from_json(ARCH.as_bytes(), &ArchLimits::default()).unwrap()
}

/// 300 tiny 1×8×8 images whose class is drawn as a bright 2×2 square at one
/// of ten positions over noise: learnable, but not in one step.
fn toy_set() -> ImageSet {
    toy_set_seeded(11)
}

fn toy_set_seeded(seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = 300;
    let mut pixels = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 10) as u8;
        let (r, c) = ((label as usize / 5) * 4 + 1, (label as usize % 5) + 1);
        for y in 0..8 {
            for x in 0..8 {
                let on = (r..r + 2).contains(&y) && (c..c + 2).contains(&x);
                pixels.push(if on { 200 + rng.gen_range(0..56) } else { rng.gen_range(0..100) });
            }
        }
        labels.push(label);
    }
    ImageSet::new(pixels, labels, [1, 8, 8], 10).unwrap()
}

fn recipe(epochs: usize) -> TrainConfig {
    let mut cfg = TrainConfig {
        dataset: "toy".into(),
        epochs,
        batch_size: 32,
        lr: 0.05,
        train_size: 200,
        valid_size: 100,
        schedule: LrSchedule::Cosine,
        ..TrainConfig::default()
    };
    cfg.image.crop_padding = 1;
    cfg.image.flip = false;
    cfg
}

fn job(train: TrainConfig) -> TrainJob {
    TrainJob { job_id: "job-1".into(), arch: arch(), train, reward: RewardConfig::default(), seed: 7 }
}

/// One intra-op thread: tests run in parallel, and bit-identical resume
/// needs the same thread count in both runs.
fn trainer() -> CnnTrainer {
    CnnTrainer::new(std::env::temp_dir(), Device::Cpu).with_dataset("toy", toy_set()).with_cpu_threads(1)
}

/// A context that records progress and asks to stop after a number of
/// epochs or of stop-flag polls.
struct Ctx {
    dir: Option<PathBuf>,
    history: Vec<EpochMetrics>,
    stop_after_epochs: Option<usize>,
    stop_after_polls: Option<usize>,
    polls: Cell<usize>,
}

impl Ctx {
    fn new(dir: Option<&Path>) -> Ctx {
        Ctx { dir: dir.map(Path::to_path_buf), history: vec![], stop_after_epochs: None, stop_after_polls: None, polls: Cell::new(0) }
    }
}

impl TrainContext for Ctx {
    fn progress(&mut self, m: &EpochMetrics) {
        self.history.push(m.clone());
    }
    fn should_stop(&self) -> bool {
        self.polls.set(self.polls.get() + 1);
        self.stop_after_epochs.is_some_and(|e| self.history.len() >= e)
            || self.stop_after_polls.is_some_and(|p| self.polls.get() > p)
    }
    fn checkpoint_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

fn losses(m: &[EpochMetrics]) -> Vec<(usize, u64, Option<f64>)> {
    // Bit patterns: "the same" means identical, not close.
    m.iter().map(|e| (e.epoch, e.train_loss.to_bits(), e.valid_accuracy)).collect()
}

#[test]
fn reward_is_the_cube_of_the_best_of_the_last_five_accuracies() {
    let mut ctx = Ctx::new(None);
    let out = trainer().train(&job(recipe(7)), &mut ctx).unwrap();
    assert_eq!(out.metrics.len(), 7);
    assert_eq!(ctx.history, out.metrics, "every epoch is reported as progress");
    assert_eq!(out.note, None);
    let accs: Vec<f64> = out.metrics.iter().map(|m| m.valid_accuracy.unwrap()).collect();
    let best = accs[2..].iter().copied().fold(0.0, f64::max);
    assert_eq!(out.reward, best.powi(3));
    // The toy task is learnable: the loss falls and accuracy beats chance (0.1).
    assert!(out.metrics[6].train_loss < out.metrics[0].train_loss, "{:?}", out.metrics);
    assert!(best > 0.3, "{accs:?}");
}

#[test]
fn a_cost_rule_weighs_the_childs_size_into_its_reward_and_the_size_is_reported() {
    let plain = trainer().train(&job(recipe(2)), &mut Ctx::new(None)).unwrap();
    let cost = plain.cost.expect("a CNN child reports its size");
    let graph = arch_cnn().resolve((1, 8, 8), 10);
    assert_eq!((cost.params, cost.flops), (graph.params, graph.flops()), "counted for the dataset's shape");
    // MnasNet's hard rule with a target of half the child's parameters:
    // the same training, the reward divided by params / target = 2.
    let mut j = job(recipe(2));
    j.reward = RewardConfig::Accuracy {
        last_k: 5,
        power: 3.0,
        cost: Some(CostRule { metric: CostMetric::Params, target: cost.params as f64 / 2.0, mode: CostMode::Hard, weight: -0.07 }),
    };
    let weighed = trainer().train(&j, &mut Ctx::new(None)).unwrap();
    assert_eq!(losses(&weighed.metrics), losses(&plain.metrics), "the rule changes the reward, not the training");
    assert!((weighed.reward - plain.reward / 2.0).abs() < 1e-12, "{} vs {}", weighed.reward, plain.reward);
}

fn arch_cnn() -> CnnArch {
    match arch() {
        Architecture::Cnn(a) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_final_training_scores_the_test_set_after_the_same_training() {
    let j = job(recipe(7));
    let searched = trainer().train(&j, &mut Ctx::new(None)).unwrap();
    // Without a test set the final training is refused before it starts.
    let mut ctx = Ctx::new(None);
    let err = trainer().train_final(&j, &mut ctx).unwrap_err();
    assert!(matches!(&err, TrainError::Permanent(m) if m.contains("without a test set")), "{err:?}");
    assert!(ctx.history.is_empty(), "refused before training");
    // With one: the same training, bit for bit, then the test images scored.
    let test = toy_set_seeded(12);
    let r = trainer().with_test_set("toy", test.clone()).train_final(&j, &mut Ctx::new(None)).unwrap();
    assert_eq!(losses(&r.outcome.metrics), losses(&searched.metrics));
    assert_eq!(r.outcome.reward, searched.reward);
    assert_eq!(r.test_images, test.len());
    let acc = r.test_accuracy.unwrap();
    let valid = r.outcome.metrics.last().and_then(|m| m.valid_accuracy).unwrap();
    eprintln!("test accuracy {acc}, last validation accuracy {valid}");
    // Fresh images of the same learnable task: well above chance (0.1).
    assert!(acc > 0.3, "test accuracy {acc}");
    assert!(r.cost.params > 0);
}

#[test]
fn resume_from_a_checkpoint_continues_bit_for_bit() {
    let uninterrupted = trainer().train(&job(recipe(5)), &mut Ctx::new(None)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut first = Ctx::new(Some(dir.path()));
    first.stop_after_epochs = Some(2);
    let err = trainer().train(&job(recipe(5)), &mut first).unwrap_err();
    assert_eq!(err, TrainError::Preempted { epochs_done: 2 });
    assert!(dir.path().join("cnn-manifest.json").is_file());

    // A fresh trainer (a new worker) picks the job up from the checkpoint.
    let mut second = Ctx::new(Some(dir.path()));
    let resumed = trainer().train(&job(recipe(5)), &mut second).unwrap();
    assert_eq!(second.history.iter().map(|m| m.epoch).collect::<Vec<_>>(), vec![3, 4, 5], "only the remaining epochs run");
    assert_eq!(losses(&resumed.metrics), losses(&uninterrupted.metrics));
    assert_eq!(resumed.reward, uninterrupted.reward);
}

#[test]
fn a_stop_in_the_middle_of_an_epoch_resumes_from_the_previous_epoch() {
    let uninterrupted = trainer().train(&job(recipe(3)), &mut Ctx::new(None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut first = Ctx::new(Some(dir.path()));
    // 7 steps per epoch (200 / 32): stop at step 3 of epoch 2.
    first.stop_after_polls = Some(7 + 3);
    assert_eq!(trainer().train(&job(recipe(3)), &mut first).unwrap_err(), TrainError::Preempted { epochs_done: 1 });
    let resumed = trainer().train(&job(recipe(3)), &mut Ctx::new(Some(dir.path()))).unwrap();
    assert_eq!(losses(&resumed.metrics), losses(&uninterrupted.metrics));
}

#[test]
fn another_childs_checkpoint_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Ctx::new(Some(dir.path()));
    first.stop_after_epochs = Some(1);
    let _ = trainer().train(&job(recipe(2)), &mut first).unwrap_err();
    let mut other = job(recipe(2));
    other.seed = 8;
    let mut ctx = Ctx::new(Some(dir.path()));
    let out = trainer().train(&other, &mut ctx).unwrap();
    assert_eq!(ctx.history.len(), 2, "a different seed is a different child: it trains from epoch 1");
    assert_eq!(out.metrics.len(), 2);
}

#[test]
fn an_unreadable_checkpoint_is_reported_and_training_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cnn-manifest.json"), b"{ not json").unwrap();
    let clean = trainer().train(&job(recipe(2)), &mut Ctx::new(None)).unwrap();
    let out = trainer().train(&job(recipe(2)), &mut Ctx::new(Some(dir.path()))).unwrap();
    let note = out.note.unwrap();
    assert!(note.starts_with("checkpoint ignored, trained from the start: checkpoint "), "{note}");
    assert!(note.contains("cnn-manifest.json"), "{note}");
    assert_eq!(losses(&out.metrics), losses(&clean.metrics));
    // The broken manifest was replaced by a good one.
    let again = trainer().train(&job(recipe(2)), &mut Ctx::new(Some(dir.path()))).unwrap();
    assert_eq!((again.note, losses(&again.metrics)), (None, losses(&clean.metrics)));
}

#[test]
fn a_checkpoint_that_does_not_fit_is_ignored_without_touching_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Ctx::new(Some(dir.path()));
    first.stop_after_epochs = Some(1);
    let _ = trainer().train(&job(recipe(2)), &mut first).unwrap_err();
    // Drop the last batch-norm statistic from the weights file: the flat
    // parameters and momentum still fit, and would be restored first by a
    // loader that did not check everything before writing.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cnn-manifest.json")).unwrap()).unwrap();
    let weights = dir.path().join(manifest["weights"].as_str().unwrap());
    let mut tensors = Tensor::read_safetensors(&weights).unwrap();
    let dropped = tensors.iter().rposition(|(n, _)| n.starts_with("buffer/")).unwrap();
    let (name, _) = tensors.remove(dropped);
    Tensor::write_safetensors(&tensors, &weights).unwrap();

    let clean = trainer().train(&job(recipe(2)), &mut Ctx::new(None)).unwrap();
    let mut ctx = Ctx::new(Some(dir.path()));
    let out = trainer().train(&job(recipe(2)), &mut ctx).unwrap();
    let note = out.note.unwrap();
    assert!(note.starts_with("checkpoint ignored, trained from the start:") && note.contains(&name), "{note}");
    assert_eq!(ctx.history.len(), 2, "both epochs trained");
    assert_eq!(losses(&out.metrics), losses(&clean.metrics), "the fresh network was not partly overwritten");
}

#[test]
fn a_nan_loss_ends_the_child_with_reward_zero_and_a_reason() {
    let mut cfg = recipe(3);
    cfg.lr = 1e30; // finite, accepted, and certain to blow the weights up
    cfg.schedule = LrSchedule::Constant;
    let mut ctx = Ctx::new(None);
    let out = trainer().train(&job(cfg), &mut ctx).unwrap();
    assert_eq!(out.reward, 0.0);
    let note = out.note.unwrap();
    assert!(note.starts_with("diverged: training loss is NaN at epoch 1, step "), "{note}");
    assert!(out.metrics.is_empty() && ctx.history.is_empty(), "a diverged epoch has no metrics");
}

fn permanent(err: TrainError) -> String {
    match err {
        TrainError::Permanent(m) => m,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[test]
fn over_budget_children_are_refused_before_training_with_the_numbers() {
    let t = trainer();
    let cfg = recipe(1);
    let Architecture::Cnn(a) = arch() else { unreachable!() };
    let cost = t.child_cost(&a, &cfg).unwrap();
    // 216+48, then 3·1·24·24+48 = 1776, then (24+24)·1·3·36+72 = 5256; layers
    // 0 and 1 are consumed, so the classifier sees layer 2 alone: 36·10+10.
    assert_eq!(cost.params, 264 + 1776 + 5256 + 370);

    let mut over = recipe(1);
    over.image.max_params = Some(cost.params - 1);
    over.image.max_flops = Some(cost.flops - 1);
    let mut ctx = Ctx::new(None);
    let msg = permanent(trainer().train(&job(over), &mut ctx).unwrap_err());
    assert_eq!(
        msg,
        format!(
            "over budget: params {} > train.image.max_params {}, flops {} > train.image.max_flops {}",
            cost.params,
            cost.params - 1,
            cost.flops,
            cost.flops - 1
        )
    );
    assert_eq!(ctx.polls.get(), 0, "refused before the first step");

    let mut over = recipe(1);
    over.image.max_activation_bytes = Some(1000);
    let msg = permanent(trainer().train(&job(over), &mut Ctx::new(None)).unwrap_err());
    assert!(msg.contains(&format!("activation_bytes {} > train.image.max_activation_bytes 1000", cost.activation_bytes)), "{msg}");
    // Exactly at the caps is allowed.
    let mut at = recipe(1);
    at.image.max_params = Some(cost.params);
    at.image.max_flops = Some(cost.flops);
    at.image.max_activation_bytes = Some(cost.activation_bytes);
    assert!(trainer().train(&job(at), &mut Ctx::new(None)).is_ok());
}

#[test]
fn wrong_inputs_are_permanent_failures_that_say_why() {
    let mut bad = recipe(1);
    bad.dataset = "imagenet".into();
    let msg = permanent(trainer().train(&job(bad), &mut Ctx::new(None)).unwrap_err());
    assert!(msg.contains("unknown dataset \"imagenet\"") && msg.contains("fashion-mnist"), "{msg}");

    let mut bad = recipe(1);
    bad.batch_size = 0;
    assert!(permanent(trainer().train(&job(bad), &mut Ctx::new(None)).unwrap_err()).contains("batch_size"));

    let mut bad = recipe(1);
    bad.lr = f64::NAN;
    assert!(permanent(trainer().train(&job(bad), &mut Ctx::new(None)).unwrap_err()).contains("train.lr = NaN"));

    let mut bad = recipe(1);
    bad.train_size = 290; // 290 + 100 > 300
    let msg = permanent(trainer().train(&job(bad), &mut Ctx::new(None)).unwrap_err());
    assert!(msg.contains("the set has 300"), "{msg}");

    let mut j = job(recipe(1));
    j.reward = RewardConfig::Perplexity { c: 80.0 };
    assert!(permanent(trainer().train(&j, &mut Ctx::new(None)).unwrap_err()).contains("accuracy"));

    let mut j = job(recipe(1));
    j.arch = Architecture::Nb201(nasfleet_core::space::nb201::Nb201Arch::from_naslib_tuple([2; 6]).unwrap());
    assert!(permanent(trainer().train(&j, &mut Ctx::new(None)).unwrap_err()).contains("nb201"));

    // An architecture whose skip points forward cannot be built.
    let mut j = job(recipe(1));
    let Architecture::Cnn(mut a) = arch() else { unreachable!() };
    a.layers[0].inputs = vec![2];
    j.arch = Architecture::Cnn(CnnArch { ..a });
    assert!(permanent(trainer().train(&j, &mut Ctx::new(None)).unwrap_err()).contains("layers[0].inputs"));
}

#[test]
fn mixed_precision_trains_on_the_cpu_too() {
    let mut cfg = recipe(3);
    cfg.image.mixed_precision = true;
    let out = trainer().train(&job(cfg), &mut Ctx::new(None)).unwrap();
    assert!(out.reward > 0.0 && out.metrics.iter().all(|m| m.train_loss.is_finite()));
}

/// A context answering `stop` at the end of epoch `stop_at` (and logging
/// every question it was asked, by epochs trained).
struct Stopper {
    dir: Option<PathBuf>,
    stop_at: usize,
    asked: Vec<usize>,
}

impl TrainContext for Stopper {
    fn progress(&mut self, _: &EpochMetrics) {}
    fn should_stop(&self) -> bool {
        false
    }
    fn checkpoint_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
    fn epoch_end(&mut self, history: &[EpochMetrics]) -> nasfleet_core::early_stop::RungDecision {
        self.asked.push(history.len());
        if history.len() >= self.stop_at {
            nasfleet_core::early_stop::RungDecision::Stop
        } else {
            nasfleet_core::early_stop::RungDecision::Continue
        }
    }
}

#[test]
fn a_stop_at_a_rung_ends_the_child_with_the_reward_of_its_epochs_and_a_resume_hears_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let j = job(recipe(5));
    let mut ctx = Stopper { dir: Some(dir.path().to_path_buf()), stop_at: 2, asked: vec![] };
    let out = trainer().train(&j, &mut ctx).unwrap();
    assert_eq!((out.stopped_at, out.metrics.len(), ctx.asked.clone()), (Some(2), 2, vec![1, 2]));
    let accs: Vec<f64> = out.metrics.iter().map(|m| m.valid_accuracy.unwrap()).collect();
    assert_eq!(Some(out.reward), j.reward.from_accuracies(&accs), "the reward rule over the epochs trained");
    // Killed before posting: the next attempt resumes from the checkpoint of
    // epoch 2, asks about it first, and stops without training on.
    let mut again = Stopper { dir: Some(dir.path().to_path_buf()), stop_at: 2, asked: vec![] };
    let resumed = trainer().train(&j, &mut again).unwrap();
    assert_eq!((resumed.stopped_at, again.asked), (Some(2), vec![2]));
    assert_eq!(losses(&resumed.metrics), losses(&out.metrics));
    assert_eq!(resumed.reward, out.reward);
}
