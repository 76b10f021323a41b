//! One run directory, read (never written) and aggregated for the pages.
//!
//! Memory stays bounded as a run grows: `history.jsonl` is tailed by byte
//! offset ([`Tail`]) and each line becomes a compact [`Child`] (numbers, a
//! worker index, the per-epoch validation metric, and the line's byte
//! offset); the architecture JSON and the rest of the line are not kept —
//! the child page reads its one line again at that offset. About 200 bytes
//! per child (resident memory grew ~240 bytes per child in `bench_load`),
//! where the raw lines are 600 bytes (NB201) to several KB (CNN).
//! `updates.jsonl` becomes a few numbers per update, plus the latest
//! update's policy view (the controller's choice probabilities, for the heat
//! map); the actions of only the last [`ACTION_WINDOW`] children are kept (the
//! heat map of strategies without a policy).

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nasfleet_core::schema::{StepKind, TokenSchema};
use nasfleet_core::strategy::PolicyView;
use nasfleet_core::ExperimentConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::tail::{Tail, TailRead};

/// Children whose actions estimate the current choice probabilities of a
/// strategy that records no policy view (random, evolution, local search).
pub const ACTION_WINDOW: usize = 200;

/// A run with no write for this long, and not finished, is shown as `stale`.
pub const STALE_AFTER_MS: u64 = 15 * 60 * 1000;

/// How a child ended, as the pages colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChildStatus {
    /// Trained and rewarded normally.
    Ok = 0,
    /// Its result failed validation (`invalid` in the history).
    Failed = 1,
    /// Dead-lettered by a worker or the queue.
    Dead = 2,
    /// Rewarded, but training stopped early (the trainer left a note: diverged, out of time).
    StoppedEarly = 3,
}

impl ChildStatus {
    /// The name the pages and the API use.
    pub fn name(self) -> &'static str {
        match self {
            ChildStatus::Ok => "ok",
            ChildStatus::Failed => "failed",
            ChildStatus::Dead => "dead",
            ChildStatus::StoppedEarly => "stopped",
        }
    }
}

/// One finished child, compactly.
#[derive(Debug, Clone)]
pub struct Child {
    /// Sequence number (issue order); the job id is `<run>-<seq:06>`.
    pub seq: u64,
    /// How it ended.
    pub status: ChildStatus,
    /// Reward (ok and stopped-early children).
    pub reward: Option<f64>,
    /// Index into [`RunState::workers`].
    pub worker: u32,
    /// Training start (worker clock, Unix ms), when reported.
    pub started_ms: Option<u64>,
    /// Training end, when reported.
    pub finished_ms: Option<u64>,
    /// When the controller applied it (Unix ms).
    pub applied_ms: u64,
    /// The policy version that sampled it.
    pub policy_version: u64,
    /// The validation metric per epoch (accuracy or perplexity).
    pub curve: Box<[f32]>,
    /// Where its line starts in `history.jsonl`.
    pub offset: u64,
    /// The dead-letter or validation reason (children without a reward only).
    pub reason: Option<Box<str>>,
}

/// One controller update, compactly.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    /// Batch index.
    pub batch: u64,
    /// Policy version after it.
    pub policy_version: u64,
    /// Rewards applied.
    pub n: usize,
    /// Mean reward of the batch.
    pub mean_reward: Option<f64>,
    /// The baseline the advantages were taken against.
    pub baseline: Option<f64>,
    /// Policy entropy (nats, summed over an architecture's tokens).
    pub entropy: Option<f64>,
    /// The loss.
    pub loss: Option<f64>,
}

/// What the dashboard needs of `checkpoint.json`, read leniently (unknown
/// fields ignored) so that a newer checkpoint format still shows.
#[derive(Debug, Clone, Default, Deserialize)]
struct CheckpointView {
    #[serde(default)]
    strategy: String,
    #[serde(default)]
    issued: u64,
    #[serde(default)]
    rewarded: u64,
    #[serde(default)]
    finished: bool,
}

/// The lines of `history.jsonl` the dashboard reads (unknown fields ignored).
#[derive(Debug, Deserialize)]
struct HistoryView {
    seq: u64,
    #[serde(default)]
    status: String,
    #[serde(default)]
    reward: Option<f64>,
    #[serde(default)]
    actions: Vec<u32>,
    #[serde(default)]
    policy_version: u64,
    #[serde(default)]
    metrics: Option<Vec<EpochView>>,
    #[serde(default)]
    worker: String,
    #[serde(default)]
    started_ms: Option<u64>,
    #[serde(default)]
    finished_ms: Option<u64>,
    #[serde(default)]
    applied_ms: u64,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// One epoch of a history line's metrics: only the validation metric is kept.
#[derive(Debug, Deserialize)]
struct EpochView {
    #[serde(default)]
    valid_accuracy: Option<f64>,
    #[serde(default)]
    valid_perplexity: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct UpdateView {
    batch: u64,
    #[serde(default)]
    rewards: Vec<f64>,
    #[serde(default)]
    policy_version: u64,
    #[serde(default)]
    stats: Option<StatsView>,
    #[serde(default)]
    policy: Option<PolicyView>,
}

#[derive(Debug, Deserialize)]
struct StatsView {
    #[serde(default)]
    loss: Option<f64>,
    #[serde(default)]
    baseline: Option<f64>,
    #[serde(default)]
    mean_reward: Option<f64>,
    #[serde(default)]
    entropy: Option<f64>,
}

/// A run directory's state, refreshed incrementally.
#[derive(Debug)]
pub struct RunState {
    name: String,
    dir: PathBuf,
    config: Option<ExperimentConfig>,
    config_mtime: Option<SystemTime>,
    config_error: Option<String>,
    /// `search.space` etc. read from `config.toml` even when it does not
    /// load as this build's config (a newer or older format).
    space: String,
    strategy: String,
    planned: u64,
    checkpoint: Option<CheckpointView>,
    checkpoint_mtime: Option<SystemTime>,
    checkpoint_error: Option<String>,
    history: Tail,
    updates_tail: Tail,
    /// Finished children in history order.
    pub children: Vec<Child>,
    by_seq: HashMap<u64, usize>,
    /// Worker names; children refer to them by index.
    pub workers: Vec<String>,
    worker_index: HashMap<String, u32>,
    /// Controller updates in order.
    pub updates: Vec<Update>,
    recent_actions: VecDeque<Vec<u32>>,
    /// The latest update's policy view, with the policy version after it.
    policy: Option<(u64, PolicyView)>,
    best: Option<usize>,
    metric: Option<&'static str>,
    last_write_ms: u64,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Now, Unix milliseconds.
pub fn now_ms() -> u64 {
    ms(SystemTime::now())
}

/// Whether a trainer's note says training stopped before its last epoch.
fn stopped_early(note: &str) -> bool {
    let n = note.to_ascii_lowercase();
    ["diverged", "stopped", "early", "out of time", "budget"].iter().any(|w| n.contains(w))
}

fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

impl RunState {
    /// A run directory, not read yet ([`refresh`](Self::refresh) reads it).
    pub fn new(name: &str, dir: PathBuf) -> Self {
        RunState {
            name: name.to_owned(),
            history: Tail::new(dir.join("history.jsonl")),
            updates_tail: Tail::new(dir.join("updates.jsonl")),
            dir,
            config: None,
            config_mtime: None,
            config_error: None,
            space: String::new(),
            strategy: String::new(),
            planned: 0,
            checkpoint: None,
            checkpoint_mtime: None,
            checkpoint_error: None,
            children: Vec::new(),
            by_seq: HashMap::new(),
            workers: Vec::new(),
            worker_index: HashMap::new(),
            updates: Vec::new(),
            recent_actions: VecDeque::new(),
            policy: None,
            best: None,
            metric: None,
            last_write_ms: 0,
        }
    }

    /// The run's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run's config, when `config.toml` loads.
    pub fn config(&self) -> Option<&ExperimentConfig> {
        self.config.as_ref()
    }

    /// Reads what changed since the last call: new lines of both logs, and
    /// the config and checkpoint when their modification time moved.
    /// Never fails: what cannot be read becomes a notice.
    pub fn refresh(&mut self) {
        let cfg_path = self.dir.join("config.toml");
        let m = mtime(&cfg_path);
        if m != self.config_mtime || (m.is_none() && self.config_error.is_none()) {
            self.config_mtime = m;
            self.load_config(&cfg_path);
        }
        let ck_path = self.dir.join("checkpoint.json");
        let m = mtime(&ck_path);
        if m != self.checkpoint_mtime {
            self.checkpoint_mtime = m;
            match fs::read(&ck_path) {
                Ok(bytes) => match serde_json::from_slice::<CheckpointView>(&bytes) {
                    Ok(c) => {
                        self.checkpoint = Some(c);
                        self.checkpoint_error = None;
                    }
                    Err(e) => self.checkpoint_error = Some(format!("checkpoint.json is not readable: {e}")),
                },
                Err(e) => self.checkpoint_error = Some(format!("no checkpoint.json ({e})")),
            }
        }
        // The tail is moved out while it hands lines to `self`.
        let mut tail = std::mem::replace(&mut self.history, Tail::new(PathBuf::new()));
        loop {
            let r = tail.read_new(|t, line, at| {
                if let Err(e) = self.history_line(line, at) {
                    t.bad_line(at, &e);
                }
            });
            match r {
                Ok(TailRead::Reset) => self.clear_history(),
                Ok(TailRead::Lines { more: true, .. }) => continue,
                _ => break,
            }
        }
        self.history = tail;
        loop {
            let mut ups = std::mem::take(&mut self.updates);
            let mut policy = self.policy.take();
            let r = self.updates_tail.read_new(|tail, line, at| match serde_json::from_slice::<UpdateView>(line) {
                Ok(u) => {
                    if let Some(p) = u.policy {
                        policy = Some((u.policy_version, p));
                    }
                    let st = u.stats.as_ref();
                    ups.push(Update {
                        batch: u.batch,
                        policy_version: u.policy_version,
                        n: u.rewards.len(),
                        mean_reward: finite(st.and_then(|s| s.mean_reward)),
                        baseline: finite(st.and_then(|s| s.baseline)),
                        entropy: finite(st.and_then(|s| s.entropy)),
                        loss: finite(st.and_then(|s| s.loss)),
                    });
                }
                Err(e) => tail.bad_line(at, &e.to_string()),
            });
            self.updates = ups;
            self.policy = policy;
            match r {
                Ok(TailRead::Reset) => {
                    self.updates.clear();
                    self.policy = None;
                }
                Ok(TailRead::Lines { more: true, .. }) => continue,
                _ => break,
            }
        }
        self.last_write_ms = [self.history.path(), self.updates_tail.path(), &ck_path, &cfg_path]
            .iter()
            .filter_map(|p| mtime(p))
            .map(ms)
            .max()
            .unwrap_or(0);
    }

    fn load_config(&mut self, path: &Path) {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.config = None;
                self.config_error = Some(format!("no config.toml ({e})"));
                return;
            }
        };
        // The few fields the runs list shows, from the raw TOML: they show
        // even when the file does not load as this build's config.
        if let Ok(v) = text.parse::<toml::Table>() {
            let s = v.get("search");
            let get = |k: &str| s.and_then(|s| s.get(k));
            self.space = get("space").and_then(|x| x.as_str()).unwrap_or_default().to_owned();
            self.strategy = get("strategy").and_then(|x| x.as_str()).unwrap_or_default().to_owned();
            self.planned = get("architectures").and_then(|x| x.as_integer()).unwrap_or(0).max(0) as u64;
        }
        match ExperimentConfig::from_toml_str(&text, &path.display().to_string()) {
            Ok(c) => {
                self.config = Some(c);
                self.config_error = None;
            }
            Err(e) => {
                self.config = None;
                self.config_error = Some(format!("config.toml does not load as this build's config: {e}"));
            }
        }
    }

    fn clear_history(&mut self) {
        self.children.clear();
        self.by_seq.clear();
        self.recent_actions.clear();
        self.best = None;
    }

    fn worker_id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.worker_index.get(name) {
            return i;
        }
        let i = self.workers.len() as u32;
        self.workers.push(name.to_owned());
        self.worker_index.insert(name.to_owned(), i);
        i
    }

    fn history_line(&mut self, line: &[u8], at: u64) -> Result<(), String> {
        let h: HistoryView = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let reward = finite(h.reward);
        let status = match h.status.as_str() {
            // A trainer's note is not enough (the table trainer notes every
            // child); one that stopped training says so.
            "ok" if h.detail.as_deref().is_some_and(stopped_early) => ChildStatus::StoppedEarly,
            "ok" => ChildStatus::Ok,
            "dead" => ChildStatus::Dead,
            _ => ChildStatus::Failed,
        };
        let curve: Box<[f32]> = match &h.metrics {
            Some(epochs) => {
                let key = *self.metric.get_or_insert_with(|| {
                    if epochs.is_empty() || epochs.iter().any(|e| e.valid_accuracy.is_some()) {
                        "valid_accuracy"
                    } else {
                        "valid_perplexity"
                    }
                });
                let pick = |e: &EpochView| if key == "valid_accuracy" { e.valid_accuracy } else { e.valid_perplexity };
                epochs.iter().map(|e| pick(e).unwrap_or(f64::NAN) as f32).collect()
            }
            None => Box::new([]),
        };
        let worker = self.worker_id(&h.worker);
        if !h.actions.is_empty() {
            if self.recent_actions.len() == ACTION_WINDOW {
                self.recent_actions.pop_front();
            }
            self.recent_actions.push_back(h.actions);
        }
        let idx = self.children.len();
        if let Some(r) = reward {
            if self.best.is_none_or(|b| self.children[b].reward.is_none_or(|br| r > br)) {
                self.best = Some(idx);
            }
        }
        self.by_seq.insert(h.seq, idx);
        self.children.push(Child {
            seq: h.seq,
            status,
            reward,
            worker,
            started_ms: h.started_ms,
            finished_ms: h.finished_ms,
            applied_ms: h.applied_ms,
            policy_version: h.policy_version,
            curve,
            offset: at,
            reason: if reward.is_none() { h.reason.map(String::into_boxed_str) } else { None },
        });
        Ok(())
    }

    /// The child with sequence number `seq`.
    pub fn child(&self, seq: u64) -> Option<&Child> {
        self.by_seq.get(&seq).map(|&i| &self.children[i])
    }

    /// The best rewarded child so far.
    pub fn best(&self) -> Option<&Child> {
        self.best.map(|i| &self.children[i])
    }

    /// Children planned by the config (`search.architectures`).
    pub fn planned(&self) -> u64 {
        self.planned
    }

    /// `finished`, `running` or `stale` (no write for [`STALE_AFTER_MS`]).
    pub fn state(&self, now: u64) -> &'static str {
        if self.checkpoint.as_ref().is_some_and(|c| c.finished) {
            "finished"
        } else if now.saturating_sub(self.last_write_ms) > STALE_AFTER_MS {
            "stale"
        } else {
            "running"
        }
    }

    /// When the run started: the config's modification time (written once at start).
    pub fn started_ms(&self) -> Option<u64> {
        self.config_mtime.map(ms)
    }

    /// Reads the whole history line of `seq` again (the dashboard keeps
    /// only its offset).
    pub fn child_line(&self, seq: u64) -> Option<Value> {
        use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
        let c = self.child(seq)?;
        let mut f = fs::File::open(self.history.path()).ok()?;
        f.seek(SeekFrom::Start(c.offset)).ok()?;
        let mut line = String::new();
        // A line is at most what the tail accepted (4 MiB).
        BufReader::new(f.take(4 << 20)).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    /// The name of the per-epoch metric (`valid_accuracy` or `valid_perplexity`).
    pub fn metric(&self) -> &'static str {
        self.metric.unwrap_or("valid_accuracy")
    }

    /// Messages about what could not be read, for the page.
    pub fn notices(&self) -> Vec<String> {
        let mut n = Vec::new();
        if let Some(e) = &self.config_error {
            n.push(e.clone());
        }
        if let Some(e) = &self.checkpoint_error {
            n.push(e.clone());
        }
        for t in [&self.history, &self.updates_tail] {
            let file = t.path().file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            if t.partial_bytes() > 0 {
                n.push(format!(
                    "the last line of {file} is incomplete ({} bytes without a newline: a write in progress, or a crash mid-write); it is left out",
                    t.partial_bytes()
                ));
            }
            if t.bad_lines() > 0 {
                n.push(format!(
                    "{} line(s) of {file} could not be read and are left out (first at {})",
                    t.bad_lines(),
                    t.first_bad().unwrap_or("?")
                ));
            }
        }
        n
    }

    /// Children applied per hour: over the last 30 minutes of applications
    /// while running, over the whole run once it is not.
    pub fn children_per_hour(&self, now: u64) -> Option<f64> {
        let first = self.children.first()?.applied_ms;
        let last = self.children.last()?.applied_ms;
        let (from, to) = if self.state(now) == "running" { (now.saturating_sub(30 * 60 * 1000).max(first), now) } else { (first, last) };
        let span_h = to.saturating_sub(from) as f64 / 3_600_000.0;
        if span_h <= 0.0 {
            return None;
        }
        let n = self.children.iter().rev().take_while(|c| c.applied_ms >= from).count();
        Some(n as f64 / span_h)
    }

    /// The latest policy version (from the updates, else the children).
    pub fn policy_version(&self) -> u64 {
        self.updates
            .last()
            .map(|u| u.policy_version)
            .or_else(|| self.children.iter().map(|c| c.policy_version).max())
            .unwrap_or(0)
    }

    /// The runs-list row.
    pub fn row(&self, now: u64) -> Value {
        let best = self.best();
        json!({
            "name": self.name,
            "space": self.space,
            "strategy": if self.strategy.is_empty() { self.checkpoint.as_ref().map(|c| c.strategy.clone()).unwrap_or_default() } else { self.strategy.clone() },
            "done": self.children.len(),
            "planned": self.planned,
            "best": best.and_then(|c| c.reward),
            "best_seq": best.map(|c| c.seq),
            "state": self.state(now),
            "started_ms": self.started_ms(),
        })
    }

    /// The overview: counts, pace, best, updates and the choice heat map.
    pub fn summary(&self, now: u64) -> Value {
        let count = |s: ChildStatus| self.children.iter().filter(|c| c.status == s).count();
        let ck = self.checkpoint.as_ref();
        json!({
            "run": self.row(now),
            "ok": count(ChildStatus::Ok),
            "failed": count(ChildStatus::Failed),
            "dead": count(ChildStatus::Dead),
            "stopped": count(ChildStatus::StoppedEarly),
            "issued": ck.map(|c| c.issued),
            "rewarded": ck.map(|c| c.rewarded),
            "children_per_hour": self.children_per_hour(now),
            "policy_version": self.policy_version(),
            "metric": self.metric(),
            "epochs": self.config.as_ref().map(|c| c.train.epochs),
            "updates": {
                "batch": self.updates.iter().map(|u| u.batch).collect::<Vec<_>>(),
                "policy_version": self.updates.iter().map(|u| u.policy_version).collect::<Vec<_>>(),
                "mean_reward": self.updates.iter().map(|u| u.mean_reward).collect::<Vec<_>>(),
                "baseline": self.updates.iter().map(|u| u.baseline).collect::<Vec<_>>(),
                "entropy": self.updates.iter().map(|u| u.entropy).collect::<Vec<_>>(),
                "loss": self.updates.iter().map(|u| u.loss).collect::<Vec<_>>(),
            },
            "heatmap": self.heatmap(),
            "notices": self.notices(),
        })
    }

    /// The choice heat map. With a policy view in `updates.jsonl` (the RL
    /// controller records one after every update): the controller's exact
    /// probabilities along its likeliest architecture (`source: "policy"`,
    /// `chosen` the likeliest token of each row). Otherwise, for each token of
    /// the latest children's sequences, the share of each choice among the
    /// last [`ACTION_WINDOW`] children of that length (`source: "samples"`):
    /// the strategy's current marginal choice frequencies, estimated from what
    /// it proposed.
    pub fn heatmap(&self) -> Value {
        if let Some((version, view)) = &self.policy {
            let labels = self.token_labels(view.probs.len());
            let rows: Vec<Value> = view
                .probs
                .iter()
                .enumerate()
                .map(|(t, p)| {
                    let (name, choices) = labels.get(t).cloned().unwrap_or_else(|| (format!("token {t}"), Vec::new()));
                    json!({
                        "label": name,
                        "choices": (0..p.len()).map(|i| choices.get(i).cloned().unwrap_or_else(|| i.to_string())).collect::<Vec<_>>(),
                        "p": p,
                        "chosen": view.actions.get(t),
                    })
                })
                .collect();
            return json!({ "source": "policy", "policy_version": version, "rows": rows });
        }
        let Some(last) = self.recent_actions.back() else { return Value::Null };
        let n_tokens = last.len();
        let window: Vec<&Vec<u32>> = self.recent_actions.iter().filter(|a| a.len() == n_tokens).collect();
        let labels = self.token_labels(n_tokens);
        let mut rows = Vec::with_capacity(n_tokens);
        for t in 0..n_tokens {
            let (name, choices) = labels.get(t).cloned().unwrap_or_else(|| (format!("token {t}"), Vec::new()));
            let max = window.iter().map(|a| a[t]).max().unwrap_or(0) as usize + 1;
            let width = choices.len().max(max);
            let mut counts = vec![0u32; width];
            for a in &window {
                counts[a[t] as usize] += 1;
            }
            let total = window.len().max(1) as f64;
            rows.push(json!({
                "label": name,
                "choices": (0..width).map(|i| choices.get(i).cloned().unwrap_or_else(|| i.to_string())).collect::<Vec<_>>(),
                "p": counts.iter().map(|&c| (c as f64 / total * 1e4).round() / 1e4).collect::<Vec<_>>(),
            }));
        }
        json!({ "source": "samples", "window": window.len(), "rows": rows })
    }

    /// A label and the choice names of each token, from the config's space.
    fn token_labels(&self, n_tokens: usize) -> Vec<(String, Vec<String>)> {
        let Some(cfg) = &self.config else { return Vec::new() };
        let space = cfg.space();
        // CNN depth grows on a schedule: find the depth whose schema has this many tokens.
        let schema: Option<TokenSchema> = (1..=64).map(|l| space.schema(l)).find(|s| s.token_count() == n_tokens);
        let Some(schema) = schema else { return Vec::new() };
        let mut out = Vec::with_capacity(n_tokens);
        for step in &schema.steps {
            match step.kind {
                StepKind::Choice { decision } => out.push((step.name.clone(), schema.decisions[decision].choices.clone())),
                StepKind::Anchor { layer } => {
                    for from in 0..layer {
                        out.push((format!("{} skip from layer {from}", step.name), vec!["no".into(), "yes".into()]));
                    }
                }
            }
        }
        out
    }

    /// Children from index `from` on, as columns (what the charts and the
    /// table draw from); the page asks for the ones it does not have yet.
    pub fn children_since(&self, from: usize) -> Value {
        let cs = self.children.get(from..).unwrap_or(&[]);
        json!({
            "from": from,
            "total": self.children.len(),
            "workers": self.workers,
            "seq": cs.iter().map(|c| c.seq).collect::<Vec<_>>(),
            "status": cs.iter().map(|c| c.status as u8).collect::<Vec<_>>(),
            "reward": cs.iter().map(|c| c.reward).collect::<Vec<_>>(),
            "worker": cs.iter().map(|c| c.worker).collect::<Vec<_>>(),
            "started": cs.iter().map(|c| c.started_ms).collect::<Vec<_>>(),
            "finished": cs.iter().map(|c| c.finished_ms).collect::<Vec<_>>(),
            "applied": cs.iter().map(|c| c.applied_ms).collect::<Vec<_>>(),
            "pv": cs.iter().map(|c| c.policy_version).collect::<Vec<_>>(),
            "reason": cs.iter().filter_map(|c| c.reason.as_ref().map(|r| (c.seq.to_string(), Value::from(&**r)))).collect::<serde_json::Map<_, _>>(),
            "curve": cs.iter().map(|c| c.curve.iter().map(|&v| if v.is_finite() { Some((v as f64 * 1e5).round() / 1e5) } else { None }).collect::<Vec<_>>()).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A history line as the controller writes it.
    pub(crate) fn line(seq: u64, status: &str, reward: Option<f64>, worker: &str) -> String {
        json!({
            "job_id": format!("t-{seq:06}"), "seq": seq, "batch": seq / 4, "status": status, "reward": reward,
            "arch": {"version": 1, "space": "nb201", "ops": ["nor_conv_3x3", "none", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3"]},
            "actions": [seq as u32 % 5, 1, 2, 3, 4, 0], "policy_version": seq / 4,
            "metrics": [{"epoch": 1, "train_loss": 1.0, "valid_accuracy": 0.5, "seconds": 1.0},
                        {"epoch": 2, "train_loss": 0.5, "valid_accuracy": reward.unwrap_or(0.1), "seconds": 1.0}],
            "worker": worker, "started_ms": 1_000 + seq, "finished_ms": 2_000 + seq, "applied_ms": 3_000 + seq * 10,
            "reason": if status == "dead" { Some("invalid_architecture") } else { None }, "detail": null
        })
        .to_string()
    }

    const CONFIG: &str = "[search]\nspace = \"nb201\"\nstrategy = \"random\"\narchitectures = 10\nbatch = 4\nmax_in_flight = 4\n\n[train]\ndataset = \"nb201-table\"\n";

    pub(crate) fn run_dir(lines: &[String], tail: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.toml"), CONFIG).unwrap();
        let mut f = std::fs::File::create(d.path().join("history.jsonl")).unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        f.write_all(tail.as_bytes()).unwrap();
        d
    }

    #[test]
    fn a_truncated_last_line_is_left_out_with_a_notice_and_read_once_complete() {
        let full = line(2, "ok", Some(0.7), "w1");
        let (head, rest) = full.split_at(40);
        let d = run_dir(&[line(0, "ok", Some(0.5), "w0"), line(1, "dead", None, "w1")], head);
        let mut s = RunState::new("t", d.path().to_owned());
        s.refresh();
        assert_eq!(s.children.len(), 2);
        assert_eq!(s.best().unwrap().seq, 0);
        assert_eq!(s.children[1].status, ChildStatus::Dead);
        assert_eq!(s.children[1].reason.as_deref(), Some("invalid_architecture"));
        let n = s.notices();
        assert!(n.iter().any(|m| m.contains("last line of history.jsonl is incomplete") && m.contains("40 bytes")), "{n:?}");
        assert_eq!(s.row(now_ms())["planned"], 10);
        // The crashed writer's line stays incomplete; a page still works.
        let detail = crate::child_detail(&s, 0).unwrap();
        assert_eq!(detail["line"]["reward"], 0.5);
        assert!(detail["svg"].as_str().unwrap().starts_with("<svg"), "{detail}");
        // The line completes: it is read, once.
        let mut f = std::fs::OpenOptions::new().append(true).open(d.path().join("history.jsonl")).unwrap();
        writeln!(f, "{rest}").unwrap();
        s.refresh();
        assert_eq!(s.children.len(), 3);
        assert_eq!(s.best().unwrap().seq, 2);
        assert!(s.notices().is_empty(), "{:?}", s.notices());
        let cols = s.children_since(1);
        assert_eq!(cols["seq"], json!([1, 2]));
        assert_eq!(cols["status"], json!([2, 0]));
        assert_eq!(cols["reason"]["1"], "invalid_architecture");
    }

    #[test]
    fn garbage_lines_are_counted_and_skipped() {
        let d = run_dir(&[line(0, "ok", Some(0.5), "w0"), "{not json".into(), line(1, "ok", Some(0.6), "w0")], "");
        let mut s = RunState::new("t", d.path().to_owned());
        s.refresh();
        assert_eq!(s.children.len(), 2);
        assert!(s.notices().iter().any(|m| m.contains("1 line(s) of history.jsonl could not be read")), "{:?}", s.notices());
    }

    #[test]
    fn a_missing_directory_shows_notices_not_errors() {
        let mut s = RunState::new("t", PathBuf::from("/nonexistent/nasfleet-run"));
        s.refresh();
        assert!(s.children.is_empty());
        assert!(s.notices().iter().any(|m| m.contains("config.toml")));
        assert!(s.summary(now_ms())["heatmap"].is_null());
    }

    #[test]
    fn the_heat_map_is_the_share_of_each_choice() {
        let lines: Vec<String> = (0..10).map(|i| line(i, "ok", Some(0.5), "w")).collect();
        let d = run_dir(&lines, "");
        let mut s = RunState::new("t", d.path().to_owned());
        s.refresh();
        let hm = s.heatmap();
        assert_eq!(hm["window"], 10);
        // token 0 is seq % 5: each of 5 choices twice in 10.
        assert_eq!(hm["rows"][0]["p"], json!([0.2, 0.2, 0.2, 0.2, 0.2]));
        assert_eq!(hm["rows"][1]["p"][1], 1.0);
        assert_eq!(hm["source"], "samples");
    }

    #[test]
    fn the_heat_map_shows_the_latest_policy_view_exactly_when_there_is_one() {
        let lines: Vec<String> = (0..10).map(|i| line(i, "ok", Some(0.5), "w")).collect();
        let d = run_dir(&lines, "");
        let update = |v: u64, p0: f64| {
            json!({"batch": v - 1, "jobs": [], "rewards": [0.5], "policy_version": v, "stats": null,
                   "policy": {"actions": [1, 0], "probs": [[0.1, p0, 0.3, 0.0, 0.0], [0.75, 0.25]]}})
            .to_string()
        };
        std::fs::write(d.path().join("updates.jsonl"), format!("{}\n{}\n", update(1, 0.5), update(2, 0.6))).unwrap();
        let mut s = RunState::new("t", d.path().to_owned());
        s.refresh();
        let hm = s.heatmap();
        assert_eq!(hm["source"], "policy");
        assert_eq!(hm["policy_version"], 2, "the latest update's view");
        assert_eq!(hm["rows"][0]["p"], json!([0.1, 0.6, 0.3, 0.0, 0.0]));
        assert_eq!(hm["rows"][0]["chosen"], 1);
        assert_eq!(hm["rows"][1]["p"], json!([0.75, 0.25]));
        // A rewritten (shorter) updates.jsonl drops the old view.
        std::fs::write(d.path().join("updates.jsonl"), "").unwrap();
        s.refresh();
        assert_eq!(s.heatmap()["source"], "samples");
    }
}
