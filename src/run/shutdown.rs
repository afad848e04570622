//! Ctrl-C and SIGTERM as a stream of [`Signal`]s: the first asks to stop, the second to quit now.
//!
//! The engine takes the receiver as an argument, so tests drive shutdown by
//! sending on a channel instead of raising real signals.

use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop submitting, record what is in flight, write the report, exit 130.
    Stop,
    /// Quit now (the journal is already consistent).
    Abort,
}

/// Listens for Ctrl-C and SIGTERM for the life of the process.
pub fn listen() -> mpsc::UnboundedReceiver<Signal> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            if !wait_for_signal().await {
                return;
            }
            count += 1;
            let signal = if count == 1 {
                Signal::Stop
            } else {
                Signal::Abort
            };
            if tx.send(signal).is_err() {
                return;
            }
        }
    });
    rx
}

/// A channel that never fires (its sender is leaked into the returned pair's first half).
pub fn manual() -> (
    mpsc::UnboundedSender<Signal>,
    mpsc::UnboundedReceiver<Signal>,
) {
    mpsc::unbounded_channel()
}

#[cfg(unix)]
async fn wait_for_signal() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return tokio::signal::ctrl_c().await.is_ok();
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.is_ok(),
        r = term.recv() => r.is_some(),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> bool {
    tokio::signal::ctrl_c().await.is_ok()
}
