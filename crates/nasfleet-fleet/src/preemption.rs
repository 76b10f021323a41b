//! Preemption notices: watch the cloud's instance metadata and stop the
//! worker gracefully before the machine is taken away
//! (`nasfleet worker --preemption-notice aws|gcp|URL`).
//!
//! # Sources
//!
//! A [`NoticeSource`] is parsed from the flag value:
//!
//! * `aws` — EC2 spot instance interruption notices through IMDSv2 at
//!   `http://169.254.169.254`: `PUT /latest/api/token` (header
//!   `X-aws-ec2-metadata-token-ttl-seconds: 21600`) returns a session token,
//!   then `GET /latest/meta-data/spot/instance-action` (header
//!   `X-aws-ec2-metadata-token`) answers 404 while there is no notice and 200
//!   with `{"action":"terminate","time":"2017-09-18T08:22:00Z"}` (action
//!   `terminate`, `stop` or `hibernate`) once there is one. The token is
//!   re-used until shortly before its TTL; a 401 (expired token) fetches a
//!   new one and retries once. In a container, the instance's metadata
//!   hop limit must allow the PUT through (`HttpPutResponseHopLimit` ≥ 2),
//!   or every check times out.
//! * `gcp` — Compute Engine spot / preemptible VMs at
//!   `http://metadata.google.internal`:
//!   `GET /computeMetadata/v1/instance/preempted` (header
//!   `Metadata-Flavor: Google`) answers `FALSE`, and `TRUE` once the VM is
//!   being preempted.
//! * any `http://` URL — for other clouds, proxies and tests: 200 is a
//!   notice (the start of the body, cut to a few hundred bytes, is its
//!   description), 404 or 204 is none, anything else an error.
//!
//! Requests go straight to the metadata address: no `HTTP_PROXY`, no
//! redirects, and one check gives up after [`DEFAULT_TIMEOUT`] in all (2 s;
//! the metadata service answers in milliseconds when it is there). Tests and
//! proxies point `aws` and `gcp` elsewhere with [`NoticeSource::with_base`].
//!
//! # Polling interval
//!
//! AWS posts its notice two minutes before it reclaims the instance; GCP
//! gives about 30 seconds between the preempted flag and the hard stop. The
//! poll interval is the caller's choice ([`DEFAULT_POLL`], 5 s, is the
//! usual one): each poll is one or two tiny local HTTP requests, so polling
//! often costs next to nothing, while every second of delay comes out of the
//! time the trainer has to checkpoint — which matters most on GCP.
//!
//! # On a notice
//!
//! [`watch`] logs a warning naming the source and what it said and calls
//! [`ShutdownTrigger::trigger`]: exactly what SIGTERM does. The trainer
//! checkpoints, the job is released without spending a delivery attempt,
//! and the worker exits 0. A metadata service that is down, hangs or
//! answers garbage never stops the worker: [`watch`] warns once when it
//! becomes unreachable and once when it answers again, and keeps polling.

use std::fmt;
use std::io::Read;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::shutdown::{Shutdown, ShutdownTrigger};

/// The usual poll interval: well inside GCP's 30 s and AWS's 2 min.
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// How long one check may take in all (every request of it together).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The EC2 instance metadata service.
pub const AWS_METADATA_BASE: &str = "http://169.254.169.254";

/// The Compute Engine metadata server.
pub const GCP_METADATA_BASE: &str = "http://metadata.google.internal";

/// The IMDSv2 token lifetime asked for (the maximum, 6 hours).
const AWS_TOKEN_TTL_SECS: u64 = 21_600;

/// A token is replaced this long before it would expire.
const AWS_TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// How much of a body is read, and how much of it a description keeps.
const BODY_LIMIT: u64 = 4096;
const DESCRIPTION_LIMIT: usize = 300;

/// Polls closer together than this are stretched to it.
const MIN_POLL: Duration = Duration::from_millis(10);

/// Where preemption notices come from (the `--preemption-notice` value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoticeSource {
    /// EC2 spot instance-action through IMDSv2.
    Aws {
        /// Metadata service address, [`AWS_METADATA_BASE`] unless overridden.
        base: String,
    },
    /// Compute Engine `instance/preempted`.
    Gcp {
        /// Metadata server address, [`GCP_METADATA_BASE`] unless overridden.
        base: String,
    },
    /// A plain `http://` URL: 200 is a notice, 404 or 204 none.
    Url(String),
}

impl NoticeSource {
    /// EC2 spot notices from the real metadata service.
    pub fn aws() -> Self {
        NoticeSource::Aws {
            base: AWS_METADATA_BASE.to_owned(),
        }
    }

    /// Compute Engine preemption from the real metadata server.
    pub fn gcp() -> Self {
        NoticeSource::Gcp {
            base: GCP_METADATA_BASE.to_owned(),
        }
    }

    /// The same source at another metadata address (`http://host:port`, a
    /// trailing `/` is ignored), for tests and metadata proxies. A
    /// [`NoticeSource::Url`] already names its whole address and is returned
    /// unchanged.
    pub fn with_base(self, base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        match self {
            NoticeSource::Aws { .. } => NoticeSource::Aws { base },
            NoticeSource::Gcp { .. } => NoticeSource::Gcp { base },
            url @ NoticeSource::Url(_) => url,
        }
    }
}

impl fmt::Display for NoticeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoticeSource::Aws { base } if base == AWS_METADATA_BASE => f.write_str("aws"),
            NoticeSource::Aws { base } => write!(f, "aws (metadata at {base})"),
            NoticeSource::Gcp { base } if base == GCP_METADATA_BASE => f.write_str("gcp"),
            NoticeSource::Gcp { base } => write!(f, "gcp (metadata at {base})"),
            NoticeSource::Url(url) => f.write_str(url),
        }
    }
}

const ACCEPTED: &str = "expected `aws` (EC2 spot instance-action, IMDSv2), `gcp` (Compute Engine \
     instance/preempted) or an http:// URL that answers 200 on a notice and 404 or 204 otherwise";

impl FromStr for NoticeSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let v = s.trim();
        if v.eq_ignore_ascii_case("aws") {
            return Ok(NoticeSource::aws());
        }
        if v.eq_ignore_ascii_case("gcp") {
            return Ok(NoticeSource::gcp());
        }
        if v.is_empty() {
            return Err(format!("empty preemption notice source: {ACCEPTED}"));
        }
        let scheme = v
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "preemption notice source {v:?}: https is not supported (instance metadata is \
                     plain HTTP on a link-local address); use an http:// URL"
                ))
            }
            _ => {
                return Err(format!(
                    "unknown preemption notice source {v:?}: {ACCEPTED}"
                ))
            }
        }
        let host = v["http://".len()..]
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("");
        if host.is_empty() || v.chars().any(char::is_whitespace) {
            return Err(format!(
                "preemption notice source {v:?} is not a valid http:// URL: {ACCEPTED}"
            ));
        }
        if let Err(e) = ureq::get(v).request_url() {
            return Err(format!(
                "preemption notice source {v:?} is not a valid http:// URL ({e}): {ACCEPTED}"
            ));
        }
        Ok(NoticeSource::Url(v.to_owned()))
    }
}

/// A preemption notice: the machine is about to be taken away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Who said it: the source as [`NoticeSource`] displays it.
    pub source: String,
    /// What it said, e.g. `terminate at 2017-09-18T08:22:00Z`,
    /// `instance/preempted is TRUE`, or the start of a URL's body.
    pub detail: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.detail)
    }
}

/// Checks one [`NoticeSource`], keeping its HTTP agent and (AWS) its
/// IMDSv2 token between checks. Blocking; [`watch`] runs it off the async
/// threads.
#[derive(Debug)]
pub struct NoticeWatcher {
    source: NoticeSource,
    agent: ureq::Agent,
    timeout: Duration,
    /// The IMDSv2 token and when to replace it.
    token: Option<(String, Instant)>,
}

/// A response's status and the start of its body.
struct Answer {
    status: u16,
    body: String,
}

impl NoticeWatcher {
    /// A watcher whose checks each give up after [`DEFAULT_TIMEOUT`].
    pub fn new(source: NoticeSource) -> Self {
        Self::with_timeout(source, DEFAULT_TIMEOUT)
    }

    /// A watcher whose checks each give up after `timeout` (connecting,
    /// sending and reading, every request of the check together).
    pub fn with_timeout(source: NoticeSource, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            .redirects(0)
            .try_proxy_from_env(false)
            .user_agent(concat!("nasfleet/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            source,
            agent,
            timeout,
            token: None,
        }
    }

    /// The source this watcher checks.
    pub fn source(&self) -> &NoticeSource {
        &self.source
    }

    /// Asks the source once. `Ok(Some(_))`: a notice; `Ok(None)`: none yet;
    /// `Err(_)`: the source could not be asked or answered something that is
    /// neither (never to be taken as a notice). Blocks up to the watcher's
    /// timeout.
    pub fn check(&mut self) -> Result<Option<Notice>, String> {
        let deadline = Instant::now() + self.timeout;
        match self.source.clone() {
            NoticeSource::Aws { base } => self.check_aws(&base, deadline),
            NoticeSource::Gcp { base } => self.check_gcp(&base, deadline),
            NoticeSource::Url(url) => self.check_url(&url, deadline),
        }
    }

    fn notice(&self, detail: String) -> Option<Notice> {
        Some(Notice {
            source: self.source.to_string(),
            detail,
        })
    }

    fn check_aws(&mut self, base: &str, deadline: Instant) -> Result<Option<Notice>, String> {
        let url = format!("{base}/latest/meta-data/spot/instance-action");
        let mut a = self.aws_instance_action(&url, base, deadline)?;
        if a.status == 401 {
            // The token expired (or was otherwise refused): one new token,
            // one retry.
            self.token = None;
            a = self.aws_instance_action(&url, base, deadline)?;
        }
        match a.status {
            404 => Ok(None),
            200 => {
                let doc: serde_json::Value = serde_json::from_str(&a.body).map_err(|_| {
                    format!(
                        "EC2 metadata {url} answered 200 with something that is not an instance-action document: {}",
                        describe(&a.body)
                    )
                })?;
                let action = doc.get("action").and_then(|v| v.as_str()).ok_or_else(|| {
                    format!(
                        "EC2 metadata {url} answered 200 without an \"action\": {}",
                        describe(&a.body)
                    )
                })?;
                let detail = match doc.get("time").and_then(|v| v.as_str()) {
                    Some(time) => format!("spot instance-action {action} at {time}"),
                    None => format!("spot instance-action {action}"),
                };
                Ok(self.notice(describe(&detail)))
            }
            401 => Err(format!(
                "EC2 metadata {url} refused a freshly fetched IMDSv2 token (401 twice)"
            )),
            s => Err(format!(
                "EC2 metadata {url} answered HTTP {s}: {}",
                describe(&a.body)
            )),
        }
    }

    fn aws_instance_action(
        &mut self,
        url: &str,
        base: &str,
        deadline: Instant,
    ) -> Result<Answer, String> {
        let token = self.aws_token(base, deadline)?;
        let req = self.agent.get(url).set("X-aws-ec2-metadata-token", &token);
        self.send(req, None, deadline, "EC2 metadata spot/instance-action")
    }

    /// The current IMDSv2 token, fetched anew when there is none or it is
    /// about to expire.
    fn aws_token(&mut self, base: &str, deadline: Instant) -> Result<String, String> {
        if let Some((token, replace_at)) = &self.token {
            if Instant::now() < *replace_at {
                return Ok(token.clone());
            }
        }
        self.token = None;
        let url = format!("{base}/latest/api/token");
        let req = self.agent.put(&url).set(
            "X-aws-ec2-metadata-token-ttl-seconds",
            &AWS_TOKEN_TTL_SECS.to_string(),
        );
        let fetched = Instant::now();
        let a = self.send(
            req,
            Some(b""),
            deadline,
            "EC2 metadata IMDSv2 token (PUT /latest/api/token)",
        )?;
        let token = a.body.trim();
        if a.status != 200
            || token.is_empty()
            || token.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(format!(
                "EC2 metadata {url} did not give an IMDSv2 token (HTTP {}): {}",
                a.status,
                describe(&a.body)
            ));
        }
        let replace_at = fetched + Duration::from_secs(AWS_TOKEN_TTL_SECS) - AWS_TOKEN_MARGIN;
        self.token = Some((token.to_owned(), replace_at));
        Ok(token.to_owned())
    }

    fn check_gcp(&mut self, base: &str, deadline: Instant) -> Result<Option<Notice>, String> {
        let url = format!("{base}/computeMetadata/v1/instance/preempted");
        let req = self.agent.get(&url).set("Metadata-Flavor", "Google");
        let a = self.send(req, None, deadline, "GCE metadata instance/preempted")?;
        match (a.status, a.body.trim()) {
            (200, "TRUE") => Ok(self.notice("instance/preempted is TRUE".to_owned())),
            (200, "FALSE") => Ok(None),
            (200, other) => Err(format!(
                "GCE metadata {url} answered neither TRUE nor FALSE: {}",
                describe(other)
            )),
            (s, _) => Err(format!(
                "GCE metadata {url} answered HTTP {s}: {}",
                describe(&a.body)
            )),
        }
    }

    fn check_url(&mut self, url: &str, deadline: Instant) -> Result<Option<Notice>, String> {
        let a = self.send(self.agent.get(url), None, deadline, "preemption notice URL")?;
        match a.status {
            200 => {
                let body = describe(&a.body);
                Ok(self.notice(if body.is_empty() { "(empty body)".to_owned() } else { body }))
            }
            204 | 404 => Ok(None),
            s => Err(format!(
                "preemption notice URL {url} answered HTTP {s} (expected 200 for a notice, 404 or 204 for none): {}",
                describe(&a.body)
            )),
        }
    }

    /// Sends `req` within what is left before `deadline`; any status comes
    /// back as an [`Answer`], transport failures as an error naming `what`.
    fn send(
        &self,
        req: ureq::Request,
        body: Option<&[u8]>,
        deadline: Instant,
        what: &str,
    ) -> Result<Answer, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{what}: no answer within {:?}", self.timeout));
        }
        let url = req.url().to_owned();
        let req = req.timeout(left);
        let sent = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match sent {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                // ureq's message starts with the URL already.
                let t_kind = t.kind();
                let t = t.to_string();
                let why = t.strip_prefix(&format!("{url}: ")).unwrap_or(&t);
                return Err(match t_kind {
                    ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed => {
                        format!("{what}: cannot reach {url}: {why}")
                    }
                    _ => format!("{what}: no valid HTTP answer from {url}: {why}"),
                });
            }
        };
        let status = resp.status();
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(BODY_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                format!("{what}: {url} answered HTTP {status} but reading the body failed: {e}")
            })?;
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

/// `text` fit for one log line: control characters and runs of whitespace
/// become one space, and it is cut to a few hundred bytes.
fn describe(text: &str) -> String {
    let mut out = String::new();
    let mut cut = false;
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        for c in (!out.is_empty())
            .then_some(' ')
            .into_iter()
            .chain(word.chars())
        {
            if out.len() + c.len_utf8() > DESCRIPTION_LIMIT {
                cut = true;
                break;
            }
            out.push(c);
        }
        if cut {
            out.push('…');
            break;
        }
    }
    out
}

/// Whether the source answered lately, so that an outage is logged once
/// when it starts and once when it ends.
#[derive(Debug, Default)]
struct Reachability {
    /// Failed checks in a row.
    failures: u64,
}

impl Reachability {
    /// A check failed; true if it is the first of a run (warn then).
    fn failed(&mut self) -> bool {
        self.failures += 1;
        self.failures == 1
    }

    /// A check succeeded; `Some(n)` if it ends a run of `n` failures.
    fn answered(&mut self) -> Option<u64> {
        let n = std::mem::take(&mut self.failures);
        (n > 0).then_some(n)
    }
}

/// Polls `source` every `poll` until a notice — then logs a warning naming
/// the source and what it said, calls `trigger.trigger()` and returns — or
/// until `shutdown` is requested otherwise. Errors (the metadata service is
/// down, hangs, answers garbage) never trigger: the first of a run and the
/// recovery are warned about, and polling goes on. Each check gives up
/// after [`DEFAULT_TIMEOUT`]; use [`watch_with`] for another.
pub async fn watch(
    source: NoticeSource,
    poll: Duration,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
) {
    watch_with(NoticeWatcher::new(source), poll, trigger, shutdown).await
}

/// [`watch`] with a watcher made by the caller (another timeout).
pub async fn watch_with(
    mut watcher: NoticeWatcher,
    poll: Duration,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
) {
    let source = watcher.source().to_string();
    watch_loop(move || watcher.check(), source, poll, trigger, shutdown).await
}

async fn watch_loop<C>(
    mut check: C,
    source: String,
    poll: Duration,
    trigger: ShutdownTrigger,
    mut shutdown: Shutdown,
) where
    C: FnMut() -> Result<Option<Notice>, String> + Send + 'static,
{
    let poll = poll.max(MIN_POLL);
    let mut reach = Reachability::default();
    tracing::info!(source = %source, poll = ?poll, "watching for preemption notices");
    loop {
        if shutdown.is_requested() {
            return;
        }
        let task = tokio::task::spawn_blocking(move || {
            let result = check();
            (check, result)
        });
        let result = tokio::select! {
            done = task => match done {
                Ok((c, result)) => {
                    check = c;
                    result
                }
                Err(e) => {
                    tracing::error!(source = %source, error = %e, "the preemption notice check failed; no longer watching");
                    return;
                }
            },
            // A check in flight finishes on its own (bounded by its timeout).
            _ = shutdown.requested() => return,
        };
        match result {
            Ok(Some(notice)) => {
                tracing::warn!(
                    source = %source,
                    notice = %notice.detail,
                    "preemption notice: stopping gracefully (the trainer checkpoints, the job is released)"
                );
                trigger.trigger();
                return;
            }
            Ok(None) => {
                if let Some(n) = reach.answered() {
                    tracing::warn!(source = %source, failed_checks = n, "preemption notices: the metadata service answers again");
                }
            }
            Err(e) => {
                if reach.failed() {
                    tracing::warn!(
                        source = %source,
                        error = %e,
                        "preemption notices: cannot ask the metadata service; still polling, \
                         and a notice will be missed until it answers (logged again once it does)"
                    );
                } else {
                    tracing::debug!(source = %source, error = %e, "preemption notice check failed again");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.requested() => return,
        }
    }
}

/// The shutdown a worker runs under: the first of `signals` (SIGTERM,
/// SIGINT: see [`on_signals`](crate::on_signals)) and, with `notice`, a
/// preemption notice polled every `poll`. Either way the worker does the
/// same: the trainer checkpoints, the job goes back without spending an
/// attempt, the worker exits 0. Spawns its tasks on the current runtime.
pub fn signal_or_notice(signals: Shutdown, notice: Option<NoticeSource>, poll: Duration) -> Shutdown {
    let (trigger, shutdown) = crate::shutdown::shutdown_pair();
    {
        let (mut signals, trigger) = (signals, trigger.clone());
        tokio::spawn(async move {
            signals.requested().await;
            trigger.trigger();
        });
    }
    if let Some(source) = notice {
        tokio::spawn(watch(source, poll, trigger, shutdown.clone()));
    }
    shutdown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::shutdown_pair;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{Shutdown as NetShutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// Safety net for waits in tests (never an assertion on speed).
    const PATIENCE: Duration = Duration::from_secs(20);

    struct Req {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
    }

    impl Req {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    enum Reply {
        Http(u16, String),
        /// Bytes that are not HTTP, then close.
        Raw(&'static [u8]),
        /// Never answer (until the server is dropped).
        Hang,
    }

    fn http(status: u16, body: &str) -> Reply {
        Reply::Http(status, body.to_owned())
    }

    /// A one-thread HTTP/1.1 server on 127.0.0.1 answering each request
    /// with `handler` and closing the connection.
    struct Server {
        base: String,
        requests: Arc<AtomicUsize>,
        held: Arc<Mutex<Vec<TcpStream>>>,
    }

    impl Server {
        fn start(handler: impl Fn(&Req) -> Reply + Send + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            Self::on(listener, handler)
        }

        fn on(listener: TcpListener, handler: impl Fn(&Req) -> Reply + Send + 'static) -> Self {
            let base = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(AtomicUsize::new(0));
            let held = Arc::new(Mutex::new(Vec::new()));
            let (count, hold) = (requests.clone(), held.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    let Some(req) = read_request(&stream) else {
                        continue;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    match handler(&req) {
                        Reply::Http(status, body) => {
                            let head = format!(
                                "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = stream.write_all(head.as_bytes());
                            let _ = stream.write_all(body.as_bytes());
                        }
                        Reply::Raw(bytes) => {
                            let _ = stream.write_all(bytes);
                        }
                        Reply::Hang => hold.lock().unwrap().push(stream),
                    }
                }
            });
            Server {
                base,
                requests,
                held,
            }
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    impl Drop for Server {
        /// Hangs up on held connections so that no check stays blocked.
        fn drop(&mut self) {
            for s in self.held.lock().unwrap().drain(..) {
                let _ = s.shutdown(NetShutdown::Both);
            }
        }
    }

    fn read_request(stream: &TcpStream) -> Option<Req> {
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':')?;
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let req = Req {
            method,
            path,
            headers,
        };
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        Some(req)
    }

    /// A port nothing listens on (connections are refused), and a listener
    /// that can be put on it later.
    fn refused_port() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        addr.to_string()
    }

    /// An EC2 IMDSv2 imitation: tokens from PUT, the instance-action only
    /// with a valid one.
    #[derive(Default)]
    struct Imds {
        valid: Vec<String>,
        issued: usize,
        notice: Option<String>,
        /// Refuse every GET, whatever the token.
        refuse_all: bool,
    }

    fn imds() -> (Server, Arc<Mutex<Imds>>) {
        let state = Arc::new(Mutex::new(Imds::default()));
        let s = state.clone();
        let server = Server::start(move |req| {
            let mut st = s.lock().unwrap();
            match (req.method.as_str(), req.path.as_str()) {
                ("PUT", "/latest/api/token") => {
                    let ttl = req
                        .header("X-aws-ec2-metadata-token-ttl-seconds")
                        .and_then(|v| v.parse::<u64>().ok());
                    match ttl {
                        Some(1..=21600) => {
                            st.issued += 1;
                            let token = format!("token-{}", st.issued);
                            st.valid.push(token.clone());
                            http(200, &token)
                        }
                        _ => http(
                            400,
                            "missing or invalid X-aws-ec2-metadata-token-ttl-seconds",
                        ),
                    }
                }
                ("GET", "/latest/meta-data/spot/instance-action") => {
                    let ok = req
                        .header("X-aws-ec2-metadata-token")
                        .is_some_and(|t| st.valid.iter().any(|v| v == t));
                    if !ok || st.refuse_all {
                        return http(401, "");
                    }
                    match &st.notice {
                        Some(doc) => http(200, doc),
                        None => http(404, "<html>404 - Not Found</html>"),
                    }
                }
                _ => http(404, ""),
            }
        });
        (server, state)
    }

    fn aws_at(server: &Server) -> NoticeWatcher {
        NoticeWatcher::with_timeout(
            NoticeSource::aws().with_base(&server.base),
            Duration::from_secs(5),
        )
    }

    #[test]
    fn the_flag_accepts_aws_gcp_and_http_urls() {
        assert_eq!("aws".parse(), Ok(NoticeSource::aws()));
        assert_eq!(" AWS ".parse(), Ok(NoticeSource::aws()));
        assert_eq!("gcp".parse(), Ok(NoticeSource::gcp()));
        assert_eq!(
            NoticeSource::aws(),
            NoticeSource::Aws {
                base: "http://169.254.169.254".into()
            }
        );
        assert_eq!(
            NoticeSource::gcp(),
            NoticeSource::Gcp {
                base: "http://metadata.google.internal".into()
            }
        );
        let url = "http://127.0.0.1:8080/preempted?node=a";
        assert_eq!(url.parse(), Ok(NoticeSource::Url(url.into())));
        assert_eq!(
            "HTTP://example.internal".parse(),
            Ok(NoticeSource::Url("HTTP://example.internal".into()))
        );
        // Display gives the flag back.
        for s in ["aws", "gcp", url] {
            assert_eq!(s.parse::<NoticeSource>().unwrap().to_string(), s);
        }
        // Base overrides, for tests and proxies.
        let a = NoticeSource::aws().with_base("http://127.0.0.1:9/");
        assert_eq!(
            a,
            NoticeSource::Aws {
                base: "http://127.0.0.1:9".into()
            }
        );
        assert_eq!(a.to_string(), "aws (metadata at http://127.0.0.1:9)");
        let g = NoticeSource::gcp().with_base("http://127.0.0.1:9");
        assert_eq!(
            g,
            NoticeSource::Gcp {
                base: "http://127.0.0.1:9".into()
            }
        );
        let u = NoticeSource::Url(url.into());
        assert_eq!(u.clone().with_base("http://elsewhere"), u);
    }

    #[test]
    fn flag_errors_say_what_is_accepted() {
        for bad in [
            "azure",
            "",
            "  ",
            "aws,gcp",
            "ftp://host/x",
            "169.254.169.254",
        ] {
            let e = bad.parse::<NoticeSource>().unwrap_err();
            for word in ["`aws`", "`gcp`", "http:// URL", "404"] {
                assert!(e.contains(word), "{bad:?}: {e}");
            }
        }
        let e = "azure".parse::<NoticeSource>().unwrap_err();
        assert!(e.contains("\"azure\""), "{e}");
        let e = "https://metadata/x".parse::<NoticeSource>().unwrap_err();
        assert!(
            e.contains("https is not supported") && e.contains("http://"),
            "{e}"
        );
        for bad in ["http://", "http:///path", "http://a b/"] {
            let e = bad.parse::<NoticeSource>().unwrap_err();
            assert!(e.contains("not a valid http:// URL"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_imds_imitation_refuses_requests_without_a_token() {
        let (server, _) = imds();
        let agent = ureq::agent();
        let get = |req: ureq::Request| match req.call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{e}"),
        };
        let action = format!("{}/latest/meta-data/spot/instance-action", server.base);
        assert_eq!(get(agent.get(&action)), 401);
        assert_eq!(
            get(agent.get(&action).set("X-aws-ec2-metadata-token", "forged")),
            401
        );
        assert_eq!(
            get(agent.put(&format!("{}/latest/api/token", server.base))),
            400
        );
    }

    #[test]
    fn aws_no_notice_then_a_notice_with_one_reused_token() {
        let (server, state) = imds();
        let mut w = aws_at(&server);
        assert_eq!(w.check(), Ok(None));
        assert_eq!(w.check(), Ok(None));
        state.lock().unwrap().notice =
            Some(r#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#.into());
        let notice = w.check().unwrap().expect("a notice");
        assert_eq!(
            notice.detail,
            "spot instance-action terminate at 2017-09-18T08:22:00Z"
        );
        assert_eq!(notice.source, format!("aws (metadata at {})", server.base));
        assert!(notice
            .to_string()
            .contains("terminate at 2017-09-18T08:22:00Z"));
        // One token for all three checks: 1 PUT + 3 GETs.
        assert_eq!(state.lock().unwrap().issued, 1);
        assert_eq!(server.requests(), 4);
        // Other actions are notices too.
        state.lock().unwrap().notice = Some(r#"{"action":"stop"}"#.into());
        assert_eq!(
            w.check().unwrap().unwrap().detail,
            "spot instance-action stop"
        );
    }

    #[test]
    fn aws_expired_token_is_fetched_again_and_the_check_retried_once() {
        let (server, state) = imds();
        let mut w = aws_at(&server);
        assert_eq!(w.check(), Ok(None));
        // The service forgets the token (it expired): 401, new token, retry.
        state.lock().unwrap().valid.clear();
        assert_eq!(w.check(), Ok(None));
        assert_eq!(state.lock().unwrap().issued, 2);
        // PUT, GET | GET (401), PUT, GET
        assert_eq!(server.requests(), 5);
        assert_eq!(w.token.as_ref().map(|t| t.0.as_str()), Some("token-2"));
        state.lock().unwrap().valid.clear();
        state.lock().unwrap().notice =
            Some(r#"{"action":"hibernate","time":"2030-01-01T00:00:00Z"}"#.into());
        assert!(w.check().unwrap().is_some());
        assert_eq!(state.lock().unwrap().issued, 3);
    }

    #[test]
    fn aws_token_is_replaced_before_its_ttl_runs_out() {
        let (server, state) = imds();
        let mut w = aws_at(&server);
        assert_eq!(w.check(), Ok(None));
        let (_, replace_at) = w.token.clone().unwrap();
        // Replaced a minute before the 6 h TTL, not later.
        assert!(replace_at > Instant::now() + Duration::from_secs(5 * 3600));
        assert!(replace_at <= Instant::now() + Duration::from_secs(AWS_TOKEN_TTL_SECS));
        // Pretend that time has come: a new token without a 401 first.
        w.token.as_mut().unwrap().1 = Instant::now();
        assert_eq!(w.check(), Ok(None));
        assert_eq!(state.lock().unwrap().issued, 2);
        assert_eq!(server.requests(), 4); // PUT, GET, PUT, GET
    }

    #[test]
    fn aws_401_with_a_fresh_token_is_an_error_after_one_retry() {
        let (server, state) = imds();
        state.lock().unwrap().refuse_all = true;
        let mut w = aws_at(&server);
        let e = w.check().unwrap_err();
        assert!(e.contains("401"), "{e}");
        assert_eq!(state.lock().unwrap().issued, 2);
        assert_eq!(server.requests(), 4);
    }

    #[test]
    fn aws_garbage_is_an_error_not_a_notice() {
        for body in [
            "<html>hello</html>",
            r#"{"time":"2017-09-18T08:22:00Z"}"#,
            "",
        ] {
            let body = body.to_owned();
            let server = Server::start(move |req| match req.method.as_str() {
                "PUT" => http(200, "tok"),
                _ => http(200, &body),
            });
            let e = aws_at(&server).check().unwrap_err();
            assert!(e.contains("instance-action"), "{e}");
        }
        // A token endpoint that answers garbage status.
        let server = Server::start(|_| http(403, "forbidden"));
        let e = aws_at(&server).check().unwrap_err();
        assert!(e.contains("IMDSv2 token") && e.contains("403"), "{e}");
    }

    fn gcp_server(preempted: Arc<Mutex<&'static str>>) -> Server {
        Server::start(move |req| {
            if req.path != "/computeMetadata/v1/instance/preempted" {
                return http(404, "");
            }
            if req.header("Metadata-Flavor") != Some("Google") {
                return http(403, "Missing Metadata-Flavor:Google header.");
            }
            http(200, &preempted.lock().unwrap())
        })
    }

    #[test]
    fn gcp_false_then_true_with_the_metadata_flavor_header() {
        let preempted = Arc::new(Mutex::new("FALSE"));
        let server = gcp_server(preempted.clone());
        // The imitation insists on the header, like the real server.
        let plain = ureq::get(&format!(
            "{}/computeMetadata/v1/instance/preempted",
            server.base
        ))
        .call();
        assert!(matches!(plain, Err(ureq::Error::Status(403, _))));
        let mut w = NoticeWatcher::new(NoticeSource::gcp().with_base(&server.base));
        assert_eq!(w.check(), Ok(None));
        *preempted.lock().unwrap() = "TRUE";
        let notice = w.check().unwrap().expect("a notice");
        assert_eq!(notice.detail, "instance/preempted is TRUE");
        assert!(notice.source.starts_with("gcp"));
        // Garbage answers are errors.
        *preempted.lock().unwrap() = "maybe";
        let e = w.check().unwrap_err();
        assert!(
            e.contains("neither TRUE nor FALSE") && e.contains("maybe"),
            "{e}"
        );
    }

    #[test]
    fn a_plain_url_404_then_200_with_the_body_as_description() {
        let reply = Arc::new(Mutex::new((404, String::new())));
        let r = reply.clone();
        let server = Server::start(move |req| {
            assert_eq!(req.path, "/notice?node=a");
            let (s, b) = r.lock().unwrap().clone();
            http(s, &b)
        });
        let source: NoticeSource = format!("{}/notice?node=a", server.base).parse().unwrap();
        let mut w = NoticeWatcher::new(source.clone());
        assert_eq!(w.check(), Ok(None));
        *reply.lock().unwrap() = (204, String::new());
        assert_eq!(w.check(), Ok(None));
        *reply.lock().unwrap() = (200, "maintenance:\n  host going away at 12:00".into());
        let notice = w.check().unwrap().unwrap();
        assert_eq!(
            notice,
            Notice {
                source: source.to_string(),
                detail: "maintenance: host going away at 12:00".into()
            }
        );
        // A long body is cut.
        *reply.lock().unwrap() = (200, "é".repeat(5000));
        let d = w.check().unwrap().unwrap().detail;
        assert!(
            d.len() <= DESCRIPTION_LIMIT + '…'.len_utf8() && d.ends_with('…'),
            "{}",
            d.len()
        );
        *reply.lock().unwrap() = (200, String::new());
        assert_eq!(w.check().unwrap().unwrap().detail, "(empty body)");
        // Anything else is an error.
        *reply.lock().unwrap() = (500, "oops".into());
        let e = w.check().unwrap_err();
        assert!(e.contains("HTTP 500") && e.contains("oops"), "{e}");
        *reply.lock().unwrap() = (301, String::new());
        assert!(w.check().unwrap_err().contains("HTTP 301"));
    }

    #[test]
    fn a_service_that_is_down_gives_errors_not_notices() {
        let port = refused_port();
        for source in [
            NoticeSource::aws().with_base(format!("http://{port}")),
            NoticeSource::gcp().with_base(format!("http://{port}")),
            NoticeSource::Url(format!("http://{port}/x")),
        ] {
            let mut w = NoticeWatcher::new(source);
            for _ in 0..2 {
                let e = w.check().unwrap_err();
                assert!(e.contains("cannot reach") && e.contains(&port), "{e}");
            }
        }
    }

    #[test]
    fn a_service_that_hangs_or_answers_garbage_gives_errors_not_notices() {
        let hang = Server::start(|_| Reply::Hang);
        let garbage = Server::start(|_| Reply::Raw(b"TRUE TRUE TRUE\r\n\r\n"));
        for (server, why) in [(&hang, "timed out"), (&garbage, "Bad Status")] {
            for source in [
                NoticeSource::aws().with_base(&server.base),
                NoticeSource::gcp().with_base(&server.base),
                NoticeSource::Url(format!("{}/x", server.base)),
            ] {
                let mut w = NoticeWatcher::with_timeout(source, Duration::from_millis(200));
                let e = w.check().unwrap_err();
                assert!(e.contains("no valid HTTP answer") && e.contains(why), "{e}");
            }
        }
    }

    #[test]
    fn an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() {
        let mut r = Reachability::default();
        assert_eq!(r.answered(), None);
        assert!(r.failed());
        assert!(!r.failed());
        assert!(!r.failed());
        assert_eq!(r.answered(), Some(3));
        assert_eq!(r.answered(), None);
        assert!(r.failed());
        assert_eq!(r.answered(), Some(1));
    }

    async fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn watch_triggers_the_shutdown_on_a_notice() {
        let server = Server::start({
            let n = AtomicUsize::new(0);
            move |_| match n.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => http(404, ""),
                _ => http(200, "spot reclaim in 120 s"),
            }
        });
        let (trigger, shutdown) = shutdown_pair();
        let source = NoticeSource::Url(format!("{}/preempted", server.base));
        let watching = watch(source, Duration::from_millis(10), trigger, shutdown.clone());
        tokio::time::timeout(PATIENCE, watching)
            .await
            .expect("watch returns on the notice");
        assert!(shutdown.is_requested());
        assert_eq!(server.requests(), 3);
    }

    #[tokio::test]
    async fn watch_triggers_on_an_aws_notice() {
        let (server, state) = imds();
        state.lock().unwrap().notice =
            Some(r#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#.into());
        let (trigger, shutdown) = shutdown_pair();
        let source = NoticeSource::aws().with_base(&server.base);
        tokio::time::timeout(
            PATIENCE,
            watch(source, DEFAULT_POLL, trigger, shutdown.clone()),
        )
        .await
        .expect("watch returns on the notice");
        assert!(shutdown.is_requested());
    }

    /// Runs `watch_loop` over `watcher`, counting checks.
    fn counted(
        mut watcher: NoticeWatcher,
        trigger: ShutdownTrigger,
        shutdown: Shutdown,
    ) -> (tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
        let checks = Arc::new(AtomicUsize::new(0));
        let c = checks.clone();
        let source = watcher.source().to_string();
        let check = move || {
            let r = watcher.check();
            c.fetch_add(1, Ordering::SeqCst);
            r
        };
        let task = tokio::spawn(watch_loop(
            check,
            source,
            Duration::from_millis(10),
            trigger,
            shutdown,
        ));
        (task, checks)
    }

    #[tokio::test]
    async fn watch_keeps_polling_while_the_service_is_down_and_triggers_once_it_is_back() {
        let port = refused_port();
        let (trigger, shutdown) = shutdown_pair();
        let w = NoticeWatcher::new(NoticeSource::gcp().with_base(format!("http://{port}")));
        let (task, checks) = counted(w, trigger, shutdown.clone());
        wait_until("three failed checks", || checks.load(Ordering::SeqCst) >= 3).await;
        assert!(
            !shutdown.is_requested(),
            "an unreachable service must not stop the worker"
        );
        assert!(!task.is_finished());
        // The service comes up (on the same port) with a notice.
        let _server = Server::on(TcpListener::bind(&port).unwrap(), |_| http(200, "TRUE"));
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("watch returns")
            .unwrap();
        assert!(shutdown.is_requested());
    }

    #[tokio::test]
    async fn watch_never_triggers_on_a_hanging_or_garbage_service_and_returns_on_shutdown() {
        let hang = Server::start(|_| Reply::Hang);
        let garbage = Server::start(|req| match req.method.as_str() {
            "PUT" => http(200, "tok"),
            _ => http(200, "<html>captive portal</html>"),
        });
        for server in [&hang, &garbage] {
            let (trigger, shutdown) = shutdown_pair();
            let w = NoticeWatcher::with_timeout(
                NoticeSource::aws().with_base(&server.base),
                Duration::from_millis(100),
            );
            let (task, checks) = counted(w, trigger.clone(), shutdown.clone());
            wait_until("three failed checks", || checks.load(Ordering::SeqCst) >= 3).await;
            assert!(!shutdown.is_requested());
            // Shutdown for another reason (SIGTERM): the watch ends.
            trigger.trigger();
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("watch returns")
                .unwrap();
        }
    }

    #[tokio::test]
    async fn watch_returns_on_shutdown_while_a_check_hangs() {
        let server = Server::start(|_| Reply::Hang);
        let (trigger, shutdown) = shutdown_pair();
        let w =
            NoticeWatcher::with_timeout(NoticeSource::Url(format!("{}/x", server.base)), PATIENCE);
        let (task, _) = counted(w, trigger.clone(), shutdown.clone());
        wait_until("the check to be in flight", || server.requests() >= 1).await;
        trigger.trigger();
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("watch returns")
            .unwrap();
        drop(server); // hangs up, so the blocking check ends too
    }

    #[tokio::test]
    async fn watch_returns_at_once_when_shutdown_was_already_requested() {
        let (trigger, shutdown) = shutdown_pair();
        trigger.trigger();
        let port = refused_port();
        let source = NoticeSource::Url(format!("http://{port}/x"));
        tokio::time::timeout(PATIENCE, watch(source, DEFAULT_POLL, trigger, shutdown))
            .await
            .expect("watch returns");
    }
}
