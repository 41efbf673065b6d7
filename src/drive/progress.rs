//! Progress while a phase runs: an indicatif bar when stderr is a terminal (refreshed every
//! second), a plain line every 5 s otherwise, nothing with `--quiet`.
//!
//! Every figure is of the interval since the previous display: answers and their rate, errors
//! by kind, the p99 of the answers; a target that answers nothing is said to (`0 answers for
//! 12 s`), whatever else the lanes are doing.

use crate::drive::ProgressMode;
use crate::drive::metrics::Live;
use crate::drive::plan::Planned;
use crate::util::units::fmt_us;
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

/// What the previous display saw.
struct Seen {
    at: Instant,
    answered: u64,
}

/// One display line: the interval since `prev`.
fn line(live: &Live, start: Instant, planned: &Planned, prev: &mut Seen) -> String {
    let now = Instant::now();
    let el = now.saturating_duration_since(start).as_secs_f64();
    let left = planned.duration_s.map(|d| format!(", {:.0}s left", (d - el).max(0.0))).unwrap_or_default();
    let answered = live.answered.load(Ordering::Relaxed);
    let secs = now.saturating_duration_since(prev.at).as_secs_f64().max(1e-3);
    let rate = (answered - prev.answered.min(answered)) as f64 / secs;
    *prev = Seen { at: now, answered };
    let (errors, p99) = live.take_interval();
    let errors: Vec<String> = errors.iter().map(|(o, n)| format!("{} {n}", o.name())).collect();
    let errors = if errors.is_empty() { "no errors".to_string() } else { format!("errors: {}", errors.join(", ")) };
    // No answer for a while: said first, plainly.
    let last = live.last_answer_ms.load(Ordering::Relaxed);
    let since_answer = match last {
        0 => now.saturating_duration_since(start),
        ms => now.saturating_duration_since(live.start + Duration::from_millis(ms)),
    };
    let stalled = if rate == 0.0 && since_answer >= Duration::from_secs(2) {
        format!("0 answers for {:.0} s · ", since_answer.as_secs_f64())
    } else {
        String::new()
    };
    format!(
        "{stalled}{answered} answered ({rate:.0}/s), {errors}, p99 {}{left}",
        p99.map(fmt_us).unwrap_or_else(|| "-".into())
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
            let mut prev = Seen { at: Instant::now(), answered: 0 };
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let el = Instant::now().saturating_duration_since(start).as_secs_f64();
                if planned.duration_s.is_some() {
                    b.set_position((el * 10.0) as u64);
                } else {
                    b.set_position(live.done.load(Ordering::Relaxed));
                }
                b.set_message(line(&live, start, &planned, &mut prev));
            }
        });
        Progress { task: Some(task), bar: Some(bar) }
    } else {
        let task = tokio::spawn(async move {
            let mut prev = Seen { at: Instant::now(), answered: 0 };
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!("[load] {}", line(&live, start, &planned, &mut prev));
            }
        });
        Progress { task: Some(task), bar: None }
    }
}
