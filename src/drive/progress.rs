//! Progress while a phase runs: an indicatif bar (rate, errors, live p99, time left) when stderr
//! is a terminal, a plain line every 5 s otherwise, nothing with `--quiet`.

use crate::drive::ProgressMode;
use crate::drive::metrics::Live;
use crate::report::{Planned, fmt_us};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A running progress display; [`Progress::finish`] removes it.
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn finish(self) {
        if let Some(t) = &self.task {
            t.abort();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn line(live: &Live, start: Instant, planned: &Planned) -> String {
    let el = Instant::now().saturating_duration_since(start).as_secs_f64();
    let left = planned.duration_s.map(|d| format!(", {:.0}s left", (d - el).max(0.0))).unwrap_or_default();
    format!(
        "{} done, {}/s, {} errors, p99 {}{}",
        live.done.load(Ordering::Relaxed),
        live.last_rate.load(Ordering::Relaxed),
        live.errors.load(Ordering::Relaxed),
        fmt_us(live.p99_us.load(Ordering::Relaxed)),
        left
    )
}

/// Start the display.
pub fn start(mode: ProgressMode, live: Arc<Live>, planned: Planned, start: Instant) -> Progress {
    if mode == ProgressMode::Off {
        return Progress { task: None, bar: None };
    }
    if std::io::stderr().is_terminal() {
        let bar = match (planned.duration_s, planned.planned_requests) {
            (Some(d), _) => indicatif::ProgressBar::new((d * 10.0) as u64),
            (None, Some(n)) => indicatif::ProgressBar::new(n),
            _ => indicatif::ProgressBar::no_length(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let b = bar.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let el = Instant::now().saturating_duration_since(start).as_secs_f64();
                if planned.duration_s.is_some() {
                    b.set_position((el * 10.0) as u64);
                } else {
                    b.set_position(live.done.load(Ordering::Relaxed));
                }
                b.set_message(line(&live, start, &planned));
            }
        });
        Progress { task: Some(task), bar: Some(bar) }
    } else {
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!("[load] {}", line(&live, start, &planned));
            }
        });
        Progress { task: Some(task), bar: None }
    }
}
