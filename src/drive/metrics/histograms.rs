//! Latency histograms: the presized per-key [`KeyHist`], the corrected/uncorrected [`Pair`] of a
//! key, and the [`Percentiles`] summary every report figure is made of.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub(super) fn new_hist() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is valid")
}

/// The histograms kept per key and per route series: 32-bit counts (a bucket saturates at
/// 4.29 billion samples of the same value, far beyond any run), half the memory of `u64`.
pub type KeyHist = Histogram<u32>;

/// Latencies (µs) a [`KeyHist`] holds from the start: 2^24 µs ≈ 16.8 s, past every default
/// request + body timeout.
pub const PRESIZED_US: u64 = 1 << 24;

/// A histogram of one key or route series, allocated at its full working range at once
/// (≈ 60 KiB): an auto-resizing histogram grows each time a key first sees a slower answer
/// (16 KiB → ~130 KiB over hours), so the tool's memory would creep through a soak. Past
/// [`PRESIZED_US`] it still grows, by 4 KiB per doubling of the largest value.
pub fn key_hist() -> KeyHist {
    let mut h = Histogram::new_with_bounds(1, PRESIZED_US, 3).expect("valid bounds");
    h.auto(true);
    h
}

/// Record into an auto-resizing histogram (`saturating_record` would clamp to the current
/// size instead of growing).
#[inline]
pub(super) fn rec<T: hdrhistogram::Counter>(h: &mut Histogram<T>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// Latency summary, µs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Histograms of one key.
pub struct Pair {
    pub corrected: KeyHist,
    /// None while no sample of the key had an uncorrected latency different from its corrected
    /// one (closed loop, open loop on schedule): then one histogram instead of two. The key's
    /// first late sample starts it as a copy of the corrected one. (Per key: in an open-loop
    /// soak with spare lanes most keys never see a late sample, and a phase-wide switch doubled
    /// every key's memory at the first one.)
    pub(super) uncorrected: Option<KeyHist>,
    /// Index of the key's route × layer in the aggregator's per-route series.
    pub(super) series: usize,
}

impl Pair {
    /// Latency from the actual send.
    pub fn uncorrected(&self) -> &KeyHist {
        self.uncorrected.as_ref().unwrap_or(&self.corrected)
    }

    /// Start the uncorrected histogram (as a copy: until now both were the same).
    pub(super) fn split(&mut self) {
        if self.uncorrected.is_none() {
            self.uncorrected = Some(self.corrected.clone());
        }
    }

    pub(super) fn record(&mut self, corrected_us: u64, uncorrected_us: u64) {
        rec(&mut self.corrected, corrected_us);
        if let Some(u) = &mut self.uncorrected {
            rec(u, uncorrected_us);
        }
    }
}
