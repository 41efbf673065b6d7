//! Soak verdicts of a load phase (`[phases.soak]`): memory and descriptor leaks (least-squares
//! slopes after a warm-up, over the whole phase and per window), latency drift (p99 of the last
//! window against the first) and outages (stretches without answers).
//!
//! Time base: the target's /proc samples carry their wall-clock time (`unix_ms`); the phase's
//! timeline counts seconds from its `started_at_ms`. A sample at `unix_ms` sits at
//! `(unix_ms - started_at_ms) / 1000` s of the phase, where the cumulative count of answered
//! requests is interpolated from the timeline: bytes per request is the slope of RSS regressed
//! on that count (what the target handled is what the tool saw answered).

use super::load::{OutageCause, PhaseReport};
use super::stats::{Trend, fit};
use crate::drive::activity::WindowStat;
use crate::watch::sampler::ProcSample;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Latency samples a window needs before its p99 is compared (below that the p99 is the
/// window's maximum, one request's bad luck).
pub const MIN_DRIFT_SAMPLES: u64 = 100;

pub use crate::drive::soak::SoakSpec;

/// Telemetry of a phase, as plain series. Times in seconds since the phase started.
#[derive(Debug, Clone, Default)]
pub struct Telemetry<'a> {
    /// (t, RSS bytes)
    pub rss: &'a [(f64, f64)],
    /// (t, open descriptors)
    pub fds: &'a [(f64, f64)],
    /// (t, requests answered so far), cumulative.
    pub requests: &'a [(f64, f64)],
    /// Latency per window.
    pub windows: &'a [WindowStat],
    /// The window length, seconds (incomplete windows are not compared for drift).
    pub window_s: u64,
    /// (start, end) of the stalls.
    pub stalls: &'a [(f64, f64)],
}

/// One soak finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// `memory-leak`, `fd-leak`, `latency-drift`, `outages`.
    pub kind: String,
    pub flagged: bool,
    pub summary: String,
    /// The measured figure and the threshold it is compared with.
    pub value: f64,
    pub threshold: f64,
    /// Every figure behind the verdict, by name (`bytes_per_request`, `bytes_per_hour`, `r2`, …).
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
}

/// Trends of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakWindow {
    /// Seconds since the phase's start.
    pub start_s: f64,
    pub end_s: f64,
    /// Starts inside the warm-up (left out of the whole-phase fit).
    pub warmup: bool,
    /// Requests answered in the window.
    pub answered: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<u64>,
    /// RSS growth, bytes per second and per answered request (None: too few samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_request: Option<f64>,
    /// Open descriptors per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fds_per_s: Option<f64>,
    /// RSS at the first and last sample of the window, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_first: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_last: Option<u64>,
}

/// The soak verdicts of a load phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakReport {
    /// Some finding is flagged (the phase fails).
    pub flagged: bool,
    pub findings: Vec<Finding>,
    pub windows: Vec<SoakWindow>,
    /// The thresholds used.
    pub spec: SoakSpec,
    /// The process whose samples were analysed (the longest-lived one when the target was
    /// restarted) and how many samples of it fell in the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub samples: usize,
    /// Samples before this time (seconds since the phase's start) are warm-up.
    pub warmup_until_s: f64,
    /// RSS (bytes) over phase seconds after the warm-up: the line drawn in the HTML report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_fit: Option<Trend>,
    /// Why a finding is missing (too short a phase, no samples).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
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

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

/// RSS against the request count at the same instants.
fn per_request(rss: &[(f64, f64)], requests: &[(f64, f64)]) -> Option<Trend> {
    let pairs: Vec<(f64, f64)> =
        rss.iter().filter_map(|&(time, v)| requests_at(requests, time).map(|n| (n, v))).collect();
    fit(&pairs)
}

/// Analyse telemetry against thresholds: (findings, per-window trends, RSS fit over time, notes).
pub fn analyse(t: &Telemetry, th: &SoakSpec) -> (Vec<Finding>, Vec<SoakWindow>, Option<Trend>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let rss = after_warmup(t.rss, th.warmup_fraction);
    let warmup_until = rss.first().map(|p| p.0).unwrap_or(0.0);
    let rss_fit = fit(rss);
    match rss_fit {
        Some(per_s) => out.push(memory_finding(rss, per_s, t.requests, th)),
        None => notes
            .push(format!("memory: {} RSS samples after warm-up, at least 3 are needed (a longer phase)", rss.len())),
    }
    out.extend(fd_finding(after_warmup(t.fds, th.warmup_fraction), th));
    match drift_finding(t, th) {
        Ok(f) => out.push(f),
        Err(note) => notes.push(note),
    }
    out.push(outages_finding(t.stalls, th));
    (out, soak_windows(t, warmup_until), rss_fit, notes)
}

/// Memory leak: RSS after the warm-up against answered requests and against time (`per_s`).
fn memory_finding(rss: &[(f64, f64)], per_s: Trend, requests: &[(f64, f64)], th: &SoakSpec) -> Finding {
    let warmup_until = rss.first().map(|p| p.0).unwrap_or(0.0);
    let span = rss.last().map(|l| l.0 - warmup_until).unwrap_or(0.0);
    let bph = per_s.slope * 3600.0;
    let per_req = per_request(rss, requests);
    let bpr = per_req.map(|f| f.slope).unwrap_or(0.0);
    let r2_req = per_req.map(|f| f.r2).unwrap_or(0.0);
    let growth = per_s.slope * span;
    let flagged = growth >= th.min_growth_bytes
        && ((bpr > th.max_bytes_per_request && r2_req >= th.min_r2)
            || (bph > th.max_bytes_per_hour && per_s.r2 >= th.min_r2));
    let mut figures = BTreeMap::new();
    figures.insert("bytes_per_request".into(), round(bpr, 1));
    figures.insert("bytes_per_hour".into(), bph.round());
    figures.insert("r2".into(), round(r2_req, 4));
    figures.insert("r2_time".into(), round(per_s.r2, 4));
    figures.insert("growth_bytes".into(), growth.round());
    figures.insert("span_s".into(), round(span, 2));
    figures.insert("samples".into(), rss.len() as f64);
    Finding {
        kind: "memory-leak".into(),
        flagged,
        summary: format!(
            "RSS grows {:.0} bytes per request and {} per hour ({} over {:.0} s after warm-up, r² {:.2}, {} samples); limits {:.0} B/request, {}/hour, once it grew {}",
            bpr,
            mib(bph),
            mib(growth),
            span,
            r2_req,
            rss.len(),
            th.max_bytes_per_request,
            mib(th.max_bytes_per_hour),
            mib(th.min_growth_bytes)
        ),
        value: round(bpr, 1),
        threshold: th.max_bytes_per_request,
        figures,
        trend: per_req,
    }
}

/// Descriptor leak: open descriptors after the warm-up over time.
fn fd_finding(fds: &[(f64, f64)], th: &SoakSpec) -> Option<Finding> {
    let f = fit(fds)?;
    let per_hour = f.slope * 3600.0;
    let span = fds.last().map(|l| l.0).unwrap_or(0.0) - fds.first().map(|l| l.0).unwrap_or(0.0);
    let growth = f.slope * span;
    let flagged = per_hour > th.max_fds_per_hour && f.r2 >= th.min_r2 && growth >= th.min_fd_growth;
    let mut figures = BTreeMap::new();
    figures.insert("fds_per_hour".into(), round(per_hour, 1));
    figures.insert("growth".into(), round(growth, 1));
    figures.insert("r2".into(), round(f.r2, 4));
    Some(Finding {
        kind: "fd-leak".into(),
        flagged,
        summary: format!(
            "open descriptors grow {per_hour:.1} per hour ({growth:+.1} over {span:.0} s, r² {:.2}); limit {:.0}/hour, once they grew {:.0}",
            f.r2, th.max_fds_per_hour, th.min_fd_growth
        ),
        value: round(per_hour, 1),
        threshold: th.max_fds_per_hour,
        figures,
        trend: Some(f),
    })
}

/// Latency drift: the p99 of the last complete window against the first; without two complete
/// windows, the note saying so.
fn drift_finding(t: &Telemetry, th: &SoakSpec) -> Result<Finding, String> {
    let complete: Vec<&WindowStat> = t
        .windows
        .iter()
        .filter(|w| w.end_s - w.start_s >= t.window_s.max(1) && w.latency.count >= MIN_DRIFT_SAMPLES)
        .collect();
    let (first, last) = match (complete.first(), complete.last()) {
        (Some(first), Some(last)) if complete.len() >= 2 && first.latency.p99 > 0 => (first, last),
        _ => {
            return Err(format!(
                "latency drift: {} complete window(s) of {} s with {MIN_DRIFT_SAMPLES}+ latency samples, 2 are needed (a longer phase or a shorter window)",
                complete.len(),
                t.window_s
            ));
        }
    };
    let ratio = last.latency.p99 as f64 / first.latency.p99 as f64;
    let mut figures = BTreeMap::new();
    figures.insert("first_p99_us".into(), first.latency.p99 as f64);
    figures.insert("last_p99_us".into(), last.latency.p99 as f64);
    figures.insert("ratio".into(), round(ratio, 3));
    Ok(Finding {
        kind: "latency-drift".into(),
        flagged: ratio > th.max_p99_drift,
        summary: format!(
            "p99 {:.2} ms in the first window ({}–{} s), {:.2} ms in the last ({}–{} s): {ratio:.2}x; limit {:.2}x{}",
            first.latency.p99 as f64 / 1000.0,
            first.start_s,
            first.end_s,
            last.latency.p99 as f64 / 1000.0,
            last.start_s,
            last.end_s,
            th.max_p99_drift,
            if th.drift_exclude.is_empty() {
                String::new()
            } else {
                format!(" (left out: {})", th.drift_exclude.join(", "))
            }
        ),
        value: round(ratio, 3),
        threshold: th.max_p99_drift,
        figures,
        trend: None,
    })
}

/// Outages: stretches with requests waiting and no answer.
fn outages_finding(stalls: &[(f64, f64)], th: &SoakSpec) -> Finding {
    let n = stalls.len() as u64;
    let total: f64 = stalls.iter().map(|s| s.1 - s.0).fold(0.0, |a, b| a + b);
    let longest = stalls.iter().map(|s| s.1 - s.0).fold(0.0, f64::max);
    let mut figures = BTreeMap::new();
    figures.insert("count".into(), n as f64);
    figures.insert("total_s".into(), round(total, 2));
    figures.insert("longest_s".into(), round(longest, 2));
    Finding {
        kind: "outages".into(),
        flagged: n > th.max_outages,
        summary: format!(
            "stalls without any answer: {n}, {total:.2} s in all, the longest {longest:.2} s; limit {} stall(s)",
            th.max_outages
        ),
        value: n as f64,
        threshold: th.max_outages as f64,
        figures,
        trend: None,
    }
}

/// Trends per window: the aggregator's windows when there are any, else fixed spans.
fn soak_windows(t: &Telemetry, warmup_until: f64) -> Vec<SoakWindow> {
    let end = t.rss.last().map(|p| p.0).unwrap_or(0.0).max(t.requests.last().map(|p| p.0).unwrap_or(0.0));
    let spans: Vec<(f64, f64, Option<&WindowStat>)> = if t.windows.is_empty() {
        let w = t.window_s.max(1) as f64;
        (0..).map(|i| i as f64 * w).take_while(|s| *s < end).map(|s| (s, (s + w).min(end), None)).collect()
    } else {
        t.windows.iter().map(|w| (w.start_s as f64, w.end_s as f64, Some(w))).collect()
    };
    spans
        .into_iter()
        .map(|(s, e, w)| {
            let inside =
                |v: &[(f64, f64)]| -> Vec<(f64, f64)> { v.iter().copied().filter(|p| p.0 >= s && p.0 <= e).collect() };
            let r = inside(t.rss);
            let f = inside(t.fds);
            let answered =
                match w {
                    Some(w) => w.answered,
                    None => (requests_at(t.requests, e).unwrap_or(0.0) - requests_at(t.requests, s).unwrap_or(0.0))
                        .max(0.0) as u64,
                };
            SoakWindow {
                start_s: s,
                end_s: e,
                warmup: s < warmup_until,
                answered,
                p50_us: w.filter(|w| w.latency.count > 0).map(|w| w.latency.p50),
                p99_us: w.filter(|w| w.latency.count > 0).map(|w| w.latency.p99),
                bytes_per_s: fit(&r).map(|x| round(x.slope, 1)),
                bytes_per_request: per_request(&r, t.requests).map(|x| round(x.slope, 1)),
                fds_per_s: fit(&f).map(|x| round(x.slope, 4)),
                rss_first: r.first().map(|p| p.1 as u64),
                rss_last: r.last().map(|p| p.1 as u64),
            }
        })
        .collect()
}

/// The soak verdicts of a finished load phase, from the target's /proc samples of the whole run.
pub fn analyse_phase(r: &PhaseReport, samples: &[ProcSample], spec: &SoakSpec) -> SoakReport {
    let phase_t = |s: &ProcSample| (s.unix_ms as f64 - r.started_at_ms as f64) / 1000.0;
    let mine: Vec<&ProcSample> =
        samples.iter().filter(|s| s.unix_ms > 0 && (0.0..=r.elapsed_s + 0.5).contains(&phase_t(s))).collect();
    // Each incarnation of a restarted target starts from scratch: its samples are a segment of
    // their own, each with its own warm-up left out, and the segments are stitched end to end
    // (every one continues where the previous one ended), so one fit over them is the growth of
    // the incarnations combined. A server that leaks and also crashes is flagged all the same.
    let mut segments: Vec<(u32, Vec<&ProcSample>)> = Vec::new();
    for s in mine {
        match segments.last_mut() {
            Some((pid, seg)) if *pid == s.pid => seg.push(s),
            _ => segments.push((s.pid, vec![s])),
        }
    }
    let restarted = segments.len() > 1;
    let warmup_of = |n: usize| if restarted { ((n as f64) * spec.warmup_fraction.clamp(0.0, 0.9)) as usize } else { 0 };
    let stitch = |value: &dyn Fn(&ProcSample) -> f64| -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = Vec::new();
        for (_, seg) in &segments {
            let kept = &seg[warmup_of(seg.len())..];
            let Some(first) = kept.first() else { continue };
            let shift = out.last().map(|l| l.1 - value(first)).unwrap_or(0.0);
            out.extend(kept.iter().map(|s| (phase_t(s), value(s) + shift)));
        }
        out
    };
    let rss: Vec<(f64, f64)> = stitch(&|s| s.rss_bytes as f64);
    let fds: Vec<(f64, f64)> = stitch(&|s| s.fds as f64);
    let sampled: usize = segments.iter().map(|(_, s)| s.len()).sum();
    let pid = segments.iter().max_by_key(|(_, s)| s.len()).map(|(p, _)| *p);
    let mut requests = vec![(0.0, 0.0)];
    let mut n = 0.0;
    for sec in &r.timeline {
        n += sec.outcomes.iter().filter(|(k, _)| k.is_answer()).map(|(_, v)| *v as f64).sum::<f64>();
        requests.push((sec.t as f64, n));
    }
    let stalls: Vec<(f64, f64)> =
        r.outages.iter().filter(|o| o.cause == OutageCause::Stall).map(|o| (o.start_s, o.end_s)).collect();
    let t = Telemetry {
        rss: &rss,
        fds: &fds,
        requests: &requests,
        windows: &r.windows,
        window_s: spec.window.as_secs(),
        stalls: &stalls,
    };
    // The segments' warm-ups are already out.
    let spec_used = if restarted { SoakSpec { warmup_fraction: 0.0, ..spec.clone() } } else { spec.clone() };
    let (findings, windows, rss_fit, mut notes) = analyse(&t, &spec_used);
    if restarted {
        notes.push(format!(
            "the target ran as {} incarnations: memory and descriptor trends fitted over all of them, stitched end to end ({} of {} samples after each one's warm-up)",
            segments.len(),
            rss.len(),
            sampled
        ));
    }
    if samples.is_empty() {
        notes.push("no /proc samples of the target (not a spawned process?): no leak verdicts".into());
    }
    let skip = ((rss.len() as f64) * spec_used.warmup_fraction.clamp(0.0, 0.9)) as usize;
    SoakReport {
        flagged: findings.iter().any(|f| f.flagged),
        findings,
        windows,
        spec: spec.clone(),
        pid,
        samples: sampled,
        warmup_until_s: rss.get(skip).map(|p| round(p.0, 2)).unwrap_or(0.0),
        rss_fit,
        notes,
    }
}

/// The phase's outages as shaded bands of its timeline charts.
pub fn shaded(r: &PhaseReport) -> Vec<(f64, f64, String)> {
    r.outages.iter().map(|o| (o.start_s, o.end_s, o.describe())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::load::Percentiles;
    use std::time::Duration;

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
        let th = SoakSpec { window: Duration::from_secs(30), ..Default::default() };
        let (f, w, fit_t, _) =
            analyse(&Telemetry { rss: &leaking, requests: &requests, window_s: 30, ..Default::default() }, &th);
        assert!(f[0].flagged && (f[0].value - 51200.0).abs() < 2000.0, "{f:?}");
        assert!((f[0].figures["bytes_per_hour"] - 51200.0 * 100.0 * 3600.0).abs() < 1e9, "{f:?}");
        assert!((fit_t.unwrap().slope - 5.12e6).abs() < 1e5);
        // Four windows of 30 s, each with its own bytes per request; the first is warm-up.
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[0].warmup && !w[3].warmup);
        assert!(w.iter().all(|x| (x.bytes_per_request.unwrap() - 51200.0).abs() < 3000.0), "{w:?}");
        let (f, ..) = analyse(&Telemetry { rss: &clean, requests: &requests, window_s: 30, ..Default::default() }, &th);
        assert!(!f[0].flagged, "{f:?}");
    }

    #[test]
    fn flags_drift_fd_growth_and_stalls_but_not_noise() {
        let win = |s: u64, p99: u64| WindowStat {
            start_s: s,
            end_s: s + 60,
            requests: 100,
            answered: 100,
            errors: 0,
            latency: Percentiles { count: 100, p99, ..Default::default() },
        };
        let w = [win(0, 1000), win(60, 1100), win(120, 5000)];
        let fds: Vec<(f64, f64)> = (0..100).map(|s| (s as f64, 20.0 + s as f64)).collect();
        let stalls = [(3.0, 3.4)];
        let t = Telemetry { windows: &w, window_s: 60, fds: &fds, stalls: &stalls, ..Default::default() };
        let (f, ..) = analyse(&t, &SoakSpec::default());
        let get = |k: &str| f.iter().find(|x| x.kind == k).unwrap().clone();
        assert!(get("latency-drift").flagged && (get("latency-drift").value - 5.0).abs() < 1e-9);
        assert!(get("fd-leak").flagged);
        assert!(get("outages").flagged && get("outages").figures["longest_s"] == 0.4);
        // Connection churn: descriptors jumping between 20 and 24 are no leak.
        let noisy: Vec<(f64, f64)> = (0..100).map(|s| (s as f64, 20.0 + ((s * 7) % 5) as f64)).collect();
        let (f, ..) = analyse(&Telemetry { fds: &noisy, ..Default::default() }, &SoakSpec::default());
        assert!(!f.iter().find(|x| x.kind == "fd-leak").unwrap().flagged, "{f:?}");
        assert!(!f.iter().find(|x| x.kind == "outages").unwrap().flagged);
        // Nor is a connection pool opening 12 connections as the load peaks.
        let pool: Vec<(f64, f64)> = (0..100).map(|s| (s as f64, 14.0 + (s / 8) as f64)).collect();
        let (f, ..) = analyse(&Telemetry { fds: &pool, ..Default::default() }, &SoakSpec::default());
        let fd = f.iter().find(|x| x.kind == "fd-leak").unwrap();
        assert!(!fd.flagged && fd.figures["r2"] > 0.9, "{fd:?}");
    }

    #[test]
    fn spec_parses_with_defaults_and_rejects_unknown_keys() {
        let s: SoakSpec = toml::from_str("window = \"5s\"\nmax_bytes_per_hour = 1073741824").unwrap();
        assert_eq!(s.window, Duration::from_secs(5));
        assert_eq!(s.max_bytes_per_hour, 1073741824.0);
        assert!(s.enabled && s.validate().is_ok());
        assert!(toml::from_str::<SoakSpec>("windw = \"5s\"").is_err());
        assert!(SoakSpec { warmup_fraction: 1.5, ..Default::default() }.validate().is_err());
    }
}
