//! The run's board: what the controller publishes for others to read —
//! its progress ([`ControllerState`], shown by `nasfleet controller status`)
//! and the run's fleet settings ([`RunSettings`], read by workers at start).
//!
//! On Redis it lives beside the queue (`nasfleet:{run}:controller`, a hash
//! you can `HGETALL` in redis-cli, and `nasfleet:{run}:settings`) and is
//! reached through the queue crate's [`RedisBoard`]: this crate never talks
//! to Redis itself. Publishing progress is best effort (a status display
//! must never stall or fail a search); publishing the settings is not (a
//! worker needs them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nasfleet_queue::{QueueError, RedisBoard};
use serde::{Deserialize, Serialize};

use crate::error::{FleetError, Result};
use crate::settings::RunSettings;
use crate::shutdown::Shutdown;

/// The controller's progress, as published.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Run id.
    pub run: String,
    /// Strategy name.
    pub strategy: String,
    /// `running`, `stopped` (resumable) or `finished`.
    pub state: String,
    /// Children the run will train.
    pub total: u64,
    /// Jobs issued so far.
    pub issued: u64,
    /// Children applied (rewarded or failed).
    pub applied: u64,
    /// Children applied with a reward.
    pub rewarded: u64,
    /// Children without a reward (dead-lettered, invalid result).
    pub failed: u64,
    /// m: rewards per update.
    pub batch: u64,
    /// Jobs kept outstanding.
    pub max_in_flight: u64,
    /// Policy version (updates applied).
    pub policy_version: u64,
    /// Best reward so far.
    pub best_reward: Option<f64>,
    /// Its job.
    pub best_job: Option<String>,
    /// Its architecture JSON.
    pub best_arch: Option<serde_json::Value>,
    /// When this was published (Unix ms).
    pub updated_ms: u64,
    /// Children applied per hour over the recent past (the last 30 minutes
    /// of this controller process); `None` until there is a rate.
    #[serde(default)]
    pub children_per_hour: Option<f64>,
    /// Rewarded children that early stopping ended (status `stopped`).
    #[serde(default)]
    pub stopped: u64,
    /// Epochs trained by the rewarded children.
    #[serde(default)]
    pub epochs_trained: u64,
    /// Epochs early stopping saved (planned − trained over stopped children).
    #[serde(default)]
    pub epochs_saved: u64,
    /// Training seconds the workers reported for the rewarded children.
    #[serde(default)]
    pub train_seconds: f64,
}

impl ControllerState {
    /// Seconds until every child is applied at the recent rate.
    pub fn eta_seconds(&self) -> Option<u64> {
        let rate = self.children_per_hour.filter(|r| r.is_finite() && *r > 0.0)?;
        let left = self.total.saturating_sub(self.applied);
        Some((left as f64 / rate * 3600.0).round() as u64)
    }
}

impl ControllerState {
    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        vec![
            ("run", self.run.clone()),
            ("strategy", self.strategy.clone()),
            ("state", self.state.clone()),
            ("total", self.total.to_string()),
            ("issued", self.issued.to_string()),
            ("applied", self.applied.to_string()),
            ("rewarded", self.rewarded.to_string()),
            ("failed", self.failed.to_string()),
            ("batch", self.batch.to_string()),
            ("max_in_flight", self.max_in_flight.to_string()),
            ("policy_version", self.policy_version.to_string()),
            ("best_reward", opt(self.best_reward.map(|r| r.to_string()))),
            ("best_job", opt(self.best_job.clone())),
            ("best_arch", opt(self.best_arch.as_ref().map(|a| a.to_string()))),
            ("updated_ms", self.updated_ms.to_string()),
            ("children_per_hour", opt(self.children_per_hour.map(|r| r.to_string()))),
            ("stopped", self.stopped.to_string()),
            ("epochs_trained", self.epochs_trained.to_string()),
            ("epochs_saved", self.epochs_saved.to_string()),
            ("train_seconds", self.train_seconds.to_string()),
        ]
    }

    fn from_fields(f: &HashMap<String, String>) -> std::result::Result<Self, String> {
        let text = |k: &str| f.get(k).cloned().unwrap_or_default();
        let num = |k: &str| -> std::result::Result<u64, String> {
            let v = text(k);
            v.parse().map_err(|_| format!("field {k} is {v:?}, not a number"))
        };
        let nonempty = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
        Ok(ControllerState {
            run: text("run"),
            strategy: text("strategy"),
            state: text("state"),
            total: num("total")?,
            issued: num("issued")?,
            applied: num("applied")?,
            rewarded: num("rewarded")?,
            failed: num("failed")?,
            batch: num("batch")?,
            max_in_flight: num("max_in_flight")?,
            policy_version: num("policy_version")?,
            best_reward: nonempty("best_reward")
                .map(|v| v.parse().map_err(|_| format!("field best_reward is {v:?}, not a number")))
                .transpose()?,
            best_job: nonempty("best_job"),
            best_arch: nonempty("best_arch")
                .map(|v| serde_json::from_str(&v).map_err(|e| format!("field best_arch: {e}")))
                .transpose()?,
            updated_ms: num("updated_ms")?,
            children_per_hour: nonempty("children_per_hour")
                .map(|v| v.parse().map_err(|_| format!("field children_per_hour is {v:?}, not a number")))
                .transpose()?,
            // Absent on a board written before early stopping: 0.
            stopped: nonempty("stopped").map_or(Ok(0), |_| num("stopped"))?,
            epochs_trained: nonempty("epochs_trained").map_or(Ok(0), |_| num("epochs_trained"))?,
            epochs_saved: nonempty("epochs_saved").map_or(Ok(0), |_| num("epochs_saved"))?,
            train_seconds: nonempty("train_seconds")
                .map(|v| v.parse().map_err(|_| format!("field train_seconds is {v:?}, not a number")))
                .transpose()?
                .unwrap_or(0.0),
        })
    }
}

/// Where the controller publishes its state and the run's settings.
#[derive(Clone, Debug, Default)]
pub enum Board {
    /// Nowhere.
    #[default]
    Off,
    /// In process (the embedded mode, tests).
    Memory(Arc<Mutex<MemoryBoard>>),
    /// Beside the run's Redis queue.
    Redis(RedisBoard),
}

/// What an in-process board holds.
#[derive(Clone, Debug, Default)]
pub struct MemoryBoard {
    /// The controller's last state.
    pub controller: Option<ControllerState>,
    /// The run's settings.
    pub settings: Option<RunSettings>,
}

impl Board {
    /// An in-process board.
    pub fn memory() -> Self {
        Board::Memory(Arc::new(Mutex::new(MemoryBoard::default())))
    }

    fn with_memory<R>(m: &Mutex<MemoryBoard>, f: impl FnOnce(&mut MemoryBoard) -> R) -> R {
        f(&mut m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Publishes `state`; failures are logged, never returned.
    pub async fn publish(&self, state: &ControllerState) {
        if let Err(e) = self.try_publish(state).await {
            tracing::warn!(error = %e, "cannot publish the controller state (status will be stale)");
        }
    }

    /// Publishes `state`, reporting a failure.
    pub async fn try_publish(&self, state: &ControllerState) -> Result<()> {
        match self {
            Board::Off => Ok(()),
            Board::Memory(m) => {
                Self::with_memory(m, |b| b.controller = Some(state.clone()));
                Ok(())
            }
            Board::Redis(r) => r.publish_controller(&state.to_fields()).await.map_err(board_error),
        }
    }

    /// The last published state, if any.
    pub async fn read(&self) -> Result<Option<ControllerState>> {
        match self {
            Board::Off => Ok(None),
            Board::Memory(m) => Ok(Self::with_memory(m, |b| b.controller.clone())),
            Board::Redis(r) => {
                let fields = r.controller().await.map_err(board_error)?;
                if fields.is_empty() {
                    return Ok(None);
                }
                ControllerState::from_fields(&fields)
                    .map(Some)
                    .map_err(|e| FleetError::Board(format!("{}: {e}", r.keys().controller)))
            }
        }
    }

    /// Publishes the run's settings for its workers.
    pub async fn publish_settings(&self, settings: &RunSettings) -> Result<()> {
        match self {
            Board::Off => Ok(()),
            Board::Memory(m) => {
                Self::with_memory(m, |b| b.settings = Some(settings.clone()));
                Ok(())
            }
            Board::Redis(r) => r.publish_settings(&settings.to_json()).await.map_err(board_error),
        }
    }

    /// The run's published settings; `None` when its controller has not
    /// published any yet.
    pub async fn settings(&self) -> Result<Option<RunSettings>> {
        match self {
            Board::Off => Ok(None),
            Board::Memory(m) => Ok(Self::with_memory(m, |b| b.settings.clone())),
            Board::Redis(r) => match r.settings().await.map_err(board_error)? {
                None => Ok(None),
                Some(text) => RunSettings::from_json(&text)
                    .map(Some)
                    .map_err(|e| FleetError::Board(format!("the run's settings ({}): {e}", r.keys().settings))),
            },
        }
    }
}

fn board_error(e: nasfleet_queue::QueueError) -> FleetError {
    FleetError::Queue(e)
}

/// True for board errors that waiting may fix (Redis unreachable), false
/// for those it cannot (a refused permission, a bad run id, unreadable data).
pub(crate) fn worth_retrying(e: &FleetError) -> bool {
    matches!(e, FleetError::Queue(q) if !q.is_permission_denied() && !matches!(q, QueueError::InvalidInput { .. }))
}

/// Waits until the run's controller has published the run's settings and
/// returns them; `None` when `shutdown` came first. Polls every `poll`; an
/// unreachable Redis is waited out (with a warning), a refused permission
/// or unreadable settings end the wait with the error.
pub async fn wait_for_settings(board: &Board, mut shutdown: Shutdown, poll: Duration) -> Result<Option<RunSettings>> {
    let mut said = false;
    let mut backoff = nasfleet_util::Backoff::new(poll, poll * 8);
    loop {
        let pause = match board.settings().await {
            Ok(Some(s)) => return Ok(Some(s)),
            Ok(None) => {
                if !said {
                    tracing::info!("waiting for the run's controller to publish the run's settings");
                    said = true;
                }
                backoff.reset();
                poll
            }
            Err(e) if worth_retrying(&e) => {
                tracing::warn!(error = %e, "cannot read the run's settings yet; retrying");
                backoff.next_delay()
            }
            Err(e) => return Err(e),
        };
        tokio::select! {
            _ = shutdown.requested() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_waits_for_the_settings_until_published_or_stopped() {
        let board = Board::memory();
        let (_keep, shutdown) = crate::shutdown::shutdown_pair();
        let waiting = tokio::spawn({
            let board = board.clone();
            async move { wait_for_settings(&board, shutdown, Duration::from_millis(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiting.is_finished(), "nothing published yet");
        let published = RunSettings::of(&nasfleet_core::ExperimentConfig::default());
        board.publish_settings(&published).await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), Some(published));

        let (stop, shutdown) = crate::shutdown::shutdown_pair();
        let empty = Board::memory();
        let waiting = tokio::spawn(async move { wait_for_settings(&empty, shutdown, Duration::from_millis(5)).await });
        stop.trigger();
        assert_eq!(waiting.await.unwrap().unwrap(), None, "a stop ends the wait");
    }

    #[test]
    fn fields_round_trip() {
        let s = ControllerState {
            run: "r".into(),
            strategy: "random".into(),
            state: "running".into(),
            total: 10,
            issued: 8,
            applied: 4,
            rewarded: 3,
            failed: 1,
            batch: 2,
            max_in_flight: 4,
            policy_version: 2,
            best_reward: Some(0.625),
            best_job: Some("r-000003".into()),
            best_arch: Some(serde_json::json!({"version": 1})),
            updated_ms: 5,
            children_per_hour: Some(120.0),
            stopped: 2,
            epochs_trained: 17,
            epochs_saved: 9,
            train_seconds: 12.5,
        };
        assert_eq!(s.eta_seconds(), Some(180), "6 children left at 2 a minute");
        let map: HashMap<String, String> = s.to_fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(ControllerState::from_fields(&map).unwrap(), s);
        let empty = ControllerState { best_reward: None, best_job: None, best_arch: None, children_per_hour: None, ..s };
        assert_eq!(empty.eta_seconds(), None);
        let map: HashMap<String, String> = empty.to_fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(ControllerState::from_fields(&map).unwrap(), empty);
        // A board written before early stopping existed reads as none of it.
        let mut old = map.clone();
        for k in ["stopped", "epochs_trained", "epochs_saved", "train_seconds"] {
            old.remove(k);
        }
        let read = ControllerState::from_fields(&old).unwrap();
        assert_eq!((read.stopped, read.epochs_saved, read.train_seconds), (0, 0, 0.0));
    }
}
