//! [`Live`]: the figures the progress display reads while a phase runs.

use super::histograms::{KeyHist, key_hist};
use super::outcome::Outcome;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Live figures for the progress display, updated by the aggregator as samples arrive (not
/// per closed second: batches arrive late, and a display of the last closed second showed 0/s
/// while thousands of answers came in).
#[derive(Debug)]
pub struct Live {
    pub start: Instant,
    /// Requests measured (answered or failed).
    pub done: AtomicU64,
    /// Of which answered (any HTTP status, an ack or close frame).
    pub answered: AtomicU64,
    pub errors: AtomicU64,
    /// Errors by outcome, and the corrected latencies of answers, since the display last looked.
    pub interval: std::sync::Mutex<(BTreeMap<Outcome, u64>, KeyHist)>,
    /// When the latest answer came (milliseconds since `start`; 0: none yet).
    pub last_answer_ms: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            start: Instant::now(),
            done: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interval: std::sync::Mutex::new((BTreeMap::new(), key_hist())),
            last_answer_ms: AtomicU64::new(0),
        }
    }
}

impl Live {
    /// The errors by kind and the p99 of answers since the last call (and start afresh).
    pub fn take_interval(&self) -> (BTreeMap<Outcome, u64>, Option<u64>) {
        let mut g = self.interval.lock().unwrap_or_else(|e| e.into_inner());
        let errors = std::mem::take(&mut g.0);
        let p99 = (!g.1.is_empty()).then(|| g.1.value_at_quantile(0.99));
        g.1.reset();
        (errors, p99)
    }
}
