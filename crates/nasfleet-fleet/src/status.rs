//! `nasfleet controller status`: one snapshot of a run from the queue and
//! the controller's published state, as JSON or as text for a terminal.

use nasfleet_queue::JobQueue;
use serde::Serialize;

use crate::board::{Board, ControllerState};
use crate::error::Result;

/// A run at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusReport {
    /// Run id.
    pub run: String,
    /// Jobs waiting, never delivered.
    pub depth: u64,
    /// Jobs delivered and unfinished.
    pub in_flight_total: u64,
    /// Up to `limit` of them, oldest first.
    pub in_flight: Vec<InFlightJob>,
    /// Live workers.
    pub workers: Vec<LiveWorker>,
    /// Dead letters ever.
    pub dead_total: u64,
    /// Up to `limit` of them, newest first.
    pub dead_letters: Vec<DeadJob>,
    /// Terminal events on the results stream.
    pub results: u64,
    /// Jobs with an outcome.
    pub outcomes: u64,
    /// Jobs ever enqueued.
    pub enqueued: u64,
    /// The controller's state, if one has published it.
    pub controller: Option<ControllerState>,
    /// Seconds until the run is done at the recent pace (running runs).
    pub eta_seconds: Option<u64>,
}

/// A delivered, unfinished job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InFlightJob {
    /// Job id.
    pub job_id: String,
    /// Consumer holding it.
    pub owner: String,
    /// Milliseconds since its last delivery or heartbeat.
    pub idle_ms: u64,
    /// Deliveries so far.
    pub attempts: u64,
}

/// A worker whose state has not expired.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveWorker {
    /// Consumer name.
    pub consumer: String,
    /// Host.
    pub host: String,
    /// Device.
    pub device: String,
    /// The job it trains.
    pub job_id: Option<String>,
    /// Its last progress report (JSON when it parses).
    pub progress: Option<serde_json::Value>,
    /// Milliseconds since it was last heard of.
    pub seen_ago_ms: u64,
}

/// A dead letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadJob {
    /// Job id.
    pub job_id: String,
    /// Reason token.
    pub reason: String,
    /// Detail.
    pub error: String,
    /// Deliveries at the time.
    pub attempts: u64,
    /// Who dead-lettered it.
    pub by: String,
    /// Size of its payload (the payload itself is in the dead stream).
    pub payload_bytes: usize,
}

/// Collects the snapshot (`limit` caps the in-flight and dead-letter lists).
pub async fn collect_status<Q: JobQueue>(queue: &Q, board: &Board, run: &str, limit: usize) -> Result<StatusReport> {
    let s = queue.status(limit).await?;
    let controller = board.read().await?;
    Ok(StatusReport {
        run: run.to_owned(),
        depth: s.depth,
        in_flight_total: s.in_flight_total,
        in_flight: s
            .in_flight
            .into_iter()
            .map(|f| InFlightJob {
                job_id: f.job_id,
                owner: f.owner,
                idle_ms: f.idle_ms,
                attempts: f.deliveries,
            })
            .collect(),
        workers: s
            .workers
            .into_iter()
            .map(|w| LiveWorker {
                consumer: w.consumer,
                host: w.host,
                device: w.device,
                job_id: w.job_id,
                progress: w
                    .progress
                    .map(|p| serde_json::from_str(&p).unwrap_or(serde_json::Value::String(p))),
                seen_ago_ms: w.seen_ago_ms,
            })
            .collect(),
        dead_total: s.dead_total,
        dead_letters: s
            .dead_letters
            .into_iter()
            .map(|d| DeadJob {
                job_id: d.job_id,
                reason: d.reason,
                error: d.error,
                attempts: d.deliveries,
                by: d.consumer,
                payload_bytes: d.payload.len(),
            })
            .collect(),
        results: s.results,
        outcomes: s.outcomes,
        enqueued: s.enqueued,
        eta_seconds: controller.as_ref().filter(|c| c.state == "running").and_then(ControllerState::eta_seconds),
        controller,
    })
}

/// `2h05m`, `7m30s`, `45s`.
fn human(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// `early stopping: 5 of 12 rewarded children stopped, 31 of 79 planned
/// epochs saved (39%), ≈ 0.02 device-hours at 2.1 s/epoch`; `None` when no
/// child was stopped. Device time saved is estimated from the mean epoch
/// time the workers reported (GPU-epochs on a GPU fleet, CPU-epochs here).
pub fn early_stop_line(c: &ControllerState) -> Option<String> {
    if c.stopped == 0 {
        return None;
    }
    let planned = c.epochs_trained + c.epochs_saved;
    let pct = 100.0 * c.epochs_saved as f64 / planned.max(1) as f64;
    let per_epoch = if c.epochs_trained > 0 { c.train_seconds / c.epochs_trained as f64 } else { 0.0 };
    Some(format!(
        "early stopping: {} of {} rewarded children stopped, {} of {} planned epochs saved ({pct:.0}%), \
         ≈ {:.2} device-hours at {per_epoch:.1} s/epoch",
        c.stopped,
        c.rewarded,
        c.epochs_saved,
        planned,
        c.epochs_saved as f64 * per_epoch / 3600.0
    ))
}

/// The snapshot as text for a terminal.
pub fn render_text(r: &StatusReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "run {}", r.run);
    match &r.controller {
        Some(c) => {
            let _ = writeln!(
                out,
                "controller: {} ({}), {}/{} children applied ({} rewarded, {} failed), {} issued, policy step {}",
                c.state, c.strategy, c.applied, c.total, c.rewarded, c.failed, c.issued, c.policy_version
            );
            match (&c.best_reward, &c.best_job) {
                (Some(b), Some(j)) => {
                    let _ = writeln!(out, "best so far: {b:.6} ({j})");
                }
                _ => {
                    let _ = writeln!(out, "best so far: none yet");
                }
            }
            if let Some(rate) = c.children_per_hour {
                let eta = match c.eta_seconds() {
                    Some(s) if c.state == "running" => format!(", done in about {}", human(s)),
                    _ => String::new(),
                };
                let _ = writeln!(out, "pace: {rate:.1} children/hour recently{eta}");
            }
            if let Some(line) = early_stop_line(c) {
                let _ = writeln!(out, "{line}");
            }
        }
        None => {
            let _ = writeln!(out, "controller: no state published (not started yet?)");
        }
    }
    let _ = writeln!(
        out,
        "queue: {} waiting, {} in flight, {} enqueued, {} finished, {} results, {} dead letters",
        r.depth, r.in_flight_total, r.enqueued, r.outcomes, r.results, r.dead_total
    );
    if !r.in_flight.is_empty() {
        let _ = writeln!(out, "in flight (oldest first):");
        let _ = writeln!(out, "  {:<24} {:<48} {:>8} {:>8}", "JOB", "OWNER", "IDLE", "ATTEMPTS");
        for f in &r.in_flight {
            let _ = writeln!(out, "  {:<24} {:<48} {:>8} {:>8}", f.job_id, f.owner, secs(f.idle_ms), f.attempts);
        }
    }
    let _ = writeln!(out, "workers ({} live):", r.workers.len());
    for w in &r.workers {
        let doing = match &w.job_id {
            None => "idle".to_owned(),
            Some(j) => {
                let mut s = format!("training {j}");
                if let Some(p) = &w.progress {
                    if let (Some(e), Some(n)) = (p.get("epoch").and_then(|v| v.as_u64()), p.get("epochs")) {
                        // `epoch` is the last finished one, counted from 1.
                        let _ = write!(s, " {e}/{n} epochs done");
                    }
                    if let Some(a) = p.pointer("/metrics/valid_accuracy").and_then(|v| v.as_f64()) {
                        let _ = write!(s, " valid_acc {a:.4}");
                    }
                    if let Some(a) = p.pointer("/metrics/valid_perplexity").and_then(|v| v.as_f64()) {
                        let _ = write!(s, " valid_ppl {a:.2}");
                    }
                }
                s
            }
        };
        let _ = writeln!(
            out,
            "  {} ({}, {}): {doing}, seen {} ago",
            w.consumer,
            w.host,
            w.device,
            secs(w.seen_ago_ms)
        );
    }
    if !r.dead_letters.is_empty() {
        let _ = writeln!(out, "dead letters (newest first):");
        for d in &r.dead_letters {
            let _ = writeln!(
                out,
                "  {} {}: {} ({} attempts, by {})",
                d.job_id, d.reason, d.error, d.attempts, d.by
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(c: ControllerState) -> StatusReport {
        StatusReport {
            run: "r".into(),
            depth: 0,
            in_flight_total: 0,
            in_flight: vec![],
            workers: vec![],
            dead_total: 0,
            dead_letters: vec![],
            results: 0,
            outcomes: 0,
            enqueued: 0,
            controller: Some(c),
            eta_seconds: None,
        }
    }

    #[test]
    fn a_worker_line_counts_the_epochs_it_finished() {
        let mut r = report(ControllerState::default());
        r.workers.push(LiveWorker {
            consumer: "w1".into(),
            host: "h".into(),
            device: "cpu".into(),
            job_id: Some("r-000003".into()),
            // The heartbeat after the second of six epochs (epochs count from 1).
            progress: Some(serde_json::json!({"epoch": 2, "epochs": 6, "metrics": {"valid_accuracy": 0.5}})),
            seen_ago_ms: 100,
        });
        let text = render_text(&r);
        assert!(text.contains("training r-000003 2/6 epochs done valid_acc 0.5000"), "{text}");
    }

    #[test]
    fn status_reports_the_epochs_early_stopping_saved() {
        let c = ControllerState {
            state: "running".into(),
            rewarded: 12,
            applied: 12,
            stopped: 5,
            epochs_trained: 48,
            epochs_saved: 31,
            train_seconds: 96.0,
            ..ControllerState::default()
        };
        let text = render_text(&report(c.clone()));
        assert!(
            text.contains("early stopping: 5 of 12 rewarded children stopped, 31 of 79 planned epochs saved (39%)"),
            "{text}"
        );
        // 31 epochs at 2 s each.
        assert!(text.contains("0.02 device-hours at 2.0 s/epoch"), "{text}");
        let json = serde_json::to_value(report(c)).unwrap();
        assert_eq!(json["controller"]["epochs_saved"], 31);
        // Nothing stopped: no line.
        let none = render_text(&report(ControllerState { stopped: 0, ..ControllerState::default() }));
        assert!(!none.contains("early stopping"), "{none}");
    }
}
