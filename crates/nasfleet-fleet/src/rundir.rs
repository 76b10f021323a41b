//! The controller's run directory and its durable files.
//!
//! ```text
//! runs/<run>/
//!   config.toml      the resolved experiment config (what --resume must match)
//!   checkpoint.json  the controller's whole state, replaced atomically
//!   history.jsonl    one line per finished child (ok, dead or invalid), issue order;
//!                    a requeued child's late result is one more line (`late: true`)
//!   updates.jsonl    one line per applied batch: the strategy's update sequence
//!   best.json        the best child so far
//!   pareto.json      the non-dominated children: accuracy vs parameters, vs FLOPs
//!                    (CNN and NB201 spaces; rewritten when the front changes)
//! ```
//!
//! Replacement is atomic (temp file, fsync, rename, fsync of the directory),
//! so a crash leaves either the old or the new file. The two `.jsonl` files
//! are append-only; the checkpoint records their lengths, and a resumed
//! controller cuts them back to those lengths before appending again, so a
//! line written after the last checkpoint is written exactly once in the end.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{FleetError, Result};

/// File names inside a run directory.
pub mod files {
    /// Resolved config.
    pub const CONFIG: &str = "config.toml";
    /// Controller checkpoint.
    pub const CHECKPOINT: &str = "checkpoint.json";
    /// One line per finished child.
    pub const HISTORY: &str = "history.jsonl";
    /// One line per applied batch.
    pub const UPDATES: &str = "updates.jsonl";
    /// The best child.
    pub const BEST: &str = "best.json";
    /// The Pareto fronts: accuracy against parameters and against FLOPs.
    pub const PARETO: &str = "pareto.json";
}

/// Version of [`Checkpoint`] written by this build.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// The controller's durable state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// [`CHECKPOINT_FORMAT`].
    pub format: u32,
    /// Run id.
    pub run: String,
    /// Strategy name (`rl`, `random`, `evolution`).
    pub strategy: String,
    /// The strategy's own checkpoint bytes, base64.
    pub strategy_state: String,
    /// Jobs issued so far (sequence numbers `0..issued`).
    pub issued: u64,
    /// The next batch to apply; batches `0..next_batch` are applied.
    pub next_batch: u64,
    /// Issued jobs whose batch is not applied yet, in sequence order.
    pub outstanding: Vec<Outstanding>,
    /// Length of `history.jsonl` in bytes.
    pub history_bytes: u64,
    /// Length of `updates.jsonl` in bytes.
    pub updates_bytes: u64,
    /// Children applied with a reward.
    pub rewarded: u64,
    /// Children that ended without one (dead-lettered or invalid result).
    pub failed: u64,
    /// The best child so far.
    pub best: Option<Best>,
    /// Every batch is applied: the run is over.
    pub finished: bool,
    /// Children applied as dead letters, in sequence order: `nasfleet
    /// controller requeue` may bring one back, and its result is then
    /// applied as a *late* child (see `controller::outcome`). Absent in
    /// checkpoints written before requeue existed.
    #[serde(default)]
    pub dead: Vec<Outstanding>,
    /// Rewarded children that early stopping ended (absent before it existed).
    #[serde(default)]
    pub stopped: u64,
    /// Epochs trained by rewarded children.
    #[serde(default)]
    pub epochs_trained: u64,
    /// Epochs early stopping saved: planned − trained over stopped children.
    #[serde(default)]
    pub epochs_saved: u64,
    /// Training time of rewarded children as their workers reported it, ms.
    #[serde(default)]
    pub train_ms: u64,
}

/// An issued job whose batch is not applied yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outstanding {
    /// Sequence number.
    pub seq: u64,
    /// The strategy's action tokens.
    pub actions: Vec<u32>,
    /// The architecture's versioned JSON.
    pub arch: serde_json::Value,
    /// Policy version that sampled it.
    pub policy_version: u64,
}

/// The best child so far (also `best.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Best {
    /// Job id.
    pub job_id: String,
    /// Reward.
    pub reward: f64,
    /// Architecture JSON.
    pub arch: serde_json::Value,
    /// Policy version that sampled it.
    pub policy_version: u64,
}

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryLine {
    /// Job id.
    pub job_id: String,
    /// Sequence number (issue order).
    pub seq: u64,
    /// The batch it was applied in.
    pub batch: u64,
    /// `ok`, `stopped` (rewarded; early stopping ended it, see `stopped_at`),
    /// `dead` (dead-lettered) or `invalid` (the result failed validation).
    pub status: String,
    /// Reward (`ok` only).
    pub reward: Option<f64>,
    /// Architecture JSON.
    pub arch: serde_json::Value,
    /// Action tokens.
    pub actions: Vec<u32>,
    /// Policy version that sampled it.
    pub policy_version: u64,
    /// Per-epoch metrics as the worker reported them.
    pub metrics: serde_json::Value,
    /// The consumer that recorded the outcome.
    pub worker: String,
    /// Training start and end (Unix ms), as the worker reported them.
    pub started_ms: Option<u64>,
    /// See `started_ms`.
    pub finished_ms: Option<u64>,
    /// When the controller applied it (Unix ms).
    pub applied_ms: u64,
    /// Dead-letter or validation reason.
    pub reason: Option<String>,
    /// Detail of the reason, or the trainer's note.
    pub detail: Option<String>,
    /// A late child: dead-lettered, applied as such in `batch`, requeued by
    /// an operator and rewarded afterwards. Its reward counts for the best
    /// child and the totals but never reached the strategy (the job's batch
    /// was applied without it). The job's earlier `dead` line stays: the
    /// last line of a job id is its final status.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// The child's size as its worker counted it (`ok` children of the
    /// CNN and NB201 spaces): what `pareto.json` plots accuracy against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<nasfleet_core::cost::ArchCost>,
    /// Status `stopped`: early stopping ended the child after this epoch
    /// (counted from 1); its reward is the reward rule over those epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<usize>,
    /// Which delivery of the job trained it (1 the first), as its worker
    /// reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u64>,
}

/// One line of `updates.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateLine {
    /// Batch index.
    pub batch: u64,
    /// Jobs of the batch with a reward, in issue order.
    pub jobs: Vec<String>,
    /// Their rewards.
    pub rewards: Vec<f64>,
    /// Policy version after the update (unchanged when nothing was rewarded).
    pub policy_version: u64,
    /// The strategy's statistics (`null` when nothing was rewarded).
    pub stats: Option<nasfleet_core::strategy::UpdateStats>,
    /// After the update, what the policy would choose (strategies with a
    /// policy, when something was rewarded): the dashboard's heat map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<nasfleet_core::strategy::PolicyView>,
}

/// Writes `bytes` to `path` atomically ([`nasfleet_util::write_atomic`]);
/// an error names `what` and the file.
pub fn write_atomic(what: &'static str, path: &Path, bytes: &[u8]) -> Result<()> {
    nasfleet_util::write_atomic(path, bytes).map_err(|e| FleetError::io(what, path, e))
}

/// An append-only JSON-lines file whose length the checkpoint records.
#[derive(Debug)]
pub struct JsonLines {
    what: &'static str,
    path: PathBuf,
    file: File,
    len: u64,
}

impl JsonLines {
    /// Creates (or empties) the file.
    pub fn create(what: &'static str, path: PathBuf) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| FleetError::io(what, &path, e))?;
        Ok(JsonLines { what, path, file, len: 0 })
    }

    /// Opens the file and cuts it back to `len` bytes (what the checkpoint
    /// recorded); a shorter file means lines the checkpoint counted are gone.
    pub fn reopen(what: &'static str, path: PathBuf, len: u64) -> Result<Self> {
        let io = |e| FleetError::io(what, &path, e);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let actual = file.metadata().map_err(io)?.len();
        if actual < len {
            return Err(FleetError::Checkpoint {
                path: path.clone(),
                message: format!(
                    "is {actual} bytes but the checkpoint recorded {len}: lines were removed by hand; \
                     restore the file or start a new run"
                ),
            });
        }
        if actual > len {
            tracing::info!(file = %path.display(), dropped = actual - len, "dropping lines written after the last checkpoint");
            file.set_len(len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(JsonLines { what, path, file, len })
    }

    /// Appends one line per value and makes them durable.
    pub fn append<T: Serialize>(&mut self, lines: &[T]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for l in lines {
            serde_json::to_writer(&mut buf, l).map_err(|e| {
                FleetError::io(self.what, &self.path, std::io::Error::other(e))
            })?;
            buf.push(b'\n');
        }
        let io = |e| FleetError::io(self.what, &self.path, e);
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Bytes written and durable.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reads a run's checkpoint.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = fs::read(path).map_err(|e| FleetError::io("checkpoint", path, e))?;
    let c: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| FleetError::Checkpoint {
        path: path.to_owned(),
        message: format!("not a controller checkpoint: {e}"),
    })?;
    if c.format != CHECKPOINT_FORMAT {
        return Err(FleetError::Checkpoint {
            path: path.to_owned(),
            message: format!("format {} is not the supported format {CHECKPOINT_FORMAT}", c.format),
        });
    }
    Ok(c)
}

/// Reads every line of a JSON-lines file.
pub fn read_lines<T: for<'de> Deserialize<'de>>(what: &'static str, path: &Path) -> Result<Vec<T>> {
    let text = fs::read_to_string(path).map_err(|e| FleetError::io(what, path, e))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                FleetError::io(what, path, std::io::Error::other(format!("line {}: {e}", i + 1)))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nasfleet-rundir-{name}-{}-{}", std::process::id(), crate::ids::now_ms()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let d = tmp("atomic");
        let p = d.join("x.json");
        write_atomic("x", &p, b"one").unwrap();
        write_atomic("x", &p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(!d.join("x.tmp").exists());
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn reopen_cuts_lines_after_the_checkpoint_and_refuses_missing_ones() {
        let d = tmp("reopen");
        let p = d.join("h.jsonl");
        let mut h = JsonLines::create("history", p.clone()).unwrap();
        h.append(&[1, 2]).unwrap();
        let at = h.len();
        h.append(&[3]).unwrap();
        drop(h);
        let mut h = JsonLines::reopen("history", p.clone(), at).unwrap();
        h.append(&[4]).unwrap();
        assert_eq!(read_lines::<u32>("history", &p).unwrap(), vec![1, 2, 4]);
        let e = JsonLines::reopen("history", p.clone(), 1000).unwrap_err().to_string();
        assert!(e.contains("recorded 1000"), "{e}");
        fs::remove_dir_all(d).unwrap();
    }
}
