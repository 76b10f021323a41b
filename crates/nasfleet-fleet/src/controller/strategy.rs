//! The search strategy as the controller holds it: calls that compute run
//! off the async runtime, quick reads run in place.

use std::sync::Mutex;

use nasfleet_core::strategy::{Feedback, PolicyView, Proposal, SearchStrategy, UpdateStats};

use crate::error::{FleetError, Result};

/// See the module documentation.
pub(super) struct StrategyCell {
    name: String,
    // In a Mutex only so that the controller is Sync (its futures hold
    // `&self` across awaits and strategies are not Sync); never contended:
    // long calls take the strategy out with `get_mut`, and no guard is held
    // across an await.
    slot: Mutex<Option<Box<dyn SearchStrategy>>>,
}

impl StrategyCell {
    /// Holds `strategy`.
    pub(super) fn new(strategy: Box<dyn SearchStrategy>) -> Self {
        StrategyCell {
            name: strategy.name().to_owned(),
            slot: Mutex::new(Some(strategy)),
        }
    }

    /// The strategy's name (`rl`, `random`, `evolution`).
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn lost() -> FleetError {
        FleetError::Thread("the search strategy was lost to a panic".into())
    }

    /// Runs a quick, read-only call in place.
    fn with<T>(&self, f: impl FnOnce(&dyn SearchStrategy) -> T) -> Result<T> {
        let guard = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_deref().map(f).ok_or_else(Self::lost)
    }

    /// Runs a call off the async runtime (the RL policy's calls block on its
    /// own thread; they must not stall reads or acknowledgements).
    async fn call<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn SearchStrategy) -> T + Send + 'static,
    ) -> Result<T> {
        let slot = self.slot.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut s = slot.take().ok_or_else(Self::lost)?;
        let (s, r) = tokio::task::spawn_blocking(move || {
            let r = f(s.as_mut());
            (s, r)
        })
        .await
        .map_err(|e| FleetError::Thread(format!("the search strategy panicked: {e}")))?;
        *self.slot.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(s);
        Ok(r)
    }

    /// `n` proposals (exactly `n`, or an error).
    pub(super) async fn propose(&mut self, n: u64) -> Result<Vec<Proposal>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let proposals = self.call(move |s| s.propose(n as usize)).await??;
        if proposals.len() as u64 != n {
            return Err(FleetError::Thread(format!(
                "the strategy proposed {} architectures, {n} were asked for",
                proposals.len()
            )));
        }
        Ok(proposals)
    }

    /// Applies one batch of feedback.
    pub(super) async fn update(&mut self, feedback: Vec<Feedback>) -> Result<UpdateStats> {
        Ok(self.call(move |s| s.update(&feedback)).await??)
    }

    /// The policy version (updates applied).
    pub(super) fn policy_version(&self) -> Result<u64> {
        self.with(|s| s.policy_version())
    }

    /// What the policy would choose now (`None` without a policy).
    pub(super) fn policy_view(&self) -> Result<Option<PolicyView>> {
        Ok(self.with(|s| s.policy_view())??)
    }

    /// The strategy's complete state.
    pub(super) fn checkpoint(&self) -> Result<Vec<u8>> {
        Ok(self.with(|s| s.checkpoint())??)
    }
}
