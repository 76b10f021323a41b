//! `nasfleet local`, `nasfleet worker`, `nasfleet controller start|status`:
//! settings from the command line and the config file, then the loops of
//! `nasfleet-fleet` with the real strategy and trainers.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nasfleet_core::ExperimentConfig;
use nasfleet_fleet::{
    collect_status, local_queue, on_signals, render_text, request_stop, run_controller, run_local_on, run_worker, signal_or_notice,
    wait_for_settings, Board,
    ControllerOptions, ControllerState, ControllerSummary, FleetSettings, LocalOptions, RedisBoard,
    WorkerOptions, WorkerOverrides,
};
use nasfleet_queue::{Consumer, RedisQueue, RedisQueueConfig, Requeued, RunLifecycle, TlsFiles};
use tokio::sync::watch;

use crate::cli::{
    ControllerCommand, ControllerRequeueArgs, ControllerStartArgs, ControllerStatusArgs, ControllerStopArgs, LocalArgs,
    RedisArgs, WorkerArgs,
};
use crate::choose::{strategy, Trainers};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn load_config(path: &Path) -> Result<ExperimentConfig> {
    ExperimentConfig::load(path).with_context(|| format!("loading {}", path.display()))
}

fn redis_config(args: &RedisArgs, settings: &FleetSettings) -> Result<RedisQueueConfig> {
    let mut c = settings.redis_config(&args.redis, &args.run);
    if args.tls_ca.is_some() || args.tls_cert.is_some() || args.tls_key.is_some() {
        if !args.redis.starts_with("rediss://") {
            bail!("--tls-ca/--tls-cert/--tls-key need a rediss:// URL");
        }
        c.tls = Some(TlsFiles {
            ca_cert: args.tls_ca.clone(),
            client_cert: args.tls_cert.clone(),
            client_key: args.tls_key.clone(),
        });
    }
    Ok(c)
}

pub(crate) fn worker(args: WorkerArgs) -> Result<()> {
    let overrides = WorkerOverrides {
        lease: args.lease,
        heartbeat: args.heartbeat,
        max_deliveries: args.max_deliveries,
        stop_grace: args.stop_grace,
        retry_for: args.retry_for,
        max_payload_bytes: args.max_payload_bytes,
        max_params: args.max_params,
        max_flops: args.max_flops,
    };
    let mut rcfg = redis_config(&args.redis, &FleetSettings::default())?;
    let run = args.redis.run.clone();
    let work_dir = args.work_dir.clone().unwrap_or_else(|| nasfleet_util::cache_dir().join("work"));
    let notice = match (args.preemption_notice.clone(), &args.metadata_base) {
        (Some(n), Some(base)) => Some(n.with_base(base.as_str())),
        (n, _) => n,
    };
    let rt = runtime()?;
    let report = rt.block_on(async {
        let signals = on_signals().context("installing signal handlers")?;
        let shutdown = signal_or_notice(signals, notice, args.notice_poll);
        let board = Board::Redis(RedisBoard::new(&rcfg)?);
        let Some(published) = wait_for_settings(&board, shutdown.clone(), Duration::from_secs(2))
            .await
            .with_context(|| format!("reading the settings of run {run}"))?
        else {
            return Ok(None);
        };
        let settings = FleetSettings::for_worker(Some(&published), &overrides)?;
        settings.apply_to(&mut rcfg);
        let opts = WorkerOptions {
            consumer: Consumer::local(&args.device)?,
            run: run.clone(),
            settings,
            max_jobs: args.max_children,
            idle_exit: args.idle_exit,
            work_dir: Some(work_dir),
            device: args.device.clone(),
            data_dir: args.data_dir.clone(),
        };
        let queue = RedisQueue::connect(rcfg).await.context("connecting to the queue")?;
        tracing::info!(consumer = %opts.consumer, run = %opts.run, lease = ?opts.settings.lease, "worker connected");
        let trainers = Trainers::per_thread(opts.data_dir.clone(), &opts.device);
        run_worker(queue, opts, trainers, shutdown).await.context("worker").map(Some)
    })?;
    // A trainer that ignores its stop flag must not keep the process alive.
    rt.shutdown_timeout(Duration::from_millis(100));
    match report {
        Some(report) => eprintln!(
            "worker done: {} jobs ({} completed, {} dead-lettered, {} given back, {} released on stop){}",
            report.jobs,
            report.completed,
            report.dead_lettered,
            report.abandoned,
            report.released,
            report.left.as_deref().map(|l| format!("; left: {l}")).unwrap_or_default()
        ),
        None => eprintln!("worker stopped before run {run}'s controller published its settings"),
    }
    Ok(())
}

pub(crate) fn controller(cmd: ControllerCommand) -> Result<()> {
    match cmd {
        ControllerCommand::Start(args) => controller_start(args),
        ControllerCommand::Status(args) => controller_status(args),
        ControllerCommand::Stop(args) => controller_stop(args),
        ControllerCommand::Requeue(args) => controller_requeue(args),
    }
}

fn controller_requeue(args: ControllerRequeueArgs) -> Result<()> {
    let rcfg = redis_config(&args.redis, &FleetSettings::default())?;
    let run = &args.redis.run;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let queue = RedisQueue::connect(rcfg).await.context("connecting to the queue")?;
        nasfleet_fleet::requeue(&queue, &args.jobs, args.reason.as_deref()).await.context("requeueing dead letters")
    })?;
    if report.jobs.is_empty() {
        match &args.reason {
            Some(r) => println!("run {run} has no dead letters with reason {r}"),
            None => println!("run {run} has no dead letters"),
        }
        return Ok(());
    }
    for (job, answer) in &report.jobs {
        let why = match answer {
            Requeued::Requeued { .. } => "",
            Requeued::Finished => " (it finished with a result: nothing to requeue)",
            Requeued::Pending => " (it has no outcome yet: queued or in flight)",
            Requeued::Unknown => " (the run has no dead letter of this job)",
        };
        println!("{job}\t{}{why}", answer.as_str());
    }
    let n = report.requeued();
    eprintln!("{n} of {} job(s) requeued in run {run}", report.jobs.len());
    if n > 0 && report.lifecycle.is_over() {
        eprintln!(
            "run {run} was {}: resume its controller to collect the requeued children's results (it waits for them \
             before finishing again):\n  nasfleet controller start --resume --run {run} --config runs/{run}/config.toml",
            report.lifecycle.as_str()
        );
    }
    if n == 0 && !args.jobs.is_empty() {
        anyhow::bail!("none of the named jobs was a dead letter of run {run}");
    }
    Ok(())
}

fn controller_stop(args: ControllerStopArgs) -> Result<()> {
    let rcfg = redis_config(&args.redis, &FleetSettings::default())?;
    let run = &args.redis.run;
    let rt = runtime()?;
    let seen = rt.block_on(async {
        let queue = RedisQueue::connect(rcfg).await.context("connecting to the queue")?;
        request_stop(&queue, args.wait, Duration::from_millis(500)).await.context("stopping the run")
    })?;
    match seen {
        RunLifecycle::Stopped => eprintln!(
            "run {run} stopped: the controller checkpointed; workers exit once their child is done.\n\
             continue with: nasfleet controller start --resume --run {run} --config <CONFIG>"
        ),
        RunLifecycle::Finished => eprintln!("run {run} had already finished; nothing to stop"),
        _ => eprintln!(
            "run {run} is stopping: no controller confirmed within {:?} (is one running?). It stops at its next \
             step; workers exit once their child is done. Continue later with `nasfleet controller start --resume`.",
            args.wait
        ),
    }
    Ok(())
}

fn controller_start(args: ControllerStartArgs) -> Result<()> {
    let cfg = load_config(&args.config)?;
    let settings = FleetSettings::from_config(&cfg.fleet)?;
    let rcfg = redis_config(&args.redis, &settings)?;
    let run_dir = args.run_dir.clone().unwrap_or_else(|| Path::new("runs").join(&args.redis.run));
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let queue = RedisQueue::connect(rcfg.clone()).await.context("connecting to the queue")?;
        // The controller publishes the run's settings on it before any job.
        let board = Board::Redis(RedisBoard::new(&rcfg)?);
        let opts = ControllerOptions {
            run: args.redis.run.clone(),
            run_dir: run_dir.clone(),
            resume: args.resume,
            consumer: Consumer::local("controller")?,
            block: settings.block,
            board,
            progress: None,
            probe: None,
        };
        eprintln!(
            "controller: run {} in {}; start workers with\n  nasfleet worker --redis <URL> --run {}",
            args.redis.run,
            run_dir.display(),
            args.redis.run
        );
        let shutdown = on_signals().context("installing signal handlers")?;
        let strategy = strategy(&cfg).context("building the search strategy")?;
        run_controller(queue, &cfg, strategy, opts, shutdown).await.context("controller")
    })?;
    print_summary(&summary, &format!("--resume --run {}", args.redis.run));
    Ok(())
}

fn controller_status(args: ControllerStatusArgs) -> Result<()> {
    let rcfg = redis_config(&args.redis, &FleetSettings::default())?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let queue = RedisQueue::connect(rcfg.clone()).await.context("connecting to the queue")?;
        let board = Board::Redis(RedisBoard::new(&rcfg)?);
        collect_status(&queue, &board, &args.redis.run, args.limit.max(1))
            .await
            .context("reading the run's status")
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(())
}

/// `<config stem>-<UTC yyyymmdd-hhmmss>`.
fn default_run(config: &Path) -> String {
    let stem: String = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(40)
        .collect();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{stem}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub(crate) fn local(args: LocalArgs) -> Result<()> {
    let cfg = load_config(&args.config)?;
    let run = match (&args.run, &args.run_dir) {
        (Some(r), _) => r.clone(),
        (None, Some(d)) => d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("--run-dir has no final component to name the run")?,
        (None, None) if args.resume => bail!("--resume needs --run or --run-dir"),
        (None, None) => default_run(&args.config),
    };
    let run_dir = args.run_dir.clone().unwrap_or_else(|| Path::new("runs").join(&run));
    let workers = args.workers.unwrap_or(cfg.fleet.workers);
    let (tx, rx) = watch::channel(ControllerState::default());
    let opts = LocalOptions {
        run: run.clone(),
        run_dir: run_dir.clone(),
        resume: args.resume,
        workers,
        device: args.device.clone(),
        data_dir: args.data_dir.clone(),
        work_dir: Some(run_dir.join("work")),
        progress: Some(tx),
    };
    eprintln!("local: run {run} with {workers} worker(s) in {}", run_dir.display());
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let shutdown = on_signals().context("installing signal handlers")?;
        let queue = local_queue(&cfg).context("the in-memory queue")?;
        // --dashboard: the pages of this run, with the in-memory queue as
        // its live view; they go away with the search.
        let dashboard = match &args.dashboard {
            Some(listen) => {
                let listener = crate::dashboard_cmd::bind(listen).await?;
                eprintln!("dashboard: {}", crate::dashboard_cmd::url(&listener, Some(&run)));
                let dash = nasfleet_dashboard::Dashboard::one_run(&run, run_dir.clone())
                    .with_live(Arc::new(nasfleet_dashboard::QueueLive::new(queue.clone(), &run)));
                Some(tokio::spawn(nasfleet_dashboard::serve(listener, Arc::new(dash), std::future::pending())))
            }
            None => None,
        };
        let progress = tokio::spawn(show_progress(rx));
        let strategy = strategy(&cfg).context("building the search strategy")?;
        let trainers = Trainers::per_thread(args.data_dir.clone(), &args.device);
        let r = run_local_on(queue, &cfg, strategy, trainers, opts, shutdown).await;
        progress.abort();
        if let Some(d) = dashboard {
            d.abort();
        }
        r.context("local search")
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    print_summary(&summary, &format!("nasfleet local --config {} --resume --run {run}", args.config.display()));
    Ok(())
}

/// The progress line on stderr: children done / total, best reward, rate.
/// Redrawn in place on a terminal; otherwise a plain line at most every 10 s.
async fn show_progress(mut rx: watch::Receiver<ControllerState>) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut first_applied: Option<u64> = None;
    let mut last_line: Option<Instant> = None;
    let mut printed_final = false;
    while rx.changed().await.is_ok() {
        let s = rx.borrow_and_update().clone();
        let base = *first_applied.get_or_insert(s.applied);
        let mins = start.elapsed().as_secs_f64() / 60.0;
        let rate = if mins > 0.0 { (s.applied - base) as f64 / mins } else { 0.0 };
        let best = s.best_reward.map(|b| format!("{b:.4}")).unwrap_or_else(|| "-".into());
        let failed = if s.failed > 0 { format!(" ({} failed)", s.failed) } else { String::new() };
        let line = format!(
            "children {}/{}{failed} | best reward {best} | {rate:.1} children/min | policy step {}",
            s.applied, s.total, s.policy_version
        );
        let done = s.applied >= s.total;
        if printed_final {
            continue;
        }
        if tty {
            eprint!("\r\x1b[2K{line}");
            if done {
                eprintln!();
            }
        } else if done || last_line.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            eprintln!("{line}");
            last_line = Some(Instant::now());
        }
        printed_final = done;
    }
}

fn print_summary(s: &ControllerSummary, resume_hint: &str) {
    if !s.finished {
        eprintln!(
            "stopped after {}/{} children; continue with {resume_hint}",
            s.state.applied, s.state.total
        );
    }
    match &s.best {
        Some(b) => {
            println!("best reward {} ({}, policy version {})", b.reward, b.job_id, b.policy_version);
            println!("{}", serde_json::to_string_pretty(&b.arch).unwrap_or_default());
        }
        None => println!("no child finished with a reward"),
    }
    println!("epochs trained: {}", s.state.epochs_trained);
    if let Some(line) = nasfleet_fleet::status::early_stop_line(&s.state) {
        println!("{line}");
    }
    println!("run directory: {}", s.run_dir.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn default_run_ids_are_valid_run_ids() {
        let run = default_run(Path::new("configs/my exp.v2.toml"));
        assert!(run.starts_with("my_exp_v2-"), "{run}");
        nasfleet_queue::Keys::new(&run).unwrap();
    }
}
