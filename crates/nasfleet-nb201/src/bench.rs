//! The search-efficiency benchmark (perf.md, benchmark 5): how good an
//! architecture each strategy finds after 50, 100, 200, 500 and 1,000 samples
//! on a NAS-Bench-201 table, over many seeds.
//!
//! Every strategy runs through the same loop as a real search, with the
//! fleet's own pieces: `propose(m)` → each child scored by a
//! [`TableTrainer`] from a [`TrainJob`] (so the reward is exactly what a
//! worker would post) → `update(batch of m)`, until the budget is spent. The
//! loop is synchronous (every reward of a batch is back before the next
//! proposal), so a run depends only on the strategy and its seed: no policy
//! lag, no thread timing. Strategies come from a factory
//! `(name, seed) → Box<dyn SearchStrategy>`, which keeps this crate free of
//! libtorch: the binary passes one that builds the RL controller.
//!
//! # What is recorded
//!
//! For each (strategy, seed), the best table value among the first k samples
//! for every k ≤ budget (duplicates count as samples, as in NAS-Bench-201's
//! protocol: a strategy that resamples a cell pays for it). At each
//! checkpoint ([`checkpoints`]) and for each strategy, over seeds:
//!
//! - mean, **sample** standard deviation (n − 1 in the denominator; `None`
//!   with one seed) and standard error of the mean (std / √n);
//! - the mean percentile rank of the best found within the table (the share
//!   of cells whose value is ≤ it, [`Table::percentile_rank`]);
//! - how many seeds found the table's optimum.
//!
//! Every pair of strategies is compared at every checkpoint (random search
//! always as the one subtracted): the difference of means and its standard
//! error `√(se_a² + se_b²)`, errors added in quadrature as for independent
//! runs. (Evolution's first `population` proposals are uniform draws from a
//! stream seeded like random search's, so those two are positively
//! correlated early on; that only makes this standard error conservative.)
//!
//! The report serialises to JSON, renders as the text table the command
//! prints ([`BenchReport::render`]), and plots with [`crate::plot`].

use std::collections::HashSet;
use std::sync::Arc;

use nasfleet_core::config::TrainConfig;
use nasfleet_core::cost::nb201_cost;
use nasfleet_core::pareto::{ParetoFronts, ParetoPoint};
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::strategy::{Feedback, SearchStrategy, StrategyError};
use nasfleet_core::trainer::{BasicContext, TrainError, TrainJob, Trainer};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::table::Table;
use crate::trainer::{nb201_arch, TableTrainer, DATASET};

/// The sample counts at which results are reported (those ≤ the budget).
pub const CHECKPOINTS: [usize; 5] = [50, 100, 200, 500, 1_000];

/// The strategy the others are compared with.
pub const REFERENCE_STRATEGY: &str = "random";

/// The last samples of a run whose median cost the report gives (where a
/// multi-objective search ends up).
pub const COST_WINDOW: usize = 200;

/// The checkpoints reported for a budget: the standard ones up to it, plus
/// the budget itself when it is not one of them (so the last sample always
/// counts).
pub fn checkpoints(budget: usize) -> Vec<usize> {
    let mut c: Vec<usize> = CHECKPOINTS
        .iter()
        .copied()
        .filter(|&k| k <= budget)
        .collect();
    if budget > 0 && c.last() != Some(&budget) {
        c.push(budget);
    }
    c
}

/// Why a bench could not run; every run error names the strategy and seed.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The settings are unusable (no strategies or seeds, a zero budget or
    /// batch, a strategy listed twice).
    #[error("bench settings: {0}")]
    Settings(String),
    // The inner errors are in the message, not `source()`s, so a printed
    // chain does not repeat them.
    /// The factory could not build the strategy, or one of its calls failed.
    #[error("{strategy} (seed {seed}): {error}")]
    Strategy {
        /// The strategy's name as given in the settings.
        strategy: String,
        /// The run's seed.
        seed: u64,
        /// The strategy's error.
        error: StrategyError,
    },
    /// The table trainer could not score a child (e.g. a cell the table lacks).
    #[error("{strategy} (seed {seed}): scoring a child: {error}")]
    Score {
        /// The strategy's name as given in the settings.
        strategy: String,
        /// The run's seed.
        seed: u64,
        /// The trainer's error.
        error: TrainError,
    },
    /// The strategy proposed an architecture of another space.
    #[error("{strategy} (seed {seed}): proposal {index} is not an NB201 cell: {message}")]
    NotNb201 {
        /// The strategy's name as given in the settings.
        strategy: String,
        /// The run's seed.
        seed: u64,
        /// The proposal's index in the run (0-based).
        index: usize,
        /// What the proposal was instead.
        message: String,
    },
    /// The strategy returned fewer proposals than asked for.
    #[error("{strategy} (seed {seed}): asked for {asked} proposals, got {got}")]
    ShortProposal {
        /// The strategy's name as given in the settings.
        strategy: String,
        /// The run's seed.
        seed: u64,
        /// Proposals asked for.
        asked: usize,
        /// Proposals returned.
        got: usize,
    },
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSettings {
    /// Strategy names, passed to the factory as they are.
    pub strategies: Vec<String>,
    /// Seeds; every strategy runs once per seed.
    pub seeds: Vec<u64>,
    /// Samples per run.
    pub budget: usize,
    /// m: proposals per round, rewards per `update`.
    pub batch: usize,
    /// How a table value becomes a reward (see [`crate::trainer`]).
    pub reward: RewardConfig,
}

impl BenchSettings {
    fn check(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Settings(m.into()));
        if self.strategies.is_empty() {
            return bad("no strategies to run");
        }
        if self.seeds.is_empty() {
            return bad("no seeds to run");
        }
        if self.budget == 0 {
            return bad("the budget must be at least 1 sample");
        }
        if self.batch == 0 {
            return bad("the batch must be at least 1");
        }
        let mut seen = HashSet::new();
        if let Some(dup) = self.strategies.iter().find(|s| !seen.insert(s.as_str())) {
            return Err(BenchError::Settings(format!(
                "strategy {dup:?} is listed twice"
            )));
        }
        Ok(())
    }
}

/// One (strategy, seed) run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRun {
    /// The strategy's name as given in the settings.
    pub strategy: String,
    /// The seed the factory built it with.
    pub seed: u64,
    /// `best_so_far[k]`: the best table value among samples 1..=k+1.
    pub best_so_far: Vec<f64>,
    /// The best cell found (NB201 string; the first sample reaching the best value).
    pub best_arch: String,
    /// Distinct cells among the samples.
    pub distinct: usize,
    /// Entropy reported by the last update (nats per architecture).
    pub final_entropy: f64,
    /// Each sample's table value, in order.
    pub values: Vec<f64>,
    /// Each sample's parameters (NB201 CIFAR-10 network, [`nb201_cost`]).
    pub params: Vec<u64>,
    /// Each sample's FLOPs per image.
    pub flops: Vec<u64>,
    /// The Pareto fronts (value against parameters and FLOPs) of the samples.
    pub pareto: ParetoFronts,
}

impl SeedRun {
    /// The median of the last `window` samples' `cost` (all samples when
    /// there are fewer); `None` for a run without samples.
    pub fn median_last(cost: &[u64], window: usize) -> Option<f64> {
        let tail = &cost[cost.len().saturating_sub(window)..];
        if tail.is_empty() {
            return None;
        }
        let mut v = tail.to_vec();
        v.sort_unstable();
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2] as f64
        } else {
            (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
        })
    }
}

/// Builds a fresh strategy from its name and seed (the bench's only link to
/// the strategies, so the RL controller can come from a crate with libtorch).
pub type StrategyFactory<'a> =
    dyn FnMut(&str, u64) -> Result<Box<dyn SearchStrategy>, StrategyError> + 'a;

/// One run: the strategy's label and seed, and how to run it.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec<'a> {
    /// The strategy's label, for the record and errors.
    pub name: &'a str,
    /// The seed the strategy was built with, for the record and errors.
    pub seed: u64,
    /// Samples to draw (≥ 1).
    pub budget: usize,
    /// Proposals per round, rewards per `update` (≥ 1).
    pub batch: usize,
    /// How a table value becomes a reward.
    pub reward: &'a RewardConfig,
}

/// Runs one strategy for `spec.budget` samples in rounds of `spec.batch`
/// (the last round may be shorter), scoring children with `trainer`.
/// `table` is the table the trainer answers from, read directly for the
/// recorded values (the trainer's reward is a function of them).
pub fn run_strategy(
    strategy: &mut dyn SearchStrategy,
    table: &Table,
    trainer: &mut dyn Trainer,
    spec: RunSpec<'_>,
) -> Result<SeedRun, BenchError> {
    let RunSpec {
        name,
        seed,
        budget,
        batch,
        reward,
    } = spec;
    let strategy_err = |error| BenchError::Strategy {
        strategy: name.into(),
        seed,
        error,
    };
    let train = TrainConfig {
        dataset: DATASET.into(),
        table: nasfleet_core::config::TableTrainConfig {
            objective: Some(table.objective().into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut best_so_far = Vec::with_capacity(budget);
    let mut best: Option<(f64, String)> = None;
    let mut distinct = HashSet::new();
    let mut values = Vec::with_capacity(budget);
    let mut params = Vec::with_capacity(budget);
    let mut flops = Vec::with_capacity(budget);
    let mut points = Vec::new();
    let mut final_entropy = 0.0;
    let mut ctx = BasicContext::default();
    while best_so_far.len() < budget {
        let asked = batch.min(budget - best_so_far.len());
        let proposals = strategy.propose(asked).map_err(strategy_err)?;
        if proposals.len() != asked {
            return Err(BenchError::ShortProposal {
                strategy: name.into(),
                seed,
                asked,
                got: proposals.len(),
            });
        }
        let mut feedback = Vec::with_capacity(asked);
        for p in proposals {
            let index = best_so_far.len();
            let arch = nb201_arch(&p.arch).map_err(|message| BenchError::NotNb201 {
                strategy: name.into(),
                seed,
                index,
                message,
            })?;
            let job = TrainJob {
                job_id: format!("{name}-{seed}-{index}"),
                arch: p.arch,
                train: train.clone(),
                reward: reward.clone(),
                seed,
            };
            let outcome = trainer
                .train(&job, &mut ctx)
                .map_err(|error| BenchError::Score {
                    strategy: name.into(),
                    seed,
                    error,
                })?;
            ctx.history.clear();
            let value = table.value(&arch).map_err(|e| BenchError::Score {
                strategy: name.into(),
                seed,
                error: TrainError::Permanent(e.to_string()),
            })?;
            if best.as_ref().is_none_or(|(b, _)| value > *b) {
                best = Some((value, arch.to_string()));
            }
            let cost = nb201_cost(&arch);
            if distinct.insert(arch) {
                points.push(ParetoPoint::new(&job.arch, value, cost));
            }
            values.push(value);
            params.push(cost.params);
            flops.push(cost.flops);
            best_so_far.push(best.as_ref().map_or(value, |(b, _)| *b));
            feedback.push(Feedback {
                actions: p.actions,
                reward: outcome.reward,
            });
        }
        final_entropy = strategy.update(&feedback).map_err(strategy_err)?.entropy;
    }
    Ok(SeedRun {
        strategy: name.into(),
        seed,
        best_so_far,
        best_arch: best.map(|(_, a)| a).unwrap_or_default(),
        distinct: distinct.len(),
        final_entropy,
        values,
        params,
        flops,
        pareto: ParetoFronts::of_points(&points),
    })
}

/// Mean, sample standard deviation and standard error of some numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// How many numbers.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Sample standard deviation (denominator n − 1); `None` for n < 2.
    pub std: Option<f64>,
    /// Standard error of the mean, std / √n; `None` for n < 2.
    pub se: Option<f64>,
}

impl Moments {
    /// The moments of `xs` (which must not be empty).
    pub fn of(xs: &[f64]) -> Moments {
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let std = (n >= 2)
            .then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        Moments {
            n,
            mean,
            std,
            se: std.map(|s| s / (n as f64).sqrt()),
        }
    }
}

/// One strategy at one checkpoint, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointStats {
    /// Samples drawn by this checkpoint.
    pub samples: usize,
    /// Of the best value found by then.
    pub best: Moments,
    /// Of the regret by then: the table's optimum minus the best found.
    pub regret: Moments,
    /// The worst seed's best value by then.
    pub min: f64,
    /// The best seed's best value by then.
    pub max: f64,
    /// Mean over seeds of the percentile rank (in [0, 1]) of the best found.
    pub mean_percentile_rank: f64,
    /// Seeds that had found the table's optimum by then.
    pub optimum_found: usize,
}

/// One strategy over all seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategySummary {
    /// The strategy's name as given in the settings.
    pub strategy: String,
    /// Its statistics at each of the report's checkpoints, in order.
    pub checkpoints: Vec<CheckpointStats>,
    /// Best-so-far curve over seeds: `curve_mean[k]` after k + 1 samples.
    pub curve_mean: Vec<f64>,
    /// Sample standard deviation of the curve (0 with one seed).
    pub curve_std: Vec<f64>,
    /// Mean over seeds of the distinct cells sampled.
    pub mean_distinct: f64,
    /// Mean over seeds of the entropy the last update reported (nats per
    /// architecture).
    pub mean_final_entropy: f64,
    /// Mean over seeds of the median parameters of the last
    /// [`COST_WINDOW`] samples.
    pub median_params_last: f64,
    /// Mean over seeds of the median FLOPs of the last [`COST_WINDOW`] samples.
    pub median_flops_last: f64,
    /// The Pareto fronts of every seed's samples together.
    pub pareto: ParetoFronts,
}

/// One strategy against another at one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The strategy whose mean is the minuend.
    pub strategy: String,
    /// The strategy subtracted ([`REFERENCE_STRATEGY`] whenever it is one of the two).
    pub against: String,
    /// The checkpoint: samples drawn.
    pub samples: usize,
    /// mean(strategy) − mean(against).
    pub difference: f64,
    /// √(se² + se²); `None` when either side has fewer than 2 seeds.
    pub se: Option<f64>,
}

/// The table the bench ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Where it came from (path), for the report.
    pub source: String,
    /// The column that served as the objective.
    pub objective: String,
    /// Cells with a value.
    pub cells: usize,
    /// The best value in the table (the optimum).
    pub best: f64,
    /// The optimum's cell, as an NB201 string.
    pub best_arch: String,
    /// The median value.
    pub median: f64,
}

/// Everything a bench run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The table the bench ran on.
    pub table: TableInfo,
    /// The settings it ran with.
    pub settings: BenchSettings,
    /// The sample counts reported ([`checkpoints`] of the budget).
    pub checkpoints: Vec<usize>,
    /// One per strategy, in the settings' order.
    pub summaries: Vec<StrategySummary>,
    /// Every pair of strategies at every checkpoint, those against
    /// [`REFERENCE_STRATEGY`] first.
    pub comparisons: Vec<Comparison>,
    /// Every (strategy, seed) run.
    pub runs: Vec<SeedRunSummary>,
    /// The Pareto fronts of the whole table (value against cost).
    pub table_pareto: ParetoFronts,
}

/// A seed's run as kept in the report (the full curve only survives as the
/// per-strategy mean and deviation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRunSummary {
    /// The strategy's name as given in the settings.
    pub strategy: String,
    /// The run's seed.
    pub seed: u64,
    /// Best value at each checkpoint.
    pub best_at: Vec<f64>,
    /// The best cell found (NB201 string).
    pub best_arch: String,
    /// Distinct cells among the samples.
    pub distinct: usize,
    /// Entropy reported by the last update (nats per architecture).
    pub final_entropy: f64,
}

/// Runs every strategy for every seed and summarises. `factory(name, seed)`
/// builds a fresh strategy; `source` names the table in the report.
/// `progress` is called after each run (for a log line).
pub fn run_bench(
    table: Arc<Table>,
    source: &str,
    settings: &BenchSettings,
    factory: &mut StrategyFactory<'_>,
    progress: &mut dyn FnMut(&SeedRun),
) -> Result<BenchReport, BenchError> {
    settings.check()?;
    let mut trainer = TableTrainer::with_table(Arc::clone(&table));
    let mut runs = Vec::new();
    for name in &settings.strategies {
        for &seed in &settings.seeds {
            let mut strategy = factory(name, seed).map_err(|error| BenchError::Strategy {
                strategy: name.clone(),
                seed,
                error,
            })?;
            let run = run_strategy(
                strategy.as_mut(),
                &table,
                &mut trainer,
                RunSpec {
                    name,
                    seed,
                    budget: settings.budget,
                    batch: settings.batch,
                    reward: &settings.reward,
                },
            )?;
            progress(&run);
            runs.push(run);
        }
    }
    Ok(summarise(&table, source, settings, &runs))
}

/// The report of finished runs (every run of `settings`, in any order).
pub fn summarise(
    table: &Table,
    source: &str,
    settings: &BenchSettings,
    runs: &[SeedRun],
) -> BenchReport {
    let cps = checkpoints(settings.budget);
    let optimum = table.best().1;
    let summaries: Vec<StrategySummary> = settings
        .strategies
        .iter()
        .map(|name| {
            let mine: Vec<&SeedRun> = runs.iter().filter(|r| &r.strategy == name).collect();
            let at = |k: usize| -> Vec<f64> { mine.iter().map(|r| r.best_so_far[k - 1]).collect() };
            let checkpoints = cps
                .iter()
                .map(|&k| {
                    let xs = at(k);
                    let regrets: Vec<f64> = xs.iter().map(|x| optimum - x).collect();
                    CheckpointStats {
                        samples: k,
                        best: Moments::of(&xs),
                        regret: Moments::of(&regrets),
                        min: xs.iter().copied().fold(f64::INFINITY, f64::min),
                        max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        mean_percentile_rank: xs
                            .iter()
                            .map(|&x| table.percentile_rank(x))
                            .sum::<f64>()
                            / xs.len() as f64,
                        optimum_found: xs.iter().filter(|&&x| x >= optimum).count(),
                    }
                })
                .collect();
            let curve: Vec<Moments> = (1..=settings.budget).map(|k| Moments::of(&at(k))).collect();
            let n = mine.len() as f64;
            StrategySummary {
                strategy: name.clone(),
                checkpoints,
                curve_mean: curve.iter().map(|m| m.mean).collect(),
                curve_std: curve.iter().map(|m| m.std.unwrap_or(0.0)).collect(),
                mean_distinct: mine.iter().map(|r| r.distinct as f64).sum::<f64>() / n,
                mean_final_entropy: mine.iter().map(|r| r.final_entropy).sum::<f64>() / n,
                median_params_last: mine
                    .iter()
                    .filter_map(|r| SeedRun::median_last(&r.params, COST_WINDOW))
                    .sum::<f64>()
                    / n,
                median_flops_last: mine
                    .iter()
                    .filter_map(|r| SeedRun::median_last(&r.flops, COST_WINDOW))
                    .sum::<f64>()
                    / n,
                pareto: merge_fronts(mine.iter().map(|r| &r.pareto)),
            }
        })
        .collect();
    let comparisons = pairs(&summaries)
        .into_iter()
        .flat_map(|(a, b)| {
            a.checkpoints
                .iter()
                .zip(&b.checkpoints)
                .map(|(mine, theirs)| Comparison {
                    strategy: a.strategy.clone(),
                    against: b.strategy.clone(),
                    samples: mine.samples,
                    difference: mine.best.mean - theirs.best.mean,
                    se: mine
                        .best
                        .se
                        .zip(theirs.best.se)
                        .map(|(x, y)| (x * x + y * y).sqrt()),
                })
        })
        .collect();
    let (best_arch, best) = table.best();
    let cells: Vec<ParetoPoint> = table
        .iter()
        .map(|(a, v)| {
            ParetoPoint::new(&nasfleet_core::Architecture::Nb201(a), v, nb201_cost(&a))
        })
        .collect();
    BenchReport {
        table: TableInfo {
            source: source.into(),
            objective: table.objective().into(),
            cells: table.len(),
            best,
            best_arch: best_arch.to_string(),
            median: table.median(),
        },
        settings: settings.clone(),
        checkpoints: cps.clone(),
        summaries,
        comparisons,
        runs: runs
            .iter()
            .map(|r| SeedRunSummary {
                strategy: r.strategy.clone(),
                seed: r.seed,
                best_at: cps.iter().map(|&k| r.best_so_far[k - 1]).collect(),
                best_arch: r.best_arch.clone(),
                distinct: r.distinct,
                final_entropy: r.final_entropy,
            })
            .collect(),
        table_pareto: ParetoFronts::of_points(&cells),
    }
}

/// The fronts of the union of several runs' points (a point dominated
/// within its run stays dominated in the union, so the fronts suffice).
fn merge_fronts<'a>(fronts: impl Iterator<Item = &'a ParetoFronts>) -> ParetoFronts {
    let mut children = 0;
    let mut points = Vec::new();
    for f in fronts {
        children += f.children;
        points.extend(f.params.iter().cloned());
        points.extend(f.flops.iter().cloned());
    }
    let mut merged = ParetoFronts::of_points(&points);
    merged.children = children;
    merged
}

/// Every pair of strategies once, in list order, except that
/// [`REFERENCE_STRATEGY`] is always the one subtracted (so "X − random" reads
/// as X's gain over random search).
fn pairs(summaries: &[StrategySummary]) -> Vec<(&StrategySummary, &StrategySummary)> {
    let mut out = Vec::new();
    for (i, a) in summaries.iter().enumerate() {
        for b in &summaries[i + 1..] {
            out.push(if a.strategy == REFERENCE_STRATEGY {
                (b, a)
            } else {
                (a, b)
            });
        }
    }
    // The comparisons with random search first.
    out.sort_by_key(|(_, b)| b.strategy != REFERENCE_STRATEGY);
    out
}

fn pm(m: &Moments) -> String {
    match m.std {
        Some(s) => format!("{:.2} ± {:.2}", m.mean, s),
        None => format!("{:.2}", m.mean),
    }
}

impl BenchReport {
    /// The text the command prints: one table of mean ± std per strategy and
    /// checkpoint, the percentile ranks, and the comparison with random search.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let t = &self.table;
        let s = &self.settings;
        let _ = writeln!(
            o,
            "NAS-Bench-201 search efficiency on {} ({}): {} cells, best {:.2}, median {:.2}",
            t.objective, t.source, t.cells, t.best, t.median
        );
        let _ = writeln!(
            o,
            "budget {} samples, batch {}, {} seeds per strategy; best value found: mean ± sample std (n−1) over seeds",
            s.budget,
            s.batch,
            s.seeds.len()
        );
        let _ = writeln!(o);
        let w = 16;
        // Row labels: wide enough for "evolution − random".
        const L: usize = 22;
        let _ = write!(o, "{:<L$}", "strategy");
        for k in &self.checkpoints {
            let _ = write!(o, "{:>w$}", format!("@{k}"));
        }
        let _ = writeln!(o);
        for sum in &self.summaries {
            let _ = write!(o, "{:<L$}", sum.strategy);
            for c in &sum.checkpoints {
                let _ = write!(o, "{:>w$}", pm(&c.best));
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "regret: table optimum ({:.2}) − best found, mean ± standard error",
            t.best
        );
        for sum in &self.summaries {
            let _ = write!(o, "{:<L$}", sum.strategy);
            for c in &sum.checkpoints {
                let cell = match c.regret.se {
                    Some(se) => format!("{:.3} ± {:.3}", c.regret.mean, se),
                    None => format!("{:.3}", c.regret.mean),
                };
                let _ = write!(o, "{cell:>w$}");
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "percentile rank of the best found within the table (mean over seeds; share of cells ≤ it)");
        for sum in &self.summaries {
            let _ = write!(o, "{:<L$}", sum.strategy);
            for c in &sum.checkpoints {
                let _ = write!(
                    o,
                    "{:>w$}",
                    format!("{:.3}%", 100.0 * c.mean_percentile_rank)
                );
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "seeds that found the table's optimum ({:.2})", t.best);
        for sum in &self.summaries {
            let _ = write!(o, "{:<L$}", sum.strategy);
            for c in &sum.checkpoints {
                let _ = write!(o, "{:>w$}", format!("{}/{}", c.optimum_found, c.best.n));
            }
            let _ = writeln!(o);
        }
        if !self.comparisons.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "differences of the means ± standard error of the difference (√(se₁² + se₂²), independent seeds)"
            );
            let mut labels: Vec<(&str, &str)> = Vec::new();
            for c in &self.comparisons {
                if !labels.contains(&(c.strategy.as_str(), c.against.as_str())) {
                    labels.push((&c.strategy, &c.against));
                }
            }
            for (a, b) in labels {
                let _ = write!(o, "{:<L$}", format!("{a} − {b}"));
                for c in self
                    .comparisons
                    .iter()
                    .filter(|c| c.strategy == a && c.against == b)
                {
                    let cell = match c.se {
                        Some(se) => format!("{:+.3} ± {:.3}", c.difference, se),
                        None => format!("{:+.3}", c.difference),
                    };
                    let _ = write!(o, "{cell:>w$}");
                }
                let _ = writeln!(o);
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(
            o,
            "distinct cells sampled (mean) and entropy at the last update (nats per architecture)"
        );
        for sum in &self.summaries {
            let _ = writeln!(
                o,
                "{:<L$}{:>10.1} of {}{:>12.3}",
                sum.strategy, sum.mean_distinct, s.budget, sum.mean_final_entropy
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "cost of the last {COST_WINDOW} samples (median, mean over seeds; NB201 CIFAR-10 network) and Pareto-front sizes"
        );
        if let Some(rule) = s.reward.cost_rule() {
            let _ = writeln!(
                o,
                "reward cost rule: {} target {} ({:?}, weight {})",
                rule.metric.name(),
                rule.target,
                rule.mode,
                rule.weight
            );
        }
        for sum in &self.summaries {
            let _ = writeln!(
                o,
                "{:<L$}{:>12.0} params{:>14.0} FLOPs{:>6} / {} points on the params / FLOPs fronts",
                sum.strategy,
                sum.median_params_last,
                sum.median_flops_last,
                sum.pareto.params.len(),
                sum.pareto.flops.len()
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasfleet_core::space::nb201::Nb201Arch;
    use nasfleet_core::strategy::{
        proposal, Proposal, RandomSearch, RegularizedEvolution, UpdateStats,
    };
    use nasfleet_core::Space;

    fn arch(t: [u8; 6]) -> Nb201Arch {
        Nb201Arch::from_naslib_tuple(t).unwrap()
    }

    /// Five cells: A 10, B 50, C 30, D 70 (the optimum), E 60.
    fn cells() -> Vec<(Nb201Arch, f64)> {
        vec![
            (arch([0, 0, 0, 0, 0, 0]), 10.0),
            (arch([0, 0, 0, 0, 0, 1]), 50.0),
            (arch([0, 0, 0, 0, 0, 2]), 30.0),
            (arch([0, 0, 0, 0, 0, 3]), 70.0),
            (arch([0, 0, 0, 0, 0, 4]), 60.0),
        ]
    }

    fn tiny_table() -> Arc<Table> {
        Arc::new(Table::from_cells("acc", vec!["acc".into()], cells()).unwrap())
    }

    /// [`run_bench`] without a progress callback.
    fn run_quietly(
        table: &Arc<Table>,
        source: &str,
        settings: &BenchSettings,
        factory: &mut StrategyFactory<'_>,
    ) -> Result<BenchReport, BenchError> {
        run_bench(Arc::clone(table), source, settings, factory, &mut |_| {})
    }

    /// Proposes the five cells in a fixed cyclic order starting at `start`,
    /// and records every batch of rewards it is given.
    struct Scripted {
        order: Vec<Nb201Arch>,
        next: usize,
        version: u64,
        rewards: Vec<Vec<f64>>,
    }

    impl Scripted {
        fn new(start: usize) -> Self {
            Scripted {
                order: cells().into_iter().map(|c| c.0).collect(),
                next: start,
                version: 0,
                rewards: Vec::new(),
            }
        }
    }

    impl SearchStrategy for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn propose(&mut self, n: usize) -> Result<Vec<Proposal>, StrategyError> {
            (0..n)
                .map(|_| {
                    let a = self.order[self.next % self.order.len()];
                    self.next += 1;
                    proposal(&Space::Nb201, a.encode(), self.version)
                })
                .collect()
        }
        fn update(&mut self, batch: &[Feedback]) -> Result<UpdateStats, StrategyError> {
            self.rewards.push(batch.iter().map(|f| f.reward).collect());
            self.version += 1;
            Ok(UpdateStats {
                loss: 0.0,
                baseline: 0.0,
                mean_reward: 0.0,
                entropy: 1.5,
                grad_norm: 0.0,
                policy_version: self.version,
            })
        }
        fn policy_version(&self) -> u64 {
            self.version
        }
        fn samples_drawn(&self) -> u64 {
            self.next as u64
        }
        fn checkpoint(&self) -> Result<Vec<u8>, StrategyError> {
            Err(StrategyError::Checkpoint("not needed".into()))
        }
        fn restore(&mut self, _: &[u8]) -> Result<(), StrategyError> {
            Err(StrategyError::Checkpoint("not needed".into()))
        }
    }

    #[test]
    fn checkpoints_are_the_standard_ones_up_to_the_budget_plus_the_budget() {
        assert_eq!(checkpoints(1000), [50, 100, 200, 500, 1000]);
        assert_eq!(checkpoints(2000), [50, 100, 200, 500, 1000, 2000]);
        assert_eq!(checkpoints(300), [50, 100, 200, 300]);
        assert_eq!(checkpoints(20), [20]);
        assert_eq!(checkpoints(50), [50]);
    }

    #[test]
    fn moments_by_hand() {
        let m = Moments::of(&[50.0, 70.0]);
        assert_eq!(m.mean, 60.0);
        // sample std: √((10² + 10²) / 1) = √200; se = √200 / √2 = 10.
        assert!((m.std.unwrap() - 200f64.sqrt()).abs() < 1e-12);
        assert!((m.se.unwrap() - 10.0).abs() < 1e-12);
        let one = Moments::of(&[3.0]);
        assert_eq!((one.mean, one.std, one.se), (3.0, None, None));
    }

    #[test]
    fn one_run_by_hand() {
        let table = tiny_table();
        let mut trainer = TableTrainer::with_table(Arc::clone(&table));
        let mut s = Scripted::new(0);
        let reward = RewardConfig::accuracy(1, 2.0);
        let spec = RunSpec {
            name: "scripted",
            seed: 0,
            budget: 7,
            batch: 3,
            reward: &reward,
        };
        let run = run_strategy(&mut s, &table, &mut trainer, spec).unwrap();
        // Order A B C D E A B: values 10 50 30 70 60 10 50.
        assert_eq!(run.best_so_far, [10.0, 50.0, 50.0, 70.0, 70.0, 70.0, 70.0]);
        assert_eq!(run.best_arch, arch([0, 0, 0, 0, 0, 3]).to_string());
        assert_eq!(run.distinct, 5);
        assert_eq!(run.final_entropy, 1.5);
        // Batches of 3, 3 and the remaining 1; rewards (v/100)².
        let expect: Vec<Vec<f64>> =
            vec![vec![0.01, 0.25, 0.09], vec![0.49, 0.36, 0.01], vec![0.25]];
        assert_eq!(s.rewards.len(), expect.len());
        for (got, want) in s.rewards.iter().flatten().zip(expect.iter().flatten()) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn report_by_hand() {
        let table = tiny_table();
        // "random" starts at A, "rl" at C (seed 0) or at E (seed 1).
        let settings = BenchSettings {
            strategies: vec!["random".into(), "rl".into()],
            seeds: vec![0, 1],
            budget: 3,
            batch: 2,
            reward: RewardConfig::accuracy(1, 1.0),
        };
        let mut factory =
            |name: &str, seed: u64| -> Result<Box<dyn SearchStrategy>, StrategyError> {
                match name {
                    "random" => Ok(Box::new(Scripted::new(0))),
                    "rl" => Ok(Box::new(Scripted::new(2 + 2 * seed as usize))),
                    other => Err(StrategyError::Config(format!("unknown {other}"))),
                }
            };
        let mut seen = 0;
        let report = run_bench(
            Arc::clone(&table),
            "tiny",
            &settings,
            &mut factory,
            &mut |_| seen += 1,
        )
        .unwrap();
        assert_eq!(seen, 4);
        assert_eq!(report.checkpoints, [3]);
        // random, both seeds: A B C → 10 50 50.
        // rl seed 0: C D E → 30 70 70; seed 1: E A B → 60 60 60.
        let random = &report.summaries[0];
        assert_eq!(random.curve_mean, [10.0, 50.0, 50.0]);
        assert_eq!(random.curve_std, [0.0, 0.0, 0.0]);
        let c = &random.checkpoints[0];
        assert_eq!(
            (c.best.mean, c.best.std, c.best.se),
            (50.0, Some(0.0), Some(0.0))
        );
        // 50 is ≥ A, B, C: rank 3/5.
        assert!((c.mean_percentile_rank - 0.6).abs() < 1e-12);
        assert_eq!(c.optimum_found, 0);
        let rl = &report.summaries[1];
        assert_eq!(rl.curve_mean, [45.0, 65.0, 65.0]);
        // std of {30, 60} and of {70, 60}: √450 and √50.
        assert!((rl.curve_std[0] - 450f64.sqrt()).abs() < 1e-12);
        assert!((rl.curve_std[2] - 50f64.sqrt()).abs() < 1e-12);
        let c = &rl.checkpoints[0];
        assert_eq!(c.best.mean, 65.0);
        assert!((c.best.se.unwrap() - 5.0).abs() < 1e-12);
        // Regret: 70 − {70, 60} = {0, 10}: mean 5, the same standard error.
        assert_eq!(c.regret.mean, 5.0);
        assert!((c.regret.se.unwrap() - 5.0).abs() < 1e-12);
        assert_eq!((c.min, c.max), (60.0, 70.0));
        // 70 ranks 5/5, 60 ranks 4/5 (A, B, C, E ≤ 60): mean 0.9.
        assert!((c.mean_percentile_rank - 0.9).abs() < 1e-12);
        assert_eq!(c.optimum_found, 1);
        assert_eq!(rl.mean_distinct, 3.0);
        // rl − random = 15 ± √(5² + 0²).
        assert_eq!(report.comparisons.len(), 1);
        let cmp = &report.comparisons[0];
        assert_eq!((cmp.strategy.as_str(), cmp.samples), ("rl", 3));
        assert!((cmp.difference - 15.0).abs() < 1e-12 && (cmp.se.unwrap() - 5.0).abs() < 1e-12);
        assert_eq!(report.runs[2].best_at, [70.0]);
        assert_eq!(report.table.best, 70.0);
        assert_eq!(report.table.median, 50.0);

        let text = report.render();
        assert!(text.contains("65.00 ± 7.07"), "{text}");
        assert!(text.contains("regret") && text.contains("5.000 ± 5.000"), "{text}");
        // Costs: every run records each sample's, and the table's front
        // starts at its cheapest cell.
        assert_eq!(report.table_pareto.params[0].params, 73_306);
        assert_eq!(rl.pareto.children, 6);
        assert!(text.contains("+15.000 ± 5.000"), "{text}");
        assert!(text.contains("90.000%"), "{text}");
        assert!(text.contains("1/2"), "{text}");
        // The JSON form round-trips.
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<BenchReport>(&json).unwrap(), report);
    }

    #[test]
    fn every_pair_is_compared_with_random_always_subtracted() {
        let table = tiny_table();
        let settings = BenchSettings {
            strategies: vec!["rl".into(), "random".into(), "evolution".into()],
            seeds: vec![0],
            budget: 1,
            batch: 1,
            reward: RewardConfig::default(),
        };
        let run = |strategy: &str, v: f64| SeedRun {
            strategy: strategy.into(),
            seed: 0,
            best_so_far: vec![v],
            best_arch: String::new(),
            distinct: 1,
            final_entropy: 0.0,
            values: vec![v],
            params: vec![1],
            flops: vec![1],
            pareto: ParetoFronts::of_points(&[]),
        };
        let runs = [run("evolution", 70.0), run("rl", 60.0), run("random", 10.0)];
        let report = summarise(&table, "tiny", &settings, &runs);
        let got: Vec<(&str, &str, f64, Option<f64>)> = report
            .comparisons
            .iter()
            .map(|c| (c.strategy.as_str(), c.against.as_str(), c.difference, c.se))
            .collect();
        // One seed each: no standard errors.
        assert_eq!(
            got,
            [
                ("rl", "random", 50.0, None),
                ("evolution", "random", 60.0, None),
                ("rl", "evolution", -10.0, None)
            ]
        );
        let text = report.render();
        assert!(
            text.contains("rl − evolution") && text.contains("-10.000"),
            "{text}"
        );
    }

    #[test]
    fn errors_name_the_strategy_and_seed() {
        let table = tiny_table();
        let settings = BenchSettings {
            strategies: vec!["nope".into()],
            seeds: vec![4],
            budget: 3,
            batch: 2,
            reward: RewardConfig::default(),
        };
        let mut factory = |name: &str, _: u64| -> Result<Box<dyn SearchStrategy>, StrategyError> {
            Err(StrategyError::Config(format!("unknown strategy {name:?}")))
        };
        let e = run_quietly(&table, "tiny", &settings, &mut factory).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nope (seed 4): strategy configuration: unknown strategy \"nope\""
        );
        // Random search on a 5-cell table soon proposes a cell it lacks.
        let mut factory = |_: &str, seed: u64| -> Result<Box<dyn SearchStrategy>, StrategyError> {
            Ok(Box::new(RandomSearch::new(Space::Nb201, seed)))
        };
        let random_only = BenchSettings {
            strategies: vec!["random".into()],
            ..settings.clone()
        };
        let e = run_quietly(&table, "tiny", &random_only, &mut factory).unwrap_err();
        assert!(
            matches!(e, BenchError::Score { .. }) && e.to_string().contains("not in the table"),
            "{e}"
        );
        let twice = BenchSettings {
            strategies: vec!["a".into(), "a".into()],
            ..settings
        };
        assert!(twice.check().unwrap_err().to_string().contains("twice"));
    }

    /// A complete synthetic table: the value of a cell is a fixed function of
    /// its tuple, with a unique optimum.
    fn full_table() -> Arc<Table> {
        let cells = (0..crate::CELLS).map(|i| {
            let mut t = [0u8; 6];
            let mut r = i;
            for d in t.iter_mut().rev() {
                *d = (r % 5) as u8;
                r /= 5;
            }
            let v = 10.0
                + t.iter()
                    .enumerate()
                    .map(|(k, &d)| f64::from(d) * (k as f64 + 1.0))
                    .sum::<f64>()
                    / 1.5;
            (arch(t), v)
        });
        Arc::new(Table::from_cells("acc", vec!["acc".into()], cells).unwrap())
    }

    #[test]
    fn pure_strategies_are_deterministic_per_seed() {
        let table = full_table();
        let settings = BenchSettings {
            strategies: vec!["random".into(), "evolution".into()],
            seeds: vec![0, 1, 2],
            budget: 300,
            batch: 8,
            reward: RewardConfig::default(),
        };
        let mut factory =
            |name: &str, seed: u64| -> Result<Box<dyn SearchStrategy>, StrategyError> {
                let evo = nasfleet_core::config::EvolutionConfig {
                    population: 50,
                    sample_size: 10,
                };
                match name {
                    "random" => Ok(Box::new(RandomSearch::new(Space::Nb201, seed))),
                    _ => Ok(Box::new(RegularizedEvolution::new(
                        Space::Nb201,
                        &evo,
                        seed,
                    )?)),
                }
            };
        let a = run_quietly(&table, "full", &settings, &mut factory).unwrap();
        let b = run_quietly(&table, "full", &settings, &mut factory).unwrap();
        assert_eq!(a, b);
        // Different seeds give different runs.
        let finals: HashSet<String> = a.runs.iter().map(|r| format!("{:?}", r.best_at)).collect();
        assert!(finals.len() > 1, "{finals:?}");
        // Curves never decrease, and evolution beats random on this smooth
        // landscape (an additive objective is easy for single mutations).
        for s in &a.summaries {
            assert!(s.curve_mean.windows(2).all(|w| w[1] >= w[0]));
        }
        let at_300 = |i: usize| a.summaries[i].checkpoints.last().unwrap().best.mean;
        assert!(
            at_300(1) > at_300(0),
            "evolution {} vs random {}",
            at_300(1),
            at_300(0)
        );
    }
}
