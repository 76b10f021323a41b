//! [`TableTrainer`]: a [`Trainer`] for the NB201 space that "trains" a child
//! by looking up its measured accuracy, so a whole search (embedded or
//! through Redis) runs in seconds and measures the search strategy alone.
//!
//! # The reward
//!
//! The table value `v` (percent, e.g. `baseline_accuracy` = 93.2) is treated
//! as the validation accuracy of a single epoch, `v / 100`, and the job's own
//! [`RewardConfig`] turns it into the reward exactly as for a trained child:
//! with the paper's `Accuracy { last_k, power }` rule that is
//! `(v / 100) ^ power` (`last_k` is moot with one epoch). So a table search
//! and a real search reward children by the same rule, and `power = 1` gives
//! the plain accuracy as a fraction. A cost rule (`[reward.cost]`, MnasNet's
//! multi-objective reward) then multiplies in the cell's parameters or FLOPs
//! in the benchmark's CIFAR-10 network ([`nasfleet_core::cost::nb201_cost`]).
//! A perplexity reward does not apply to an accuracy table and is a
//! permanent failure.
//!
//! One [`EpochMetrics`] is reported: `epoch` 1, `valid_accuracy = v / 100`,
//! `train_loss` 0 (nothing was trained), `seconds` the simulated time.
//! The outcome's note names the column and the raw value, and that the
//! table's numbers are test-set accuracies from the table authors' training.
//!
//! # Where the table comes from
//!
//! The job carries the column (`train.table.objective`) and the simulated
//! time; the file is the worker's business, like any dataset's files:
//! `train.table.path` in the job if set, else the worker's own setting
//! ([`WorkerTable`]; a fleet worker's is the pickle in its data directory or
//! the user's cache, fetched on first use). Loaded columns are kept in a
//! [`TableCache`], so a worker reads a file once per column, not once per
//! child.
//!
//! # Failures
//!
//! Wrong dataset, a non-NB201 architecture, an architecture missing from the
//! table, an unknown column, a value that is not a percentage, a perplexity
//! reward: permanent (retrying cannot change a table). A table file that
//! cannot be read or fetched on this worker: retryable (another worker, or a
//! later attempt, may have it). A stop request during the simulated time:
//! preempted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nasfleet_core::cost::nb201_cost;
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::space::nb201::Nb201Arch;
use nasfleet_core::trainer::{
    EpochMetrics, TrainContext, TrainError, TrainJob, TrainOutcome, Trainer,
};
use nasfleet_core::Architecture;

use crate::table::{Table, TableError};

/// The `train.dataset` value that selects this trainer.
pub const DATASET: &str = "nb201-table";

/// Longest single sleep of the simulated training, so a stop request is
/// noticed within this much time.
const SLEEP_STEP: Duration = Duration::from_millis(20);

/// The worker's own table, used when a job does not name a file.
#[derive(Debug, Clone)]
pub enum WorkerTable {
    /// A table already in memory (in-process searches, the bench, tests).
    /// It answers only jobs asking for its own column (or for none).
    Loaded(Arc<Table>),
    /// A file (`.csv` as CSV, else the AnalogNAS-Bench pickle).
    File(PathBuf),
    /// The AnalogNAS-Bench pickle in this directory, fetched there with pip
    /// on first use ([`crate::fetch_table`]; a present file is just used).
    Fetch(PathBuf),
}

impl WorkerTable {
    /// A fleet worker's table: the AnalogNAS-Bench pickle in the worker's
    /// data directory if it has one, else in the user's cache
    /// ([`crate::default_cache_dir`]), fetched there on first use.
    pub fn for_worker(data_dir: Option<&Path>) -> Result<WorkerTable, crate::FetchError> {
        Ok(WorkerTable::Fetch(match data_dir {
            Some(d) => d.to_path_buf(),
            None => crate::default_cache_dir()?,
        }))
    }
}

type Loaded = HashMap<(PathBuf, Option<String>), Arc<Table>>;

/// Columns loaded so far, by (file, requested column). Cheap to clone (a
/// handle); trainers built with clones of one cache share it. A fleet
/// worker builds a trainer per job, so it passes [`TableCache::global`] and
/// reads each file once per process rather than once per child.
#[derive(Debug, Clone, Default)]
pub struct TableCache(Arc<Mutex<Loaded>>);

impl TableCache {
    /// An empty cache of its own (not shared with [`TableCache::global`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide cache.
    pub fn global() -> TableCache {
        static GLOBAL: OnceLock<TableCache> = OnceLock::new();
        GLOBAL.get_or_init(TableCache::new).clone()
    }

    /// Number of (file, column) pairs held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no table is held yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        // Only whole tables are ever inserted, so a panic elsewhere while
        // the lock was held cannot leave a half-written entry.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The table for (path, objective), loading it on a miss. The lock is
    /// held while loading so that workers sharing the cache load a file once.
    fn get_or_load(&self, path: &Path, objective: Option<&str>) -> Result<Arc<Table>, TrainError> {
        let mut loaded = self.lock();
        let key = (path.to_path_buf(), objective.map(str::to_string));
        if let Some(t) = loaded.get(&key) {
            return Ok(Arc::clone(t));
        }
        let table = Arc::new(load(path, objective)?);
        loaded.insert(key, Arc::clone(&table));
        Ok(table)
    }
}

/// Looks children up in a NAS-Bench-201 table (see the module docs).
#[derive(Debug, Clone)]
pub struct TableTrainer {
    worker_table: WorkerTable,
    cache: TableCache,
}

impl TableTrainer {
    /// A trainer with its own cache.
    pub fn new(worker_table: WorkerTable) -> Self {
        Self::with_cache(worker_table, TableCache::new())
    }

    /// A trainer sharing `cache` with others.
    pub fn with_cache(worker_table: WorkerTable, cache: TableCache) -> Self {
        TableTrainer {
            worker_table,
            cache,
        }
    }

    /// A trainer answering from a table in memory.
    pub fn with_table(table: Arc<Table>) -> Self {
        Self::new(WorkerTable::Loaded(table))
    }

    /// What a fleet worker builds for each job: [`WorkerTable::for_worker`]
    /// and the process-wide cache.
    pub fn for_worker(data_dir: Option<&Path>) -> Result<Self, TrainError> {
        let table = WorkerTable::for_worker(data_dir).map_err(|e| {
            TrainError::Retryable(format!(
                "no place for the NAS-Bench-201 table on this worker: {e}"
            ))
        })?;
        Ok(Self::with_cache(table, TableCache::global()))
    }

    /// The table for `job`: its own file if it names one, else the worker's.
    fn table_for(&self, job: &TrainJob) -> Result<Arc<Table>, TrainError> {
        let objective = job.train.table.objective.as_deref();
        let path = match (&job.train.table.path, &self.worker_table) {
            (Some(p), _) => p.clone(),
            (None, WorkerTable::Loaded(t)) => {
                return match objective {
                    Some(o) if o != t.objective() => Err(TrainError::Permanent(format!(
                        "this worker's table holds column {:?}, the job asks for {o:?}",
                        t.objective()
                    ))),
                    _ => Ok(Arc::clone(t)),
                };
            }
            (None, WorkerTable::File(p)) => p.clone(),
            (None, WorkerTable::Fetch(dir)) => crate::fetch_table(dir).map_err(|e| {
                TrainError::Retryable(format!(
                    "no NAS-Bench-201 table on this worker and fetching it failed: {e}"
                ))
            })?,
        };
        self.cache.get_or_load(&path, objective)
    }
}

fn load(path: &Path, objective: Option<&str>) -> Result<Table, TrainError> {
    Table::load(path, objective).map_err(|e| match e {
        // The file is there and readable: its content will not change on retry.
        TableError::UnknownObjective { .. }
        | TableError::AmbiguousObjective { .. }
        | TableError::Layout { .. }
        | TableError::Csv { .. }
        | TableError::Pickle { .. }
        | TableError::Duplicate { .. }
        | TableError::NonFinite { .. }
        | TableError::Empty => TrainError::Permanent(format!("table {}: {e}", path.display())),
        TableError::Read { .. } => TrainError::Retryable(e.to_string()),
    })
}

/// The reward of cell `arch` whose table value is `value` (percent) under
/// `rule`: see the module docs (a cost rule multiplies in the cell's cost,
/// [`nb201_cost`]). Errors are permanent-failure messages.
pub fn reward_of(
    rule: &RewardConfig,
    objective: &str,
    value: f64,
    arch: &Nb201Arch,
) -> Result<f64, String> {
    match rule {
        RewardConfig::Accuracy { .. } => {
            let r = rule.from_accuracies(&[value / 100.0]).ok_or_else(|| {
                format!("{objective} = {value} is not a percentage in [0, 100], so it cannot be an accuracy reward")
            })?;
            rule.with_cost(r, Some(&nb201_cost(arch)))
        }
        RewardConfig::Perplexity { .. } => Err(format!(
            "reward kind \"perplexity\" does not apply to a NAS-Bench-201 accuracy table ({objective}); use kind = \"accuracy\""
        )),
    }
}

/// The NB201 cell of a job's architecture.
pub fn nb201_arch(arch: &Architecture) -> Result<Nb201Arch, String> {
    match arch {
        Architecture::Nb201(a) => Ok(*a),
        other => Err(format!(
            "dataset {DATASET:?} scores only nb201 architectures, got a {} architecture",
            other.kind().name()
        )),
    }
}

impl Trainer for TableTrainer {
    fn train(
        &mut self,
        job: &TrainJob,
        ctx: &mut dyn TrainContext,
    ) -> Result<TrainOutcome, TrainError> {
        if job.train.dataset != DATASET {
            return Err(TrainError::Permanent(format!(
                "the table trainer serves dataset {DATASET:?}, the job asks for {:?}",
                job.train.dataset
            )));
        }
        job.train.table.check().map_err(TrainError::Permanent)?;
        let arch = nb201_arch(&job.arch).map_err(TrainError::Permanent)?;
        let table = self.table_for(job)?;
        let value = table
            .value(&arch)
            .map_err(|e| TrainError::Permanent(e.to_string()))?;
        let objective = table.objective();
        let reward =
            reward_of(&job.reward, objective, value, &arch).map_err(TrainError::Permanent)?;

        let seconds = simulate(job.train.table.simulated_seconds, ctx)?;
        let metrics = EpochMetrics {
            epoch: 1,
            train_loss: 0.0,
            valid_accuracy: Some(value / 100.0),
            valid_perplexity: None,
            seconds,
        };
        ctx.progress(&metrics);
        Ok(TrainOutcome {
            reward,
            metrics: vec![metrics],
            note: Some(format!(
                "table lookup: {objective} = {value} (test-set accuracy measured by the table's authors, not trained here)"
            )),
            cost: Some(nb201_cost(&arch)),
            stopped_at: None,
        })
    }
}

/// Sleeps `seconds` in short steps, returning early as preempted when the
/// worker is asked to stop. Returns the time actually spent.
fn simulate(seconds: f64, ctx: &mut dyn TrainContext) -> Result<f64, TrainError> {
    let start = Instant::now();
    let total = Duration::from_secs_f64(seconds);
    loop {
        if ctx.should_stop() {
            return Err(TrainError::Preempted { epochs_done: 0 });
        }
        let spent = start.elapsed();
        if spent >= total {
            return Ok(spent.as_secs_f64());
        }
        std::thread::sleep((total - spent).min(SLEEP_STEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasfleet_core::config::TrainConfig;
    use nasfleet_core::space::CellSpace;
    use nasfleet_core::trainer::BasicContext;
    use std::cell::Cell;

    fn arch(t: [u8; 6]) -> Nb201Arch {
        Nb201Arch::from_naslib_tuple(t).unwrap()
    }

    fn table() -> Arc<Table> {
        let cells = vec![
            (arch([2, 2, 2, 2, 2, 2]), 90.0),
            (arch([1, 1, 1, 1, 1, 1]), 10.0),
            (arch([0, 0, 0, 0, 0, 0]), 150.0),
        ];
        Arc::new(Table::from_cells("acc", vec!["acc".into()], cells).unwrap())
    }

    fn job(a: Nb201Arch, power: f64) -> TrainJob {
        let mut train = TrainConfig {
            dataset: DATASET.into(),
            ..Default::default()
        };
        train.table.objective = Some("acc".into());
        TrainJob {
            job_id: "j1".into(),
            arch: Architecture::Nb201(a),
            train,
            reward: RewardConfig::accuracy(5, power),
            seed: 0,
        }
    }

    #[test]
    fn reward_is_the_rule_applied_to_the_value_as_a_fraction() {
        let mut t = TableTrainer::with_table(table());
        let mut ctx = BasicContext::default();
        let out = t
            .train(&job(arch([2, 2, 2, 2, 2, 2]), 3.0), &mut ctx)
            .unwrap();
        // 0.9³ = 0.729
        assert!((out.reward - 0.729).abs() < 1e-12, "{}", out.reward);
        assert_eq!(out.metrics.len(), 1);
        assert_eq!(out.metrics[0].valid_accuracy, Some(0.9));
        assert_eq!(ctx.history, out.metrics);
        assert!(out.note.unwrap().contains("acc = 90"));
        let linear = t
            .train(&job(arch([1, 1, 1, 1, 1, 1]), 1.0), &mut ctx)
            .unwrap();
        assert!((linear.reward - 0.1).abs() < 1e-12);
    }

    #[test]
    fn permanent_failures_say_what_is_wrong() {
        let mut t = TableTrainer::with_table(table());
        let mut ctx = BasicContext::default();
        let perm = |r: Result<TrainOutcome, TrainError>| match r {
            Err(TrainError::Permanent(m)) => m,
            other => panic!("expected a permanent failure, got {other:?}"),
        };
        let missing = perm(t.train(&job(arch([3, 3, 3, 3, 3, 3]), 1.0), &mut ctx));
        assert!(
            missing.contains("(3, 3, 3, 3, 3, 3)") && missing.contains("not in the table"),
            "{missing}"
        );
        let over = perm(t.train(&job(arch([0, 0, 0, 0, 0, 0]), 1.0), &mut ctx));
        assert!(
            over.contains("acc = 150") && over.contains("percentage"),
            "{over}"
        );
        let mut ppl = job(arch([2, 2, 2, 2, 2, 2]), 1.0);
        ppl.reward = RewardConfig::Perplexity { c: 80.0 };
        assert!(perm(t.train(&ppl, &mut ctx)).contains("perplexity"));
        let mut other_col = job(arch([2, 2, 2, 2, 2, 2]), 1.0);
        other_col.train.table.objective = Some("analog_accuracy".into());
        let m = perm(t.train(&other_col, &mut ctx));
        assert!(
            m.contains("\"acc\"") && m.contains("\"analog_accuracy\""),
            "{m}"
        );
        let mut cifar = job(arch([2, 2, 2, 2, 2, 2]), 1.0);
        cifar.train.dataset = "cifar10".into();
        assert!(perm(t.train(&cifar, &mut ctx)).contains("\"cifar10\""));
        let mut cell = job(arch([2, 2, 2, 2, 2, 2]), 1.0);
        let cells = CellSpace::default();
        cell.arch = Architecture::RnnCell(
            cells
                .decode(&vec![0; cells.schema().token_count()])
                .unwrap(),
        );
        assert!(perm(t.train(&cell, &mut ctx)).contains("rnn-cell"));
        let mut neg = job(arch([2, 2, 2, 2, 2, 2]), 1.0);
        neg.train.table.simulated_seconds = -1.0;
        assert!(perm(t.train(&neg, &mut ctx)).contains("simulated_seconds"));
        assert!(
            ctx.history.is_empty(),
            "no progress is reported for a failed lookup"
        );
    }

    #[test]
    fn job_path_loads_a_csv_once_per_column_and_missing_files_are_retryable() {
        let dir =
            std::env::temp_dir().join(format!("nasfleet-nb201-trainer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("t.csv");
        std::fs::write(&csv, "arch,a,b\n\"(2, 2, 2, 2, 2, 2)\",91.5,50\n").unwrap();
        let mut t = TableTrainer::new(WorkerTable::File(dir.join("absent.anb")));
        let mut ctx = BasicContext::default();
        let mut j = job(arch([2, 2, 2, 2, 2, 2]), 1.0);
        j.train.table.objective = Some("a".into());
        assert!(
            matches!(t.train(&j, &mut ctx), Err(TrainError::Retryable(m)) if m.contains("absent.anb"))
        );
        j.train.table.path = Some(csv.clone());
        assert!((t.train(&j, &mut ctx).unwrap().reward - 0.915).abs() < 1e-12);
        j.train.table.objective = Some("b".into());
        assert!((t.train(&j, &mut ctx).unwrap().reward - 0.5).abs() < 1e-12);
        assert_eq!(t.cache.len(), 2);
        // Cached: the file is not read again, by this trainer or another
        // sharing its cache (a worker builds one per job).
        std::fs::remove_file(&csv).unwrap();
        assert!(t.train(&j, &mut ctx).is_ok());
        let mut per_job =
            TableTrainer::with_cache(WorkerTable::File(dir.join("absent.anb")), t.cache.clone());
        assert!(per_job.train(&j, &mut ctx).is_ok());
        assert!(TableTrainer::new(WorkerTable::File(dir.join("absent.anb")))
            .train(&j, &mut ctx)
            .is_err());
        j.train.table.objective = Some("c".into());
        // A column the file lacks: but the file is gone, so this one is a read failure.
        assert!(matches!(
            t.train(&j, &mut ctx),
            Err(TrainError::Retryable(_))
        ));
        std::fs::write(&csv, "arch,a\n\"(2, 2, 2, 2, 2, 2)\",91.5\n").unwrap();
        let unknown = t.train(&j, &mut ctx).unwrap_err();
        assert!(
            matches!(&unknown, TrainError::Permanent(m) if m.contains("unknown objective column \"c\"")),
            "{unknown}"
        );
        // No column named: the file's only one.
        j.train.table.objective = None;
        assert!((t.train(&j, &mut ctx).unwrap().reward - 0.915).abs() < 1e-12);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    struct StopAfter {
        polls_left: Cell<u32>,
    }

    impl TrainContext for StopAfter {
        fn progress(&mut self, _: &EpochMetrics) {
            panic!("a preempted lookup reports no epoch");
        }
        fn should_stop(&self) -> bool {
            let left = self.polls_left.get();
            self.polls_left.set(left.saturating_sub(1));
            left == 0
        }
        fn checkpoint_dir(&self) -> Option<&Path> {
            None
        }
    }

    #[test]
    fn simulated_time_honours_a_stop_request() {
        let mut t = TableTrainer::with_table(table());
        let mut j = job(arch([2, 2, 2, 2, 2, 2]), 1.0);
        // An hour of simulated training, stopped at the third poll: only a
        // loop that polls between short sleeps returns.
        j.train.table.simulated_seconds = 3600.0;
        let mut ctx = StopAfter {
            polls_left: Cell::new(2),
        };
        assert_eq!(
            t.train(&j, &mut ctx),
            Err(TrainError::Preempted { epochs_done: 0 })
        );
    }
}
