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
//! - the page in an already open browser (Chromium driven over the DevTools
//!   protocol): from `Page.navigate` to the first full render (all data
//!   fetched, charts drawn: the page's `data-ready`), read both from outside
//!   (wall clock) and from inside (`data-ready-ms`, ms since navigation
//!   start), five times per page after a warm-up, for the 10-child and the
//!   big run side by side;
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

/// A minimal Chrome DevTools Protocol client over a WebSocket (RFC 6455,
/// text frames only: all this benchmark needs; no extra dependency).
struct Cdp {
    s: std::net::TcpStream,
    next: u64,
}

impl Cdp {
    fn connect(ws_url: &str) -> Cdp {
        let rest = ws_url.strip_prefix("ws://").expect("a ws:// URL");
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: bmFzZmxlZXQtYmVuY2gtMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        // The handshake reply ends with an empty line.
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        Cdp { s, next: 1 }
    }

    fn write_text(&mut self, text: &str) {
        let p = text.as_bytes();
        let mut f = vec![0x81u8];
        match p.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x08];
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&f).unwrap();
    }

    /// The next whole text message (continuation frames joined; pings and
    /// other control frames skipped).
    fn read_text(&mut self) -> String {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).unwrap();
            let (fin, op) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).unwrap();
                len = u16::from_be_bytes(l) as u64;
            } else if len == 127 {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).unwrap();
                len = u64::from_be_bytes(l);
            }
            let mut payload = vec![0u8; len as usize];
            self.s.read_exact(&mut payload).unwrap();
            if op >= 8 {
                continue;
            }
            msg.extend_from_slice(&payload);
            if fin {
                return String::from_utf8(msg).unwrap();
            }
        }
    }

    /// Sends a command (to a page session, when given) and returns its result,
    /// skipping the events that arrive before it.
    fn call(&mut self, session: Option<&str>, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next;
        self.next += 1;
        let mut m = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(sid) = session {
            m["sessionId"] = sid.into();
        }
        self.write_text(&m.to_string());
        loop {
            let v: serde_json::Value = serde_json::from_str(&self.read_text()).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }
}

/// Load times of pages in one open headless Chromium: for each URL, five
/// navigations after a warm-up, each (wall seconds from `Page.navigate` to
/// the first full render, the page's own ms from navigation start).
fn open_browser_loads(urls: &[String]) -> Option<Vec<Vec<(f64, f64)>>> {
    use std::io::BufRead;
    let profile = tempfile::tempdir().ok()?;
    let mut browser = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0", "--window-size=1400,1000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut err = std::io::BufReader::new(browser.stderr.take().unwrap());
    let mut line = String::new();
    let ws = loop {
        line.clear();
        if err.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(at) = line.find("ws://") {
            break line[at..].trim().to_owned();
        }
    };
    // Keep draining its stderr so the browser never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let mut cdp = Cdp::connect(&ws);
    let target = cdp.call(None, "Target.createTarget", serde_json::json!({ "url": "about:blank" }));
    let attached = cdp.call(None, "Target.attachToTarget", serde_json::json!({ "targetId": target["targetId"], "flatten": true }));
    let sid = attached["sessionId"].as_str().unwrap().to_owned();
    let mut out = vec![Vec::new(); urls.len()];
    let mut k = 0;
    for round in 0..6 {
        for (u, url) in urls.iter().enumerate() {
            k += 1;
            let url = format!("{url}&nav={k}");
            let t = Instant::now();
            cdp.call(Some(&sid), "Page.navigate", serde_json::json!({ "url": url }));
            let probe = format!(
                "(location.search.includes('nav={k}') && document.body && document.body.dataset.ready === '1') ? Number(document.body.dataset.readyMs) : -1"
            );
            let page_ms = loop {
                let r = cdp.call(Some(&sid), "Runtime.evaluate", serde_json::json!({ "expression": probe, "returnByValue": true }));
                let v = r["result"]["value"].as_f64().unwrap_or(-1.0);
                if v >= 0.0 {
                    break v;
                }
                assert!(t.elapsed().as_secs() < 60, "{url} did not render in 60 s");
                std::thread::sleep(std::time::Duration::from_millis(5));
            };
            if round > 0 {
                out[u].push((t.elapsed().as_secs_f64(), page_ms));
            }
        }
    }
    let _ = browser.kill();
    let _ = browser.wait();
    Some(out)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
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

    // The same pages in a browser that is already open (no process start).
    let urls: Vec<String> = ["small&view=overview", "big&view=overview", "big&view=curves", "big&view=children"]
        .iter()
        .map(|q| format!("http://{addr}/?run={q}"))
        .collect();
    match open_browser_loads(&urls) {
        Some(times) => {
            for (url, t) in urls.iter().zip(&times) {
                let wall: Vec<f64> = t.iter().map(|x| x.0).collect();
                let page: Vec<f64> = t.iter().map(|x| x.1 / 1000.0).collect();
                println!(
                    "open browser, {}: median {:.3} s from Page.navigate to drawn (max {:.3}); page's own clock {:.3} s",
                    &url[url.find("run=").unwrap()..],
                    median(wall.clone()),
                    wall.iter().cloned().fold(0.0, f64::max),
                    median(page)
                );
            }
            let m = |i: usize| median(times[i].iter().map(|x| x.0).collect());
            println!("open browser: overview of {n} children / of 10 children = {:.2}x", m(1) / m(0));
        }
        None => println!("chromium not installed or no DevTools endpoint: open-browser load not measured"),
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
