//! Measurement: outcomes, per-lane sample buffers and the aggregator that owns every histogram.
//!
//! Lanes (the tasks that send) never touch a histogram or a lock: they push compact [`Sample`]s
//! into a local buffer and hand the buffer to the aggregator over a channel every 128 samples or
//! 50 ms. The aggregator task records into HdrHistograms (µs, 3 significant figures; those
//! kept per key are allocated at their working range up front, [`KeyHist`], so memory is set
//! by the number of keys when they first appear, not by the run length): one pair
//! (corrected from the intended send time, uncorrected from the actual send) per
//! route × layer × outcome, one per-second interval histogram for the timeline and the
//! HdrHistogram interval log, one interval histogram per route × layer for the per-route series
//! ([`RouteIntervals`], what baseline comparisons test), and one histogram of scheduler lag
//! (actual − intended send).
//!
//! Per-route series stay bounded however long the run: intervals are 1 s wide until a phase
//! has [`SERIES_CAP`] of them; then adjacent pairs of closed intervals merge and the width
//! doubles (2 s, 4 s, …), so a series never holds more than `SERIES_CAP` entries. Intervals
//! closed after the doubling are measured exactly at the new width (the interval histogram
//! stays open for the whole width); only the merge of two already-closed intervals is
//! approximate: counts add, the max is exact, and each percentile becomes the larger of the two
//! (an upper bound: the true percentile of the union lies between the two).
//!
//! Long runs stay flat in memory: the timeline holds at most [`TIMELINE_MAX`] entries; when it
//! is full, neighbouring entries are merged and later entries cover twice as many seconds
//! ([`Second::span`]), so a 6-hour phase keeps ~2700 entries of 8 s while the interval log on
//! disk keeps every second. A running phase's totals can be read without stopping it or
//! copying them ([`Aggregator::snapshots`], for checkpoints).
//!
//! Change outcome kinds in [`Outcome`]; change what a timeline second holds in [`Second`].
//!
//! Submodules: `outcome` ([`Outcome`], [`Key`]), `recorder` (the lanes' side: [`Sample`],
//! [`Recorder`], [`Sink`]), `aggregator` (the task that owns the histograms), `histograms`
//! ([`KeyHist`], [`Pair`], [`Percentiles`]), `series` (per-route intervals), `timeline`
//! ([`Second`]), `interval_log` (the HdrHistogram log on disk), `live` (the progress display's figures). [`Totals`] is what the aggregator
//! hands over.

mod aggregator;
mod histograms;
mod interval_log;
mod live;
mod outcome;
mod recorder;
mod series;
mod timeline;

pub use aggregator::{Aggregator, SnapshotFn};
pub use histograms::{KeyHist, PRESIZED_US, Pair, Percentiles, key_hist};
pub use live::Live;
pub use outcome::{Key, Outcome};
pub use recorder::{DEATH_GRACE, Recorder, Sample, Sink};
pub use series::{RouteIntervals, RouteSeries, SERIES_CAP};
pub use timeline::{Second, TIMELINE_MAX};

use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Everything the aggregator measured, handed to the report at the end (and lent to checkpoints
/// while the phase runs).
pub struct Totals {
    pub pairs: BTreeMap<Key, Pair>,
    pub lag: Histogram<u64>,
    pub timeline: Vec<Second>,
    /// Per route × layer, per interval.
    pub route_intervals: RouteIntervals,
    pub samples: u64,
    /// Requests per key that failed while the target was down (not in the histograms).
    pub down: BTreeMap<Key, u64>,
    /// Stretches without answers while requests waited (see `activity`).
    pub stalls: Vec<crate::drive::activity::Stretch>,
    /// Per-window latency (when asked for with [`Aggregator::windows`]).
    pub windows: Vec<crate::drive::activity::WindowStat>,
}

impl Totals {
    /// Requests of a key: its latency samples plus those that failed while the target was down
    /// (counted, not measured).
    pub fn count(&self, k: &Key, p: &Pair) -> u64 {
        p.corrected.len() + self.down.get(k).copied().unwrap_or(0)
    }

    /// Every request with an outcome: measured ones plus those that failed while the target was
    /// down.
    pub fn requests_with_outcome(&self) -> u64 {
        self.pairs.iter().filter(|(k, _)| k.outcome.is_request()).map(|(k, p)| self.count(k, p)).sum()
    }
}
