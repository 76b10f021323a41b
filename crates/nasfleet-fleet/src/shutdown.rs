//! Graceful shutdown as one value passed down to every loop.
//!
//! SIGINT and SIGTERM become a [`Shutdown`] (a `watch` channel underneath, so
//! any number of clones observe the same request and waiting is
//! cancel-safe inside `select!`). Loops never install signal handlers
//! themselves: the binary does, once, and tests trigger shutdown directly.

use tokio::sync::watch;

/// Observes a shutdown request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Requests shutdown of every [`Shutdown`] made from it.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

/// A trigger and the shutdown it controls.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (
        ShutdownTrigger {
            tx: std::sync::Arc::new(tx),
        },
        Shutdown { rx },
    )
}

impl ShutdownTrigger {
    /// Requests shutdown (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// A new observer.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// A shutdown that is never requested.
    pub fn never() -> Self {
        let (trigger, s) = shutdown_pair();
        // Keep the sender alive forever so that `requested` pends instead of
        // resolving on a closed channel.
        std::mem::forget(trigger);
        s
    }

    /// True once shutdown was requested.
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is requested (at once if it already was).
    /// Cancel-safe. If every trigger is gone without a request, it never
    /// resolves.
    pub async fn requested(&mut self) {
        if self.rx.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A [`Shutdown`] requested by the first SIGINT or SIGTERM. A second SIGINT
/// (an impatient operator pressing Ctrl-C again) exits the process at once
/// with status 130. Repeated SIGTERMs are ignored: tools and platforms may
/// deliver one to the process and one to its group, and a preempted worker
/// must still finish releasing its job (the platform's SIGKILL ends it
/// anyway). Must be called inside a Tokio runtime.
pub fn on_signals() -> std::io::Result<Shutdown> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (trigger, shutdown) = shutdown_pair();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM: stopping gracefully"),
            _ = int.recv() => tracing::warn!("SIGINT: stopping gracefully (Ctrl-C again exits at once)"),
        }
        trigger.trigger();
        // Keep draining SIGTERM so that a repeat does not kill the process.
        loop {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM again: already stopping"),
                _ = int.recv() => {
                    tracing::warn!("second SIGINT: exiting now");
                    std::process::exit(130);
                }
            }
        }
    });
    Ok(shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_request() {
        let (trigger, s) = shutdown_pair();
        let mut a = s.clone();
        let mut b = trigger.subscribe();
        assert!(!a.is_requested());
        trigger.trigger();
        a.requested().await;
        b.requested().await;
        assert!(s.is_requested());
    }

    #[tokio::test]
    async fn never_pends() {
        let mut s = Shutdown::never();
        let r = tokio::time::timeout(std::time::Duration::from_millis(20), s.requested()).await;
        assert!(r.is_err());
    }
}
