//! `nasfleet bench search`: the search-efficiency benchmark on a
//! NAS-Bench-201 table (perf.md, benchmark 5). The loop, the statistics and
//! the plot live in `nasfleet_nb201::bench`; this module resolves the
//! settings, supplies the strategy factory (the RL controller needs libtorch,
//! which the nb201 crate does not link) and writes the artefacts.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nasfleet_core::config::{ControllerUpdate, StrategyKind};
use nasfleet_core::cost::CostMetric;
use nasfleet_core::reward::{CostMode, CostRule, RewardConfig};
use nasfleet_core::strategy::{SearchStrategy, StrategyError};
use nasfleet_core::{ExperimentConfig, SpaceKind};
use nasfleet_nb201::bench::{run_bench, BenchSettings};
use nasfleet_nb201::Table;

use crate::cli::{BenchCommand, BenchSearchArgs};

/// The tuned NB201 settings (config/nb201.toml), used when no --config is
/// given so that the bare command reproduces the published comparison.
const NB201_CONFIG: &str = include_str!("../../../config/nb201.toml");

pub(crate) fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Search(args) => search(args),
    }
}

/// The strategy a bench name selects, and the controller update for `rl`
/// and `rl-ppo`.
fn strategy_kind(name: &str) -> Result<(StrategyKind, ControllerUpdate), StrategyError> {
    match name {
        "rl" => Ok((StrategyKind::Rl, ControllerUpdate::Reinforce)),
        "rl-ppo" => Ok((StrategyKind::Rl, ControllerUpdate::Ppo)),
        "random" => Ok((StrategyKind::Random, ControllerUpdate::Reinforce)),
        "evolution" => Ok((StrategyKind::Evolution, ControllerUpdate::Reinforce)),
        "local" => Ok((StrategyKind::Local, ControllerUpdate::Reinforce)),
        other => Err(StrategyError::Config(format!(
            "unknown strategy {other:?} (expected rl, rl-ppo, random, evolution or local)"
        ))),
    }
}

/// The experiment config after the file and the command-line overrides
/// (command line > file > built-in nb201.toml).
fn resolve_config(a: &BenchSearchArgs) -> Result<ExperimentConfig> {
    let mut cfg = match &a.config {
        Some(p) => ExperimentConfig::load(p)?,
        None => ExperimentConfig::from_toml_str(NB201_CONFIG, "config/nb201.toml (built in)")?,
    };
    if cfg.search.space != SpaceKind::Nb201 {
        bail!(
            "the config has search.space = {:?}; the table bench searches the nb201 space (see config/nb201.toml)",
            cfg.search.space.name()
        );
    }
    let c = &mut cfg.controller;
    if let Some(v) = a.lr {
        c.lr = v;
    }
    if let Some(v) = a.baseline_decay {
        c.baseline_decay = v;
    }
    if let Some(v) = a.entropy_weight {
        c.entropy_weight = v;
    }
    if let Some(v) = a.ppo_epochs {
        c.ppo_epochs = v;
    }
    if let Some(v) = a.ppo_clip {
        c.ppo_clip = v;
    }
    if let Some(v) = a.batch {
        cfg.search.batch = v;
    }
    if let Some(p) = a.reward_power {
        cfg.reward = match cfg.reward {
            RewardConfig::Accuracy { last_k, cost, .. } => RewardConfig::Accuracy { last_k, power: p, cost },
            RewardConfig::Perplexity { .. } => bail!("--reward-power needs an accuracy reward, the config has a perplexity one"),
        };
    }
    if let (Some(metric), Some(target)) = (&a.cost, a.cost_target) {
        let metric = CostMetric::from_name(metric).with_context(|| format!("unknown cost {metric:?}"))?;
        let mut rule = CostRule::soft(metric, target);
        if a.cost_mode.as_deref() == Some("hard") {
            rule.mode = CostMode::Hard;
        }
        if let Some(w) = a.cost_weight {
            rule.weight = w;
        }
        cfg.reward = match cfg.reward {
            RewardConfig::Accuracy { last_k, power, .. } => RewardConfig::Accuracy { last_k, power, cost: Some(rule) },
            RewardConfig::Perplexity { .. } => bail!("--cost needs an accuracy reward, the config has a perplexity one"),
        };
    }
    cfg.check("the bench settings").context("after the command-line overrides")?;
    Ok(cfg)
}

fn search(a: BenchSearchArgs) -> Result<()> {
    let cfg = resolve_config(&a)?;
    let strategies: Vec<String> = a.strategies.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    for s in &strategies {
        strategy_kind(s)?;
    }
    let path = match &a.table {
        Some(p) => p.clone(),
        None => {
            let cache = nasfleet_nb201::default_cache_dir().context("finding the cache directory for the table")?;
            nasfleet_nb201::fetch_table(&cache).context("fetching the NAS-Bench-201 table (analog-nasbench) with pip")?
        }
    };
    let table = Arc::new(
        Table::load(&path, a.objective.as_deref()).with_context(|| format!("loading the table {}", path.display()))?,
    );
    tracing::info!(table = %path.display(), stats = %table.stats(), "table loaded");

    // The controller's tensors hold a few thousand numbers: more intra-op
    // threads only add synchronisation, and the bench machines are shared.
    nasfleet_torch::tch::set_num_threads(1);

    let settings = BenchSettings {
        strategies,
        seeds: (a.first_seed..a.first_seed + a.seeds).collect(),
        budget: a.budget,
        batch: cfg.search.batch,
        reward: cfg.reward.clone(),
    };
    let mut factory = |name: &str, seed: u64| -> Result<Box<dyn SearchStrategy>, StrategyError> {
        let mut c = cfg.clone();
        (c.search.strategy, c.controller.update) = strategy_kind(name)?;
        c.search.seed = seed;
        crate::choose::strategy(&c)
    };
    let mut progress = |r: &nasfleet_nb201::bench::SeedRun| {
        tracing::info!(
            strategy = %r.strategy,
            seed = r.seed,
            best = r.best_so_far.last().copied().unwrap_or(f64::NAN),
            distinct = r.distinct,
            entropy = r.final_entropy,
            "run finished"
        );
    };
    let report = run_bench(Arc::clone(&table), &path.display().to_string(), &settings, &mut factory, &mut progress)?;

    let text = report.render();
    print!("{text}");
    let out = &a.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let command: Vec<String> = std::env::args().collect();
    write(&out.join("search.json"), &serde_json::to_string_pretty(&report)?)?;
    write(&out.join("search.txt"), &format!("$ {}\n\n{text}", command.join(" ")))?;
    write(&out.join("config.toml"), &cfg.to_toml())?;
    let png = out.join("search.png");
    nasfleet_nb201::plot::plot_curves(&report, &png)?;
    nasfleet_nb201::plot::plot_pareto(&report, &out.join("pareto.png"))?;
    let fronts: Vec<(&str, &nasfleet_core::pareto::ParetoFronts)> =
        std::iter::once(("table", &report.table_pareto))
            .chain(report.summaries.iter().map(|s| (s.strategy.as_str(), &s.pareto)))
            .collect();
    write(&out.join("pareto.json"), &serde_json::to_string_pretty(&fronts.into_iter().collect::<std::collections::BTreeMap<_, _>>())?)?;
    println!(
        "\nwrote {}, search.txt, search.png, pareto.json, pareto.png and config.toml (the resolved settings)",
        out.join("search.json").display()
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
