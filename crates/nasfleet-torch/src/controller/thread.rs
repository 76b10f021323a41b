//! [`RlStrategy`]: the handle through which the rest of the system talks to
//! the controller.
//!
//! The controller's tensors live on one dedicated thread (`nasfleet-policy`)
//! for their whole life: tch's `Tensor` is `Send` but not `Sync`, and keeping
//! libtorch state on one thread means no lock around it and no tensor ever
//! crossing a channel. The handle sends plain requests (counts, tokens,
//! rewards, bytes) and receives plain replies, so it is `Send` and can sit in
//! async code or another thread.
//!
//! A panic while serving a request (a libtorch error surfaces as a panic in
//! tch) becomes a [`StrategyError::Thread`] for that request and poisons the
//! controller, since the state may be half updated; later requests are
//! refused until a `restore`, which replaces the whole state. Dropping the
//! handle closes the channel and joins the thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nasfleet_core::config::ExperimentConfig;
use nasfleet_core::strategy::{Feedback, PolicyView, Proposal, SearchStrategy, StrategyError, UpdateStats};

use nasfleet_util::panic_message;

use super::reinforce::{Controller, Sample, Scored};

type Reply<T> = mpsc::Sender<Result<T, StrategyError>>;

enum Request {
    Sample(usize, Reply<Vec<Sample>>),
    Propose(usize, Reply<Vec<Proposal>>),
    Score(Vec<Vec<u32>>, Reply<Vec<Scored>>),
    Update(Vec<Feedback>, Reply<UpdateStats>),
    Checkpoint(Reply<Vec<u8>>),
    View(Reply<PolicyView>),
    /// Replies with the restored (policy version, samples drawn).
    Restore(Vec<u8>, Reply<(u64, u64)>),
}

/// The REINFORCE-trained LSTM controller behind [`SearchStrategy`].
pub struct RlStrategy {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Mirrors of the thread's counters, refreshed by every reply that can
    /// change them, so the trait's `&self` getters need no round trip.
    version: u64,
    samples_drawn: u64,
}

impl RlStrategy {
    /// Starts the policy thread and builds the controller on it.
    pub fn new(cfg: &ExperimentConfig) -> Result<Self, StrategyError> {
        let cfg = cfg.clone();
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), StrategyError>>();
        let thread = std::thread::Builder::new()
            .name("nasfleet-policy".into())
            .spawn(move || {
                use_one_libtorch_thread();
                let built = catch_unwind(AssertUnwindSafe(|| Controller::new(&cfg)))
                    .unwrap_or_else(|p| Err(StrategyError::Thread(format!("building the controller panicked: {}", panic_message(p.as_ref())))));
                match built {
                    Ok(controller) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(controller, rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| StrategyError::Thread(format!("cannot spawn the policy thread: {e}")))?;
        let mut handle = RlStrategy { tx: Some(tx), thread: Some(thread), version: 0, samples_drawn: 0 };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => {
                handle.shutdown();
                Err(e)
            }
            Err(_) => {
                handle.shutdown();
                Err(StrategyError::Thread("the policy thread exited while building the controller".into()))
            }
        }
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StrategyError> {
        let (reply_tx, reply_rx) = mpsc::channel();
        let tx = self.tx.as_ref().ok_or_else(|| StrategyError::Thread("the policy thread is shut down".into()))?;
        tx.send(make(reply_tx)).map_err(|_| StrategyError::Thread("the policy thread has exited".into()))?;
        reply_rx.recv().map_err(|_| StrategyError::Thread("the policy thread exited before replying".into()))?
    }

    /// Samples with their log-probabilities and entropies (plain data).
    pub fn sample(&mut self, n: usize) -> Result<Vec<Sample>, StrategyError> {
        let out = self.call(|r| Request::Sample(n, r))?;
        self.samples_drawn += out.len() as u64;
        Ok(out)
    }

    /// log P and entropy of given sequences under the current weights.
    pub fn score(&self, actions: Vec<Vec<u32>>) -> Result<Vec<Scored>, StrategyError> {
        self.call(|r| Request::Score(actions, r))
    }

    fn shutdown(&mut self) {
        // Closing the channel ends the serve loop.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RlStrategy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl SearchStrategy for RlStrategy {
    fn name(&self) -> &'static str {
        "rl"
    }

    fn propose(&mut self, n: usize) -> Result<Vec<Proposal>, StrategyError> {
        let out = self.call(|r| Request::Propose(n, r))?;
        self.samples_drawn += out.len() as u64;
        Ok(out)
    }

    fn update(&mut self, batch: &[Feedback]) -> Result<UpdateStats, StrategyError> {
        let stats = self.call(|r| Request::Update(batch.to_vec(), r))?;
        self.version = stats.policy_version;
        Ok(stats)
    }

    fn policy_version(&self) -> u64 {
        self.version
    }

    fn samples_drawn(&self) -> u64 {
        self.samples_drawn
    }

    fn checkpoint(&self) -> Result<Vec<u8>, StrategyError> {
        self.call(Request::Checkpoint)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), StrategyError> {
        let (version, samples) = self.call(|r| Request::Restore(bytes.to_vec(), r))?;
        self.version = version;
        self.samples_drawn = samples;
        Ok(())
    }

    fn policy_view(&self) -> Result<Option<PolicyView>, StrategyError> {
        self.call(Request::View).map(Some)
    }
}

/// Makes libtorch run single-threaded on the calling thread, leaving the
/// default that other threads get unchanged. The policy thread calls it first.
///
/// Why: the controller's tensors are tiny (`[batch, 35]`), yet libtorch's
/// OpenMP/MKL kernels still split them over the intra-op pool. The
/// synchronisation costs more than the work, and on a busy machine a barrier
/// waiting for a descheduled thread makes an LSTM step 10–50× slower
/// (measured on the 2-core development machine: ~0.3 ms single-threaded,
/// 2–20 ms with the default pool).
///
/// How: libtorch keeps the count per OS thread (OpenMP's per-thread ICV,
/// MKL's thread-local setting), but `at::set_num_threads` also stores it in a
/// process-wide default that each thread reads when it first runs parallel
/// work. So this thread's first-use initialisation is triggered first (the
/// `get_num_threads` call), then the count is set to 1 here, and the
/// process-wide default is put back from a short-lived helper thread. A
/// thread initialising in between those two calls would get 1 — harmless.
pub fn use_one_libtorch_thread() {
    let default = tch::get_num_threads();
    if default <= 1 {
        return;
    }
    tch::set_num_threads(1);
    let _ = std::thread::spawn(move || tch::set_num_threads(default)).join();
}

/// The policy thread's loop: one request at a time, until the handle drops.
fn serve(mut controller: Controller, rx: mpsc::Receiver<Request>) {
    let mut poisoned: Option<String> = None;
    // Runs one request; a panic poisons the controller.
    fn run<T>(
        controller: &mut Controller,
        poisoned: &mut Option<String>,
        f: impl FnOnce(&mut Controller) -> Result<T, StrategyError>,
    ) -> Result<T, StrategyError> {
        if let Some(msg) = poisoned {
            return Err(StrategyError::Thread(format!(
                "the controller is unusable after an earlier panic ({msg}); restore a checkpoint"
            )));
        }
        catch_unwind(AssertUnwindSafe(|| f(controller))).unwrap_or_else(|p| {
            let msg = panic_message(p.as_ref());
            *poisoned = Some(msg.clone());
            Err(StrategyError::Thread(format!("the policy thread panicked: {msg}")))
        })
    }
    for req in rx {
        match req {
            Request::Sample(n, r) => {
                let _ = r.send(run(&mut controller, &mut poisoned, |c| c.sample(n)));
            }
            Request::Propose(n, r) => {
                let _ = r.send(run(&mut controller, &mut poisoned, |c| c.propose(n)));
            }
            Request::Score(a, r) => {
                let _ = r.send(run(&mut controller, &mut poisoned, |c| c.score(&a)));
            }
            Request::Update(b, r) => {
                let _ = r.send(run(&mut controller, &mut poisoned, |c| c.update(&b)));
            }
            Request::Checkpoint(r) => {
                let _ = r.send(run(&mut controller, &mut poisoned, |c| c.checkpoint()));
            }
            Request::View(r) => {
                let _ = r.send(run(&mut controller, &mut poisoned, |c| Ok(c.policy_view())));
            }
            Request::Restore(bytes, r) => {
                // A restore replaces every piece of state, so it may clear the poison.
                let mut none = None;
                let result = run(&mut controller, &mut none, |c| c.restore(&bytes));
                if result.is_ok() {
                    poisoned = None;
                } else if none.is_some() {
                    poisoned = none;
                }
                let _ = r.send(result.map(|()| (controller.policy_version(), controller.samples_drawn())));
            }
        }
    }
}
