//! How fast the dashboard loads a big run, and how its memory grows.
//!
//! ```sh
//! cargo run --release -p nasfleet-dashboard --example bench_load            # 20,000 children
//! cargo run --release -p nasfleet-dashboard --example bench_load -- 50000
//! ```
//!
//! Writes a synthetic run directory (NB201 children with 3 epochs each, one
//! update per 4 children, as `nasfleet local` writes them), serves it
//! in-process, and measures:
//! - the server: the first (cold: reads and parses `history.jsonl`) and a
//!   warm `summary` + `children?from=0` — everything the page fetches;
//! - the whole page in headless Chromium (if installed): launch, load, all
//!   data fetched, charts drawn, DOM dumped — and, to subtract, the same
//!   browser dumping an empty page;
//! - the process's resident memory after reading N children and after the
//!   run grew by N more (the server keeps compact records, not lines).
//!
//! A benchmark, not a test: numbers depend on the machine.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use nasfleet_dashboard::Dashboard;

const OPS: [&str; 5] = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];

fn write_children(dir: &Path, from: usize, n: usize) {
    let mut h = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("history.jsonl")).unwrap();
    let mut u = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("updates.jsonl")).unwrap();
    let mut buf = String::new();
    let mut ubuf = String::new();
    for seq in from..from + n {
        let t: Vec<usize> = (0..6).map(|k| (seq * 7 + k * 3 + seq / 97) % 5).collect();
        let acc = 0.5 + t.iter().enumerate().map(|(k, &d)| d as f64 * (k as f64 + 1.0)).sum::<f64>() / 200.0;
        let ops: Vec<String> = t.iter().map(|&d| format!("\"{}\"", OPS[d])).collect();
        let metrics: Vec<String> = (1..=3)
            .map(|e| format!("{{\"epoch\":{e},\"seconds\":1.5,\"train_loss\":{:.4},\"valid_accuracy\":{:.4}}}", 1.0 / e as f64, acc * (0.8 + 0.1 * e as f64 - 0.2)))
            .collect();
        buf.push_str(&format!(
            "{{\"job_id\":\"big-{seq:06}\",\"seq\":{seq},\"batch\":{},\"status\":\"ok\",\"reward\":{acc},\"arch\":{{\"ops\":[{}],\"space\":\"nb201\",\"version\":1}},\"actions\":[{}],\"policy_version\":{},\"metrics\":[{}],\"worker\":\"host-{}-0123456789abcdef\",\"started_ms\":{},\"finished_ms\":{},\"applied_ms\":{},\"reason\":null,\"detail\":null}}\n",
            seq / 4,
            ops.join(","),
            t.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
            seq / 4,
            metrics.join(","),
            seq % 16,
            1_790_000_000_000u64 + seq as u64 * 1000,
            1_790_000_000_000u64 + seq as u64 * 1000 + 4500,
            1_790_000_000_000u64 + seq as u64 * 1000 + 4600,
        ));
        if seq % 4 == 3 {
            ubuf.push_str(&format!(
                "{{\"batch\":{},\"jobs\":[],\"rewards\":[0.7,0.7,0.7,0.7],\"policy_version\":{},\"stats\":{{\"loss\":0.1,\"baseline\":0.69,\"mean_reward\":0.7,\"entropy\":{},\"grad_norm\":0.1,\"policy_version\":{}}}}}\n",
                seq / 4,
                seq / 4 + 1,
                9.6 * (-(seq as f64) / 5000.0).exp(),
                seq / 4 + 1
            ));
        }
    }
    h.write_all(buf.as_bytes()).unwrap();
    u.write_all(ubuf.as_bytes()).unwrap();
}

fn get(addr: SocketAddr, path: &str) -> usize {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    assert!(v.starts_with(b"HTTP/1.1 200"), "{path}: {}", String::from_utf8_lossy(&v[..v.len().min(300)]));
    v.len()
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn chromium_seconds(url: &str) -> Option<f64> {
    let profile = tempfile::tempdir().ok()?;
    let t = Instant::now();
    let out = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=100", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .ok()?;
    let secs = t.elapsed().as_secs_f64();
    let dom = String::from_utf8_lossy(&out.stdout);
    if url.starts_with("http") {
        assert!(dom.contains("data-ready=\"1\""), "the page did not render");
    }
    Some(secs)
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("big");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("[search]\nspace = \"nb201\"\nstrategy = \"rl\"\narchitectures = {}\nbatch = 4\nmax_in_flight = 4\n\n[train]\ndataset = \"nb201-table\"\n", 2 * n),
    )
    .unwrap();
    write_children(&dir, 0, n);
    let bytes = std::fs::metadata(dir.join("history.jsonl")).unwrap().len();
    println!("run: {n} children, history.jsonl {:.1} MB", bytes as f64 / 1e6);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dash = Arc::new(Dashboard::all_runs(runs.path().to_owned()));
    let addr = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(nasfleet_dashboard::serve(l, dash, std::future::pending()));
        addr
    });
    let rss0 = rss_mib();
    let t = Instant::now();
    let a = get(addr, "/api/runs/big/summary");
    let b = get(addr, "/api/runs/big/children?from=0");
    println!("server, cold (read + parse + JSON): {:.3} s ({:.1} MB sent)", t.elapsed().as_secs_f64(), (a + b) as f64 / 1e6);
    std::thread::sleep(std::time::Duration::from_millis(250));
    let t = Instant::now();
    get(addr, "/api/runs/big/summary");
    get(addr, "/api/runs/big/children?from=0");
    println!("server, warm: {:.3} s", t.elapsed().as_secs_f64());
    let rss1 = rss_mib();

    // The same page for a run of 10 children: what Chromium itself costs
    // (start, first page, fonts) apart from the run's size.
    let small = runs.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::copy(dir.join("config.toml"), small.join("config.toml")).unwrap();
    write_children(&small, 0, 10);
    for _ in 0..2 {
        match (
            chromium_seconds(&format!("http://{addr}/?run=small&view=overview")),
            chromium_seconds(&format!("http://{addr}/?run=big&view=overview")),
            chromium_seconds(&format!("http://{addr}/?run=big&view=curves")),
        ) {
            (Some(base), Some(page), Some(curves)) => println!(
                "chromium (start, load, fetch, draw, dump): overview of 10 children {base:.2} s; of {n} children {page:.2} s \
                 ({:.2} s more); learning curves of {n} children {curves:.2} s ({:.2} s more)",
                page - base,
                curves - base
            ),
            _ => println!("chromium not installed: page load not measured"),
        }
    }

    // The run grows: memory grows by the compact records, not by the lines.
    let mut last = rss1;
    for k in 2..=3 {
        write_children(&dir, (k - 1) * n, n);
        std::thread::sleep(std::time::Duration::from_millis(250));
        get(addr, "/api/runs/big/summary");
        get(addr, &format!("/api/runs/big/children?from={}", (k - 1) * n));
        let rss = rss_mib();
        println!(
            "resident memory with {} children: {rss:.0} MiB ({:.0} bytes per child added; history.jsonl has {:.0} bytes per child)",
            k * n,
            (rss - last) * 1024.0 * 1024.0 / n as f64,
            bytes as f64 / n as f64
        );
        last = rss;
    }
    println!("resident memory before reading the run: {rss0:.0} MiB, after {n} children: {rss1:.0} MiB");
}
