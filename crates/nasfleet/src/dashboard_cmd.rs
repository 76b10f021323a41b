//! `nasfleet dashboard` and `nasfleet report`: which run(s), where live data
//! comes from, where to listen; the pages themselves are `nasfleet-dashboard`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nasfleet_dashboard::{Dashboard, RedisLive};
use nasfleet_queue::{RedisQueueConfig, TlsFiles};

use crate::cli::{DashboardArgs, ReportArgs};

/// Binds `listen`. The dashboard has no authentication: on anything but a
/// loopback address it says so on stderr.
pub(crate) async fn bind(listen: &str) -> Result<tokio::net::TcpListener> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen:?}: expected an address and port like 127.0.0.1:8080"))?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: the dashboard has no authentication; listening on {addr} lets anyone who can reach this \
             machine read the run (architectures, rewards, worker names). Prefer 127.0.0.1 and an SSH tunnel."
        );
    }
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

/// The URL to print for a bound listener.
pub(crate) fn url(l: &tokio::net::TcpListener, run: Option<&str>) -> String {
    let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let host = addr.replace("0.0.0.0", "127.0.0.1");
    match run {
        Some(r) => format!("http://{host}/?run={r}"),
        None => format!("http://{host}/"),
    }
}

fn run_name(dir: &Path) -> Result<String> {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no final component to name the run", dir.display()))
}

pub(crate) fn dashboard(args: DashboardArgs) -> Result<()> {
    let (dash, run) = match (&args.run_dir, &args.run) {
        (Some(dir), _) => {
            let name = run_name(dir)?;
            (Dashboard::one_run(&name, dir.clone()), Some(name))
        }
        (None, Some(run)) => (Dashboard::one_run(run, args.runs_dir.join(run)), Some(run.clone())),
        (None, None) => (Dashboard::all_runs(args.runs_dir.clone()), None),
    };
    match (&run, &args.run_dir) {
        (Some(r), None) if !args.runs_dir.join(r).is_dir() => {
            eprintln!("warning: no run directory {}; the page says so until it appears", args.runs_dir.join(r).display())
        }
        (None, None) if !args.runs_dir.is_dir() => {
            eprintln!("warning: no runs directory {}; the page says so until it appears", args.runs_dir.display())
        }
        _ => {}
    }
    let dash = match &args.redis {
        Some(url) => {
            let mut cfg = RedisQueueConfig::new(url, run.as_deref().unwrap_or("default"));
            if let Some(ca) = &args.tls_ca {
                if !url.starts_with("rediss://") {
                    bail!("--tls-ca needs a rediss:// URL");
                }
                cfg.tls = Some(TlsFiles { ca_cert: Some(ca.clone()), client_cert: None, client_key: None });
            }
            dash.with_live(Arc::new(RedisLive::new(cfg)))
        }
        None => dash,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async {
        let listener = bind(&args.listen).await?;
        println!("dashboard: {}", url(&listener, run.as_deref()));
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        nasfleet_dashboard::serve(listener, Arc::new(dash), stop).await.context("serving the dashboard")
    })
}

pub(crate) fn report(args: ReportArgs) -> Result<()> {
    let dir: PathBuf = match (&args.run_dir, &args.run) {
        (Some(d), _) => d.clone(),
        (None, Some(r)) => args.runs_dir.join(r),
        (None, None) => bail!("give --run RUN (in --runs-dir) or --run-dir DIR"),
    };
    let name = match &args.run {
        Some(r) if args.run_dir.is_none() => r.clone(),
        _ => run_name(&dir)?,
    };
    let files = nasfleet_dashboard::write_report(&name, &dir, &args.out)?;
    println!("{}", files.html.display());
    for p in &files.pngs {
        println!("{}", p.display());
    }
    Ok(())
}
