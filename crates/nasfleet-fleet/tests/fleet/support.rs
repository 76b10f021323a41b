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
use nasfleet_queue::testing::{RedisServer, RedisServerOptions, TempDir};
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
/// Options of an embedded run `local` in `dir` (`run/`, `work/`) on the CPU.
pub(crate) fn local_opts(dir: &TempDir, workers: usize, resume: bool) -> LocalOptions {
    LocalOptions {
        run: "local".into(),
        run_dir: dir.path().join("run"),
        resume,
        workers,
        device: "cpu".into(),
        data_dir: None,
        work_dir: Some(dir.path().join("work")),
        progress: None,
    }
}

pub(crate) async fn reference(cfg: &ExperimentConfig, fake: FakeTrainerConfig) -> Projection {
    let dir = TempDir::new("nasfleet-reference").unwrap();
    let fake = FakeTrainerConfig {
        step: Duration::ZERO,
        trace: None,
        ..fake
    };
    let opts = LocalOptions { run: "reference".into(), ..local_opts(&dir, 3, false) };
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

/// A worker on `queue` training with the fake trainer `fake`; with
/// `max_jobs`, it stops by itself after that many jobs.
pub(crate) fn spawn_worker<Q: JobQueue>(
    queue: Q,
    cfg: &ExperimentConfig,
    run: &str,
    host: &str,
    fake: FakeTrainerConfig,
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
        idle_exit: None,
        work_dir: None,
        device: "cpu".into(),
        data_dir: None,
    };
    let handle = tokio::spawn(run_worker(queue, opts, fake_trainers(fake), shutdown));
    InProcessWorker { handle, stop, name }
}

/// Stops in-process workers one by one and returns their reports.
pub(crate) async fn stop_all(workers: Vec<InProcessWorker>) -> Vec<WorkerReport> {
    let mut reports = Vec::new();
    for w in workers {
        reports.push(w.stop().await);
    }
    reports
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
        let timings = [
            ("--lease-ms", f.lease_ms.to_string()),
            ("--heartbeat-ms", f.heartbeat_ms.to_string()),
            ("--block-ms", f.block_ms.to_string()),
            ("--max-deliveries", f.max_deliveries.to_string()),
            ("--stop-grace-ms", f.stop_grace_ms.to_string()),
            ("--retry-for-ms", f.retry_for_ms.to_string()),
        ];
        let mut args: Vec<String> = vec!["worker".into(), "--redis".into(), url.into(), "--run".into(), run.into()];
        for (flag, value) in timings {
            args.extend([flag.to_owned(), value]);
        }
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

/// A redis-server for the fault tests: a free loopback port, its own temp
/// dir, AOF with fsync always (so a killed server restarts with every
/// acknowledged write).
pub(crate) fn redis_server() -> RedisServer {
    RedisServer::start_with(RedisServerOptions {
        appendonly: true,
        ..RedisServerOptions::default()
    })
    .expect("start redis-server")
}

/// The set-up the fault tests share: a config, the uninterrupted reference
/// run it must end as, a temp dir, a redis-server, the controller's
/// connection for run `t`, the run dir and the fake trainers' trace file.
/// Each test starts the controller and workers it needs from here and ends
/// with [`Scenario::assert_like_reference`].
pub(crate) struct Scenario {
    pub cfg: ExperimentConfig,
    /// The projection of an uninterrupted in-process run of `cfg`.
    pub expected: Projection,
    /// The run's name (job ids are `{run}-{seq:06}`).
    pub run: String,
    /// Names the run in the end checks' messages.
    pub label: String,
    /// The controller's connection; the end checks read the queue with it.
    pub queue: RedisQueue,
    pub server: RedisServer,
    pub url: String,
    pub run_dir: PathBuf,
    /// The trace file every worker of the scenario appends to (see [`trace`]).
    pub trace: PathBuf,
    pub dir: TempDir,
}

impl Scenario {
    /// The reference run of `cfg` (fake trainer defaults), then a fresh
    /// redis-server and temp dir (`name-…`) for run `t`.
    pub(crate) async fn start(name: &str, cfg: ExperimentConfig) -> Scenario {
        Scenario::start_with(name, cfg, FakeTrainerConfig::default()).await
    }

    /// As [`Scenario::start`], the reference run with the crash switches of
    /// `fake`.
    pub(crate) async fn start_with(name: &str, cfg: ExperimentConfig, fake: FakeTrainerConfig) -> Scenario {
        let expected = reference(&cfg, fake).await;
        let dir = TempDir::new(name).unwrap();
        let server = redis_server();
        let url = server.url();
        let run = "t";
        let queue = connect(&url, run, &cfg).await;
        Scenario {
            expected,
            run: run.into(),
            label: name.into(),
            queue,
            run_dir: dir.path().join("run"),
            trace: dir.path().join("trace"),
            cfg,
            server,
            url,
            dir,
        }
    }

    /// Moves the scenario to another run on the same server: a new
    /// controller connection and run dir `dir/run`; `label` names it in the
    /// end checks.
    pub(crate) async fn use_run(&mut self, run: &str, label: &str) {
        self.queue = connect(&self.url, run, &self.cfg).await;
        self.run_dir = self.dir.path().join(run);
        self.run = run.into();
        self.label = label.into();
    }

    /// The id of the run's job `seq`.
    pub(crate) fn job_id(&self, seq: u64) -> String {
        format!("{}-{seq:06}", self.run)
    }

    /// A new connection to `url` (the server's, or a proxy's) for the run.
    pub(crate) async fn connect_to(&self, url: &str) -> RedisQueue {
        connect(url, &self.run, &self.cfg).await
    }

    /// A new connection to the server for the run.
    pub(crate) async fn connect(&self) -> RedisQueue {
        self.connect_to(&self.url).await
    }

    /// The fake trainer of the in-process workers: `step_ms` per epoch,
    /// tracing to the scenario's trace file.
    pub(crate) fn fake(&self, step_ms: u64) -> FakeTrainerConfig {
        FakeTrainerConfig {
            step: Duration::from_millis(step_ms),
            trace: Some(self.trace.clone()),
            ..FakeTrainerConfig::default()
        }
    }

    /// A controller in this process, starting the run (no board).
    pub(crate) fn controller(&self) -> InProcessController {
        spawn_controller(self.queue.clone(), &self.cfg, &self.run, &self.run_dir, false, Board::Off)
    }

    /// A controller process for the run, with `extra` arguments.
    pub(crate) fn controller_node(&self, extra: &[&str]) -> Node {
        Node::controller(self.dir.path(), &self.url, &self.run, &self.cfg, &self.run_dir, extra)
    }

    /// An in-process worker on `queue` (see [`Scenario::fake`]).
    pub(crate) fn worker_on<Q: JobQueue>(&self, queue: Q, host: &str, step_ms: u64, max_jobs: Option<u64>) -> InProcessWorker {
        spawn_worker(queue, &self.cfg, &self.run, host, self.fake(step_ms), max_jobs)
    }

    /// An in-process worker on a new connection to the server.
    pub(crate) async fn worker(&self, host: &str, step_ms: u64) -> InProcessWorker {
        self.worker_on(self.connect().await, host, step_ms, None)
    }

    /// `n` in-process workers `w0`, `w1`, … on their own connections.
    pub(crate) async fn workers(&self, n: usize, step_ms: u64) -> Vec<InProcessWorker> {
        let mut workers = Vec::new();
        for i in 0..n {
            workers.push(self.worker(&format!("w{i}"), step_ms).await);
        }
        workers
    }

    /// A worker process: `step_ms` per epoch, tracing to the scenario's
    /// trace file, with `extra` arguments.
    pub(crate) fn worker_node(&self, step_ms: u64, extra: &[&str]) -> Node {
        let step = step_ms.to_string();
        let mut args = vec!["--step-ms", step.as_str(), "--trace", self.trace.to_str().unwrap()];
        args.extend_from_slice(extra);
        Node::worker(self.dir.path(), &self.url, &self.run, &self.cfg, &args)
    }

    /// Waits until some line of the trace (job id, epoch, pid) satisfies
    /// `seen`.
    pub(crate) async fn wait_trace<F>(&self, what: &str, seen: F)
    where
        F: Fn(&(String, usize, u32)) -> bool,
    {
        eventually(what, 30, || {
            let found = trace(&self.trace).iter().any(&seen);
            async move { found }
        })
        .await;
    }

    /// Waits until process `pid` has trained an epoch.
    pub(crate) async fn wait_trained_by(&self, what: &str, pid: u32) {
        self.wait_trace(what, |&(_, _, p)| p == pid).await;
    }

    /// The end of every fault test: each of the `total` jobs has exactly
    /// one outcome ([`assert_exactly_once`]), and the run's history, update
    /// sequence and final strategy state equal the reference run's.
    pub(crate) async fn assert_like_reference(&self, total: u64) {
        assert_exactly_once(&self.queue, total).await;
        assert_eq!(project(&self.run_dir), self.expected, "{}: the run differs from the uninterrupted one", self.label);
    }
}
