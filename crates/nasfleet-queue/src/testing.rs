//! Helpers for tests that need a real Redis (feature `testing`), reusable by
//! other crates' tests:
//!
//! * [`RedisServer`] — a throwaway `redis-server` on a free loopback port with
//!   its own temporary directory; killed (by its pid, SIGKILL) on drop, and
//!   restartable on the same port and directory to test recovery.
//! * [`TcpProxy`] — a loopback TCP proxy whose [`cut`](TcpProxy::cut) drops
//!   every connection and refuses new ones until [`restore`](TcpProxy::restore):
//!   a network partition between one client and Redis.
//! * [`generate_tls`] — a throwaway CA and server certificate (with the
//!   `openssl` command) for TLS tests.
//!
//! Tests never touch a server they did not start (a shared one on 6379 may
//! exist for people poking around).

use std::fs;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/<prefix>-<uuid>`.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// TLS files for a server (all PEM).
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    /// The CA certificate clients should trust.
    pub ca_cert: PathBuf,
    /// Server certificate (SAN `localhost`, `127.0.0.1`), signed by the CA.
    pub server_cert: PathBuf,
    /// Server private key.
    pub server_key: PathBuf,
}

/// How to start a [`RedisServer`].
#[derive(Clone, Debug, Default)]
pub struct RedisServerOptions {
    /// `--appendonly yes --appendfsync always` (survives kill -9 without
    /// losing acknowledged writes); otherwise no persistence at all.
    pub appendonly: bool,
    /// `--aclfile` (copied into the server's directory first, so the server
    /// can never rewrite the original).
    pub aclfile: Option<PathBuf>,
    /// TLS only: `--port 0 --tls-port <port>`, no client certificates needed.
    pub tls: Option<TlsMaterial>,
    /// Anything else, appended verbatim.
    pub extra_args: Vec<String>,
}

/// A `redis-server` child process on 127.0.0.1.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    options: RedisServerOptions,
    starts: u32,
    // Declared last: removed after Drop has killed the process.
    dir: TempDir,
}

fn free_port() -> io::Result<u16> {
    // Racy by nature (the port is free now, not later); start() retries on
    // "address in use".
    Ok(StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> io::Result<Self> {
        Self::start_with(RedisServerOptions::default())
    }

    /// Starts a server with `options`; waits until it accepts connections.
    pub fn start_with(options: RedisServerOptions) -> io::Result<Self> {
        let dir = TempDir::new("nasfleet-redis")?;
        if let Some(acl) = &options.aclfile {
            fs::copy(acl, dir.path().join("users.acl"))?;
        }
        let mut last_err = None;
        // A few ports: another process may grab the free port we picked.
        for _ in 0..5 {
            let port = free_port()?;
            match spawn(dir.path(), port, &options, 1) {
                Ok(child) => {
                    return Ok(RedisServer {
                        child: Some(child),
                        port,
                        options,
                        starts: 1,
                        dir,
                    })
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>/`, or `rediss://localhost:<port>/` with TLS.
    pub fn url(&self) -> String {
        match self.options.tls {
            Some(_) => format!("rediss://localhost:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The URL with credentials.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        match self.options.tls {
            Some(_) => format!("rediss://{user}:{password}@localhost:{}/", self.port),
            None => format!("redis://{user}:{password}@127.0.0.1:{}/", self.port),
        }
    }

    /// The server's directory (AOF, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL (`kill -9`) the server and reap it. No-op when not running.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same port, directory and options (after
    /// [`kill`](Self::kill); kills first if still running).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill()?;
        self.starts += 1;
        self.child = Some(spawn(
            self.dir.path(),
            self.port,
            &self.options,
            self.starts,
        )?);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Spawns `redis-server` and waits for "Ready to accept connections" in its
/// log (printed after the AOF is loaded, so a restarted server is complete).
fn spawn(dir: &Path, port: u16, options: &RedisServerOptions, start: u32) -> io::Result<Child> {
    let log = dir.join(format!("redis-{start}.log"));
    let mut cmd = Command::new("redis-server");
    cmd.arg("--bind")
        .arg("127.0.0.1")
        .arg("--save")
        .arg("")
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .arg("--daemonize")
        .arg("no");
    match &options.tls {
        Some(tls) => {
            cmd.arg("--port")
                .arg("0")
                .arg("--tls-port")
                .arg(port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.server_cert)
                .arg("--tls-key-file")
                .arg(&tls.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca_cert)
                .arg("--tls-auth-clients")
                .arg("no");
        }
        None => {
            cmd.arg("--port").arg(port.to_string());
        }
    }
    if options.appendonly {
        cmd.arg("--appendonly")
            .arg("yes")
            .arg("--appendfsync")
            .arg("always");
    } else {
        cmd.arg("--appendonly").arg("no");
    }
    if options.aclfile.is_some() {
        cmd.arg("--aclfile").arg(dir.join("users.acl"));
    }
    cmd.args(&options.extra_args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("starting redis-server (is it installed?): {e}"),
        )
    })?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Ready to accept connections") {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            let mut stderr = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut stderr);
            }
            return Err(io::Error::other(format!(
                "redis-server exited with {status} on port {port}: {stderr}{}",
                tail(&text)
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "redis-server on port {port} not ready after 20 s: {}",
                tail(&text)
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            io::Error::new(e.kind(), format!("running openssl (is it installed?): {e}"))
        })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Generates, in `dir`, a throwaway CA (`ca.crt`) and a server key and
/// certificate (`server.key`, `server.crt`) for `localhost` / `127.0.0.1`,
/// ECDSA P-256, valid for two days.
pub fn generate_tls(dir: &Path) -> io::Result<TlsMaterial> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=nasfleet test CA",
    ]);
    openssl(dir, &ca)?;
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr)?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )?;
    Ok(TlsMaterial {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    })
}

/// A loopback TCP proxy that can simulate a network cut.
///
/// While cut, open connections are closed and new ones are accepted and
/// closed at once, so clients see their calls fail and keep reconnecting —
/// what a worker sees when its host loses the network (minus the long TCP
/// timeouts, which the client's response timeout covers). Dropping the proxy
/// closes everything.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(TcpProxy { addr, cut, accept })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:<proxy port>/`.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Cuts the network: closes every connection, refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.accept.abort();
    }
}
