//! [`LmTrainer`]: trains a recurrent-cell child as a language model and turns
//! its validation perplexity into the paper's reward, `c / ppl²`.
//!
//! One epoch is a pass over the training stream in BPTT segments, the hidden
//! state carried (detached) from one segment to the next and reset at the
//! start of every epoch and evaluation; then the validation perplexity
//! `exp(mean cross-entropy)` is measured without dropout and reported as
//! progress. The reward uses the best validation perplexity of all epochs
//! (the usual early-stopping choice; the paper says only "validation
//! perplexity").
//!
//! Exact resumption: after every epoch the weights, the epoch count, the
//! metrics and the ChaCha8 RNG that drives initialisation and every dropout
//! mask go to `lm.ckpt` in the job's checkpoint directory. Plain SGD has no
//! other state (the learning rate follows from the epoch) and the data order
//! is fixed, so a resumed child computes the same losses bit for bit on the
//! CPU as one that was never stopped.
//!
//! Failure kinds: a malformed job (not a cell, not a perplexity reward, bad
//! `[train.lm]`, unknown dataset, over the parameter budget, a slice too
//! small to batch) is permanent; missing corpus files or an unwritable
//! checkpoint are retryable (another worker, or a later attempt, may have
//! them); a NaN or infinite loss is not an error but a finished child with
//! reward 0 and a note saying where it diverged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Reduction, Tensor};

use nasfleet_core::config::{LmOptimizer, LmTrainConfig};
use nasfleet_core::early_stop::RungDecision;
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::space::rnn_cell::CellArch;
use nasfleet_core::trainer::{EpochMetrics, TrainContext, TrainError, TrainJob, TrainOutcome, Trainer};
use nasfleet_core::Architecture;
use nasfleet_data::Corpus;

use super::cell::CellState;
use super::checkpoint::{self, Blob, Identity, MetricBits, State};
use super::data::{batchify, prefix, segments, LmDataset};
use super::lm::{copy_into, Dropouts, LanguageModel, LmInit, LmShape};
use super::sgd::Sgd;
use crate::optim::Adam;

/// How often (in batches) the running training loss is read back to check
/// for divergence. Reading it every batch would make a GPU wait for each
/// step; a diverged child wastes at most this many batches.
const DIVERGENCE_CHECK_EVERY: usize = 16;

/// Bits per character from a per-character perplexity: log2(e) × the mean
/// cross-entropy in nats, i.e. log2(ppl).
pub fn bits_per_char(perplexity: f64) -> f64 {
    perplexity.log2()
}

/// Everything a finished language-model child reports, beyond the reward.
#[derive(Debug, Clone, PartialEq)]
pub struct LmReport {
    /// Reward, per-epoch metrics and notes, as [`Trainer::train`] returns them.
    pub outcome: TrainOutcome,
    /// `ptb`, `ptb-char`, `austen` or `austen-char`.
    pub dataset: &'static str,
    /// Whether the corpus is character level.
    pub char_level: bool,
    /// Vocabulary size (symbols, at character level).
    pub vocab: usize,
    /// The hidden size used (solved from `match_params` when that is set).
    pub hidden: usize,
    /// Parameters of the model.
    pub params: u64,
    /// Best validation perplexity over the epochs (the reward's input).
    pub best_valid_perplexity: Option<f64>,
    /// With the final weights; only with `train.lm.evaluate_test`.
    pub test_perplexity: Option<f64>,
    /// The epoch a checkpoint was resumed after, if one was.
    pub resumed_after_epoch: Option<usize>,
}

impl LmReport {
    /// Best validation bits per character (character-level corpora only).
    pub fn valid_bits_per_char(&self) -> Option<f64> {
        self.char_level.then_some(self.best_valid_perplexity?).map(bits_per_char)
    }

    /// Test bits per character (character-level corpora with `evaluate_test`).
    pub fn test_bits_per_char(&self) -> Option<f64> {
        self.char_level.then_some(self.test_perplexity?).map(bits_per_char)
    }
}

/// Trains recurrent-cell children as language models on one device.
#[derive(Debug)]
pub struct LmTrainer {
    data_dir: PathBuf,
    device: Device,
    cpu_threads: usize,
    /// Loaded corpora, kept across jobs: parsing Austen takes seconds, a
    /// child on a GPU not much more.
    corpora: HashMap<LmDataset, Arc<Corpus>>,
}

/// The optimiser of one child, with its state.
enum Optim {
    Sgd,
    Adam(Adam),
}

impl Optim {
    fn is_adam(&self) -> bool {
        matches!(self, Optim::Adam(_))
    }

    fn step(&mut self, params: &[(String, Tensor)], lr: f64, cfg: &LmTrainConfig) {
        match self {
            Optim::Sgd => Sgd { lr, weight_decay: cfg.weight_decay, grad_clip: cfg.grad_clip }.step(params),
            Optim::Adam(adam) => adam.update(params, lr, cfg.weight_decay, cfg.grad_clip),
        }
    }
}

enum Interrupt {
    Stop,
    Diverged(String),
}

fn permanent(message: impl Into<String>) -> TrainError {
    TrainError::Permanent(message.into())
}

impl LmTrainer {
    /// `data_dir` holds the user's PTB files (`ptb.*.txt` in `data_dir/ptb/`
    /// or `data_dir`) and receives the prepared Austen corpus
    /// (`data_dir/austen/`); see [`super::data`].
    /// On the CPU each job runs on one libtorch thread unless
    /// [`LmTrainer::with_cpu_threads`] says otherwise.
    pub fn new(data_dir: impl Into<PathBuf>, device: Device) -> Self {
        LmTrainer { data_dir: data_dir.into(), device, cpu_threads: 1, corpora: HashMap::new() }
    }

    /// On the CPU, run libtorch's operators on `threads` threads, set on the
    /// training thread at the start of every job (0 leaves libtorch's
    /// choice). One by default, as for CNN children
    /// ([`crate::cnn::CnnTrainer::with_cpu_threads`] says why): a cell step
    /// is dozens of operators on `[batch, hidden]` tensors, too small to
    /// split, and OpenMP's spin-waiting on a busy machine made one step of a
    /// hidden-64 child 10× slower with two threads than with one (measured
    /// with `bench_lm_step` on the shared 2-core development machine). One
    /// thread also fixes the order of every reduction, which exact
    /// resumption relies on.
    pub fn with_cpu_threads(mut self, threads: usize) -> Self {
        self.cpu_threads = threads;
        self
    }

    /// The directory the corpora are found in or prepared into.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The device children train on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Uses `corpus` for `dataset` instead of loading it from disk.
    pub fn insert_corpus(&mut self, dataset: LmDataset, corpus: Corpus) {
        self.corpora.insert(dataset, Arc::new(corpus));
    }

    /// The corpus of `dataset`, loaded (and for Austen prepared) once.
    pub fn corpus(&mut self, dataset: LmDataset) -> Result<Arc<Corpus>, TrainError> {
        if let Some(c) = self.corpora.get(&dataset) {
            return Ok(c.clone());
        }
        let corpus = Arc::new(
            dataset.load(&self.data_dir).map_err(|e| TrainError::Retryable(format!("dataset {}: {e}", dataset.name())))?,
        );
        self.corpora.insert(dataset, corpus.clone());
        Ok(corpus)
    }

    /// Trains one child and reports everything measured.
    pub fn train_lm(&mut self, job: &TrainJob, ctx: &mut dyn TrainContext) -> Result<LmReport, TrainError> {
        let Architecture::RnnCell(arch) = &job.arch else {
            return Err(permanent(format!(
                "the language-model trainer trains rnn-cell architectures; this job holds a {} architecture",
                job.arch.kind()
            )));
        };
        if !matches!(job.reward, RewardConfig::Perplexity { .. }) {
            return Err(permanent("a language-model child needs a perplexity reward (reward.kind = \"perplexity\")"));
        }
        let cfg = &job.train.lm;
        cfg.check().map_err(permanent)?;
        if job.train.epochs == 0 {
            return Err(permanent("train.epochs must be at least 1"));
        }
        let dataset = LmDataset::resolve(&job.train.dataset, cfg.char_level).map_err(permanent)?;
        let corpus = self.corpus(dataset)?;
        let vocab = corpus.vocab.len();
        let shape = lm_shape(arch, cfg, vocab)?;
        let params = shape.param_count(arch.base);
        if let Some(max) = cfg.max_params {
            if params > max {
                return Err(permanent(format!(
                    "over budget: the child has {params} parameters (hidden {}, vocabulary {vocab}), \
                     train.lm.max_params is {max}",
                    shape.hidden
                )));
            }
        }
        let dev = self.device;
        if dev == Device::Cpu && self.cpu_threads > 0 {
            tch::set_num_threads(self.cpu_threads.min(i32::MAX as usize) as i32);
        }
        let train_tokens = prefix(&corpus.train, cfg.max_train_tokens);
        let train_data = batchify(train_tokens, cfg.batch_size, dev, "training split").map_err(permanent)?;
        let valid_data =
            batchify(prefix(&corpus.valid, cfg.max_valid_tokens), cfg.eval_batch_size, dev, "validation split")
                .map_err(permanent)?;
        let test_data = if cfg.evaluate_test {
            Some(
                batchify(prefix(&corpus.test, cfg.max_valid_tokens), cfg.eval_batch_size, dev, "test split")
                    .map_err(permanent)?,
            )
        } else {
            None
        };

        let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
        let init = LmInit { range: cfg.init_range, cell_range: cfg.cell_init_gain / (shape.hidden as f64).sqrt() };
        let mut model = LanguageModel::new(dev, arch, shape, init, &mut rng).map_err(|e| permanent(e.to_string()))?;
        if cfg.unigram_bias_init {
            model.init_output_bias_unigram(train_tokens);
        }
        let identity = Identity {
            job_id: job.job_id.clone(),
            arch: job.arch.to_json(),
            train: serde_json::to_string(&job.train).map_err(|e| permanent(format!("cannot encode the recipe: {e}")))?,
            seed: job.seed,
        };
        let mut optim = match cfg.optimizer {
            LmOptimizer::Sgd => Optim::Sgd,
            LmOptimizer::Adam => Optim::Adam(Adam::new(model.params())),
        };
        let mut metrics: Vec<EpochMetrics> = Vec::new();
        let mut epochs_done = 0;
        let mut notes: Vec<String> = Vec::new();
        let mut resumed_after_epoch = None;
        if let Some(dir) = ctx.checkpoint_dir() {
            match restore(dir, &identity, &model, &mut optim) {
                Ok(Some(state)) => {
                    epochs_done = state.epochs_done;
                    metrics = state.metrics.iter().map(EpochMetrics::from).collect();
                    rng = state.rng;
                    resumed_after_epoch = Some(epochs_done);
                }
                Ok(None) => {}
                // A checkpoint we cannot use costs time, not correctness: start over.
                Err(why) => notes.push(format!("started afresh: {why}")),
            }
        }

        let dropouts = Dropouts {
            embed: cfg.embed_dropout,
            input: cfg.input_dropout,
            recurrent: cfg.recurrent_dropout,
            output: cfg.output_dropout,
        };
        let report = |outcome: TrainOutcome, metrics: &[EpochMetrics], test: Option<f64>| LmReport {
            outcome,
            dataset: dataset.name(),
            char_level: dataset.char_level,
            vocab,
            hidden: shape.hidden as usize,
            params,
            best_valid_perplexity: best_perplexity(metrics),
            test_perplexity: test,
            resumed_after_epoch,
        };
        let diverged = |why: String, metrics: Vec<EpochMetrics>, mut notes: Vec<String>| {
            notes.push(format!("diverged: {why}"));
            let outcome = TrainOutcome { reward: 0.0, metrics: metrics.clone(), note: Some(notes.join("; ")), cost: None, stopped_at: None };
            report(outcome, &metrics, None)
        };

        // A resumed child first hears its last checkpointed epoch's decision
        // again (recorded, maybe as a stop, before a preemption).
        let mut stopped_at = None;
        if !metrics.is_empty() && ctx.epoch_end(&metrics) == RungDecision::Stop {
            stopped_at = Some(metrics.len());
        }
        let first = if stopped_at.is_some() { job.train.epochs + 1 } else { epochs_done + 1 };
        for epoch in first..=job.train.epochs {
            let started = Instant::now();
            let decay_steps = epoch.saturating_sub(cfg.lr_decay_start) as i32;
            let lr = cfg.lr * cfg.lr_decay.powi(decay_steps);
            let run = Epoch { epoch, lr, cfg, dropouts: &dropouts };
            let train_loss = match train_epoch(&mut model, &train_data, &run, &mut optim, &mut rng, ctx) {
                Ok(loss) => loss,
                Err(Interrupt::Stop) => return Err(TrainError::Preempted { epochs_done: epoch - 1 }),
                Err(Interrupt::Diverged(why)) => return Ok(diverged(why, metrics, notes)),
            };
            let valid_nats = evaluate(&model, &valid_data, cfg.bptt as i64);
            let m = EpochMetrics {
                epoch,
                train_loss,
                valid_accuracy: None,
                valid_perplexity: Some(valid_nats.exp()),
                seconds: started.elapsed().as_secs_f64(),
            };
            ctx.progress(&m);
            metrics.push(m);
            if !valid_nats.exp().is_finite() {
                return Ok(diverged(format!("validation perplexity is {} after epoch {epoch}", valid_nats.exp()), metrics, notes));
            }
            if let Some(dir) = ctx.checkpoint_dir() {
                let state = State {
                    identity: identity.clone(),
                    epochs_done: epoch,
                    metrics: metrics.iter().map(MetricBits::from).collect(),
                    rng: rng.clone(),
                    adam_step: match &optim {
                        Optim::Sgd => None,
                        Optim::Adam(a) => Some(a.step),
                    },
                };
                save(dir, &state, &model, &optim)?;
            }
            if ctx.epoch_end(&metrics) == RungDecision::Stop {
                stopped_at = Some(epoch);
                break;
            }
            if epoch < job.train.epochs && ctx.should_stop() {
                return Err(TrainError::Preempted { epochs_done: epoch });
            }
        }

        let test = test_data.map(|t| evaluate(&model, &t, cfg.bptt as i64).exp());
        let best = best_perplexity(&metrics);
        let reward = best.and_then(|p| job.reward.from_perplexity(p)).unwrap_or(0.0);
        if dataset.char_level {
            let bpc = |p: Option<f64>| p.map_or("-".to_string(), |p| format!("{:.4}", bits_per_char(p)));
            notes.push(format!("bits per character: best valid {}, test {}", bpc(best), bpc(test)));
        } else if let Some(t) = test {
            notes.push(format!("test perplexity {t:.2}"));
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        let outcome = TrainOutcome { reward, metrics: metrics.clone(), note, cost: None, stopped_at };
        Ok(report(outcome, &metrics, test))
    }
}

impl Trainer for LmTrainer {
    fn train(&mut self, job: &TrainJob, ctx: &mut dyn TrainContext) -> Result<TrainOutcome, TrainError> {
        self.train_lm(job, ctx).map(|r| r.outcome)
    }
}

/// The model's sizes for a job: the configured hidden size, or the largest
/// one within `match_params`.
pub fn lm_shape(arch: &CellArch, cfg: &LmTrainConfig, vocab: usize) -> Result<LmShape, TrainError> {
    let mut shape = LmShape {
        vocab: vocab as i64,
        hidden: cfg.hidden as i64,
        layers: cfg.layers,
        tie_weights: cfg.tie_weights,
        leaf_bias: cfg.leaf_bias,
    };
    if let Some(target) = cfg.match_params {
        shape.hidden = shape.hidden_for_budget(arch.base, target).ok_or_else(|| {
            permanent(format!(
                "train.lm.match_params = {target} is too small for any hidden size with a {vocab}-word vocabulary"
            ))
        })?;
    }
    Ok(shape)
}

fn best_perplexity(metrics: &[EpochMetrics]) -> Option<f64> {
    metrics.iter().filter_map(|m| m.valid_perplexity).filter(|p| p.is_finite()).min_by(f64::total_cmp)
}

/// What one training epoch needs besides the model, data and state.
struct Epoch<'a> {
    epoch: usize,
    lr: f64,
    cfg: &'a LmTrainConfig,
    dropouts: &'a Dropouts,
}

fn train_epoch(
    model: &mut LanguageModel,
    data: &Tensor,
    run: &Epoch<'_>,
    optim: &mut Optim,
    rng: &mut ChaCha8Rng,
    ctx: &dyn TrainContext,
) -> Result<f64, Interrupt> {
    let (steps, batch) = (data.size()[0], data.size()[1]);
    let epoch = run.epoch;
    let mut state = model.zero_state(batch);
    let mut total = Tensor::zeros([], (Kind::Double, model.device()));
    let mut count = 0i64;
    for (n, (start, len)) in segments(steps, run.cfg.bptt as i64).enumerate() {
        if ctx.should_stop() {
            return Err(Interrupt::Stop);
        }
        let input = data.narrow(0, start, len);
        let target = data.narrow(0, start + 1, len).reshape([-1]);
        let masks = model.draw_masks(run.dropouts, batch, rng);
        let (logits, next) = model.forward(&input, &state, Some(&masks));
        let loss = logits.cross_entropy_for_logits(&target);
        model.zero_grad();
        loss.backward();
        optim.step(model.params(), run.lr, run.cfg);
        state = next.iter().map(CellState::detach).collect();
        total += loss.detach().to_kind(Kind::Double) * (len * batch) as f64;
        count += len * batch;
        if (n + 1) % DIVERGENCE_CHECK_EVERY == 0 {
            let so_far = total.double_value(&[]) / count as f64;
            if !so_far.is_finite() {
                return Err(Interrupt::Diverged(format!(
                    "training loss is {so_far} at epoch {epoch} (by batch {})",
                    n + 1
                )));
            }
        }
    }
    let mean = total.double_value(&[]) / count.max(1) as f64;
    if !mean.is_finite() {
        return Err(Interrupt::Diverged(format!("training loss is {mean} at epoch {epoch}")));
    }
    Ok(mean)
}

/// Mean cross-entropy (nats per token) of `data` without dropout.
pub(crate) fn evaluate(model: &LanguageModel, data: &Tensor, bptt: i64) -> f64 {
    tch::no_grad(|| {
        let (steps, batch) = (data.size()[0], data.size()[1]);
        let mut state = model.zero_state(batch);
        let mut total = Tensor::zeros([], (Kind::Double, model.device()));
        let mut count = 0i64;
        for (start, len) in segments(steps, bptt) {
            let input = data.narrow(0, start, len);
            let target = data.narrow(0, start + 1, len).reshape([-1]);
            let (logits, next) = model.forward(&input, &state, None);
            let sum = logits.cross_entropy_loss::<Tensor>(&target, None, Reduction::Sum, -100, 0.0);
            total += sum.to_kind(Kind::Double);
            count += len * batch;
            state = next;
        }
        total.double_value(&[]) / count.max(1) as f64
    })
}

/// Every tensor of the state: the weights, then Adam's m and v.
fn state_tensors<'a>(model: &'a LanguageModel, optim: &'a Optim) -> Vec<(String, &'a Tensor)> {
    let params = model.params();
    let mut out: Vec<(String, &Tensor)> = params.iter().map(|(n, p)| (n.clone(), p)).collect();
    if let Optim::Adam(a) = optim {
        out.extend(params.iter().zip(&a.m).map(|((n, _), m)| (format!("adam_m/{n}"), m)));
        out.extend(params.iter().zip(&a.v).map(|((n, _), v)| (format!("adam_v/{n}"), v)));
    }
    out
}

fn save(dir: &Path, state: &State, model: &LanguageModel, optim: &Optim) -> Result<(), TrainError> {
    let blobs: Vec<Blob> = state_tensors(model, optim).into_iter().map(|(name, t)| Blob::of(name, t)).collect();
    let bytes = checkpoint::encode(state, &blobs).map_err(permanent)?;
    checkpoint::write(dir, &bytes).map_err(|e| TrainError::Retryable(format!("cannot write the checkpoint {e}")))
}

/// Loads this job's checkpoint into `model` and `optim`: Ok(None) when there
/// is none, Err(why) when there is one that does not belong to this job or
/// cannot be read (nothing is written then).
fn restore(dir: &Path, identity: &Identity, model: &LanguageModel, optim: &mut Optim) -> Result<Option<State>, String> {
    let Some(bytes) = checkpoint::read(dir).map_err(|e| format!("cannot read the checkpoint {e}"))? else {
        return Ok(None);
    };
    let (state, blobs) = checkpoint::decode(&bytes)?;
    if &state.identity != identity {
        return Err(format!("the checkpoint in {} belongs to another job or recipe", dir.display()));
    }
    let targets = state_tensors(model, optim);
    if blobs.len() != targets.len() {
        return Err(format!("the checkpoint holds {} tensors, this child {}", blobs.len(), targets.len()));
    }
    for (b, (name, t)) in blobs.iter().zip(&targets) {
        if &b.name != name || b.shape != t.size() {
            return Err(format!("checkpoint tensor {} {:?} does not match {name} {:?}", b.name, b.shape, t.size()));
        }
    }
    match (&state.adam_step, optim.is_adam()) {
        (Some(_), true) | (None, false) => {}
        _ => return Err("the checkpoint was written with another optimiser".into()),
    }
    for (b, (_, t)) in blobs.iter().zip(&targets) {
        copy_into(t, &b.data);
    }
    if let (Optim::Adam(a), Some(step)) = (optim, state.adam_step) {
        a.step = step;
    }
    Ok(Some(state))
}
