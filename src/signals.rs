//! Ctrl-C and SIGTERM handling: long operations select on [`interrupted`] and end gracefully,
//! writing what they have measured.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A future that resolves when SIGINT or SIGTERM arrives (and marks the process as interrupted).
///
/// The handlers are installed when this function is *called*, not when the future is first
/// polled, so a signal that arrives while the caller is still busy (e.g. starting PostgreSQL) is
/// not lost and does not kill the process.
pub fn interrupted() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let int = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        let (mut int, mut term) = (int.expect("SIGINT handler"), term.expect("SIGTERM handler"));
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
}

/// True once a signal was seen by [`interrupted`].
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
