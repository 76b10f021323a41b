//! Fleet throughput (perf.md, benchmark 4): jobs per second and p50/p99 job
//! round trip (enqueue → result read by the controller) with zero-time fake
//! training and 1, 4 and 16 workers, through Redis and through the
//! in-memory queue, against a bare Redis round trip measured in the same
//! run on the same server:
//!
//! * `ping` — one PING, sequentially (the network + server floor);
//! * `bare` — the same job round trip written with raw stream commands
//!   (XADD → XREADGROUP BLOCK → XADD result + XACK → XREADGROUP → XACK),
//!   no functions, no leases, no validation: what a minimal queue costs;
//! * `fleet` — the real worker loop (fetch, validate, trainer thread,
//!   heartbeat, complete) and the controller's read/ack calls;
//! * `controller` — the whole controller loop (random search, batches of 8,
//!   a fsynced checkpoint per batch) with the real workers: jobs per second.
//!
//! Workers are tasks in this process, each with its own connections. Each
//! figure is the median of `REPS` repetitions. Run in release:
//!
//! ```sh
//! cargo run --release -p nasfleet-fleet --example bench_fleet [-- JOBS]
//! ```
//!
//! Prints a table, then one JSON line. redis-server runs without
//! persistence here (the fleet's recommended `appendfsync always` adds one
//! fsync per write, the same for every variant).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nasfleet_core::config::{StrategyKind, TrainConfig};
use nasfleet_core::reward::RewardConfig;
use nasfleet_core::space::cnn::CnnLayer;
use nasfleet_core::space::CnnArch;
use nasfleet_core::strategy::build_pure_strategy;
use nasfleet_core::trainer::{JobSpec, JOB_FORMAT_VERSION};
use nasfleet_core::{Architecture, ExperimentConfig};
use nasfleet_fleet::fake::{fake_trainers, FakeTrainerConfig};
use nasfleet_fleet::{
    run_controller, run_worker, shutdown_pair, Board, ControllerOptions, FleetSettings, WorkerOptions,
};
use nasfleet_queue::testing::{RedisServer, TempDir};
use nasfleet_queue::{Consumer, JobQueue, MemoryQueue, RedisQueue};
use redis::AsyncCommands;
use serde_json::json;

const REPS: usize = 3;
const WORKERS: [usize; 3] = [1, 4, 16];

#[derive(Clone, Copy, Debug)]
struct Stats {
    jobs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn stats(lat: &mut [Duration], elapsed: Duration) -> Stats {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    Stats {
        jobs_per_s: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
    }
}

fn median(mut v: Vec<Stats>) -> Stats {
    let mid = v.len() / 2;
    let pick = |v: &mut Vec<Stats>, f: fn(&Stats) -> f64| {
        v.sort_by(|a, b| f(a).total_cmp(&f(b)));
        f(&v[mid])
    };
    Stats {
        jobs_per_s: pick(&mut v, |s| s.jobs_per_s),
        p50_ms: pick(&mut v, |s| s.p50_ms),
        p99_ms: pick(&mut v, |s| s.p99_ms),
    }
}

fn settings() -> FleetSettings {
    FleetSettings {
        lease: Duration::from_secs(60),
        heartbeat: Duration::from_secs(10),
        block: Duration::from_millis(500),
        ..FleetSettings::default()
    }
}

fn payload(run: &str, id: &str) -> String {
    let layer = |filters: u32, inputs: Vec<usize>| CnnLayer {
        filter_height: 3,
        filter_width: 3,
        stride_height: 1,
        stride_width: 1,
        filters,
        inputs,
    };
    let arch = Architecture::Cnn(CnnArch {
        layers: vec![layer(36, vec![]), layer(48, vec![0]), layer(64, vec![1])],
        max_pool_after: vec![],
    });
    serde_json::to_string(&JobSpec {
        version: JOB_FORMAT_VERSION,
        job_id: id.into(),
        run: run.into(),
        arch: arch.to_value(),
        actions: vec![],
        policy_version: 0,
        train: TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        },
        reward: RewardConfig::default(),
        seed: 0,
        early_stop: Default::default(),
    })
    .expect("serialise a job")
}

/// Keeps `in_flight` jobs outstanding until `jobs` results came back.
async fn drive<Q: JobQueue>(q: &Q, run: &str, jobs: usize, in_flight: usize) -> Stats {
    let me = Consumer::new("bench", "controller").expect("consumer");
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut lat = Vec::with_capacity(jobs);
    let start = Instant::now();
    let mut next = 0;
    while next < in_flight.min(jobs) {
        let id = format!("{run}-{next:06}");
        sent.insert(id.clone(), Instant::now());
        q.enqueue(&id, &payload(run, &id)).await.expect("enqueue");
        next += 1;
    }
    while lat.len() < jobs {
        let events = q.read_results(&me, 1000, Duration::from_secs(5)).await.expect("read results");
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        for e in events {
            let t = sent.remove(&e.job_id).expect("a job we sent");
            lat.push(t.elapsed());
            if next < jobs {
                let id = format!("{run}-{next:06}");
                sent.insert(id.clone(), Instant::now());
                q.enqueue(&id, &payload(run, &id)).await.expect("enqueue");
                next += 1;
            }
        }
        q.ack_results(&ids).await.expect("ack");
    }
    stats(&mut lat, start.elapsed())
}

async fn fleet_once<Q: JobQueue>(
    make_queue: impl Fn(String) -> Q,
    workers: usize,
    jobs: usize,
    run: String,
) -> Stats {
    let q = make_queue(run.clone());
    let (stop, shutdown) = shutdown_pair();
    let mut handles = Vec::new();
    for i in 0..workers {
        let opts = WorkerOptions {
            consumer: Consumer::new(&format!("w{i}"), "cpu").expect("consumer"),
            run: run.clone(),
            settings: settings(),
            max_jobs: None,
            idle_exit: None,
            work_dir: None,
            device: "cpu".into(),
            data_dir: None,
        };
        handles.push(tokio::spawn(run_worker(
            make_queue(run.clone()),
            opts,
            fake_trainers(FakeTrainerConfig::default()),
            shutdown.clone(),
        )));
    }
    let s = drive(&q, &run, jobs, (2 * workers).max(8)).await;
    stop.trigger();
    for h in handles {
        h.await.expect("worker task").expect("worker");
    }
    s
}

async fn redis_queue(url: &str, run: &str) -> RedisQueue {
    RedisQueue::connect(settings().redis_config(url, run)).await.expect("connect")
}

async fn ping(url: &str, n: usize) -> Stats {
    let client = redis::Client::open(url).expect("client");
    let mut c = client.get_multiplexed_async_connection().await.expect("connection");
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut c).await.expect("PING");
        lat.push(t.elapsed());
    }
    stats(&mut lat, start.elapsed())
}

/// The job round trip with raw stream commands.
async fn bare_once(url: &str, run: &str, workers: usize, jobs: usize) -> Stats {
    let client = redis::Client::open(url).expect("client");
    let jobs_key = format!("bare:{{{run}}}:jobs");
    let results_key = format!("bare:{{{run}}}:results");
    let mut c = client.get_multiplexed_async_connection().await.expect("connection");
    for key in [&jobs_key, &results_key] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg("g")
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await
            .expect("XGROUP CREATE");
    }
    let mut handles = Vec::new();
    for i in 0..workers {
        let client = client.clone();
        let (jobs_key, results_key) = (jobs_key.clone(), results_key.clone());
        handles.push(tokio::spawn(async move {
            // A blocking read needs its own connection (pitfall 4).
            let mut blocking = client.get_multiplexed_async_connection().await.expect("connection");
            let mut other = client.get_multiplexed_async_connection().await.expect("connection");
            loop {
                let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg(format!("w{i}"))
                    .arg("COUNT")
                    .arg(1)
                    .arg("BLOCK")
                    .arg(200)
                    .arg("STREAMS")
                    .arg(&jobs_key)
                    .arg(">")
                    .query_async(&mut blocking)
                    .await
                    .expect("XREADGROUP");
                let Some(reply) = reply else {
                    continue; // nil: the block timed out
                };
                for k in reply.keys {
                    for e in k.ids {
                        let job: String = e.get("job").unwrap_or_default();
                        if job == "stop" {
                            return;
                        }
                        let _: String = other
                            .xadd(&results_key, "*", &[("job", job.as_str()), ("result", "{\"reward\":0.5}")])
                            .await
                            .expect("XADD result");
                        let _: i64 = other.xack(&jobs_key, "g", &[&e.id]).await.expect("XACK");
                    }
                }
            }
        }));
    }
    let mut reader = client.get_multiplexed_async_connection().await.expect("connection");
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut lat = Vec::with_capacity(jobs);
    let in_flight = (2 * workers).max(8);
    let start = Instant::now();
    let mut next = 0;
    let id = |n: usize| format!("{run}-{n:06}");
    while next < in_flight.min(jobs) {
        sent.insert(id(next), Instant::now());
        let _: String = c
            .xadd(&jobs_key, "*", &[("job", id(next).as_str()), ("payload", payload(run, &id(next)).as_str())])
            .await
            .expect("XADD");
        next += 1;
    }
    while lat.len() < jobs {
        let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("ctl")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(5000)
            .arg("STREAMS")
            .arg(&results_key)
            .arg(">")
            .query_async(&mut reader)
            .await
            .expect("XREADGROUP results");
        let Some(reply) = reply else {
            continue;
        };
        let mut acks = Vec::new();
        for k in reply.keys {
            for e in k.ids {
                let job: String = e.get("job").unwrap_or_default();
                lat.push(sent.remove(&job).expect("a job we sent").elapsed());
                acks.push(e.id.clone());
                if next < jobs {
                    sent.insert(id(next), Instant::now());
                    let _: String = c
                        .xadd(&jobs_key, "*", &[("job", id(next).as_str()), ("payload", payload(run, &id(next)).as_str())])
                        .await
                        .expect("XADD");
                    next += 1;
                }
            }
        }
        let _: i64 = c.xack(&results_key, "g", &acks).await.expect("XACK");
    }
    let elapsed = start.elapsed();
    for _ in 0..workers {
        let _: String = c.xadd(&jobs_key, "*", &[("job", "stop")]).await.expect("XADD stop");
    }
    for h in handles {
        h.await.expect("bare worker");
    }
    stats(&mut lat, elapsed)
}

/// The whole controller loop with `workers` real workers; jobs per second.
async fn controller_once(url: Option<&str>, run: &str, workers: usize, jobs: u64) -> f64 {
    let dir = TempDir::new("bench-controller").expect("temp dir");
    let mut cfg = ExperimentConfig::default();
    cfg.search.strategy = StrategyKind::Random;
    cfg.search.architectures = jobs;
    cfg.search.batch = 8;
    cfg.search.max_in_flight = (4 * workers).max(16);
    cfg.train.epochs = 1;
    let strategy = build_pure_strategy(&cfg).expect("strategy");
    let (stop, shutdown) = shutdown_pair();
    let opts = ControllerOptions {
        run: run.into(),
        run_dir: dir.path().join("run"),
        resume: false,
        consumer: Consumer::new("bench", "controller").expect("consumer"),
        block: Duration::from_millis(500),
        board: Board::Off,
        progress: None,
        probe: None,
    };
    let start = Instant::now();
    macro_rules! go {
        ($mk:expr) => {{
            let mut handles = Vec::new();
            for i in 0..workers {
                let w = WorkerOptions {
                    consumer: Consumer::new(&format!("w{i}"), "cpu").expect("consumer"),
                    run: run.into(),
                    settings: settings(),
                    max_jobs: None,
                    idle_exit: None,
                    work_dir: None,
                    device: "cpu".into(),
                    data_dir: None,
                };
                handles.push(tokio::spawn(run_worker($mk, w, fake_trainers(FakeTrainerConfig::default()), shutdown.clone())));
            }
            let s = run_controller($mk, &cfg, strategy, opts, shutdown.clone()).await.expect("controller");
            assert!(s.finished);
            stop.trigger();
            for h in handles {
                h.await.expect("worker task").expect("worker");
            }
        }};
    }
    match url {
        Some(url) => go!(redis_queue(url, run).await),
        None => {
            let q = MemoryQueue::new(settings().queue_config()).expect("memory queue");
            go!(q.clone())
        }
    }
    jobs as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let jobs: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let server = RedisServer::start().expect("start redis-server");
    let url = server.url();
    let mut run_no = 0;
    let mut fresh = || {
        run_no += 1;
        format!("bench{run_no}")
    };
    let mut pings = Vec::new();
    for _ in 0..REPS {
        pings.push(ping(&url, jobs).await);
    }
    let ping = median(pings);
    let mut rows: Vec<(String, usize, Stats, Option<f64>)> = Vec::new();
    for &w in &WORKERS {
        let mut bare = Vec::new();
        let mut redis = Vec::new();
        let mut memory = Vec::new();
        let mut ctl_redis = Vec::new();
        let mut ctl_memory = Vec::new();
        for _ in 0..REPS {
            bare.push(bare_once(&url, &fresh(), w, jobs).await);
            let run = fresh();
            // One queue handle (own connections) for the driver and each worker.
            let mut queues = Vec::new();
            for _ in 0..=w {
                queues.push(redis_queue(&url, &run).await);
            }
            let pool = std::sync::Mutex::new(queues);
            redis.push(
                fleet_once(|_| pool.lock().expect("pool").pop().expect("a queue per worker"), w, jobs, run).await,
            );
            let mq = MemoryQueue::new(settings().queue_config()).expect("memory queue");
            memory.push(fleet_once(|_| mq.clone(), w, jobs, fresh()).await);
            ctl_redis.push(controller_once(Some(&url), &fresh(), w, jobs as u64).await);
            ctl_memory.push(controller_once(None, &fresh(), w, jobs as u64).await);
        }
        let med = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        rows.push(("bare".into(), w, median(bare), None));
        rows.push(("fleet-redis".into(), w, median(redis), Some(med(ctl_redis))));
        rows.push(("fleet-memory".into(), w, median(memory), Some(med(ctl_memory))));
    }
    println!("fleet benchmark: {jobs} jobs per measurement, median of {REPS}, zero-time fake training");
    println!("ping round trip: p50 {:.3} ms, p99 {:.3} ms ({:.0}/s sequential)", ping.p50_ms, ping.p99_ms, ping.jobs_per_s);
    println!("{:<14} {:>7} {:>10} {:>9} {:>9} {:>14} {:>16}", "queue", "workers", "jobs/s", "p50 ms", "p99 ms", "vs bare jobs/s", "controller jobs/s");
    let mut json_rows = Vec::new();
    for (name, w, s, ctl) in &rows {
        let bare = rows.iter().find(|(n, bw, _, _)| n == "bare" && bw == w).map(|r| r.2.jobs_per_s).unwrap_or(f64::NAN);
        println!(
            "{:<14} {:>7} {:>10.0} {:>9.3} {:>9.3} {:>14.2} {:>16}",
            name,
            w,
            s.jobs_per_s,
            s.p50_ms,
            s.p99_ms,
            s.jobs_per_s / bare,
            ctl.map(|c| format!("{c:.0}")).unwrap_or_else(|| "-".into())
        );
        json_rows.push(json!({
            "queue": name, "workers": w, "jobs_per_s": s.jobs_per_s, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
            "ratio_to_bare": s.jobs_per_s / bare, "controller_jobs_per_s": ctl,
        }));
    }
    println!(
        "{}",
        json!({"bench": "fleet", "jobs": jobs, "reps": REPS, "ping_p50_ms": ping.p50_ms, "ping_p99_ms": ping.p99_ms, "rows": json_rows})
    );
}
