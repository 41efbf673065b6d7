//! Baseline comparison: is this run slower than a previous one (`run --baseline PATH`,
//! `report compare A B`)?
//!
//! Load phases are matched by name (the k-th phase of a name with the k-th of the same name),
//! routes by (route, layer). For every matched route the samples are the per-interval figures of
//! [`RouteIntervals`] (1 s intervals, wider after merges in long runs), never one number against
//! one number:
//!
//! * throughput: the route's requests per second in each interval;
//! * latency: the interval's corrected p50 and p99, from intervals with at least
//!   `min_requests` requests of the route.
//!
//! Intervals that start within the `warmup` and the last interval of a phase (its tail: the
//! schedule has ended, in-flight answers trickle in) are left out. The two runs' samples go
//! through a two-sided Mann–Whitney U test ([`super::stats::mann_whitney`]). A metric is a
//! **regression** when all of these hold:
//!
//! 1. the test says the runs differ: p < `alpha`;
//! 2. the current run is worse by more than `min_change` (relative, medians of the interval
//!    samples: lower throughput, higher latency);
//! 3. for latency, also by more than `min_p50_delta` / `min_p99_delta` (absolute), so that
//!    loopback noise between two runs of one build never counts. The tail is far noisier than
//!    the median from run to run (a busy machine moves p99 by tens of milliseconds and p50 by
//!    fractions of one), hence two minimums.
//!
//! The same conditions the other way round make an **improvement** (reported, never gating).
//! Fewer than `min_intervals` samples on either side give **insufficient data**, not a verdict.
//! Phases or routes present on one side only are listed as notes, not regressions.
//!
//! In open loop the schedule fixes the request rate, so a slower target shows as latency (and
//! as throughput only once it falls behind); in closed loop it shows in both.

use super::load::{PhaseReport, fmt_us};
use super::{RunPhase, RunReport};
use crate::drive::metrics::{RouteIntervals, RouteSeries};
use crate::model::Layer;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How regressions are decided (profile `[baseline]`; flags of `report compare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineSettings {
    /// Significance level of the Mann–Whitney test (0 < alpha ≤ 0.5).
    pub alpha: f64,
    /// Smallest relative worsening that counts (0.2 = 20 %), for throughput and latency.
    pub min_change: f64,
    /// Smallest absolute p50 increase that counts.
    #[serde(with = "crate::util::duration::human")]
    pub min_p50_delta: Duration,
    /// Smallest absolute p99 increase that counts.
    #[serde(with = "crate::util::duration::human")]
    pub min_p99_delta: Duration,
    /// Intervals starting before this much of a phase has passed are left out.
    #[serde(with = "crate::util::duration::human")]
    pub warmup: Duration,
    /// Intervals with fewer requests of a route are left out of its latency samples.
    pub min_requests: u64,
    /// Fewer samples than this on either side: insufficient data (no verdict). At least 4.
    pub min_intervals: usize,
}

impl Default for BaselineSettings {
    fn default() -> Self {
        BaselineSettings {
            alpha: 0.01,
            min_change: 0.2,
            min_p50_delta: Duration::from_millis(1),
            min_p99_delta: Duration::from_millis(5),
            warmup: Duration::from_secs(2),
            min_requests: 10,
            min_intervals: 6,
        }
    }
}

impl BaselineSettings {
    /// The absolute minimum increase of a latency metric, µs (none for throughput).
    pub fn min_delta_us(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::Throughput => None,
            Metric::P50 => Some(self.min_p50_delta.as_micros() as f64),
            Metric::P99 => Some(self.min_p99_delta.as_micros() as f64),
        }
    }

    /// One line for people: what counts as a regression.
    pub fn describe(&self) -> String {
        format!(
            "Mann–Whitney U over per-interval values; regression = p < {} and worse by > {:.0}% (p50 also by > {}, p99 by > {}); \
             warm-up {}, latency from intervals with >= {} requests",
            self.alpha,
            self.min_change * 100.0,
            fmt_us(self.min_p50_delta.as_micros() as u64),
            fmt_us(self.min_p99_delta.as_micros() as u64),
            humantime::format_duration(self.warmup),
            self.min_requests
        )
    }

    /// Check the values; messages name the key.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha <= 0.5) {
            bail!("baseline.alpha = {}: must be within (0, 0.5], e.g. 0.01", self.alpha);
        }
        if !(self.min_change.is_finite() && self.min_change >= 0.0) {
            bail!("baseline.min_change = {}: must be a fraction >= 0 (0.2 = 20 %)", self.min_change);
        }
        if self.warmup > Duration::from_secs(7 * 24 * 3600) {
            bail!("baseline.warmup: must be at most 7d");
        }
        if self.min_requests == 0 {
            bail!("baseline.min_requests: must be at least 1");
        }
        if self.min_intervals < 4 {
            bail!(
                "baseline.min_intervals = {}: must be at least 4 (the test cannot be significant with fewer)",
                self.min_intervals
            );
        }
        Ok(())
    }
}

/// What is compared per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Requests per second per interval (higher is better).
    Throughput,
    /// Corrected p50 per interval, µs (lower is better).
    P50,
    /// Corrected p99 per interval, µs (lower is better).
    P99,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Throughput, Metric::P50, Metric::P99];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P50 => "p50",
            Metric::P99 => "p99",
        }
    }

    fn higher_is_worse(self) -> bool {
        self != Metric::Throughput
    }

    /// A value of this metric for people (`152.3/s`, `1.20ms`).
    pub fn format(self, v: f64) -> String {
        match self {
            Metric::Throughput => format!("{v:.1}/s"),
            _ => fmt_us(v.round().max(0.0) as u64),
        }
    }
}

/// The verdict on one route × metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Call {
    Ok,
    Regression,
    Improvement,
    InsufficientData,
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Call::Ok => "ok",
            Call::Regression => "REGRESSION",
            Call::Improvement => "improvement",
            Call::InsufficientData => "insufficient data",
        }
    }
}

/// One route × metric of one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub phase: String,
    pub route: String,
    pub layer: Layer,
    pub metric: Metric,
    /// Median of the baseline's interval samples (req/s, or µs).
    pub baseline: f64,
    /// Median of the current run's interval samples.
    pub current: f64,
    /// (current − baseline) / baseline; absent when the baseline median is 0.
    pub change: Option<f64>,
    /// Samples (intervals) on each side.
    pub n_baseline: usize,
    pub n_current: usize,
    /// Two-sided Mann–Whitney p-value; absent with insufficient data.
    pub p_value: Option<f64>,
    pub verdict: Call,
}

impl Row {
    /// `load dashboard-health (valid) p50`: the name of its JUnit case.
    pub fn title(&self) -> String {
        format!("{} {} ({}) {}", self.phase, self.route, layer_name(self.layer), self.metric.name())
    }
}

/// A baseline comparison (`report.json`: `baseline`; `report compare --json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Where the baseline was read from.
    pub baseline_path: PathBuf,
    pub baseline_profile: String,
    pub baseline_started: String,
    pub settings: BaselineSettings,
    pub rows: Vec<Row>,
    /// Phases and routes on one side only, and anything else that was not compared.
    pub notes: Vec<String>,
    /// Number of rows with a regression.
    pub regressions: usize,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.regressions > 0
    }

    /// Routes with at least one regression, as `route (layer)`, in table order.
    pub fn regressed_routes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.rows.iter().filter(|r| r.verdict == Call::Regression) {
            let name = format!("{} ({})", r.route, layer_name(r.layer));
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// `REGRESSION: …` or `no regression …`: one line for the end of the output.
    pub fn summary(&self) -> String {
        let compared = self.rows.iter().filter(|r| r.verdict != Call::InsufficientData).count();
        if self.regressed() {
            format!(
                "REGRESSION against the baseline: {} of {compared} route metrics ({})",
                self.regressions,
                self.regressed_routes().join(", ")
            )
        } else {
            format!("no regression against the baseline ({compared} route metrics compared)")
        }
    }

    /// The table: route, baseline vs current, change, p-value, verdict; then notes and summary.
    pub fn print_table(&self, w: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            w,
            "baseline comparison: {} (profile {}, started {})",
            self.baseline_path.display(),
            self.baseline_profile,
            self.baseline_started
        )?;
        writeln!(w, "  {}", self.settings.describe())?;
        writeln!(
            w,
            "{:<12} {:<22} {:<6} {:<10} {:>10} {:>10} {:>9} {:>9} {:>5}  verdict",
            "phase", "route", "layer", "metric", "baseline", "current", "change", "p-value", "n"
        )?;
        for r in &self.rows {
            writeln!(
                w,
                "{:<12} {:<22} {:<6} {:<10} {:>10} {:>10} {:>9} {:>9} {:>5}  {}",
                r.phase,
                r.route,
                layer_name(r.layer),
                r.metric.name(),
                r.metric.format(r.baseline),
                r.metric.format(r.current),
                fmt_change(r.change),
                fmt_p(r.p_value),
                format!("{}/{}", r.n_baseline, r.n_current),
                r.verdict.name()
            )?;
        }
        for n in &self.notes {
            writeln!(w, "note: {n}")?;
        }
        writeln!(w, "{}", self.summary())
    }
}

/// `+12.3%`, or `-` without a baseline value.
pub fn fmt_change(c: Option<f64>) -> String {
    match c {
        Some(c) => format!("{:+.1}%", c * 100.0),
        None => "-".into(),
    }
}

/// `0.0312`, `<0.0001`, or `-`.
pub fn fmt_p(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.0001 => "<0.0001".into(),
        Some(p) => format!("{p:.4}"),
        None => "-".into(),
    }
}

fn layer_name(l: Layer) -> String {
    serde_json::to_value(l).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// Read a `report.json`, or the one in a run directory. Errors say which file and why.
pub fn read_report(path: &Path) -> Result<(PathBuf, RunReport)> {
    let file = if path.is_dir() { path.join("report.json") } else { path.to_path_buf() };
    let text = std::fs::read(&file).with_context(|| {
        if path.is_dir() {
            format!("cannot read {}: is {} a run directory?", file.display(), path.display())
        } else {
            format!("cannot read {}", file.display())
        }
    })?;
    let report: RunReport = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a mesher-stress report.json", file.display()))?;
    Ok((file, report))
}

/// The interval samples of one series: (requests/s per interval, p50 µs, p99 µs).
pub fn samples(ri: &RouteIntervals, s: &RouteSeries, settings: &BaselineSettings) -> [Vec<f64>; 3] {
    let warmup_ms = settings.warmup.as_millis() as u64;
    let (mut rate, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    // The last interval is the phase's tail: left out.
    for i in 0..ri.t_ms.len().saturating_sub(1) {
        let (start, end) = ri.span_ms(i);
        // (A hand-edited report may have columns shorter than `t_ms`: those intervals are skipped.)
        let (Some(&n), Some(&a), Some(&b)) = (s.count.get(i), s.p50_us.get(i), s.p99_us.get(i)) else {
            continue;
        };
        if start < warmup_ms || end <= start {
            continue;
        }
        rate.push(n as f64 * 1000.0 / (end - start) as f64);
        if u64::from(n) >= settings.min_requests {
            p50.push(a as f64);
            p99.push(b as f64);
        }
    }
    [rate, p50, p99]
}

/// Median (0 for no values).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The decision on one metric (see [`judge`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// Medians of the interval samples.
    pub baseline: f64,
    pub current: f64,
    /// (current − baseline) / baseline, when the baseline median is not 0.
    pub change: Option<f64>,
    pub p_value: Option<f64>,
    pub verdict: Call,
}

/// Decide one metric from the two runs' interval samples.
pub fn judge(metric: Metric, base: &[f64], cur: &[f64], s: &BaselineSettings) -> Judgement {
    let (mb, mc) = (median(base), median(cur));
    let change = (mb > 0.0).then(|| (mc - mb) / mb);
    if base.len() < s.min_intervals || cur.len() < s.min_intervals {
        return Judgement { baseline: mb, current: mc, change, p_value: None, verdict: Call::InsufficientData };
    }
    let Some(t) = super::stats::mann_whitney(base, cur) else {
        return Judgement { baseline: mb, current: mc, change, p_value: None, verdict: Call::InsufficientData };
    };
    let p = t.p_two_sided;
    // Positive = the current run is worse.
    let worse_by = if metric.higher_is_worse() { mc - mb } else { mb - mc };
    let big = |d: f64| {
        let rel = if mb > 0.0 {
            d / mb
        } else if d > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        rel > s.min_change && s.min_delta_us(metric).is_none_or(|min| d > min)
    };
    let call = if p < s.alpha && worse_by > 0.0 && big(worse_by) {
        Call::Regression
    } else if p < s.alpha && worse_by < 0.0 && big(-worse_by) {
        Call::Improvement
    } else {
        Call::Ok
    };
    Judgement { baseline: mb, current: mc, change, p_value: Some(p), verdict: call }
}

fn load_phases(r: &RunReport) -> Vec<&PhaseReport> {
    r.phases
        .iter()
        .filter_map(|p| match p {
            RunPhase::Load(l) => Some(l.as_ref()),
            _ => None,
        })
        .collect()
}

/// Compare `current` with `baseline` (read from `baseline_path`).
pub fn compare(baseline: &RunReport, baseline_path: &Path, current: &RunReport, s: &BaselineSettings) -> Comparison {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let (bp, cp) = (load_phases(baseline), load_phases(current));
    // The k-th phase of a name matches the k-th phase of that name.
    let occurrence = |v: &[&PhaseReport], i: usize| v[..i].iter().filter(|p| p.name == v[i].name).count();
    let mut matched_any = false;
    for (ci, c) in cp.iter().enumerate() {
        let k = occurrence(&cp, ci);
        let Some(b) = bp.iter().enumerate().filter(|(_, b)| b.name == c.name).nth(k).map(|(_, b)| *b) else {
            notes.push(format!("load phase {:?} is not in the baseline: not compared", c.name));
            continue;
        };
        matched_any = true;
        if b.route_intervals.t_ms.is_empty() {
            notes.push(format!(
                "load phase {:?}: the baseline has no per-interval route data (written by an older mesher-stress?): not compared",
                c.name
            ));
            continue;
        }
        if c.interrupted || b.interrupted {
            notes.push(format!(
                "load phase {:?}: the {} run was interrupted; compared over what was measured",
                c.name,
                if c.interrupted { "current" } else { "baseline" }
            ));
        }
        let bk: BTreeMap<(&str, Layer), &RouteSeries> =
            b.route_intervals.series.iter().map(|x| ((x.route.as_str(), x.layer), x)).collect();
        let ck: BTreeMap<(&str, Layer), &RouteSeries> =
            c.route_intervals.series.iter().map(|x| ((x.route.as_str(), x.layer), x)).collect();
        for ((route, layer), cs) in &ck {
            let Some(bs) = bk.get(&(*route, *layer)) else {
                notes.push(format!(
                    "load phase {:?}: route {route} ({}) has no traffic in the baseline: not compared",
                    c.name,
                    layer_name(*layer)
                ));
                continue;
            };
            let bsm = samples(&b.route_intervals, bs, s);
            let csm = samples(&c.route_intervals, cs, s);
            for (m, (bv, cv)) in Metric::ALL.iter().zip(bsm.iter().zip(csm.iter())) {
                let j = judge(*m, bv, cv, s);
                rows.push(Row {
                    phase: c.name.clone(),
                    route: route.to_string(),
                    layer: *layer,
                    metric: *m,
                    baseline: j.baseline,
                    current: j.current,
                    change: j.change,
                    n_baseline: bv.len(),
                    n_current: cv.len(),
                    p_value: j.p_value,
                    verdict: j.verdict,
                });
            }
        }
        for (route, layer) in bk.keys().filter(|k| !ck.contains_key(*k)) {
            notes.push(format!(
                "load phase {:?}: route {route} ({}) has no traffic in the current run: not compared",
                c.name,
                layer_name(*layer)
            ));
        }
    }
    for (bi, b) in bp.iter().enumerate() {
        let k = occurrence(&bp, bi);
        if cp.iter().filter(|c| c.name == b.name).nth(k).is_none() {
            notes.push(format!("load phase {:?} of the baseline is not in the current run: not compared", b.name));
        }
    }
    if !matched_any {
        notes.push("no load phase in common with the baseline: nothing was compared".into());
    }
    let regressions = rows.iter().filter(|r| r.verdict == Call::Regression).count();
    Comparison {
        baseline_path: baseline_path.to_path_buf(),
        baseline_profile: baseline.profile.clone(),
        baseline_started: baseline.started.clone(),
        settings: s.clone(),
        rows,
        notes,
        regressions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::load::{Percentiles, Planned};
    use crate::report::{RunReport, Verdict};

    /// Per interval: (count, p50 µs, p99 µs).
    type Intervals = Vec<(u32, u32, u32)>;

    /// A load phase whose route series are given as (route, intervals).
    fn phase(name: &str, routes: &[(&str, Intervals)]) -> PhaseReport {
        let len = routes.first().map_or(0, |r| r.1.len());
        let ri = RouteIntervals {
            t_ms: (1..=len as u64).map(|i| i * 1000).collect(),
            series: routes
                .iter()
                .map(|(route, v)| RouteSeries {
                    route: route.to_string(),
                    layer: Layer::Valid,
                    count: v.iter().map(|x| x.0).collect(),
                    errors: vec![0; v.len()],
                    p50_us: v.iter().map(|x| x.1).collect(),
                    p90_us: v.iter().map(|x| x.2).collect(),
                    p99_us: v.iter().map(|x| x.2).collect(),
                    max_us: v.iter().map(|x| x.2).collect(),
                })
                .collect(),
        };
        PhaseReport {
            name: name.into(),
            started_at_ms: 0,
            planned: Planned {
                mode: "open".into(),
                concurrency: 8,
                keep_alive: false,
                executor: Default::default(),
                asked_rate: Some(300.0),
                planned_requests: None,
                duration_s: Some(len as f64),
                ws_ingest_connections: 0,
                ws_stream_subscribers: 0,
                ws_churn: 0,
            },
            elapsed_s: len as f64,
            requests_sent: 0,
            requests_measured: 0,
            consistent: true,
            achieved_rate: 0.0,
            throughput: 0.0,
            interrupted: false,
            lane_panics: 0,
            outcomes: Default::default(),
            layers: Default::default(),
            errors: 0,
            error_rate: 0.0,
            latency: Percentiles::default(),
            latency_uncorrected: Percentiles::default(),
            send_lag: Percentiles::default(),
            routes: Vec::new(),
            detail: Vec::new(),
            fanout: None,
            timeline: Vec::new(),
            route_intervals: ri,
            excluded: 0,
            outages: Vec::new(),
            restarts: 0,
            skipped_down: 0,
            triage: None,
            windows: Vec::new(),
            soak: None,
            thresholds: Vec::new(),
            passed: true,
            unanswered: Vec::new(),
            interval_log: None,
        }
    }

    fn run(phases: Vec<PhaseReport>) -> RunReport {
        RunReport {
            tool: "mesher-stress".into(),
            version: "0".into(),
            profile: "p".into(),
            profile_file: "p.toml".into(),
            seed: 1,
            started: "2026-01-01T00:00:00Z".into(),
            elapsed_ms: 0,
            target: String::new(),
            database: String::new(),
            phases: phases.into_iter().map(|p| RunPhase::Load(Box::new(p))).collect(),
            crashes: Vec::new(),
            hangs: Vec::new(),
            buckets: Vec::new(),
            telemetry: Vec::new(),
            baseline: None,
            interrupted: false,
            partial: false,
            checkpoint: None,
            verdict: Verdict { failed: false, crashed: false, exit_code: 0 },
        }
    }

    /// 12 intervals of ~150 requests with latencies jittering around `p50` / `p99` (µs),
    /// deterministic per `salt`.
    fn steady(salt: u32, count: u32, p50: u32, p99: u32) -> Intervals {
        (0..12u32)
            .map(|i| {
                let j = (i * 7 + salt * 3) % 11;
                (count + j % 5, p50 + j * p50 / 50, p99 + j * p99 / 25)
            })
            .collect()
    }

    fn row<'a>(c: &'a Comparison, route: &str, m: Metric) -> &'a Row {
        c.rows.iter().find(|r| r.route == route && r.metric == m).unwrap()
    }

    #[test]
    fn samples_leave_out_the_warmup_the_tail_and_thin_intervals() {
        let s = BaselineSettings { warmup: Duration::from_secs(2), min_requests: 10, ..Default::default() };
        let p = phase(
            "load",
            &[("issues-list", vec![(5, 1, 1), (6, 2, 2), (100, 3, 3), (4, 4, 4), (50, 5, 5), (9, 6, 6)])],
        );
        let [rate, p50, p99] = samples(&p.route_intervals, &p.route_intervals.series[0], &s);
        // Intervals start at 0,1,2,3,4,5 s: the first two are warm-up, the last is the tail.
        assert_eq!(rate, [100.0, 4.0, 50.0]);
        assert_eq!(p50, [3.0, 5.0], "the interval with 4 requests is too thin for percentiles");
        assert_eq!(p99, [3.0, 5.0]);
        // Wider intervals (after merges) give rates per second.
        let mut ri = p.route_intervals.clone();
        ri.t_ms = vec![2000, 4000, 6000, 8000, 10000, 12000];
        let [rate, _, _] = samples(&ri, &ri.series[0], &s);
        assert_eq!(rate, [3.0, 50.0, 2.0, 25.0]);
    }

    #[test]
    fn judge_needs_significance_and_both_minimum_effects() {
        let s = BaselineSettings::default();
        let base: Vec<f64> = (0..10).map(|i| 1000.0 + (i * 37 % 11) as f64 * 10.0).collect();
        // +5 ms on every interval: significant, +500 %, +5 ms.
        let slow: Vec<f64> = base.iter().map(|v| v + 5000.0).collect();
        let j = judge(Metric::P50, &base, &slow, &s);
        assert_eq!(j.verdict, Call::Regression, "{j:?}");
        assert!(j.p_value.unwrap() < 0.001 && j.change.unwrap() > 4.0, "{j:?}");
        // Significant and +30 %, but only +0.3 ms: under the absolute minimum.
        let bit: Vec<f64> = base.iter().map(|v| v * 1.3).collect();
        let j = judge(Metric::P50, &base, &bit, &s);
        assert!(j.p_value.unwrap() < s.alpha);
        assert_eq!(j.verdict, Call::Ok);
        // The same shift with 10 ms latencies is +3 ms: a p50 regression, but under p99's
        // minimum (the tail is noisier); at 20 ms (+6 ms) it is one for p99 too.
        let base10: Vec<f64> = base.iter().map(|v| v * 10.0).collect();
        let bit10: Vec<f64> = bit.iter().map(|v| v * 10.0).collect();
        assert_eq!(judge(Metric::P50, &base10, &bit10, &s).verdict, Call::Regression);
        assert_eq!(judge(Metric::P99, &base10, &bit10, &s).verdict, Call::Ok);
        let base20: Vec<f64> = base.iter().map(|v| v * 20.0).collect();
        let bit20: Vec<f64> = bit.iter().map(|v| v * 20.0).collect();
        assert_eq!(judge(Metric::P99, &base20, &bit20, &s).verdict, Call::Regression);
        // Big but not significant: two interleaved samples.
        let mixed: Vec<f64> = base.iter().enumerate().map(|(i, v)| if i % 2 == 0 { v + 9000.0 } else { *v }).collect();
        let j = judge(Metric::P99, &base, &mixed, &s);
        assert!(j.p_value.unwrap() >= s.alpha, "{j:?}");
        assert_eq!(j.verdict, Call::Ok);
        // Throughput: lower is worse, no absolute minimum.
        let rate: Vec<f64> = (0..10).map(|i| 150.0 + (i % 3) as f64).collect();
        let half: Vec<f64> = rate.iter().map(|v| v / 2.0).collect();
        assert_eq!(judge(Metric::Throughput, &rate, &half, &s).verdict, Call::Regression);
        assert_eq!(judge(Metric::Throughput, &half, &rate, &s).verdict, Call::Improvement);
        let a_bit_less: Vec<f64> = rate.iter().map(|v| v * 0.9).collect();
        assert_eq!(judge(Metric::Throughput, &rate, &a_bit_less, &s).verdict, Call::Ok, "-10 % is under min_change");
        // Faster is an improvement, never a regression.
        assert_eq!(judge(Metric::P50, &slow, &base, &s).verdict, Call::Improvement);
        // Too few intervals: no verdict.
        assert_eq!(judge(Metric::P50, &base[..5], &slow, &s).verdict, Call::InsufficientData);
    }

    #[test]
    fn compares_matching_phases_and_routes_and_names_the_regressed_ones() {
        let s = BaselineSettings::default();
        let base = run(vec![
            phase(
                "load",
                &[("dashboard-health", steady(1, 150, 1200, 3000)), ("issues-list", steady(2, 150, 1500, 4000))],
            ),
            phase("only-in-baseline", &[("issues-list", steady(1, 10, 1, 1))]),
        ]);
        // Same build: other jitter, same level.
        let same = run(vec![phase(
            "load",
            &[("dashboard-health", steady(5, 150, 1200, 3000)), ("issues-list", steady(7, 150, 1500, 4000))],
        )]);
        let c = compare(&base, Path::new("a/report.json"), &same, &s);
        assert!(!c.regressed(), "{:#?}", c.rows);
        assert_eq!(c.rows.len(), 6);
        assert!(c.rows.iter().all(|r| r.verdict == Call::Ok && r.n_baseline == 9), "{:#?}", c.rows);
        assert!(c.notes.iter().any(|n| n.contains("only-in-baseline")), "{:?}", c.notes);
        // The planted slowdown: +5 ms on one route; a route the baseline never saw is a note.
        let slow = run(vec![phase(
            "load",
            &[
                ("dashboard-health", steady(5, 150, 6200, 9000)),
                ("issues-list", steady(7, 150, 1500, 4000)),
                ("storage", steady(7, 150, 1500, 4000)),
            ],
        )]);
        let c = compare(&base, Path::new("a/report.json"), &slow, &s);
        assert!(c.regressed());
        assert_eq!(c.regressions, 2, "{:#?}", c.rows);
        assert_eq!(row(&c, "dashboard-health", Metric::P50).verdict, Call::Regression);
        assert_eq!(row(&c, "dashboard-health", Metric::P99).verdict, Call::Regression);
        assert_eq!(row(&c, "dashboard-health", Metric::Throughput).verdict, Call::Ok);
        assert_eq!(c.regressed_routes(), ["dashboard-health (valid)"]);
        assert!(
            c.notes.iter().any(|n| n.contains("storage") && n.contains("no traffic in the baseline")),
            "{:?}",
            c.notes
        );
        assert!(c.summary().starts_with("REGRESSION") && c.summary().contains("dashboard-health"));
        let mut out = Vec::new();
        c.print_table(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.lines().any(|l| l.contains("dashboard-health") && l.contains("p50") && l.ends_with("REGRESSION")),
            "{text}"
        );
        // A baseline without per-interval data (older report.json) is not compared.
        let mut old = phase("load", &[]);
        old.route_intervals = RouteIntervals::default();
        let c = compare(&run(vec![old]), Path::new("old.json"), &slow, &s);
        assert!(c.rows.is_empty() && !c.regressed());
        assert!(c.notes.iter().any(|n| n.contains("older")), "{:?}", c.notes);
        // Nothing in common.
        let c = compare(&run(vec![]), Path::new("x.json"), &slow, &s);
        assert!(c.notes.iter().any(|n| n.contains("nothing was compared")));
    }

    #[test]
    fn settings_parse_with_defaults_and_reject_unknown_keys_and_bad_values() {
        let s: BaselineSettings = toml::from_str("alpha = 0.05\nmin_p99_delta = \"3ms\"").unwrap();
        assert_eq!(s.alpha, 0.05);
        assert_eq!(s.min_p99_delta, Duration::from_millis(3));
        assert_eq!(s.min_p50_delta, Duration::from_millis(1));
        assert_eq!(s.warmup, BaselineSettings::default().warmup);
        s.validate().unwrap();
        assert!(toml::from_str::<BaselineSettings>("alpah = 0.05").unwrap_err().to_string().contains("unknown field"));
        assert!(toml::from_str::<BaselineSettings>("warmup = \"soon\"").is_err());
        for bad in ["alpha = 0.0", "alpha = 0.9", "min_change = -1.0", "min_requests = 0", "min_intervals = 2"] {
            let s: BaselineSettings = toml::from_str(bad).unwrap();
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn read_report_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_report(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("run directory"), "{e:#}");
        let f = dir.path().join("report.json");
        std::fs::write(&f, "garbage").unwrap();
        let e = read_report(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("not a mesher-stress report.json"), "{e:#}");
        crate::util::fs::write_json_atomic(&f, &run(vec![phase("load", &[("issues-list", steady(1, 10, 1, 1))])]))
            .unwrap();
        let (path, r) = read_report(&f).unwrap();
        assert_eq!(path, f);
        assert_eq!(r.phases.len(), 1);
        // Older report.json files (no route_intervals) still load.
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        v["phases"][0].as_object_mut().unwrap().remove("route_intervals");
        std::fs::write(&f, v.to_string()).unwrap();
        let (_, r) = read_report(dir.path()).unwrap();
        let RunPhase::Load(l) = &r.phases[0] else { panic!() };
        assert!(l.route_intervals.t_ms.is_empty());
    }
}
