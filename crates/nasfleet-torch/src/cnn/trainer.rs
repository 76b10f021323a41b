//! [`CnnTrainer`]: trains one CNN child per job, the paper's way by default.
//!
//! Order of work for a job, cheapest refusal first:
//! 1. the recipe, the reward rule and the architecture are checked, and the
//!    child's shapes, parameters, FLOPs and activation memory are computed by
//!    `CnnArch::resolve` without tch: anything invalid or over budget is a
//!    permanent failure naming the numbers, before a byte is allocated;
//! 2. the dataset is read from disk once per process (plain bytes shared
//!    by every trainer), then split and moved to the device once per
//!    trainer (the next child with the same data settings reuses it);
//! 3. the network is built with weights from the child's seed, the optimiser
//!    takes its variables, and a checkpoint of this very child, if the
//!    context's directory holds one, restores weights, momentum, batch-norm
//!    statistics, the data stream and the metrics so far;
//! 4. each epoch trains on augmented batches, evaluates without gradients,
//!    checkpoints and reports its metrics; the stop flag is polled before
//!    every step. A stop abandons the current epoch (the checkpoint of the
//!    previous one is on disk; the epoch is redone on resume) and returns
//!    [`TrainError::Preempted`];
//! 5. the reward is the configured function of the validation accuracies
//!    (paper: the best of the last 5, cubed). A non-finite training loss
//!    ends the child with reward 0 and a note saying where it diverged.
//!
//! Per-step losses stay on the device and are read once per epoch, so a GPU
//! never waits for the host inside an epoch.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Reduction, Tensor};

use nasfleet_core::config::{ImageTrainConfig, LrSchedule, TrainConfig};
use nasfleet_core::cost::ArchCost;
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::early_stop::RungDecision;
use nasfleet_core::space::cnn::CnnArch;
use nasfleet_core::trainer::{EpochMetrics, TrainContext, TrainError, TrainJob, TrainOutcome, Trainer};
use nasfleet_core::Architecture;
use nasfleet_data::{DataError, ImageSet, SplitConfig};

use super::budget::ChildCost;
use super::checkpoint::{self, Manifest};
use super::data::{Augment, DeviceData, DeviceImages, Prepare};
use super::net::{resolve_checked, CnnNet};
use super::sgd::{FlatSgd, SgdConfig};
use super::CnnError;

/// Datasets a CNN job may name, besides any registered with
/// [`CnnTrainer::with_dataset`].
pub const DATASETS: [&str; 3] = ["fashion-mnist", "mnist", "cifar10"];

/// What a prepared [`DeviceData`] depends on; a job with the same key reuses it.
#[derive(Debug, Clone, PartialEq)]
struct DataKey {
    dataset: String,
    dir: Option<PathBuf>,
    resolution: Option<usize>,
    normalize: bool,
    mixed_precision: bool,
    train_size: usize,
    valid_size: usize,
    split_seed: u64,
    class_balanced: bool,
}

/// Trains CNN children on one device. Holds the prepared dataset between
/// jobs; owns no other state, so one trainer serves any number of jobs in
/// sequence (one thread owns it and its tensors).
pub struct CnnTrainer {
    data_dir: PathBuf,
    device: Device,
    cpu_threads: usize,
    registered: HashMap<String, Arc<ImageSet>>,
    registered_tests: HashMap<String, Arc<ImageSet>>,
    cache: Option<(DataKey, DeviceData)>,
}

/// A final training's result ([`CnnTrainer::train_final`]): the search
/// outcome plus the held-out test set's accuracy.
#[derive(Debug, Clone)]
pub struct CnnReport {
    /// The search outcome: reward, per-epoch metrics and notes.
    pub outcome: TrainOutcome,
    /// Accuracy of the final weights on the dataset's test set; `None` when
    /// the child diverged (its reward is 0 and the note says why).
    pub test_accuracy: Option<f64>,
    /// Number of test images scored.
    pub test_images: usize,
    /// What the child costs (parameters, FLOPs per image, activation memory).
    pub cost: ChildCost,
}

/// Training sets read from disk, shared by every trainer of the process:
/// workers that build a trainer per job (or several workers in one process)
/// decompress and verify a dataset once, not once per child. Plain bytes,
/// so sharing them across threads is fine; device copies stay per trainer.
type HostSets = Mutex<HashMap<(String, PathBuf), Arc<ImageSet>>>;

fn host_sets() -> &'static HostSets {
    static SETS: OnceLock<HostSets> = OnceLock::new();
    SETS.get_or_init(|| Mutex::new(HashMap::new()))
}

impl std::fmt::Debug for CnnTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CnnTrainer")
            .field("data_dir", &self.data_dir)
            .field("device", &self.device)
            .field("cpu_threads", &self.cpu_threads)
            .field("registered", &self.registered.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn permanent(e: impl std::fmt::Display) -> TrainError {
    TrainError::Permanent(e.to_string())
}

fn retryable(e: impl std::fmt::Display) -> TrainError {
    TrainError::Retryable(e.to_string())
}

/// Learning rate at global step `t` of `total`.
pub fn lr_at(cfg: &TrainConfig, t: usize, total: usize) -> f64 {
    match cfg.schedule {
        LrSchedule::Constant => cfg.lr,
        LrSchedule::Cosine => {
            let progress = if total == 0 { 0.0 } else { t as f64 / total as f64 };
            0.5 * cfg.lr * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// The recipe values a trainer cannot work with.
fn check_recipe(cfg: &TrainConfig) -> Result<(), String> {
    let finite_nonneg = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(format!("train.{name} = {v} is not a finite number ≥ 0"))
        }
    };
    if cfg.epochs == 0 {
        return Err("train.epochs is 0: a child needs at least one epoch".into());
    }
    if cfg.batch_size == 0 || cfg.image.eval_batch_size == 0 {
        return Err(format!(
            "train.batch_size ({}) and train.image.eval_batch_size ({}) must be at least 1",
            cfg.batch_size, cfg.image.eval_batch_size
        ));
    }
    if cfg.train_size == 0 || cfg.valid_size == 0 {
        return Err(format!(
            "train.train_size ({}) and train.valid_size ({}) must be at least 1",
            cfg.train_size, cfg.valid_size
        ));
    }
    finite_nonneg("lr", cfg.lr)?;
    finite_nonneg("weight_decay", cfg.weight_decay)?;
    if !(0.0..1.0).contains(&cfg.momentum) {
        return Err(format!("train.momentum = {} is outside [0, 1)", cfg.momentum));
    }
    if !(0.0..1.0).contains(&cfg.image.label_smoothing) {
        return Err(format!("train.image.label_smoothing = {} is outside [0, 1)", cfg.image.label_smoothing));
    }
    if cfg.image.resolution == Some(0) {
        return Err("train.image.resolution must be at least 1".into());
    }
    Ok(())
}

/// Native (C, H, W) and class count of the built-in datasets.
fn builtin_shape(dataset: &str) -> Option<((usize, usize, usize), usize)> {
    match dataset {
        "fashion-mnist" | "mnist" => Some(((1, 28, 28), 10)),
        "cifar10" => Some(((3, 32, 32), 10)),
        _ => None,
    }
}

fn idx_file(dir: &Path, stem: &str) -> PathBuf {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        gz
    } else {
        dir.join(stem)
    }
}

impl CnnTrainer {
    /// A trainer on `device` that finds datasets under `data_dir`:
    /// `fashion-mnist/` (fetched there when missing, see
    /// [`nasfleet_data::fetch_fashion_mnist`]), `mnist/` (IDX files) and
    /// `cifar-10-batches-bin/` (the binary batches). A job's
    /// `train.image.data_dir` overrides the directory of its dataset.
    ///
    /// On CUDA this switches on cudnn's benchmark mode (a process-wide
    /// setting): every child trains for many steps on fixed shapes, so
    /// timing the convolution algorithms once per shape pays for itself. On
    /// the CPU each job runs on one libtorch thread unless
    /// [`CnnTrainer::with_cpu_threads`] says otherwise.
    pub fn new(data_dir: impl Into<PathBuf>, device: Device) -> CnnTrainer {
        super::raise_malloc_thresholds();
        if device.is_cuda() {
            tch::Cuda::cudnn_set_benchmark(true);
        }
        CnnTrainer {
            data_dir: data_dir.into(),
            device,
            cpu_threads: 1,
            registered: HashMap::new(),
            registered_tests: HashMap::new(),
            cache: None,
        }
    }

    /// Registers an in-memory training set under `name` (tests, custom data);
    /// jobs naming it split it like a built-in dataset's training set.
    pub fn with_dataset(mut self, name: impl Into<String>, train: ImageSet) -> CnnTrainer {
        self.registered.insert(name.into(), Arc::new(train));
        self
    }

    /// Registers the test set that goes with a dataset registered with
    /// [`CnnTrainer::with_dataset`] (what [`CnnTrainer::train_final`] scores).
    pub fn with_test_set(mut self, name: impl Into<String>, test: ImageSet) -> CnnTrainer {
        self.registered_tests.insert(name.into(), Arc::new(test));
        self
    }

    /// On the CPU, run libtorch's operators on `threads` threads; set on the
    /// training thread at the start of every job. The default is 1; 0 leaves
    /// libtorch's own choice (one thread per core).
    ///
    /// Why one: libtorch parallelises each operator with OpenMP, whose
    /// threads spin-wait for each other at the end of every operator. When
    /// workers × threads exceed the free cores, every one of a small child's
    /// thousands of operators waits for a descheduled thread: on the shared
    /// 2-core development machine a child that trained in 3.6 s with one
    /// thread took 109 s with two. Small children gain little from
    /// intra-operator threads anyway; the fleet's parallelism is one worker
    /// per core. Under OpenMP the setting is per calling thread (and the
    /// default for threads started later), so workers in one process each
    /// set their own.
    pub fn with_cpu_threads(mut self, threads: usize) -> CnnTrainer {
        self.cpu_threads = threads;
        self
    }

    /// The device children train on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// (C, H, W) the child sees and the class count, without loading anything.
    pub fn input_shape(&self, cfg: &TrainConfig) -> Result<((usize, usize, usize), usize), TrainError> {
        let ((c, h, w), classes) = match self.registered.get(&cfg.dataset) {
            Some(set) => {
                let [c, h, w] = set.shape();
                ((c, h, w), set.num_classes())
            }
            None => builtin_shape(&cfg.dataset).ok_or_else(|| {
                let mut known: Vec<&str> = DATASETS.to_vec();
                known.extend(self.registered.keys().map(String::as_str));
                permanent(format!("unknown dataset {:?} for a CNN child (known: {})", cfg.dataset, known.join(", ")))
            })?,
        };
        Ok(match cfg.image.resolution {
            Some(r) => ((c, r, r), classes),
            None => ((c, h, w), classes),
        })
    }

    /// Costs of `arch` under `cfg`'s dataset and recipe (what the budget caps).
    pub fn child_cost(&self, arch: &CnnArch, cfg: &TrainConfig) -> Result<ChildCost, TrainError> {
        let (input, classes) = self.input_shape(cfg)?;
        let graph = resolve_checked(arch, input, classes).map_err(permanent)?;
        Ok(ChildCost::of(&graph, cfg.batch_size, cfg.image.mixed_precision))
    }

    fn dataset_dir(&self, cfg: &TrainConfig, default: &str) -> PathBuf {
        cfg.image.data_dir.clone().unwrap_or_else(|| self.data_dir.join(default))
    }

    /// The full training set of the job's dataset (before the split).
    fn load_train_set(&self, cfg: &TrainConfig) -> Result<Arc<ImageSet>, TrainError> {
        if let Some(set) = self.registered.get(&cfg.dataset) {
            return Ok(set.clone());
        }
        let dir = match cfg.dataset.as_str() {
            "fashion-mnist" => self.dataset_dir(cfg, "fashion-mnist"),
            "mnist" => self.dataset_dir(cfg, "mnist"),
            "cifar10" => self.dataset_dir(cfg, "cifar-10-batches-bin"),
            other => return Err(permanent(format!("unknown dataset {other:?} for a CNN child"))),
        };
        let key = (cfg.dataset.clone(), dir.clone());
        // Loading under the lock: a second worker asking for the same set
        // waits for the first load instead of repeating it.
        let mut sets = host_sets().lock().map_err(|_| retryable("the dataset cache lock is poisoned"))?;
        if let Some(set) = sets.get(&key) {
            return Ok(set.clone());
        }
        // A missing or broken dataset on this worker is infrastructure
        // trouble: another worker (or a later attempt) may have it.
        let data_err = |e: DataError| retryable(format!("dataset {}: {e}", cfg.dataset));
        let set = match cfg.dataset.as_str() {
            "fashion-mnist" => {
                nasfleet_data::fetch_fashion_mnist(&dir).map_err(data_err)?;
                nasfleet_data::load_fashion_mnist(&dir).map_err(data_err)?.train
            }
            "mnist" => nasfleet_data::load_idx_pair(
                &idx_file(&dir, "train-images-idx3-ubyte"),
                &idx_file(&dir, "train-labels-idx1-ubyte"),
                10,
            )
            .map_err(data_err)?,
            _ => nasfleet_data::load_cifar10(&dir).map_err(data_err)?.train,
        };
        let set = Arc::new(set);
        sets.insert(key, set.clone());
        Ok(set)
    }

    /// The job's held-out test set, read from disk each time (only a final
    /// training asks for it; a search never looks at it).
    fn load_test_set(&self, cfg: &TrainConfig) -> Result<Arc<ImageSet>, TrainError> {
        if self.registered.contains_key(&cfg.dataset) {
            return self.registered_tests.get(&cfg.dataset).cloned().ok_or_else(|| {
                permanent(format!("dataset {:?} was registered without a test set (CnnTrainer::with_test_set)", cfg.dataset))
            });
        }
        // The training set's loader fetches and verifies the dataset where
        // it can, and keeps the training images for the training that follows.
        self.load_train_set(cfg)?;
        let data_err = |e: DataError| retryable(format!("test set of {}: {e}", cfg.dataset));
        let set = match cfg.dataset.as_str() {
            "fashion-mnist" | "mnist" => {
                let dir = self.dataset_dir(cfg, &cfg.dataset);
                nasfleet_data::load_idx_pair(
                    &idx_file(&dir, "t10k-images-idx3-ubyte"),
                    &idx_file(&dir, "t10k-labels-idx1-ubyte"),
                    10,
                )
            }
            _ => nasfleet_data::load_cifar10_batch(
                &self.dataset_dir(cfg, "cifar-10-batches-bin").join(nasfleet_data::cifar::TEST_FILE),
            ),
        };
        Ok(Arc::new(set.map_err(data_err)?))
    }

    /// Trains `job` as [`Trainer::train`] does, then scores the final
    /// weights on the dataset's test set: the paper's final training of the
    /// best child. The test images are prepared as the validation images
    /// are (same resolution, the training subset's whitening).
    pub fn train_final(&mut self, job: &TrainJob, ctx: &mut dyn TrainContext) -> Result<CnnReport, TrainError> {
        self.guarded(|t| t.train_inner(job, ctx, true))
    }

    /// The job's data on the device, prepared once and reused while the
    /// settings stay the same.
    pub fn data(&mut self, cfg: &TrainConfig) -> Result<&DeviceData, TrainError> {
        let img: &ImageTrainConfig = &cfg.image;
        let key = DataKey {
            dataset: cfg.dataset.clone(),
            dir: img.data_dir.clone(),
            resolution: img.resolution,
            normalize: img.normalize,
            mixed_precision: img.mixed_precision,
            train_size: cfg.train_size,
            valid_size: cfg.valid_size,
            split_seed: img.split_seed,
            class_balanced: img.class_balanced,
        };
        if !matches!(&self.cache, Some((k, _)) if *k == key) {
            self.cache = None; // free the old device copy before making a new one
            let full = self.load_train_set(cfg)?;
            let split = SplitConfig {
                valid_size: cfg.valid_size,
                train_size: Some(cfg.train_size),
                seed: img.split_seed,
                class_balanced: img.class_balanced,
            };
            // Sizes that do not fit the dataset are a configuration error.
            let (train, valid) =
                nasfleet_data::split_set(&full, &split).map_err(|e| permanent(format!("dataset {}: {e}", cfg.dataset)))?;
            let prep = Prepare {
                resolution: img.resolution,
                normalize: img.normalize,
                kind: if img.mixed_precision { Kind::BFloat16 } else { Kind::Float },
            };
            let data = DeviceData::new(&train, &valid, prep, self.device).map_err(retryable)?;
            self.cache = Some((key, data));
        }
        match &self.cache {
            Some((_, d)) => Ok(d),
            None => Err(retryable("internal: the prepared dataset vanished")),
        }
    }

    fn train_inner(&mut self, job: &TrainJob, ctx: &mut dyn TrainContext, test: bool) -> Result<CnnReport, TrainError> {
        let cfg = &job.train;
        let Architecture::Cnn(arch) = &job.arch else {
            return Err(permanent(format!("the CNN trainer got a {} architecture", job.arch.kind().name())));
        };
        let RewardConfig::Accuracy { .. } = job.reward else {
            return Err(permanent("a CNN child's reward must be accuracy-based (reward.kind = \"accuracy\")"));
        };
        check_recipe(cfg).map_err(permanent)?;
        let cost = self.child_cost(arch, cfg)?;
        cost.check(&cfg.image).map_err(permanent)?;
        // Before any training: a final run must not find out at the end that
        // its test set is missing.
        let test_set = if test { Some(self.load_test_set(cfg)?) } else { None };

        if self.device == Device::Cpu && self.cpu_threads > 0 {
            tch::set_num_threads(self.cpu_threads.min(i32::MAX as usize) as i32);
        }
        let device = self.device;
        let mixed = cfg.image.mixed_precision;
        let data = self.data(cfg)?;
        let vs = nn::VarStore::new(device);
        let mut init_rng = ChaCha8Rng::seed_from_u64(job.seed);
        let net = CnnNet::build(&vs.root(), arch, data.shape, data.classes, &mut init_rng, mixed).map_err(|e| match e {
            // The architecture itself cannot be built: no retry helps.
            CnnError::Arch(_) | CnnError::Invalid(_) => permanent(e),
            // libtorch failed to allocate (a busy GPU): another attempt may succeed.
            CnnError::Torch(_) | CnnError::Checkpoint { .. } => retryable(e),
        })?;
        let mut sgd = FlatSgd::new(
            vs.trainable_variables(),
            SgdConfig { momentum: cfg.momentum, nesterov: cfg.nesterov, weight_decay: cfg.weight_decay },
        )
        .map_err(retryable)?;
        // The data stream (order, crops, flips) is a different ChaCha stream
        // of the same seed than the weights.
        let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
        rng.set_stream(1);

        let identity = serde_json::json!({
            "job_id": job.job_id,
            "arch": job.arch.to_value(),
            "seed": job.seed,
            "train": cfg,
        })
        .to_string();
        let mut metrics: Vec<EpochMetrics> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        if let Some(dir) = ctx.checkpoint_dir() {
            match checkpoint::load(dir) {
                Ok(Some(l)) if l.manifest.child == identity => match restore(&vs, &mut sgd, &l.tensors) {
                    Ok(()) => {
                        rng = l.manifest.rng;
                        metrics = l.manifest.metrics;
                    }
                    // Nothing was written: the fresh network trains from the start.
                    Err(e @ CnnError::Invalid(_)) => notes.push(format!("checkpoint ignored, trained from the start: {e}")),
                    Err(e) => return Err(retryable(e)),
                },
                // Another child's checkpoint (a reused directory): ours replaces it.
                Ok(_) => {}
                Err(e) => notes.push(format!("checkpoint ignored, trained from the start: {e}")),
            }
        }

        let n_train = data.train.len();
        let steps_per_epoch = n_train.div_ceil(cfg.batch_size);
        let total_steps = steps_per_epoch * cfg.epochs;
        let aug = Augment { crop_padding: cfg.image.crop_padding, flip: cfg.image.flip };
        let mut order: Vec<usize> = (0..n_train).collect();
        // A resumed child first hears the decision of its last checkpointed
        // epoch again: it was recorded, maybe as a stop, before a preemption
        // kept it from being acted on (the queue answers a repeated
        // question with the recorded decision).
        let mut stopped_at = None;
        if !metrics.is_empty() && ctx.epoch_end(&metrics) == RungDecision::Stop {
            stopped_at = Some(metrics.len());
        }
        let first = if stopped_at.is_some() { cfg.epochs } else { metrics.len() };
        for epoch in first..cfg.epochs {
            let started = Instant::now();
            order.sort_unstable();
            order.shuffle(&mut rng);
            let mut losses: Vec<Tensor> = Vec::with_capacity(steps_per_epoch);
            for (s, chunk) in order.chunks(cfg.batch_size).enumerate() {
                if ctx.should_stop() {
                    return Err(TrainError::Preempted { epochs_done: epoch });
                }
                let (x, y) = data.train_batch(chunk, aug, &mut rng).map_err(retryable)?;
                let logits = net.forward(&x, true).map_err(retryable)?;
                let loss = logits
                    .f_cross_entropy_loss(&y, None::<Tensor>, Reduction::Mean, -100, cfg.image.label_smoothing)
                    .map_err(retryable)?;
                sgd.step(&loss, lr_at(cfg, epoch * steps_per_epoch + s, total_steps)).map_err(retryable)?;
                losses.push(loss.detach());
            }
            let host: Vec<f32> = Tensor::f_stack(&losses, 0)
                .and_then(|t| t.f_to_kind(Kind::Float))
                .and_then(|t| t.f_to_device(Device::Cpu))
                .and_then(|t| Vec::<f32>::try_from(&t))
                .map_err(retryable)?;
            if let Some((s, l)) = host.iter().enumerate().find(|(_, l)| !l.is_finite()) {
                notes.insert(0, format!("diverged: training loss is {l} at epoch {}, step {}", epoch + 1, s + 1));
                let outcome = TrainOutcome { reward: 0.0, metrics, note: Some(notes.join("; ")), cost: Some(ArchCost { params: cost.params, flops: cost.flops }), stopped_at: None };
                return Ok(CnnReport { outcome, test_accuracy: None, test_images: 0, cost });
            }
            let weighted: f64 = host
                .iter()
                .zip(order.chunks(cfg.batch_size))
                .map(|(&l, c)| f64::from(l) * c.len() as f64)
                .sum();
            let accuracy = evaluate_on(&net, &data.valid, cfg.image.eval_batch_size).map_err(retryable)?;
            metrics.push(EpochMetrics {
                epoch: epoch + 1,
                train_loss: weighted / n_train as f64,
                valid_accuracy: Some(accuracy),
                valid_perplexity: None,
                seconds: started.elapsed().as_secs_f64(),
            });
            if let Some(dir) = ctx.checkpoint_dir() {
                let manifest = Manifest {
                    format: 0,
                    child: identity.clone(),
                    epochs_done: epoch + 1,
                    rng: rng.clone(),
                    metrics: metrics.clone(),
                    weights: String::new(),
                };
                checkpoint::save(dir, manifest, &state_tensors(&vs, &sgd)).map_err(retryable)?;
            }
            if let Some(m) = metrics.last() {
                ctx.progress(m);
            }
            if ctx.epoch_end(&metrics) == RungDecision::Stop {
                stopped_at = Some(epoch + 1);
                break;
            }
        }
        let accs: Vec<f64> = metrics.iter().filter_map(|m| m.valid_accuracy).collect();
        let reward = job
            .reward
            .from_accuracies(&accs)
            .ok_or_else(|| retryable(format!("no reward from validation accuracies {accs:?}")))?;
        // A multi-objective reward ([reward.cost]) weighs in the child's size.
        let reward = job
            .reward
            .with_cost(reward, Some(&ArchCost { params: cost.params, flops: cost.flops }))
            .map_err(permanent)?;
        let (test_accuracy, test_images) = match test_set {
            Some(set) => {
                let images = data.prepare_like(&set).map_err(permanent)?;
                let acc = evaluate_on(&net, &images, cfg.image.eval_batch_size).map_err(retryable)?;
                (Some(acc), images.len())
            }
            None => (None, 0),
        };
        let outcome = TrainOutcome {
            reward,
            metrics,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            cost: Some(ArchCost { params: cost.params, flops: cost.flops }),
            stopped_at,
        };
        Ok(CnnReport { outcome, test_accuracy, test_images, cost })
    }

    /// Runs `f`, turning a panic inside libtorch into a retryable failure.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, TrainError>) -> Result<T, TrainError> {
        // tch's infallible calls panic on libtorch errors (a CUDA out-of-memory
        // inside an op, say): that is a failed attempt, not a dead worker.
        match std::panic::catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(result) => result,
            Err(panic) => {
                let msg = nasfleet_util::panic_message(panic.as_ref());
                // The cached data may be half-built; rebuild it next time.
                self.cache = None;
                Err(TrainError::Retryable(format!("training panicked: {msg}")))
            }
        }
    }
}

/// Validation accuracy (fraction) in eval mode, without gradients.
pub fn evaluate(net: &CnnNet, data: &DeviceData, batch_size: usize) -> Result<f64, CnnError> {
    evaluate_on(net, &data.valid, batch_size)
}

/// Accuracy (fraction) on `set` in eval mode, without gradients; the
/// correct counts stay on the device until the end.
pub fn evaluate_on(net: &CnnNet, set: &DeviceImages, batch_size: usize) -> Result<f64, CnnError> {
    tch::no_grad(|| {
        let n = set.len();
        let mut correct = Vec::with_capacity(n.div_ceil(batch_size));
        for start in (0..n).step_by(batch_size) {
            let len = batch_size.min(n - start) as i64;
            let x = set.images.f_narrow(0, start as i64, len)?;
            let y = set.labels.f_narrow(0, start as i64, len)?;
            let logits = net.forward(&x, false)?;
            correct.push(logits.f_argmax(-1, false)?.f_eq_tensor(&y)?.f_sum(Kind::Int64)?);
        }
        let total = Tensor::f_stack(&correct, 0)?.f_sum(Kind::Int64)?.f_to_device(Device::Cpu)?;
        Ok(total.f_int64_value(&[])? as f64 / n as f64)
    })
}

/// Everything a resume needs besides the manifest: flat parameters, flat
/// momentum and every non-trainable variable (batch-norm statistics).
fn state_tensors(vs: &nn::VarStore, sgd: &FlatSgd) -> Vec<(String, Tensor)> {
    let mut out = vec![("params".to_string(), sgd.params().shallow_clone()), ("momentum".to_string(), sgd.momentum().shallow_clone())];
    let mut buffers: Vec<(String, Tensor)> =
        vs.variables().into_iter().filter(|(_, t)| !t.requires_grad()).map(|(n, t)| (format!("buffer/{n}"), t)).collect();
    buffers.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(buffers);
    out
}

/// Loads a checkpoint's tensors into the network and the optimiser. Every
/// tensor is found and its shape checked before anything is written, so a
/// checkpoint that does not fit leaves the fresh network untouched.
fn restore(vs: &nn::VarStore, sgd: &mut FlatSgd, tensors: &[(String, Tensor)]) -> Result<(), CnnError> {
    let find = |name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| CnnError::Invalid(format!("checkpoint lacks tensor {name:?}")))
    };
    let device = sgd.params().device();
    let params = find("params")?.f_to_device(device)?;
    let momentum = find("momentum")?.f_to_device(device)?;
    let mut buffers = Vec::new();
    for (name, var) in vs.variables().into_iter().filter(|(_, t)| !t.requires_grad()) {
        let src = find(&format!("buffer/{name}"))?;
        if src.size() != var.size() {
            return Err(CnnError::Invalid(format!(
                "checkpoint buffer {name} has shape {:?}, the network needs {:?}",
                src.size(),
                var.size()
            )));
        }
        buffers.push((var, src));
    }
    sgd.load(&params, &momentum)?;
    for (mut var, src) in buffers {
        tch::no_grad(|| var.f_copy_(src))?;
    }
    Ok(())
}

impl Trainer for CnnTrainer {
    fn train(&mut self, job: &TrainJob, ctx: &mut dyn TrainContext) -> Result<TrainOutcome, TrainError> {
        self.guarded(|t| t.train_inner(job, ctx, false)).map(|r| r.outcome)
    }
}
