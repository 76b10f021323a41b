//! The harness of the fleet tests: scaled-down configs, a reference run to
//! compare against, in-process controllers and workers, and worker /
//! controller processes (the `nasfleet-fleet-node` binary) that tests kill,
//! stop and signal by pid.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nasfleet_core::config::{FleetConfig, StrategyKind};
use nasfleet_core::strategy::build_pure_strategy;
use nasfleet_core::ExperimentConfig;
use nasfleet_fleet::fake::{fake_trainers, FakeTrainerConfig};
use nasfleet_fleet::rundir::{files, read_checkpoint, read_lines, HistoryLine, UpdateLine};
use nasfleet_fleet::{
    run_controller, run_local, run_worker, shutdown_pair, Board, ControllerOptions, ControllerSummary,
    FleetSettings, LocalOptions, Shutdown, ShutdownTrigger, WorkerOptions, WorkerReport,
};
use nasfleet_queue::testing::TempDir;
use nasfleet_queue::{Consumer, JobQueue, RedisQueue, RedisQueueConfig};
use tokio::task::JoinHandle;

/// A small evolution search with fleet timings scaled down (heartbeat
/// 100 ms, lease 1 s). Evolution's proposals depend on every reward it was
/// given, in order, so any reward lost, doubled or reordered changes the
/// architectures that follow.
pub(crate) fn config(total: u64, batch: usize, in_flight: usize, epochs: usize) -> ExperimentConfig {
    let mut c = ExperimentConfig::default();
    c.search.strategy = StrategyKind::Evolution;
    c.search.seed = 7;
    c.search.architectures = total;
    c.search.batch = batch;
    c.search.max_in_flight = in_flight;
    c.evolution.population = 6;
    c.evolution.sample_size = 3;
    c.train.epochs = epochs;
    c.fleet = FleetConfig {
        lease_ms: 1000,
        heartbeat_ms: 100,
        block_ms: 200,
        stop_grace_ms: 5000,
        retry_for_ms: 30_000,
        max_deliveries: 3,
        ..FleetConfig::default()
    };
    c
}

/// One history line's deterministic fields: seq, status, reward,
/// architecture, sampling policy version, batch, reason.
pub(crate) type HistoryKey = (u64, String, Option<f64>, String, u64, u64, Option<String>);

/// The deterministic part of a finished run: what must equal an
/// uninterrupted run with the same seed.
#[derive(Debug, PartialEq)]
pub(crate) struct Projection {
    /// Every history line.
    pub history: Vec<HistoryKey>,
    /// batch, rewarded seqs, rewards, policy version after.
    pub updates: Vec<(u64, Vec<String>, Vec<f64>, u64)>,
    /// The strategy's final checkpoint.
    pub strategy_state: String,
}

fn seq_of(job: &str) -> String {
    job.rsplit('-').next().unwrap_or_default().to_owned()
}

pub(crate) fn history(run_dir: &Path) -> Vec<HistoryLine> {
    read_lines("history", &run_dir.join(files::HISTORY)).expect("history.jsonl")
}

pub(crate) fn project(run_dir: &Path) -> Projection {
    let history = history(run_dir)
        .into_iter()
        .map(|h| (h.seq, h.status, h.reward, h.arch.to_string(), h.policy_version, h.batch, h.reason))
        .collect();
    let updates = read_lines::<UpdateLine>("updates", &run_dir.join(files::UPDATES))
        .expect("updates.jsonl")
        .into_iter()
        .map(|u| (u.batch, u.jobs.iter().map(|j| seq_of(j)).collect(), u.rewards, u.policy_version))
        .collect();
    let ck = read_checkpoint(&run_dir.join(files::CHECKPOINT)).expect("checkpoint");
    assert!(ck.finished, "the run in {} is not finished", run_dir.display());
    Projection {
        history,
        updates,
        strategy_state: ck.strategy_state,
    }
}

/// Runs `cfg` uninterrupted in process (memory queue, 3 workers, fake
/// trainer without delays, same crash switches) and returns its projection.
pub(crate) async fn reference(cfg: &ExperimentConfig, fake: FakeTrainerConfig) -> Projection {
    let dir = TempDir::new("nasfleet-reference").unwrap();
    let fake = FakeTrainerConfig {
        step: Duration::ZERO,
        trace: None,
        ..fake
    };
    let opts = LocalOptions {
        run: "reference".into(),
        run_dir: dir.path().join("run"),
        resume: false,
        workers: 3,
        device: "cpu".into(),
        data_dir: None,
        work_dir: Some(dir.path().join("work")),
        progress: None,
    };
    let strategy = build_pure_strategy(cfg).unwrap();
    let summary = within(60, run_local(cfg, strategy, fake_trainers(fake), opts, shutdown_pair().1))
        .await
        .expect("reference run");
    assert!(summary.finished);
    project(&dir.path().join("run"))
}

/// Fails the test if `fut` takes longer than `secs` (a hang, not a timing
/// assertion: every bound here is far above what the step needs).
pub(crate) async fn within<F: std::future::Future>(secs: u64, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("did not finish within {secs} s"))
}

/// Polls `check` every 20 ms until it holds; fails after `secs`.
pub(crate) async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < end, "timed out after {secs} s waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn redis_config(url: &str, run: &str, cfg: &ExperimentConfig) -> RedisQueueConfig {
    let mut c = FleetSettings::from_config(&cfg.fleet).unwrap().redis_config(url, run);
    c.response_timeout = Duration::from_secs(2);
    c.connect_timeout = Duration::from_secs(2);
    c.block_margin = Duration::from_secs(2);
    c
}

pub(crate) async fn connect(url: &str, run: &str, cfg: &ExperimentConfig) -> RedisQueue {
    RedisQueue::connect(redis_config(url, run, cfg)).await.expect("connect to redis")
}

/// A controller running in this process.
pub(crate) struct InProcessController {
    pub handle: JoinHandle<nasfleet_fleet::Result<ControllerSummary>>,
}

impl InProcessController {
    pub(crate) async fn finish(self, secs: u64) -> ControllerSummary {
        let s = within(secs, self.handle).await.expect("controller task").expect("controller");
        assert!(s.finished, "controller stopped before the end: {:?}", s.state);
        s
    }
}

pub(crate) fn spawn_controller<Q: JobQueue>(
    queue: Q,
    cfg: &ExperimentConfig,
    run: &str,
    run_dir: &Path,
    resume: bool,
    board: Board,
) -> InProcessController {
    let opts = ControllerOptions {
        run: run.into(),
        run_dir: run_dir.to_owned(),
        resume,
        consumer: Consumer::new("test-controller", "controller").unwrap(),
        block: Duration::from_millis(cfg.fleet.block_ms),
        board,
        progress: None,
        probe: None,
    };
    let cfg = cfg.clone();
    let handle = tokio::spawn(async move {
        let strategy = build_pure_strategy(&cfg).unwrap();
        run_controller(queue, &cfg, strategy, opts, Shutdown::never()).await
    });
    InProcessController { handle }
}

/// A worker running in this process.
pub(crate) struct InProcessWorker {
    pub handle: JoinHandle<nasfleet_fleet::Result<WorkerReport>>,
    pub stop: ShutdownTrigger,
    pub name: String,
}

impl InProcessWorker {
    pub(crate) async fn stop(self) -> WorkerReport {
        self.stop.trigger();
        within(30, self.handle).await.expect("worker task").expect("worker")
    }
}

pub(crate) fn spawn_worker<Q: JobQueue>(
    queue: Q,
    cfg: &ExperimentConfig,
    run: &str,
    host: &str,
    fake: FakeTrainerConfig,
    work_dir: Option<PathBuf>,
) -> InProcessWorker {
    spawn_worker_max(queue, cfg, run, host, fake, work_dir, None)
}

/// As [`spawn_worker`], stopping by itself after `max_jobs` jobs.
pub(crate) fn spawn_worker_max<Q: JobQueue>(
    queue: Q,
    cfg: &ExperimentConfig,
    run: &str,
    host: &str,
    fake: FakeTrainerConfig,
    work_dir: Option<PathBuf>,
    max_jobs: Option<u64>,
) -> InProcessWorker {
    let (stop, shutdown) = shutdown_pair();
    let consumer = Consumer::new(host, "cpu").unwrap();
    let name = consumer.name().to_owned();
    let opts = WorkerOptions {
        consumer,
        run: run.into(),
        settings: FleetSettings::from_config(&cfg.fleet).unwrap(),
        max_jobs,
        work_dir,
        device: "cpu".into(),
        data_dir: None,
    };
    let handle = tokio::spawn(run_worker(queue, opts, fake_trainers(fake), shutdown));
    InProcessWorker { handle, stop, name }
}

/// A `nasfleet-fleet-node` process; killed (SIGKILL) on drop if still running.
pub(crate) struct Node {
    child: Child,
    log: PathBuf,
    out: PathBuf,
}

static NODE_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Node {
    pub(crate) fn start(dir: &Path, args: &[String]) -> Node {
        let n = NODE_COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = dir.join(format!("node-{n}.log"));
        let out = dir.join(format!("node-{n}.out"));
        let child = Command::new(env!("CARGO_BIN_EXE_nasfleet-fleet-node"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nasfleet-fleet-node");
        Node { child, log, out }
    }

    /// A worker process with the test timings of `cfg`.
    pub(crate) fn worker(dir: &Path, url: &str, run: &str, cfg: &ExperimentConfig, extra: &[&str]) -> Node {
        let f = &cfg.fleet;
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--redis".into(),
            url.into(),
            "--run".into(),
            run.into(),
            "--lease-ms".into(),
            f.lease_ms.to_string(),
            "--heartbeat-ms".into(),
            f.heartbeat_ms.to_string(),
            "--block-ms".into(),
            f.block_ms.to_string(),
            "--max-deliveries".into(),
            f.max_deliveries.to_string(),
            "--stop-grace-ms".into(),
            f.stop_grace_ms.to_string(),
            "--retry-for-ms".into(),
            f.retry_for_ms.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Node::start(dir, &args)
    }

    /// A controller process for `cfg` (written to `dir/config.toml`).
    pub(crate) fn controller(dir: &Path, url: &str, run: &str, cfg: &ExperimentConfig, run_dir: &Path, extra: &[&str]) -> Node {
        let config = dir.join(format!("{run}.toml"));
        fs::write(&config, cfg.to_toml()).unwrap();
        let mut args: Vec<String> = vec![
            "controller".into(),
            "--config".into(),
            config.display().to_string(),
            "--redis".into(),
            url.into(),
            "--run".into(),
            run.into(),
            "--run-dir".into(),
            run_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Node::start(dir, &args)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The consumer name the worker printed at start.
    pub(crate) async fn consumer(&self) -> String {
        let mut name = String::new();
        eventually("the worker's consumer line", 20, || {
            name = self
                .log()
                .lines()
                .find_map(|l| l.strip_prefix("consumer ").map(str::to_owned))
                .unwrap_or_default();
            let found = !name.is_empty();
            async move { found }
        })
        .await;
        name
    }

    /// Sends `sig` (`TERM`, `STOP`, `CONT`, `KILL`) with kill(1).
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} {} failed", self.pid());
    }

    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for the process to exit (fails after `secs`).
    pub(crate) async fn exit(&mut self, secs: u64) -> ExitStatus {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.try_exit() {
                return s;
            }
            assert!(
                Instant::now() < end,
                "process {} still running after {secs} s; log:\n{}",
                self.pid(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGKILL also ends a stopped (SIGSTOP) process.
            self.kill9();
        }
    }
}

/// Lines of a fake trainer's trace file: (job id, epoch, pid).
pub(crate) fn trace(path: &Path) -> Vec<(String, usize, u32)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

/// Every enqueued job has exactly one outcome and one terminal event, and
/// nothing is left in the queue.
pub(crate) async fn assert_exactly_once<Q: JobQueue>(queue: &Q, total: u64) {
    let s = queue.status(100).await.expect("status");
    assert_eq!(s.enqueued, total, "jobs enqueued: {s:?}");
    assert_eq!(s.outcomes, total, "jobs with an outcome: {s:?}");
    assert_eq!(s.results, total, "terminal events on the results stream: {s:?}");
    assert_eq!((s.depth, s.in_flight_total), (0, 0), "jobs left in the queue: {s:?}");
}
