//! What a job's terminal event means to the controller: the worker's result
//! read as a typed [`JobResult`] and validated (results are untrusted), and a
//! complete batch settled into the strategy's feedback, history lines and
//! the best child. Pure: no I/O, no clock.
//!
//! A result is *invalid* — the child counts as failed, exactly like a dead
//! letter, and its history line says why — when it is over
//! [`MAX_RESULT_BYTES`], not JSON, of another format version than
//! [`JOB_FORMAT_VERSION`], not a job result, names another job, or has a
//! reward that is not a finite number inside the reward rule's range.

use std::collections::BTreeMap;

use nasfleet_core::strategy::Feedback;
use nasfleet_core::trainer::{JobResult, JOB_FORMAT_VERSION};
use nasfleet_queue::JobOutcome;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::batches::ReadyBatch;
use super::MAX_RESULT_BYTES;
use crate::ids::job_id;
use crate::rundir::{Best, HistoryLine, Outstanding};

/// A job's terminal outcome as the controller judged it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Outcome {
    /// A valid result: the reward goes to the strategy.
    Rewarded(JobResult),
    /// Dead-lettered by the queue or a worker.
    Dead {
        /// Machine-readable reason (`max_deliveries`, `invalid_payload`, ...).
        reason: String,
        /// Human-readable detail.
        error: String,
    },
    /// The worker's result failed validation.
    Invalid {
        /// What is wrong with it.
        detail: String,
    },
}

impl Outcome {
    /// Judges the queue's outcome of job `job`; rewards must lie in `range`.
    pub(super) fn judge(job: &str, outcome: JobOutcome, range: (f64, f64)) -> Self {
        match outcome {
            JobOutcome::Ok { result } => match check_result(job, &result, range) {
                Ok(r) => Outcome::Rewarded(r),
                Err(detail) => Outcome::Invalid { detail },
            },
            JobOutcome::Dead { reason, error } => Outcome::Dead { reason, error },
        }
    }
}

/// An outcome held until its batch is complete.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Received {
    /// The consumer that recorded it.
    pub(super) by: String,
    /// The judged outcome.
    pub(super) outcome: Outcome,
}

/// Reads and validates the result JSON posted for job `job`.
pub(super) fn check_result(job: &str, text: &str, (lo, hi): (f64, f64)) -> Result<JobResult, String> {
    if text.len() > MAX_RESULT_BYTES {
        return Err(format!("result is {} bytes, at most {MAX_RESULT_BYTES} accepted", text.len()));
    }
    if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
        return Err(format!("result is not JSON: {e}"));
    }
    // The version before the shape: another version may have another shape.
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    if let Ok(Version { version }) = serde_json::from_str::<Version>(text) {
        if version != JOB_FORMAT_VERSION {
            return Err(format!(
                "the result of job {job} is format version {version}; this controller reads version {JOB_FORMAT_VERSION}"
            ));
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let r: JobResult = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "reward" || inner.to_string().starts_with("missing field `reward`") {
            format!("result has no numeric reward ({inner})")
        } else if path == "." || path == "?" {
            format!("result is not a job result: {inner}")
        } else {
            format!("result is not a job result: at `{path}`: {inner}")
        }
    })?;
    de.end().map_err(|e| format!("result is not JSON: {e}"))?;
    if r.job_id != job {
        return Err(format!("result names job {:?}, not {job}", r.job_id));
    }
    if !r.reward.is_finite() || r.reward < lo || r.reward > hi {
        return Err(format!("reward {} is outside [{lo}, {hi}]", r.reward));
    }
    Ok(r)
}

/// The controller's running totals (checkpointed).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Tally {
    /// Children applied with a reward.
    pub(super) rewarded: u64,
    /// Children applied without one (dead-lettered or invalid).
    pub(super) failed: u64,
    /// The best child so far.
    pub(super) best: Option<Best>,
    /// Children applied as dead letters, by sequence number: the ones a
    /// requeue can bring back as late children.
    pub(super) dead: BTreeMap<u64, Outstanding>,
    /// Epoch accounting of the rewarded children (early stopping).
    pub(super) epochs: EpochTally,
}

/// Epochs trained and saved by early stopping, over rewarded children
/// (checkpointed; shown by `controller status` and the run summary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct EpochTally {
    /// Children that ended with status `stopped` (counted in `rewarded`).
    pub(super) stopped: u64,
    /// Epochs trained, every rewarded child.
    pub(super) trained: u64,
    /// Epochs the stopped children did not train: planned − trained, summed.
    pub(super) saved: u64,
    /// Training time the workers reported, ms (sum of per-epoch seconds).
    pub(super) train_ms: u64,
}

impl EpochTally {
    /// Adds one rewarded child of `planned` epochs.
    pub(super) fn add(&mut self, r: &JobResult, planned: usize) {
        let trained = r.metrics.len() as u64;
        self.trained += trained;
        let secs: f64 = r.metrics.iter().map(|m| m.seconds).filter(|s| s.is_finite() && *s > 0.0).sum();
        self.train_ms += (secs * 1000.0).round() as u64;
        if let Some(at) = r.stopped_at {
            self.stopped += 1;
            self.saved += (planned as u64).saturating_sub(at as u64);
        }
    }

    /// Adds another tally.
    pub(super) fn merge(&mut self, o: EpochTally) {
        self.stopped += o.stopped;
        self.trained += o.trained;
        self.saved += o.saved;
        self.train_ms += o.train_ms;
    }
}

impl Tally {
    /// Children applied.
    pub(super) fn applied(&self) -> u64 {
        self.rewarded + self.failed
    }
}

/// A complete batch, settled.
#[derive(Debug)]
pub(super) struct Settled {
    /// The batch index.
    pub(super) batch: u64,
    /// The rewarded jobs' feedback, in sequence order (empty: no update).
    pub(super) feedback: Vec<Feedback>,
    /// The rewarded jobs' ids and rewards, in sequence order.
    pub(super) rewarded: Vec<(String, f64)>,
    /// One history line per job of the batch, in sequence order.
    pub(super) lines: Vec<HistoryLine>,
    /// The result events to acknowledge once the step is checkpointed.
    pub(super) acks: Vec<String>,
    /// Jobs without a reward (dead-lettered or invalid): left out of the
    /// feedback, reported in the history.
    pub(super) failed: u64,
    /// The best child after this batch (`best` given, or a better one of it).
    pub(super) best: Option<Best>,
    /// The batch's dead-lettered jobs (see [`Tally::dead`]).
    pub(super) dead: Vec<Outstanding>,
    /// Epoch accounting of the batch's rewarded children.
    pub(super) epochs: EpochTally,
}

/// Settles a complete batch of run `run`, given the best child before it.
/// Children were planned to train `planned_epochs` epochs each.
///
/// A child that early stopping ended (status `stopped`) is rewarded like
/// any other: its reward (the reward rule over the epochs it trained) goes
/// to the strategy, and it may be the best child.
pub(super) fn settle(
    run: &str,
    batch: ReadyBatch<Received>,
    mut best: Option<Best>,
    applied_ms: u64,
    planned_epochs: usize,
) -> Settled {
    let mut s = Settled {
        batch: batch.index,
        feedback: Vec::new(),
        rewarded: Vec::new(),
        lines: Vec::with_capacity(batch.jobs.len()),
        acks: Vec::with_capacity(batch.jobs.len()),
        failed: 0,
        best: None,
        dead: Vec::new(),
        epochs: EpochTally::default(),
    };
    for done in batch.jobs {
        let (job, received) = (done.job, done.outcome);
        s.acks.push(done.event_id);
        let mut line = blank_line(run, &job, batch.index, received.by, applied_ms);
        match received.outcome {
            Outcome::Rewarded(r) => {
                s.feedback.push(Feedback { actions: job.actions.clone(), reward: r.reward });
                s.rewarded.push((line.job_id.clone(), r.reward));
                s.epochs.add(&r, planned_epochs);
                best = rewarded(&mut line, job, r, best);
            }
            Outcome::Dead { reason, error } => {
                s.failed += 1;
                line.status = "dead".into();
                line.reason = Some(reason);
                line.detail = Some(error);
                s.dead.push(job);
            }
            Outcome::Invalid { detail } => {
                s.failed += 1;
                line.status = "invalid".into();
                line.reason = Some("invalid_result".into());
                line.detail = Some(detail);
            }
        }
        s.lines.push(line);
    }
    s.best = best;
    s
}

/// A late child: job `job` of batch `batch`, applied as a dead letter,
/// requeued, and now rewarded with `result`. Returns its history line
/// (`late: true`) and the best child after it. Its reward never reaches the
/// strategy: the batch it was sampled for is applied, and an update from a
/// later batch must only see children of that batch's policy (REINFORCE is
/// on-policy; evolution's and local search's proposals were made without
/// it too). It counts for the totals and the best child.
pub(super) fn settle_late(
    run: &str,
    job: Outstanding,
    batch: u64,
    by: String,
    result: JobResult,
    best: Option<Best>,
    applied_ms: u64,
) -> (HistoryLine, Option<Best>) {
    let mut line = blank_line(run, &job, batch, by, applied_ms);
    line.late = true;
    let best = rewarded(&mut line, job, result, best);
    (line, best)
}

/// The history line of `job` before its outcome is filled in.
fn blank_line(run: &str, job: &Outstanding, batch: u64, by: String, applied_ms: u64) -> HistoryLine {
    HistoryLine {
        job_id: job_id(run, job.seq),
        seq: job.seq,
        batch,
        status: String::new(),
        reward: None,
        arch: job.arch.clone(),
        actions: job.actions.clone(),
        policy_version: job.policy_version,
        metrics: serde_json::Value::Null,
        worker: by,
        started_ms: None,
        finished_ms: None,
        applied_ms,
        reason: None,
        detail: None,
        late: false,
        cost: None,
        stopped_at: None,
        attempt: None,
    }
}

/// Fills in `line` for a rewarded child; returns the best child after it
/// (a strictly better reward replaces the best: the first of equals wins).
fn rewarded(line: &mut HistoryLine, job: Outstanding, r: JobResult, best: Option<Best>) -> Option<Best> {
    let reward = r.reward;
    line.status = r.status().into();
    line.stopped_at = r.stopped_at;
    line.attempt = r.attempt;
    line.reward = Some(reward);
    // Non-finite metrics become null again, as the worker sent them.
    line.metrics = serde_json::to_value(&r.metrics).unwrap_or(serde_json::Value::Null);
    line.started_ms = Some(r.started_ms);
    line.finished_ms = Some(r.finished_ms);
    line.detail = r.note;
    line.cost = r.cost;
    match best {
        Some(b) if reward <= b.reward => Some(b),
        _ => Some(Best { job_id: line.job_id.clone(), reward, arch: job.arch, policy_version: job.policy_version }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::batches::Book;
    use nasfleet_core::trainer::EpochMetrics;

    const UNIT: (f64, f64) = (0.0, 1.0);

    fn result(job: &str, reward: f64) -> JobResult {
        JobResult {
            version: JOB_FORMAT_VERSION,
            job_id: job.into(),
            reward,
            metrics: vec![EpochMetrics { epoch: 1, train_loss: 0.5, valid_accuracy: Some(reward), valid_perplexity: None, seconds: 2.0 }],
            worker: "w".into(),
            started_ms: 10,
            finished_ms: 20,
            note: None,
            cost: None,
            stopped_at: None,
            attempt: None,
        }
    }

    fn json(r: &JobResult) -> String {
        serde_json::to_string(r).unwrap()
    }

    fn with(r: &JobResult, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::to_value(r).unwrap();
        edit(&mut v);
        v.to_string()
    }

    fn rejected(job: &str, text: &str) -> String {
        check_result(job, text, UNIT).unwrap_err()
    }

    #[test]
    fn a_valid_result_reads_back_bit_for_bit() {
        let r = result("r-000003", 0.1 + 0.2);
        let back = check_result("r-000003", &json(&r), UNIT).unwrap();
        assert_eq!(back.reward.to_bits(), (0.1_f64 + 0.2).to_bits());
        assert_eq!(back, r);
        let extra = with(&r, |v| v["from_a_newer_worker"] = serde_json::json!({"x": 1}));
        assert_eq!(check_result("r-000003", &extra, UNIT).unwrap(), r, "unknown fields are ignored");
    }

    #[test]
    fn a_diverged_child_with_null_metrics_is_still_rewarded() {
        let mut r = result("r-000001", 0.0);
        r.metrics[0].train_loss = f64::NAN;
        r.note = Some("diverged: training loss is NaN".into());
        let back = check_result("r-000001", &json(&r), UNIT).unwrap();
        assert!(back.metrics[0].train_loss.is_nan());
        assert_eq!(back.note, r.note);
    }

    #[test]
    fn malformed_results_are_invalid_with_a_precise_reason() {
        let job = "r-000002";
        let r = result(job, 0.5);
        let e = rejected(job, &format!("{}{}", json(&r), " ".repeat(MAX_RESULT_BYTES)));
        assert!(e.contains("at most 1048576 accepted"), "{e}");
        assert!(rejected(job, "{\"version\": 1,").starts_with("result is not JSON"));
        assert!(rejected(job, &format!("{} x", json(&r))).starts_with("result is not JSON"));
        let e = rejected(job, "[1, 2]");
        assert!(e.starts_with("result is not a job result"), "{e}");
        let e = rejected(job, &with(&r, |v| v["reward"] = serde_json::Value::Null));
        assert!(e.contains("no numeric reward"), "{e}");
        let e = rejected(job, &with(&r, |v| v["reward"] = serde_json::json!("0.5")));
        assert!(e.contains("no numeric reward"), "{e}");
        let e = rejected(job, &with(&r, |v| {
            v.as_object_mut().unwrap().remove("reward");
        }));
        assert!(e.contains("no numeric reward"), "{e}");
        let e = rejected(job, &with(&r, |v| v["metrics"] = serde_json::json!([{"epoch": -1}])));
        assert!(e.contains("at `metrics[0].epoch`"), "{e}");
        let e = rejected(job, &with(&r, |v| {
            v.as_object_mut().unwrap().remove("version");
        }));
        assert!(e.contains("missing field `version`"), "{e}");
    }

    #[test]
    fn a_result_of_another_version_names_the_job_and_both_versions() {
        let job = "r-000007";
        let e = rejected(job, &with(&result(job, 0.5), |v| v["version"] = serde_json::json!(2)));
        assert!(e.contains("r-000007") && e.contains("version 2") && e.contains("version 1"), "{e}");
        // Even when the rest has a shape this build does not know.
        let e = rejected(job, r#"{"version": 9, "job": {"id": "r-000007"}}"#);
        assert!(e.contains("version 9") && e.contains("version 1"), "{e}");
    }

    #[test]
    fn the_job_id_and_the_reward_range_are_checked() {
        let e = rejected("r-000002", &json(&result("r-000003", 0.5)));
        assert!(e.contains("names job \"r-000003\", not r-000002"), "{e}");
        for bad in [5.0, -0.25, 1.0 + f64::EPSILON] {
            let e = rejected("r-000000", &json(&result("r-000000", bad)));
            assert!(e.contains("outside [0, 1]"), "{e}");
        }
        for edge in [0.0, 1.0] {
            assert!(check_result("r-000000", &json(&result("r-000000", edge)), UNIT).is_ok());
        }
        assert!(check_result("r-000000", &json(&result("r-000000", 5.0)), (0.0, 80.0)).is_ok());
        // Non-finite numbers cannot be written as JSON; an overflowing one is refused.
        let huge = json(&result("r-000000", 0.25)).replace(r#""reward":0.25"#, r#""reward":1e999"#);
        assert!(huge.contains("1e999"));
        assert!(check_result("r-000000", &huge, (0.0, f64::INFINITY)).is_err());
    }

    #[test]
    fn dead_letters_and_invalid_results_are_judged_as_failures() {
        let dead = JobOutcome::Dead { reason: "max_deliveries".into(), error: "crashed 3 times".into() };
        assert_eq!(
            Outcome::judge("r-000000", dead, UNIT),
            Outcome::Dead { reason: "max_deliveries".into(), error: "crashed 3 times".into() }
        );
        let ok = JobOutcome::Ok { result: json(&result("r-000000", 0.5)) };
        assert!(matches!(Outcome::judge("r-000000", ok, UNIT), Outcome::Rewarded(r) if r.reward == 0.5));
        let bad = JobOutcome::Ok { result: "nope".into() };
        assert!(matches!(Outcome::judge("r-000000", bad, UNIT), Outcome::Invalid { .. }));
    }

    /// Batch 0 of run `r` (jobs 0..n) with the given outcomes.
    fn batch(outcomes: Vec<Outcome>) -> ReadyBatch<Received> {
        let n = outcomes.len() as u64;
        let mut book = Book::new(n, n);
        for (s, outcome) in outcomes.into_iter().enumerate() {
            let seq = book.issue(vec![s as u32], serde_json::json!({"arch": s}), 3);
            assert!(book.record(seq, format!("ev-{s}"), Received { by: format!("w{s}"), outcome }));
        }
        book.take_ready().unwrap()
    }

    fn dead() -> Outcome {
        Outcome::Dead { reason: "invalid_architecture".into(), error: "layers".into() }
    }

    #[test]
    fn dead_and_invalid_jobs_are_left_out_of_the_feedback_and_reported() {
        let invalid = Outcome::Invalid { detail: "reward 5 is outside [0, 1]".into() };
        let mut ok = result("r-000003", 0.75);
        ok.note = Some("a note".into());
        let s = settle("r", batch(vec![Outcome::Rewarded(result("r-000000", 0.25)), dead(), invalid, Outcome::Rewarded(ok)]), None, 99, 1);
        assert_eq!(s.batch, 0);
        assert_eq!(s.feedback, vec![Feedback { actions: vec![0], reward: 0.25 }, Feedback { actions: vec![3], reward: 0.75 }]);
        assert_eq!(s.rewarded, vec![("r-000000".to_owned(), 0.25), ("r-000003".to_owned(), 0.75)]);
        assert_eq!(s.failed, 2);
        assert_eq!(s.acks, vec!["ev-0", "ev-1", "ev-2", "ev-3"]);
        let status: Vec<_> = s.lines.iter().map(|l| (l.seq, l.status.as_str(), l.reward, l.reason.as_deref())).collect();
        assert_eq!(
            status,
            vec![
                (0, "ok", Some(0.25), None),
                (1, "dead", None, Some("invalid_architecture")),
                (2, "invalid", None, Some("invalid_result")),
                (3, "ok", Some(0.75), None)
            ]
        );
        assert_eq!(s.lines[1].detail.as_deref(), Some("layers"));
        assert_eq!(s.lines[2].detail.as_deref(), Some("reward 5 is outside [0, 1]"));
        assert_eq!(s.lines[3].detail.as_deref(), Some("a note"));
        assert_eq!((s.lines[3].started_ms, s.lines[3].finished_ms, s.lines[3].applied_ms), (Some(10), Some(20), 99));
        assert_eq!(s.lines[3].metrics[0]["train_loss"], 0.5);
        assert_eq!((s.lines[2].worker.as_str(), s.lines[2].policy_version), ("w2", 3));
        let best = s.best.unwrap();
        assert_eq!((best.job_id.as_str(), best.reward, best.arch.clone()), ("r-000003", 0.75, serde_json::json!({"arch": 3})));
    }

    #[test]
    fn a_batch_that_all_failed_gives_no_feedback_and_keeps_the_best() {
        let before = Best { job_id: "r-000000".into(), reward: 0.5, arch: serde_json::Value::Null, policy_version: 0 };
        let s = settle("r", batch(vec![dead(), Outcome::Invalid { detail: "x".into() }]), Some(before.clone()), 1, 1);
        assert!(s.feedback.is_empty() && s.rewarded.is_empty());
        assert_eq!((s.failed, s.lines.len(), s.acks.len()), (2, 2, 2));
        assert_eq!(s.best, Some(before));
    }

    #[test]
    fn the_best_child_changes_only_for_a_strictly_better_reward() {
        let before = Best { job_id: "old".into(), reward: 0.5, arch: serde_json::Value::Null, policy_version: 0 };
        let tie = settle("r", batch(vec![Outcome::Rewarded(result("r-000000", 0.5))]), Some(before.clone()), 1, 1);
        assert_eq!(tie.best, Some(before.clone()));
        let s = settle("r", batch(vec![Outcome::Rewarded(result("r-000000", 0.6)), Outcome::Rewarded(result("r-000001", 0.6))]), Some(before), 1, 1);
        assert_eq!(s.best.map(|b| b.job_id), Some("r-000000".into()), "the first of equals wins");
    }

    #[test]
    fn a_late_child_is_a_late_ok_line_of_its_own_batch_and_may_become_the_best() {
        let s = settle("r", batch(vec![Outcome::Rewarded(result("r-000000", 0.5)), dead()]), None, 1, 3);
        assert_eq!(s.dead.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![1], "the dead job is kept for a requeue");
        let job = s.dead[0].clone();
        let (line, best) = settle_late("r", job, 0, "w9".into(), result("r-000001", 0.25), s.best.clone(), 7);
        assert_eq!((line.job_id.as_str(), line.status.as_str(), line.reward, line.late, line.batch), ("r-000001", "ok", Some(0.25), true, 0));
        assert_eq!((line.worker.as_str(), line.applied_ms, line.started_ms), ("w9", 7, Some(10)));
        assert_eq!(best, s.best, "a worse late child leaves the best");
        let (_, best) = settle_late("r", s.dead[0].clone(), 0, "w9".into(), result("r-000001", 0.9), s.best, 7);
        assert_eq!(best.map(|b| (b.job_id, b.reward)), Some(("r-000001".to_owned(), 0.9)));
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.contains("\"late\":true"), "{text}");
        let ordinary = serde_json::to_string(&s.lines[0]).unwrap();
        assert!(!ordinary.contains("late"), "ordinary lines are unchanged: {ordinary}");
    }

    #[test]
    fn the_tally_counts_applied_children() {
        let t = Tally { rewarded: 3, failed: 2, ..Tally::default() };
        assert_eq!(t.applied(), 5);
    }
}
