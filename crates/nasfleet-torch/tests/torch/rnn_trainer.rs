//! The language-model trainer's contract: exact resumption from its
//! per-epoch checkpoint (SGD and Adam, every dropout on), preemption,
//! divergence as reward 0 with a note, and which failures are permanent or
//! retryable. Runs on a small generated corpus in the PTB file format (the
//! user-supplied-PTB path), tiny shapes, CPU.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use nasfleet_core::config::{LmOptimizer, TrainConfig};
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::space::nb201::{Nb201Arch, Nb201Op};
use nasfleet_core::space::rnn_cell::CellSpace;
use nasfleet_core::trainer::{BasicContext, EpochMetrics, TrainContext, TrainError, TrainJob, Trainer};
use nasfleet_core::Architecture;
use nasfleet_torch::rnn::LmTrainer;
use nasfleet_torch::tch::Device;
use rand::{Rng, SeedableRng};

/// The paper's cell (TensorFlow Addons `NASCell`) as tokens.
const NASCELL_TOKENS: [u32; 34] =
    [0, 2, 0, 3, 0, 2, 1, 3, 0, 1, 0, 2, 0, 1, 0, 2, 1, 1, 0, 1, 1, 1, 0, 2, 1, 0, 0, 1, 1, 1, 0, 1, 8, 12];

/// Writes `ptb.{train,valid,test}.txt` of sentences from a small grammar.
fn write_ptb(dir: &Path) {
    let subjects = ["the cat", "a dog", "the old man", "she", "he", "the <unk>", "N birds"];
    let verbs = ["sat on", "looked at", "ran to", "saw", "liked"];
    let objects = ["the mat", "a tree", "the house", "her friend", "N cars", "the <unk>"];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut sentences = |n: usize| -> String {
        (0..n)
            .map(|_| {
                let s = subjects[rng.gen_range(0..subjects.len())];
                let v = verbs[rng.gen_range(0..verbs.len())];
                let o = objects[rng.gen_range(0..objects.len())];
                format!(" {s} {v} {o}\n")
            })
            .collect()
    };
    std::fs::write(dir.join("ptb.train.txt"), sentences(400)).unwrap();
    std::fs::write(dir.join("ptb.valid.txt"), sentences(60)).unwrap();
    std::fs::write(dir.join("ptb.test.txt"), sentences(60)).unwrap();
}

fn job(seed: u64, optimizer: LmOptimizer) -> TrainJob {
    let arch = CellSpace::default().decode(&NASCELL_TOKENS).unwrap();
    let mut train = TrainConfig { dataset: "ptb".into(), epochs: 3, ..Default::default() };
    let lm = &mut train.lm;
    lm.hidden = 16;
    lm.batch_size = 4;
    lm.eval_batch_size = 4;
    lm.bptt = 8;
    lm.optimizer = optimizer;
    lm.lr = if optimizer == LmOptimizer::Adam { 0.01 } else { 5.0 };
    lm.lr_decay_start = 1; // the learning rate changes every epoch
    lm.lr_decay = 0.5;
    lm.weight_decay = 1e-5;
    // Every mask drawn from the RNG, so a resumed run must restore it.
    (lm.embed_dropout, lm.input_dropout, lm.recurrent_dropout, lm.output_dropout) = (0.1, 0.2, 0.2, 0.2);
    TrainJob {
        job_id: format!("job-{seed}"),
        arch: Architecture::RnnCell(arch),
        train,
        reward: RewardConfig::Perplexity { c: 80.0 },
        seed,
    }
}

/// Asks to stop once `after` epochs have been reported.
struct StopAfter {
    dir: PathBuf,
    after: usize,
    seen: Cell<usize>,
}

impl TrainContext for StopAfter {
    fn progress(&mut self, _m: &EpochMetrics) {
        self.seen.set(self.seen.get() + 1);
    }
    fn should_stop(&self) -> bool {
        self.seen.get() >= self.after
    }
    fn checkpoint_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }
}

fn bits(m: &[EpochMetrics]) -> Vec<(usize, u64, Option<u64>)> {
    m.iter().map(|m| (m.epoch, m.train_loss.to_bits(), m.valid_perplexity.map(f64::to_bits))).collect()
}

fn setup() -> (tempfile::TempDir, LmTrainer) {
    let data = tempfile::tempdir().unwrap();
    write_ptb(data.path());
    let trainer = LmTrainer::new(data.path(), Device::Cpu);
    (data, trainer)
}

#[test]
fn a_resumed_child_continues_bit_for_bit() {
    let (data, mut trainer) = setup();
    for optimizer in [LmOptimizer::Sgd, LmOptimizer::Adam] {
        let j = job(7, optimizer);
        let whole_dir = tempfile::tempdir().unwrap();
        let mut whole_ctx = BasicContext { checkpoint_dir: Some(whole_dir.path().into()), ..Default::default() };
        let whole = trainer.train_lm(&j, &mut whole_ctx).unwrap();
        assert_eq!(whole.resumed_after_epoch, None);

        let dir = tempfile::tempdir().unwrap();
        let mut stop = StopAfter { dir: dir.path().into(), after: 1, seen: Cell::new(0) };
        let err = trainer.train(&j, &mut stop).unwrap_err();
        assert_eq!(err, TrainError::Preempted { epochs_done: 1 });
        assert!(dir.path().join("lm.ckpt").is_file());

        // A fresh trainer: nothing survives in memory, only the file. (The
        // trainer runs libtorch on one CPU thread: the same reduction order.)
        let mut again = LmTrainer::new(data.path(), Device::Cpu);
        let mut ctx = BasicContext { checkpoint_dir: Some(dir.path().into()), ..Default::default() };
        let resumed = again.train_lm(&j, &mut ctx).unwrap();
        assert_eq!(resumed.resumed_after_epoch, Some(1), "{optimizer:?}");
        assert_eq!(ctx.history.len(), 2, "only the remaining epochs run");
        assert_eq!(bits(&resumed.outcome.metrics), bits(&whole.outcome.metrics), "{optimizer:?}");
        assert_eq!(resumed.outcome.reward.to_bits(), whole.outcome.reward.to_bits());
        // The run learned something, so the comparison is not of constants.
        let m = &whole.outcome.metrics;
        assert!(m[2].train_loss < m[0].train_loss, "{optimizer:?}: {m:?}");
    }
}

#[test]
fn a_stop_request_mid_epoch_is_a_preemption_before_any_checkpoint() {
    let (_data, mut trainer) = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut stop = StopAfter { dir: dir.path().into(), after: 0, seen: Cell::new(0) };
    assert_eq!(trainer.train(&job(1, LmOptimizer::Sgd), &mut stop), Err(TrainError::Preempted { epochs_done: 0 }));
    assert!(!dir.path().join("lm.ckpt").exists());
}

#[test]
fn a_checkpoint_of_another_job_is_not_resumed() {
    let (_data, mut trainer) = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut stop = StopAfter { dir: dir.path().into(), after: 1, seen: Cell::new(0) };
    assert!(trainer.train(&job(1, LmOptimizer::Sgd), &mut stop).is_err());
    let mut ctx = BasicContext { checkpoint_dir: Some(dir.path().into()), ..Default::default() };
    let other = trainer.train_lm(&job(2, LmOptimizer::Sgd), &mut ctx).unwrap();
    assert_eq!(other.resumed_after_epoch, None);
    assert_eq!(ctx.history.len(), 3);
    let note = other.outcome.note.unwrap_or_default();
    assert!(note.contains("started afresh") && note.contains("another job"), "{note}");
}

#[test]
fn divergence_is_reward_zero_with_a_reason() {
    let (_data, mut trainer) = setup();
    let mut j = job(3, LmOptimizer::Sgd);
    j.train.lm.lr = 1e30;
    j.train.lm.grad_clip = 0.0;
    let out = trainer.train(&j, &mut BasicContext::default()).unwrap();
    assert_eq!(out.reward, 0.0);
    let note = out.note.unwrap_or_default();
    assert!(note.starts_with("diverged: ") && note.contains("epoch 1"), "{note}");
}

#[test]
fn tied_embeddings_leaf_biases_and_a_parameter_target() {
    let (_data, mut trainer) = setup();
    let mut j = job(4, LmOptimizer::Adam);
    j.train.epochs = 1;
    j.train.lm.tie_weights = true;
    j.train.lm.leaf_bias = true;
    j.train.lm.match_params = Some(20_000);
    j.train.lm.evaluate_test = true;
    let r = trainer.train_lm(&j, &mut BasicContext::default()).unwrap();
    assert!(r.params <= 20_000, "{}", r.params);
    let v = r.vocab as u64;
    let h = r.hidden as u64;
    // tied: one V·H table, softmax bias V, 2 layers of 16·H² + 8·H.
    assert_eq!(r.params, v * h + v + 2 * (16 * h * h + 8 * h));
    let bigger = v * (h + 1) + v + 2 * (16 * (h + 1) * (h + 1) + 8 * (h + 1));
    assert!(bigger > 20_000, "hidden {h} is the largest that fits");
    assert!(r.test_perplexity.is_some_and(|p| p.is_finite() && p > 1.0));
    assert!(r.outcome.note.unwrap_or_default().contains("test perplexity"));
}

fn permanent_message(r: Result<nasfleet_core::trainer::TrainOutcome, TrainError>) -> String {
    match r {
        Err(TrainError::Permanent(m)) => m,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[test]
fn malformed_jobs_are_permanent_and_missing_data_is_retryable() {
    let (_data, mut trainer) = setup();
    let ctx = &mut BasicContext::default();

    let mut j = job(1, LmOptimizer::Sgd);
    j.arch = Architecture::Nb201(Nb201Arch { ops: [Nb201Op::SkipConnect; 6] });
    assert!(permanent_message(trainer.train(&j, ctx)).contains("rnn-cell"));

    let mut j = job(1, LmOptimizer::Sgd);
    j.reward = RewardConfig::default();
    assert!(permanent_message(trainer.train(&j, ctx)).contains("perplexity reward"));

    let mut j = job(1, LmOptimizer::Sgd);
    j.train.dataset = "cifar10".into();
    assert!(permanent_message(trainer.train(&j, ctx)).contains("not a language-model corpus"));

    let mut j = job(1, LmOptimizer::Sgd);
    j.train.lm.bptt = 0;
    assert!(permanent_message(trainer.train(&j, ctx)).contains("train.lm.bptt"));

    let mut j = job(1, LmOptimizer::Sgd);
    j.train.lm.max_params = Some(1000);
    let m = permanent_message(trainer.train(&j, ctx));
    assert!(m.contains("over budget") && m.contains("1000"), "{m}");

    let mut j = job(1, LmOptimizer::Sgd);
    j.train.lm.max_valid_tokens = Some(5);
    assert!(permanent_message(trainer.train(&j, ctx)).contains("validation split"));

    // The character files are not there: another worker may have them.
    let j = { let mut j = job(1, LmOptimizer::Sgd); j.train.lm.char_level = true; j };
    match trainer.train(&j, ctx) {
        Err(TrainError::Retryable(m)) => assert!(m.contains("ptb.char.train.txt"), "{m}"),
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

/// Answers `stop` at the end of the first epoch; logs the questions.
struct StopAtFirst {
    dir: PathBuf,
    asked: Vec<usize>,
}

impl TrainContext for StopAtFirst {
    fn progress(&mut self, _m: &EpochMetrics) {}
    fn should_stop(&self) -> bool {
        false
    }
    fn checkpoint_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }
    fn epoch_end(&mut self, history: &[EpochMetrics]) -> nasfleet_core::early_stop::RungDecision {
        self.asked.push(history.len());
        nasfleet_core::early_stop::RungDecision::Stop
    }
}

#[test]
fn a_stopped_language_model_child_ends_with_the_reward_of_its_epochs_and_a_resume_hears_it_again() {
    let (_data, mut trainer) = setup();
    let j = job(3, LmOptimizer::Sgd);
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = StopAtFirst { dir: dir.path().into(), asked: vec![] };
    let out = trainer.train(&j, &mut ctx).unwrap();
    assert_eq!((out.stopped_at, out.metrics.len(), ctx.asked), (Some(1), 1, vec![1]));
    let ppl = out.metrics[0].valid_perplexity.unwrap();
    assert_eq!(Some(out.reward), j.reward.from_perplexity(ppl));
    let mut again = StopAtFirst { dir: dir.path().into(), asked: vec![] };
    let resumed = trainer.train(&j, &mut again).unwrap();
    assert_eq!((resumed.stopped_at, again.asked), (Some(1), vec![1]), "resumed, it asks about epoch 1 again and stops");
    assert_eq!(bits(&resumed.metrics), bits(&out.metrics));
}
