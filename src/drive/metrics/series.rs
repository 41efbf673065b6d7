//! Per-route series ([`RouteIntervals`]): requests and corrected percentiles per interval of every
//! route × layer, bounded by merging neighbours at [`SERIES_CAP`] (module docs of `metrics`).

use super::histograms::KeyHist;
use crate::model::Layer;
use serde::{Deserialize, Serialize};

/// Most intervals a per-route series holds; past it, adjacent intervals merge (module docs).
pub const SERIES_CAP: usize = 900;

/// Per-interval figures of every route × layer of a phase (`report.json`: `route_intervals`).
/// Columnar: every series has one entry per element of `t_ms`, zeros where the route had no
/// request in that interval (also before its first request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteIntervals {
    /// End of each interval, ms since measurement started (≈ the phase start); the first
    /// interval starts at 0. Widths are the differences (1 s, or 2^k s after merges; the last
    /// interval of a phase is usually partial).
    pub t_ms: Vec<u64>,
    pub series: Vec<RouteSeries>,
}

/// One route × layer: requests (every outcome but `interrupted`) and their corrected latency
/// (µs) per interval; the vectors are parallel to [`RouteIntervals::t_ms`]. 32-bit columns
/// (half the memory of a long run's series): counts saturate at 4.29 billion per interval,
/// latencies at 71 minutes, both far past any run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSeries {
    pub route: String,
    pub layer: Layer,
    pub count: Vec<u32>,
    pub errors: Vec<u32>,
    pub p50_us: Vec<u32>,
    pub p90_us: Vec<u32>,
    pub p99_us: Vec<u32>,
    pub max_us: Vec<u32>,
}

fn sat32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl RouteSeries {
    /// A series padded with `len` empty intervals, with room for `cap` (the series cap: the
    /// columns are never reallocated, halving works in place).
    pub(super) fn new(route: &str, layer: Layer, len: usize, cap: usize) -> RouteSeries {
        let col = || {
            let mut v = Vec::with_capacity(cap.max(len));
            v.resize(len, 0);
            v
        };
        RouteSeries {
            route: route.to_string(),
            layer,
            count: col(),
            errors: col(),
            p50_us: col(),
            p90_us: col(),
            p99_us: col(),
            max_us: col(),
        }
    }

    pub(super) fn push(&mut self, count: u64, errors: u64, h: &KeyHist) {
        let q = |x: f64| if h.is_empty() { 0 } else { sat32(h.value_at_quantile(x)) };
        self.count.push(sat32(count));
        self.errors.push(sat32(errors));
        self.p50_us.push(q(0.5));
        self.p90_us.push(q(0.9));
        self.p99_us.push(q(0.99));
        self.max_us.push(if h.is_empty() { 0 } else { sat32(h.max()) });
    }

    /// Merge adjacent pairs of intervals (see the module docs for what is exact).
    fn halve(&mut self) {
        fn pairs(v: &mut Vec<u32>, f: fn(u32, u32) -> u32) {
            let n = v.len().div_ceil(2);
            for i in 0..n {
                v[i] = match v.get(2 * i + 1) {
                    Some(&b) => f(v[2 * i], b),
                    None => v[2 * i],
                };
            }
            v.truncate(n);
        }
        let sum = |a: u32, b: u32| a.saturating_add(b);
        pairs(&mut self.count, sum);
        pairs(&mut self.errors, sum);
        for v in [&mut self.p50_us, &mut self.p90_us, &mut self.p99_us, &mut self.max_us] {
            pairs(v, u32::max);
        }
    }
}

impl RouteIntervals {
    /// Merge adjacent pairs of intervals in every series (the end of a pair is its second's end).
    pub fn halve(&mut self) {
        // In place (the capacity stays: no reallocation through a long run).
        let n = self.t_ms.len().div_ceil(2);
        for i in 0..n {
            self.t_ms[i] = self.t_ms[(2 * i + 1).min(self.t_ms.len() - 1)];
        }
        self.t_ms.truncate(n);
        for s in &mut self.series {
            s.halve();
        }
    }

    /// Start and end (ms) of interval `i`.
    pub fn span_ms(&self, i: usize) -> (u64, u64) {
        (if i == 0 { 0 } else { self.t_ms[i - 1] }, self.t_ms[i])
    }
}

/// The open interval of one route × layer.
pub(super) struct OpenSeries {
    pub(super) hist: KeyHist,
    pub(super) count: u64,
    pub(super) errors: u64,
}
