//! Soak verdicts from telemetry: memory and descriptor leaks (least-squares slopes after a
//! warm-up), and latency drift (p99 of the last window against the first).

use super::stats::{Trend, fit};
use serde::{Deserialize, Serialize};

/// Thresholds (profile `[thresholds.soak]`); a finding is flagged when its figure exceeds them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoakThresholds {
    /// RSS growth per handled request, bytes (regression of RSS on the request count).
    pub max_bytes_per_request: f64,
    /// RSS growth per hour, bytes.
    pub max_bytes_per_hour: f64,
    /// Open descriptors growth per hour.
    pub max_fds_per_hour: f64,
    /// p99 of the last window divided by p99 of the first.
    pub max_p99_drift: f64,
    /// Share of the run ignored at the start (allocator and pool warm-up), 0..1.
    pub warmup_fraction: f64,
}

impl Default for SoakThresholds {
    fn default() -> Self {
        SoakThresholds {
            max_bytes_per_request: 1024.0,
            max_bytes_per_hour: 256.0 * 1024.0 * 1024.0,
            max_fds_per_hour: 50.0,
            max_p99_drift: 2.0,
            warmup_fraction: 0.2,
        }
    }
}

/// Telemetry of a run, as plain series. Times in seconds since the run started.
#[derive(Debug, Clone, Default)]
pub struct Telemetry<'a> {
    /// (t, RSS bytes)
    pub rss: &'a [(f64, f64)],
    /// (t, open descriptors)
    pub fds: &'a [(f64, f64)],
    /// (t, requests handled so far), cumulative.
    pub requests: &'a [(f64, f64)],
    /// (window start t, p99 µs) per window.
    pub p99_windows: &'a [(f64, f64)],
}

/// One soak finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// `memory-leak`, `fd-leak`, `latency-drift`.
    pub kind: String,
    pub flagged: bool,
    pub summary: String,
    /// The measured figure and the threshold it is compared with.
    pub value: f64,
    pub threshold: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
}

fn after_warmup(s: &[(f64, f64)], fraction: f64) -> &[(f64, f64)] {
    let skip = ((s.len() as f64) * fraction.clamp(0.0, 0.9)) as usize;
    &s[skip..]
}

/// Interpolated cumulative requests at time t.
fn requests_at(req: &[(f64, f64)], t: f64) -> Option<f64> {
    let i = req.partition_point(|p| p.0 < t);
    match (req.get(i.wrapping_sub(1)), req.get(i)) {
        (Some(a), Some(b)) if b.0 > a.0 => Some(a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0)),
        (_, Some(b)) => Some(b.1),
        (Some(a), None) => Some(a.1),
        _ => None,
    }
}

fn mib(b: f64) -> String {
    format!("{:.1} MiB", b / (1024.0 * 1024.0))
}

/// Analyse telemetry against thresholds.
pub fn analyse(t: &Telemetry, th: &SoakThresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    let rss = after_warmup(t.rss, th.warmup_fraction);
    if let Some(per_hour) = fit(rss) {
        let bph = per_hour.slope * 3600.0;
        // Bytes per request: RSS regressed on the request count at the same instants.
        let pairs: Vec<(f64, f64)> =
            rss.iter().filter_map(|&(time, v)| requests_at(t.requests, time).map(|n| (n, v))).collect();
        let per_req = fit(&pairs);
        let bpr = per_req.map(|f| f.slope).unwrap_or(0.0);
        let flagged = bpr > th.max_bytes_per_request || bph > th.max_bytes_per_hour;
        out.push(Finding {
            kind: "memory-leak".into(),
            flagged,
            summary: format!(
                "RSS grows {:.0} bytes per request and {} per hour (r² {:.2}); limits {:.0} B/request, {}/hour",
                bpr,
                mib(bph),
                per_hour.r2,
                th.max_bytes_per_request,
                mib(th.max_bytes_per_hour)
            ),
            value: bpr,
            threshold: th.max_bytes_per_request,
            trend: per_req,
        });
    }
    if let Some(f) = fit(after_warmup(t.fds, th.warmup_fraction)) {
        let per_hour = f.slope * 3600.0;
        out.push(Finding {
            kind: "fd-leak".into(),
            flagged: per_hour > th.max_fds_per_hour,
            summary: format!("open descriptors grow {per_hour:.1} per hour; limit {:.0}", th.max_fds_per_hour),
            value: per_hour,
            threshold: th.max_fds_per_hour,
            trend: Some(f),
        });
    }
    let w = t.p99_windows;
    if w.len() >= 2 && w[0].1 > 0.0 {
        let (first, last) = (w[0].1, w[w.len() - 1].1);
        let ratio = last / first;
        out.push(Finding {
            kind: "latency-drift".into(),
            flagged: ratio > th.max_p99_drift,
            summary: format!(
                "p99 {:.2} ms in the first window, {:.2} ms in the last ({ratio:.2}x); limit {:.2}x",
                first / 1000.0,
                last / 1000.0,
                th.max_p99_drift
            ),
            value: ratio,
            threshold: th.max_p99_drift,
            trend: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_a_planted_leak_and_not_a_flat_target() {
        // 100 req/s; a leaking target grows 50 KiB per request, a clean one only warms up.
        let requests: Vec<(f64, f64)> = (0..=120).map(|s| (s as f64, s as f64 * 100.0)).collect();
        let leaking: Vec<(f64, f64)> =
            requests.iter().map(|&(s, n)| (s, 30e6 + n * 51200.0 + (s * 7.0).sin() * 1e5)).collect();
        let clean: Vec<(f64, f64)> = requests
            .iter()
            .map(|&(s, _)| (s, if s < 10.0 { 20e6 + s * 1e6 } else { 30e6 + (s * 3.0).sin() * 2e5 }))
            .collect();
        let th = SoakThresholds::default();
        let f = analyse(&Telemetry { rss: &leaking, requests: &requests, ..Default::default() }, &th);
        assert!(f[0].flagged && (f[0].value - 51200.0).abs() < 2000.0, "{f:?}");
        let f = analyse(&Telemetry { rss: &clean, requests: &requests, ..Default::default() }, &th);
        assert!(!f[0].flagged, "{f:?}");
    }

    #[test]
    fn flags_drift_and_fd_growth() {
        let w = [(0.0, 1000.0), (60.0, 1100.0), (120.0, 5000.0)];
        let fds: Vec<(f64, f64)> = (0..100).map(|s| (s as f64, 20.0 + s as f64)).collect();
        let f = analyse(&Telemetry { p99_windows: &w, fds: &fds, ..Default::default() }, &SoakThresholds::default());
        assert!(f.iter().find(|x| x.kind == "latency-drift").unwrap().flagged);
        assert!(f.iter().find(|x| x.kind == "fd-leak").unwrap().flagged);
    }
}
