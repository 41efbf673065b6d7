//! Ctrl-C and SIGTERM handling: long operations select on [`interrupted`] and end gracefully,
//! writing what they have measured.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A future that resolves when SIGINT or SIGTERM arrives (and marks the process as interrupted).
/// A second one ends the process at once, with exit code 130: whoever pressed Ctrl-C twice does
/// not want to wait for the report (the children — target, PostgreSQL — die with the process:
/// they were started with `PR_SET_PDEATHSIG`).
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
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "interrupted again: exiting now (130); the last checkpoint stays");
            std::process::exit(crate::exit::INTERRUPTED as i32);
        });
    }
}

/// The whole process ends by `deadline` (plus `grace` for a graceful end), whatever any task is
/// doing: past it, a thread of its own says so and exits with `code`. `done` is set when the
/// process ended on its own terms.
pub fn hard_bound(
    deadline: std::time::Instant,
    grace: std::time::Duration,
    code: u8,
    what: String,
) -> std::sync::Arc<AtomicBool> {
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let _ = std::thread::Builder::new().name("hard-bound".into()).spawn(move || {
        let until = deadline + grace;
        loop {
            let now = std::time::Instant::now();
            if d.load(Ordering::SeqCst) {
                return;
            }
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(std::time::Duration::from_millis(250)));
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "error: {what}");
        std::process::exit(code as i32);
    });
    done
}

/// True once a signal was seen by [`interrupted`].
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
