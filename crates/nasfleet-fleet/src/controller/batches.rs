//! The batch book: the controller's bookkeeping of jobs and batches, with no
//! I/O, no clock and no queue.
//!
//! Jobs get sequence numbers in issue order; job `s` belongs to batch
//! `s / m`, and batch `k` is jobs `k·m .. min(k·m + m, total)` (the last
//! batch of a run may be partial). Outcomes may arrive in any order; the
//! book holds each job's first one until its batch is next and *every* job
//! of it has one, then hands the whole batch over ([`Book::take_ready`]) and
//! moves on. An outcome for a job that was never issued, whose batch is
//! already applied, or that already has one is refused ([`Admission`]), so a
//! reward can never be counted twice.
//!
//! The book does not look inside outcomes (`T`): whether a job is rewarded,
//! dead-lettered or invalid is the step's business, not the book's.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::rundir::Outstanding;

/// How a result event relates to the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// The job was never issued: ignore (and acknowledge) the event.
    NotIssued,
    /// The job's batch is applied (a re-read after a restart): ignore it.
    Applied,
    /// This very event is already held (re-read after a lost reply): it is
    /// acknowledged with its batch.
    Held,
    /// The job already has another outcome: ignore this one.
    Duplicate,
    /// The job's first outcome: record it.
    New,
}

/// A job of a complete batch, with its outcome.
#[derive(Debug)]
pub(super) struct Done<T> {
    /// The job as issued.
    pub(super) job: Outstanding,
    /// The result event that carried the outcome (to acknowledge).
    pub(super) event_id: String,
    /// The outcome.
    pub(super) outcome: T,
}

/// A batch whose every job has an outcome, in sequence order.
#[derive(Debug)]
pub(super) struct ReadyBatch<T> {
    /// The batch index.
    pub(super) index: u64,
    /// Its jobs.
    pub(super) jobs: Vec<Done<T>>,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Book<T> {
    /// Jobs per batch (m ≥ 1).
    m: u64,
    /// Jobs in the whole run.
    total: u64,
    /// Jobs issued so far (sequence numbers `0..issued`).
    issued: u64,
    /// Batches `0..next_batch` are applied.
    next_batch: u64,
    /// Issued jobs whose batch is not applied yet.
    outstanding: BTreeMap<u64, Outstanding>,
    /// First outcomes of outstanding jobs, with their event ids.
    arrived: BTreeMap<u64, (String, T)>,
}

impl<T> Book<T> {
    /// An empty book for a run of `total` jobs in batches of `m`.
    pub(super) fn new(total: u64, m: u64) -> Self {
        Self::at(total, m, 0, 0, Vec::new())
    }

    /// A book at a checkpointed position (no outcome held: they are re-read).
    ///
    /// The outstanding jobs must be exactly the issued jobs of the batches
    /// not applied yet (`next_batch·m .. issued`), as a book always holds
    /// them; anything else is refused with what is wrong.
    pub(super) fn resume(
        total: u64,
        m: u64,
        issued: u64,
        next_batch: u64,
        outstanding: Vec<Outstanding>,
    ) -> Result<Self, String> {
        let book = Self::at(total, m, issued, next_batch, outstanding);
        let expected = book.next_batch.saturating_mul(book.m).min(issued)..issued;
        if issued > total {
            return Err(format!("{issued} jobs issued, but the run has {total}"));
        }
        if !book.outstanding.keys().copied().eq(expected.clone()) {
            return Err(format!(
                "the outstanding jobs {:?} are not the unapplied issued jobs {expected:?}",
                book.outstanding.keys().collect::<Vec<_>>()
            ));
        }
        Ok(book)
    }

    fn at(total: u64, m: u64, issued: u64, next_batch: u64, outstanding: Vec<Outstanding>) -> Self {
        Book {
            m: m.max(1),
            total,
            issued,
            next_batch,
            outstanding: outstanding.into_iter().map(|o| (o.seq, o)).collect(),
            arrived: BTreeMap::new(),
        }
    }

    /// Jobs per batch.
    pub(super) fn batch_size(&self) -> u64 {
        self.m
    }

    /// Jobs in the whole run.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    /// Jobs issued so far.
    pub(super) fn issued(&self) -> u64 {
        self.issued
    }

    /// The next batch to apply.
    pub(super) fn next_batch(&self) -> u64 {
        self.next_batch
    }

    /// Every batch is applied.
    pub(super) fn is_finished(&self) -> bool {
        self.batch(self.next_batch).is_empty()
    }

    /// The sequence numbers of batch `b` (empty past the end of the run).
    pub(super) fn batch(&self, b: u64) -> Range<u64> {
        let start = b.saturating_mul(self.m);
        start..start.saturating_add(self.m).min(self.total)
    }

    /// How many jobs to issue at the start: `max_in_flight`, at least one
    /// batch, at most what is left of the run.
    pub(super) fn first_issue(&self, max_in_flight: u64) -> u64 {
        max_in_flight.max(self.m).min(self.left())
    }

    /// How many jobs to issue after a batch is applied: one batch, at most
    /// what is left of the run.
    pub(super) fn refill(&self) -> u64 {
        self.m.min(self.left())
    }

    fn left(&self) -> u64 {
        self.total.saturating_sub(self.issued)
    }

    /// Records a newly proposed job under the next sequence number; returns it.
    pub(super) fn issue(&mut self, actions: Vec<u32>, arch: serde_json::Value, policy_version: u64) -> u64 {
        let seq = self.issued;
        self.issued += 1;
        self.outstanding.insert(seq, Outstanding { seq, actions, arch, policy_version });
        seq
    }

    /// The issued jobs whose batch is not applied yet, in sequence order
    /// (what a checkpoint keeps and a resumed controller re-enqueues).
    pub(super) fn outstanding(&self) -> impl Iterator<Item = &Outstanding> {
        self.outstanding.values()
    }

    /// An outstanding job.
    pub(super) fn job(&self, seq: u64) -> Option<&Outstanding> {
        self.outstanding.get(&seq)
    }

    /// How an event `event_id` for job `seq` relates to the book.
    pub(super) fn admit(&self, seq: u64, event_id: &str) -> Admission {
        if seq >= self.issued {
            return Admission::NotIssued;
        }
        if seq / self.m < self.next_batch {
            return Admission::Applied;
        }
        match self.arrived.get(&seq) {
            Some((held, _)) if held == event_id => Admission::Held,
            Some(_) => Admission::Duplicate,
            None => Admission::New,
        }
    }

    /// Records job `seq`'s outcome if [`admit`](Self::admit) says it is new;
    /// returns whether it did (anything else is left as it was).
    pub(super) fn record(&mut self, seq: u64, event_id: String, outcome: T) -> bool {
        if self.admit(seq, &event_id) != Admission::New {
            return false;
        }
        self.arrived.insert(seq, (event_id, outcome));
        true
    }

    /// The outcome held for job `seq`, if any.
    pub(super) fn held(&self, seq: u64) -> Option<&T> {
        self.arrived.get(&seq).map(|(_, o)| o)
    }

    /// Replaces the outcome held for job `seq` by a later one (a job
    /// requeued after its dead letter arrived, before its batch was
    /// applied); returns the replaced event's id, to acknowledge. `None`
    /// (and nothing changed) when the job holds no outcome.
    pub(super) fn supersede(&mut self, seq: u64, event_id: String, outcome: T) -> Option<String> {
        let held = self.arrived.get_mut(&seq)?;
        let (old, _) = std::mem::replace(held, (event_id, outcome));
        Some(old)
    }

    /// The next batch, if every one of its jobs has an outcome.
    pub(super) fn ready(&self) -> Option<u64> {
        let b = self.next_batch;
        let r = self.batch(b);
        let complete = |s| self.outstanding.contains_key(&s) && self.arrived.contains_key(&s);
        (!r.is_empty() && r.end <= self.issued && r.clone().all(complete)).then_some(b)
    }

    /// Hands over the next batch if it is [`ready`](Self::ready), forgetting
    /// its jobs and moving on to the following batch.
    pub(super) fn take_ready(&mut self) -> Option<ReadyBatch<T>> {
        let index = self.ready()?;
        let seqs = self.batch(index);
        let (outstanding, arrived) = (&mut self.outstanding, &mut self.arrived);
        // ready() checked that every job of the batch has both.
        let jobs = seqs
            .filter_map(|seq| {
                let job = outstanding.remove(&seq)?;
                let (event_id, outcome) = arrived.remove(&seq)?;
                Some(Done { job, event_id, outcome })
            })
            .collect();
        self.next_batch = index + 1;
        Some(ReadyBatch { index, jobs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A book with `n` jobs issued (action token = seq).
    fn issued(total: u64, m: u64, n: u64) -> Book<&'static str> {
        let mut b = Book::new(total, m);
        for s in 0..n {
            assert_eq!(b.issue(vec![s as u32], serde_json::json!(s), 0), s);
        }
        b
    }

    fn ev(seq: u64) -> String {
        format!("ev-{seq}")
    }

    /// Records an "ok" outcome (event `ev-<seq>`) for each of `seqs`.
    fn ok(b: &mut Book<&'static str>, seqs: impl IntoIterator<Item = u64>) {
        for s in seqs {
            assert!(b.record(s, ev(s), "ok"), "job {s}");
        }
    }

    /// The sequence numbers and outcomes of a taken batch.
    fn seqs(r: &ReadyBatch<&'static str>) -> Vec<(u64, &'static str)> {
        r.jobs.iter().map(|d| (d.job.seq, d.outcome)).collect()
    }

    #[test]
    fn a_later_outcome_supersedes_a_held_one_and_hands_back_its_event() {
        let mut b = issued(4, 2, 2);
        assert!(b.record(0, ev(0), "dead"));
        assert_eq!(b.held(0), Some(&"dead"));
        assert_eq!(b.supersede(1, "x".into(), "ok"), None, "nothing held for job 1");
        assert_eq!(b.supersede(0, "ev-0b".into(), "ok").as_deref(), Some("ev-0"));
        assert_eq!(b.admit(0, "ev-0b"), Admission::Held);
        assert_eq!(b.admit(0, "ev-0"), Admission::Duplicate);
        ok(&mut b, [1]);
        let r = b.take_ready().unwrap();
        assert_eq!(seqs(&r), vec![(0, "ok"), (1, "ok")]);
        assert_eq!(r.jobs[0].event_id, "ev-0b");
    }

    #[test]
    fn jobs_belong_to_batch_seq_over_m_and_the_last_batch_may_be_partial() {
        let b = issued(10, 4, 0);
        assert_eq!(b.batch(0), 0..4);
        assert_eq!(b.batch(1), 4..8);
        assert_eq!(b.batch(2), 8..10);
        assert!(b.batch(3).is_empty());
        assert!(b.batch(u64::MAX).is_empty());
        assert!(!b.is_finished());
        assert_eq!(Book::<()>::new(5, 0).batch_size(), 1, "m is at least one");
    }

    #[test]
    fn issue_sizes_keep_a_batch_in_flight_and_never_pass_the_total() {
        let b = issued(10, 4, 0);
        assert_eq!(b.first_issue(6), 6);
        assert_eq!(b.first_issue(2), 4, "at least one batch");
        assert_eq!(b.first_issue(100), 10, "at most the run");
        let b = issued(10, 4, 8);
        assert_eq!(b.refill(), 2);
        let b = issued(10, 4, 10);
        assert_eq!(b.refill(), 0);
    }

    #[test]
    fn out_of_order_arrivals_apply_batches_in_order() {
        let mut b = issued(8, 2, 6);
        assert!(b.record(3, ev(3), "d"));
        assert!(b.record(2, ev(2), "c"));
        assert_eq!(b.ready(), None, "batch 0 has nothing yet; batch 1 waits for it");
        assert!(b.record(1, ev(1), "b"));
        assert!(b.take_ready().is_none());
        assert!(b.record(0, ev(0), "a"));
        let first = b.take_ready().unwrap();
        assert_eq!((first.index, seqs(&first)), (0, vec![(0, "a"), (1, "b")]));
        assert_eq!(first.jobs[1].event_id, "ev-1");
        let second = b.take_ready().unwrap();
        assert_eq!((second.index, seqs(&second)), (1, vec![(2, "c"), (3, "d")]));
        assert!(b.take_ready().is_none());
        assert_eq!(b.next_batch(), 2);
        assert_eq!(b.outstanding().map(|o| o.seq).collect::<Vec<_>>(), vec![4, 5]);
    }

    #[test]
    fn duplicate_results_are_never_counted_twice() {
        let mut b = issued(4, 2, 4);
        assert_eq!(b.admit(0, "e1"), Admission::New);
        assert!(b.record(0, "e1".into(), "first"));
        assert_eq!(b.admit(0, "e1"), Admission::Held, "the same event re-read");
        assert_eq!(b.admit(0, "e2"), Admission::Duplicate);
        assert!(!b.record(0, "e1".into(), "again"));
        assert!(!b.record(0, "e2".into(), "second"));
        assert!(b.record(1, "e3".into(), "x"));
        let r = b.take_ready().unwrap();
        assert_eq!(seqs(&r), vec![(0, "first"), (1, "x")], "the first outcome is kept");
        // Once applied, any later event for those jobs is refused.
        assert_eq!(b.admit(0, "e1"), Admission::Applied);
        assert_eq!(b.admit(1, "e9"), Admission::Applied);
        assert!(!b.record(1, "e9".into(), "late"));
        assert!(b.take_ready().is_none());
    }

    #[test]
    fn results_of_jobs_never_issued_are_refused() {
        let mut b = issued(10, 2, 3);
        assert_eq!(b.admit(3, "e"), Admission::NotIssued);
        assert_eq!(b.admit(u64::MAX, "e"), Admission::NotIssued);
        assert!(!b.record(3, "e".into(), "x"));
        assert!(b.job(3).is_none());
        assert_eq!(b.job(2).map(|o| o.actions.clone()), Some(vec![2]));
    }

    #[test]
    fn a_batch_is_only_ready_once_every_job_of_it_is_issued_and_terminal() {
        // Batch 1 is jobs 2..4, but only job 2 is issued.
        let mut b = issued(6, 2, 3);
        ok(&mut b, 0..3);
        assert_eq!(b.take_ready().map(|r| r.index), Some(0));
        assert_eq!(b.ready(), None);
        b.issue(vec![], serde_json::Value::Null, 1);
        assert_eq!(b.ready(), None, "job 3 is issued but has no outcome");
        b.record(3, ev(3), "dead");
        assert_eq!(b.ready(), Some(1));
    }

    #[test]
    fn dead_and_invalid_jobs_complete_a_batch_like_any_outcome() {
        // The book does not judge outcomes: a batch of dead letters is as
        // complete as a rewarded one, and is handed over to be reported.
        let mut b = issued(4, 2, 4);
        b.record(0, ev(0), "dead");
        b.record(1, ev(1), "invalid");
        let r = b.take_ready().unwrap();
        assert_eq!(seqs(&r), vec![(0, "dead"), (1, "invalid")]);
        b.record(2, ev(2), "ok");
        b.record(3, ev(3), "dead");
        assert_eq!(seqs(&b.take_ready().unwrap()), vec![(2, "ok"), (3, "dead")]);
        assert!(b.is_finished());
    }

    #[test]
    fn the_last_partial_batch_finishes_the_run() {
        let mut b = issued(5, 2, 4);
        ok(&mut b, 0..4);
        b.take_ready().unwrap();
        b.take_ready().unwrap();
        assert_eq!(b.refill(), 1);
        b.issue(vec![4], serde_json::Value::Null, 2);
        assert_eq!(b.refill(), 0);
        assert!(!b.is_finished());
        b.record(4, ev(4), "ok");
        let last = b.take_ready().unwrap();
        assert_eq!((last.index, seqs(&last)), (2, vec![(4, "ok")]));
        assert!(b.is_finished());
        assert_eq!(b.ready(), None);
        assert_eq!(b.outstanding().count(), 0);
        assert_eq!(b.admit(4, "again"), Admission::Applied);
    }

    #[test]
    fn an_empty_run_is_finished_at_once() {
        let b = Book::<()>::new(0, 3);
        assert!(b.is_finished());
        assert_eq!((b.first_issue(8), b.ready()), (0, None));
    }

    #[test]
    fn a_resumed_book_continues_exactly_where_the_checkpoint_was() {
        // Uninterrupted: 9 jobs in batches of 3, batch 0 applied, jobs 3..6
        // outstanding (some with outcomes that were not yet acknowledged).
        let mut a = issued(9, 3, 6);
        ok(&mut a, [0, 1, 2, 4]);
        a.take_ready().unwrap();
        let saved: Vec<Outstanding> = a.outstanding().cloned().collect();
        let mut b: Book<&'static str> = Book::resume(9, 3, a.issued(), a.next_batch(), saved.clone()).unwrap();
        assert_eq!(b.outstanding().map(|o| o.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!((b.issued(), b.next_batch(), b.refill()), (6, 1, 3));
        // Re-read after the restart: the applied batch's events are refused,
        // the unacknowledged outcome of job 4 is new again.
        assert_eq!(b.admit(1, &ev(1)), Admission::Applied);
        assert_eq!(b.admit(4, &ev(4)), Admission::New);
        assert_eq!(b.admit(6, "e"), Admission::NotIssued);
        // The uninterrupted book still holds job 4's outcome; the resumed
        // one takes it again from the re-read event.
        assert!(!a.record(4, ev(4), "ok"));
        ok(&mut a, [3, 5]);
        ok(&mut b, 3..6);
        let (ra, rb) = (a.take_ready().unwrap(), b.take_ready().unwrap());
        assert_eq!((ra.index, seqs(&ra)), (rb.index, seqs(&rb)));
        assert_eq!(ra.jobs.iter().map(|d| &d.job).collect::<Vec<_>>(), rb.jobs.iter().map(|d| &d.job).collect::<Vec<_>>());
    }

    #[test]
    fn a_checkpoint_whose_outstanding_jobs_do_not_fit_its_position_is_refused() {
        let mut a = issued(9, 3, 6);
        ok(&mut a, 0..3);
        a.take_ready().unwrap();
        let saved: Vec<Outstanding> = a.outstanding().cloned().collect();
        let resume = |issued, next, out: &[Outstanding]| Book::<()>::resume(9, 3, issued, next, out.to_vec());
        assert!(resume(6, 1, &saved).is_ok());
        let e = resume(6, 1, &saved[1..]).unwrap_err();
        assert!(e.contains("[4, 5]") && e.contains("3..6"), "{e}");
        assert!(resume(6, 0, &saved).is_err(), "batch 0's jobs are missing");
        assert!(resume(7, 1, &saved).is_err(), "job 6 is missing");
        assert!(resume(10, 4, &[]).is_err(), "more issued than the run has");
        // Finished: nothing outstanding.
        assert!(resume(9, 3, &[]).unwrap().is_finished());
    }
}
