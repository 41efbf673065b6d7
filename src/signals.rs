//! Ctrl-C and SIGTERM handling: long operations select on [`interrupted`] and end gracefully,
//! writing what they have measured.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Resolves when SIGINT or SIGTERM arrives (and marks the process as interrupted).
pub async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// True once a signal was seen by [`interrupted`].
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
