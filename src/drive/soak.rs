//! [`SoakSpec`]: the `[phases.soak]` table of a load phase, the switch and thresholds of its soak
//! verdicts. The driver reads the window and the routes left out of it (the aggregator keeps
//! latency per window); `report::soak` judges against the rest.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[phases.soak]`: switch and thresholds; a finding is flagged when its figure exceeds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoakSpec {
    /// Off keeps the table in the profile without judging anything.
    pub enabled: bool,
    /// Length of the windows (per-window trends, latency drift); whole seconds.
    #[serde(with = "crate::util::duration::human")]
    pub window: Duration,
    /// Share of the phase ignored at the start (allocator, pools and caches warming up), 0..0.9.
    pub warmup_fraction: f64,
    /// RSS growth per answered request, bytes (RSS regressed on the request count).
    pub max_bytes_per_request: f64,
    /// RSS growth per hour, bytes.
    pub max_bytes_per_hour: f64,
    /// Neither memory slope is flagged unless the fitted line grows at least this much over the
    /// analysed span, bytes: allocators grow their arenas in steps of a few MiB, which a short
    /// phase would otherwise read as a steep slope.
    pub min_growth_bytes: f64,
    /// Open descriptors growth per hour.
    pub max_fds_per_hour: f64,
    /// Nor is the descriptor slope flagged unless the fitted line adds at least this many
    /// descriptors over the span: connection pools open connections as the load peaks.
    pub min_fd_growth: f64,
    /// p99 of the last complete window divided by p99 of the first.
    pub max_p99_drift: f64,
    /// Routes whose latency the drift verdict (and the per-window latency) leaves out: those
    /// whose cost grows with the data a long run stores, by the target's design (Mesher's
    /// unpaginated lists, its search and dashboards over the last 24 h of events). Their
    /// latency is still in every other figure, threshold and chart.
    pub drift_exclude: Vec<String>,
    /// Stalls (outages of a live target) allowed; deaths are crashes and judged as such.
    pub max_outages: u64,
    /// A slope is flagged only when a straight line explains the samples at least this well
    /// (coefficient of determination, 0..1): noise is not a trend.
    pub min_r2: f64,
}

impl Default for SoakSpec {
    fn default() -> Self {
        SoakSpec {
            enabled: true,
            window: Duration::from_secs(60),
            warmup_fraction: 0.2,
            max_bytes_per_request: 1024.0,
            max_bytes_per_hour: 256.0 * 1024.0 * 1024.0,
            min_growth_bytes: 16.0 * 1024.0 * 1024.0,
            max_fds_per_hour: 50.0,
            min_fd_growth: 20.0,
            max_p99_drift: 2.0,
            drift_exclude: Vec::new(),
            max_outages: 0,
            min_r2: 0.5,
        }
    }
}

impl SoakSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.window < Duration::from_secs(1) {
            return Err("window must be at least 1s".into());
        }
        if !(0.0..=0.9).contains(&self.warmup_fraction) {
            return Err(format!("warmup_fraction = {}: must be within 0..=0.9", self.warmup_fraction));
        }
        if !(0.0..=1.0).contains(&self.min_r2) {
            return Err(format!("min_r2 = {}: must be within 0..=1", self.min_r2));
        }
        for name in &self.drift_exclude {
            if crate::api::Route::by_name(name).is_none() && !["ws-ingest", "ws-stream"].contains(&name.as_str()) {
                return Err(format!("drift_exclude: unknown route {name:?} (route names as in mix.routes)"));
            }
        }
        for (k, v) in [
            ("max_bytes_per_request", self.max_bytes_per_request),
            ("max_bytes_per_hour", self.max_bytes_per_hour),
            ("min_growth_bytes", self.min_growth_bytes),
            ("max_fds_per_hour", self.max_fds_per_hour),
            ("min_fd_growth", self.min_fd_growth),
            ("max_p99_drift", self.max_p99_drift),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{k} = {v}: must be a number ≥ 0"));
            }
        }
        Ok(())
    }
}
