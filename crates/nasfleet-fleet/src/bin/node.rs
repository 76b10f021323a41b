//! `nasfleet-fleet-node`: one fleet process with the fake trainer, for the
//! fault tests (feature `fake-trainer`; never part of the `nasfleet` binary).
//! The tests start workers and controllers as separate processes with it, so
//! they can kill -9, SIGSTOP and SIGTERM them by pid.
//!
//! ```text
//! nasfleet-fleet-node worker --redis URL --run RUN [--lease-ms N] [--heartbeat-ms N]
//!     [--max-deliveries N] [--block-ms N] [--stop-grace-ms N] [--retry-for-ms N]
//!     [--work-dir DIR] [--max-jobs N] [--step-ms N] [--crash-jobs ID,ID]
//!     [--crash-mode panic|retryable|permanent|exit] [--ignore-stop] [--trace FILE]
//!     [--rung-trace FILE] [--rung-pause-ms N]
//!     [--idle-exit-ms N] [--preemption-notice aws|gcp|URL] [--notice-poll-ms N]
//! nasfleet-fleet-node controller --config FILE --redis URL --run RUN --run-dir DIR
//!     [--resume] [--crash-at updated|history|checkpointed|enqueued|acked:STEP[:INDEX] | late-history | late-checkpointed]
//! ```
//!
//! `--crash-at` exits the controller with status 86 at that point of that
//! step, leaving the disk exactly as a kill -9 would (every write before it
//! is fsynced).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use nasfleet_core::strategy::build_pure_strategy;
use nasfleet_core::ExperimentConfig;
use nasfleet_fleet::fake::{fake_trainers, CrashMode, FakeTrainerConfig};
use nasfleet_fleet::{
    on_signals, run_controller, run_worker, signal_or_notice, Board, NoticeSource, ControllerOptions, FleetSettings, Point, RedisBoard,
    WorkerOptions,
};
use nasfleet_queue::{Consumer, RedisQueue};

struct Args {
    flags: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut flags = HashMap::new();
        let mut switches = Vec::new();
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            match it.peek() {
                Some(v) if !v.starts_with("--") => {
                    flags.insert(name.to_owned(), it.next().cloned().unwrap_or_default());
                }
                _ => switches.push(name.to_owned()),
            }
        }
        Ok(Args { flags, switches })
    }

    fn get(&self, k: &str) -> Result<String, String> {
        self.flags.get(k).cloned().ok_or_else(|| format!("--{k} is required"))
    }

    fn num(&self, k: &str) -> Result<Option<u64>, String> {
        self.flags
            .get(k)
            .map(|v| v.parse().map_err(|_| format!("--{k} {v:?} is not a number")))
            .transpose()
    }

    fn ms(&self, k: &str, default: Duration) -> Result<Duration, String> {
        Ok(self.num(k)?.map(Duration::from_millis).unwrap_or(default))
    }

    fn switch(&self, k: &str) -> bool {
        self.switches.iter().any(|s| s == k)
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async {
        match argv.split_first() {
            Some((cmd, rest)) if cmd == "worker" => worker(Args::parse(rest)?).await,
            Some((cmd, rest)) if cmd == "controller" => controller(Args::parse(rest)?).await,
            _ => Err("usage: nasfleet-fleet-node worker|controller --flags".to_owned()),
        }
    });
    // Do not wait for a trainer thread that ignores its stop flag.
    rt.shutdown_timeout(Duration::from_millis(100));
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn worker(a: Args) -> Result<(), String> {
    let d = FleetSettings::default();
    let settings = FleetSettings {
        lease: a.ms("lease-ms", d.lease)?,
        heartbeat: a.ms("heartbeat-ms", d.heartbeat)?,
        max_deliveries: a.num("max-deliveries")?.map(|n| n as u32).unwrap_or(d.max_deliveries),
        block: a.ms("block-ms", d.block)?,
        stop_grace: a.ms("stop-grace-ms", d.stop_grace)?,
        retry_for: a.ms("retry-for-ms", d.retry_for)?,
        ..d
    };
    let run = a.get("run")?;
    let queue = RedisQueue::connect(settings.redis_config(&a.get("redis")?, &run))
        .await
        .map_err(|e| e.to_string())?;
    let fake = FakeTrainerConfig {
        step: a.ms("step-ms", Duration::ZERO)?,
        crash_jobs: a
            .flags
            .get("crash-jobs")
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        crash: a.flags.get("crash-mode").map(|s| s.parse::<CrashMode>()).transpose()?.unwrap_or_default(),
        ignore_stop: a.switch("ignore-stop"),
        trace: a.flags.get("trace").map(PathBuf::from),
        rung_trace: a.flags.get("rung-trace").map(PathBuf::from),
        rung_pause: a.ms("rung-pause-ms", Duration::ZERO)?,
    };
    let opts = WorkerOptions {
        consumer: Consumer::local("cpu").map_err(|e| e.to_string())?,
        run,
        settings,
        max_jobs: a.num("max-jobs")?,
        idle_exit: a.num("idle-exit-ms")?.map(Duration::from_millis),
        work_dir: a.flags.get("work-dir").map(PathBuf::from),
        device: "cpu".into(),
        data_dir: None,
    };
    // The tests read this line to map a pid to its consumer name.
    eprintln!("consumer {}", opts.consumer.name());
    let notice = a
        .flags
        .get("preemption-notice")
        .map(|v| v.parse::<NoticeSource>())
        .transpose()?;
    let poll = a.ms("notice-poll-ms", nasfleet_fleet::preemption::DEFAULT_POLL)?;
    let shutdown = signal_or_notice(on_signals().map_err(|e| e.to_string())?, notice, poll);
    let report = run_worker(queue, opts, fake_trainers(fake), shutdown)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    Ok(())
}

fn crash_point(spec: &str) -> Result<Point, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let num = |i: usize| -> Result<u64, String> {
        parts
            .get(i)
            .ok_or_else(|| format!("--crash-at {spec:?}: missing field {i}"))?
            .parse()
            .map_err(|_| format!("--crash-at {spec:?}: field {i} is not a number"))
    };
    match parts[0] {
        "late-history" => return Ok(Point::LateWritten),
        "late-checkpointed" => return Ok(Point::LateCheckpointed),
        _ => {}
    }
    let step = num(1)?;
    Ok(match parts[0] {
        "updated" => Point::Updated { step },
        "history" => Point::HistoryWritten { step },
        "checkpointed" => Point::Checkpointed { step },
        "enqueued" => Point::Enqueued { step, index: num(2)? as usize },
        "acked" => Point::Acked { step },
        other => return Err(format!("--crash-at: unknown point {other:?}")),
    })
}

async fn controller(a: Args) -> Result<(), String> {
    let cfg = ExperimentConfig::load(&PathBuf::from(a.get("config")?)).map_err(|e| e.to_string())?;
    let settings = FleetSettings::from_config(&cfg.fleet).map_err(|e| e.to_string())?;
    let run = a.get("run")?;
    let rcfg = settings.redis_config(&a.get("redis")?, &run);
    let queue = RedisQueue::connect(rcfg.clone()).await.map_err(|e| e.to_string())?;
    let board = Board::Redis(RedisBoard::new(&rcfg).map_err(|e| e.to_string())?);
    let probe = match a.flags.get("crash-at") {
        None => None,
        Some(spec) => {
            let at = crash_point(spec)?;
            let p: nasfleet_fleet::Probe = Arc::new(move |p: Point| {
                if p == at {
                    eprintln!("crash point {p:?} reached: exiting");
                    std::process::exit(86);
                }
            });
            Some(p)
        }
    };
    let opts = ControllerOptions {
        run,
        run_dir: PathBuf::from(a.get("run-dir")?),
        resume: a.switch("resume"),
        consumer: Consumer::local("controller").map_err(|e| e.to_string())?,
        block: settings.block,
        board,
        progress: None,
        probe,
    };
    let strategy = build_pure_strategy(&cfg).map_err(|e| e.to_string())?;
    let shutdown = on_signals().map_err(|e| e.to_string())?;
    let summary = run_controller(queue, &cfg, strategy, opts, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&summary.state).unwrap_or_default());
    Ok(())
}
