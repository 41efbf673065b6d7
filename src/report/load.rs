//! `report::load`: what a load phase measured, as data ([`PhaseReport`], serialised to `report.json`),
//! as a terminal table ([`PhaseReport::print_table`]) and as a verdict (thresholds →
//! [`PhaseReport::exit_code`] via [`crate::exit::verdict`]).
//!
//! Every figure in the table comes from the JSON; percentiles are in microseconds, corrected
//! (from the intended send time) and uncorrected (from the actual send). Files are written
//! atomically ([`write_json_atomic`]: temp file in the same directory, fsync, rename).
//! Change threshold rules in [`evaluate`]; change table columns in `print_routes`. The report is
//! built from what the drive stage measured ([`PhaseResult`]: its totals and facts).

use crate::drive::flight::FlightEntry;
use crate::drive::metrics::{Key, KeyHist, Outcome, Pair, RouteIntervals, Second, Totals};
use crate::drive::{LoadPhase, PhaseFacts, PhaseResult};
use crate::model::Layer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

pub use crate::drive::Planned;
pub use crate::drive::metrics::Percentiles;
pub use crate::util::units::fmt_us;

/// One route × layer × outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyReport {
    pub route: String,
    pub layer: Layer,
    pub outcome: Outcome,
    pub count: u64,
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

/// One route × layer, every outcome merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteReport {
    pub route: String,
    pub layer: Layer,
    pub count: u64,
    pub rate: f64,
    pub errors: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

/// Stream fan-out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutReport {
    pub delivered: u64,
    pub missed: u64,
    pub delay: Percentiles,
}

/// One threshold and its result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub name: String,
    pub limit: String,
    pub actual: String,
    pub passed: bool,
}

/// Everything a load phase measured (read it back as `serde_json::Value`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    pub name: String,
    /// Unix milliseconds.
    pub started_at_ms: u64,
    pub planned: Planned,
    /// From the start to the last answer, seconds.
    pub elapsed_s: f64,
    /// Requests (HTTP requests, WS frames/scripts/churn cycles, failed connects) sent.
    pub requests_sent: u64,
    /// Sum of every request outcome; equals `requests_sent` when `consistent`.
    pub requests_measured: u64,
    pub consistent: bool,
    /// Sends per second between the start and the last send.
    pub achieved_rate: f64,
    /// Answers (any outcome) per second over `elapsed_s`.
    pub throughput: f64,
    pub interrupted: bool,
    /// Tasks that panicked (a tool bug; fails the verdict).
    pub lane_panics: u64,
    pub outcomes: BTreeMap<String, u64>,
    /// Per layer: outcome counts (valid and mutated traffic apart).
    pub layers: BTreeMap<String, BTreeMap<String, u64>>,
    pub errors: u64,
    pub error_rate: f64,
    /// All requests, corrected / uncorrected.
    pub latency: Percentiles,
    pub latency_uncorrected: Percentiles,
    /// Actual send − intended send (open-loop scheduler lag and backlog).
    pub send_lag: Percentiles,
    pub routes: Vec<RouteReport>,
    pub detail: Vec<KeyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutReport>,
    pub timeline: Vec<Second>,
    /// Per route × layer, per interval (1 s; wider after merges in long runs): requests and
    /// corrected percentiles; what baseline comparisons test. Absent in reports of older builds.
    #[serde(default)]
    pub route_intervals: RouteIntervals,
    pub thresholds: Vec<ThresholdResult>,
    pub passed: bool,
    /// Requests sent but never answered at the end (from the flight recorder), oldest first.
    /// (Not read back by `mesher-stress report`: re-rendering does not need it.)
    #[serde(default, skip_deserializing)]
    pub unanswered: Vec<FlightEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_log: Option<PathBuf>,
    /// Requests that failed while the target was down (dead or restarting): counted in
    /// `outcomes` and `errors`, left out of every latency figure.
    #[serde(default)]
    pub excluded: u64,
    /// Stretches where the target answered nothing although requests waited, and its deaths;
    /// seconds since the phase's start (the timeline's time base).
    #[serde(default)]
    pub outages: Vec<Outage>,
    /// Deaths the phase survived by restarting the target (`restart = true`).
    #[serde(default)]
    pub restarts: u64,
    /// Open-loop arrivals and ingest frames not sent because they fell due while the target was
    /// down (lanes hold until it is ready again; a burst of late requests would hit a server that
    /// just came back).
    #[serde(default)]
    pub skipped_down: u64,
    /// What triage made of the phase's deaths (`[phases.triage]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triage: Option<PhaseTriage>,
    /// Latency per soak window (`[phases.soak] window`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<crate::drive::activity::WindowStat>,
    /// Soak verdicts (`[phases.soak]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<crate::report::soak::SoakReport>,
}

pub use crate::triage::records::PhaseTriage;

/// Why the target did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutageCause {
    /// Alive but answering nothing (a stop-the-world pause, a hang), seen in the traffic.
    Stall,
    /// The process died (restarted or not), seen by the watchdog.
    Death,
}

/// One outage of a load phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outage {
    pub cause: OutageCause,
    /// Seconds since the phase's start.
    pub start_s: f64,
    pub end_s: f64,
    /// Most requests in flight at once without an answer (0 when no request was waiting, e.g.
    /// closed-loop lanes holding back while the target was restarted).
    pub peak_in_flight: u64,
    /// Requests that ended in the outage without an answer.
    pub failed: u64,
    /// How the process ended (deaths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<crate::watch::ExitInfo>,
    /// A new target was started and answered its readiness probe at `end_s`.
    #[serde(default)]
    pub restarted: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Deaths: requests in flight when the target died, then the latest answered ones (from the
    /// flight recorder; their seeds regenerate them). Not read back by `mesher-stress report`.
    #[serde(default, skip_deserializing, skip_serializing_if = "Vec::is_empty")]
    pub suspects: Vec<FlightEntry>,
    /// Deaths: how it died as triage classifies it (`hang` for a target killed because it hung).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub death: Option<crate::watch::Death>,
    /// Deaths: the exact inputs of the suspects, saved in the run directory (a path relative to
    /// it, e.g. `deaths/death-3.json`); `mesher-stress minimize --run` triages them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    /// Deaths: the crash bucket triage filed it under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
}

impl Outage {
    pub fn seconds(&self) -> f64 {
        (self.end_s - self.start_s).max(0.0)
    }

    /// `stall 0.30 s at 4.10 s` / `death (was killed by signal 11 …), restarted, 1.20 s at 8.00 s`.
    pub fn describe(&self) -> String {
        let what = match (&self.cause, &self.exit) {
            (OutageCause::Stall, _) => "stall".to_string(),
            (OutageCause::Death, Some(e)) if self.death == Some(crate::watch::Death::Hang) => {
                format!("hang (the target was killed: it {})", e.describe())
            }
            (OutageCause::Death, Some(e)) => format!("death (the target {})", e.describe()),
            (OutageCause::Death, None) => "death".to_string(),
        };
        format!(
            "{what}{} {:.2} s from {:.2} s to {:.2} s{}",
            if self.restarted { ", restarted," } else { "" },
            self.seconds(),
            self.start_s,
            self.end_s,
            if self.detail.is_empty() { String::new() } else { format!(" ({})", self.detail) }
        )
    }
}

/// Merges key histograms into one scratch histogram, reused for every merge of a report: a
/// checkpoint builds a report every minute, and a fresh histogram per route (two, with the
/// uncorrected one) would be ~100 transient allocations growing to ~60 KiB each time.
struct Merger(KeyHist);

impl Merger {
    fn new() -> Merger {
        Merger(crate::drive::metrics::key_hist())
    }

    fn merged<'a>(&mut self, it: impl Iterator<Item = &'a KeyHist>) -> &KeyHist {
        self.0.reset();
        for x in it {
            let _ = self.0.add(x);
        }
        &self.0
    }

    fn percentiles<'a>(&mut self, it: impl Iterator<Item = &'a KeyHist>) -> Percentiles {
        Percentiles::of(self.merged(it))
    }
}

impl From<PhaseResult> for PhaseReport {
    fn from(r: PhaseResult) -> PhaseReport {
        PhaseReport::build(&r.phase, r.facts, &r.totals)
    }
}

/// Request counts of a phase: per outcome, per layer, errors.
struct Counts {
    outcomes: BTreeMap<String, u64>,
    layers: BTreeMap<String, BTreeMap<String, u64>>,
    measured: u64,
    errors: u64,
    error_rate: f64,
}

impl Counts {
    fn of(t: &Totals, req_keys: &[(&Key, &Pair)], f: &PhaseFacts) -> Counts {
        let mut outcomes = BTreeMap::new();
        let mut layers: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (k, p) in req_keys {
            let n = t.count(k, p);
            *outcomes.entry(k.outcome.name().to_string()).or_insert(0) += n;
            *layers.entry(layer_name(k.layer)).or_default().entry(k.outcome.name().to_string()).or_insert(0) += n;
        }
        // Requests in flight in lanes aborted at the phase's end or stop: interrupted.
        let measured_so_far: u64 = outcomes.values().sum();
        let cut = if f.lanes_aborted > 0 { f.sent.saturating_sub(measured_so_far) } else { 0 };
        if cut > 0 {
            *outcomes.entry(Outcome::Interrupted.name().to_string()).or_insert(0) += cut;
        }
        let measured: u64 = outcomes.values().sum();
        let errors: u64 = req_keys.iter().filter(|(k, _)| k.outcome.is_error()).map(|(k, p)| t.count(k, p)).sum();
        let interrupted_n: u64 =
            req_keys.iter().filter(|(k, _)| k.outcome == Outcome::Interrupted).map(|(k, p)| t.count(k, p)).sum::<u64>()
                + cut;
        let denom = measured.saturating_sub(interrupted_n);
        let error_rate = if denom == 0 { 0.0 } else { errors as f64 / denom as f64 };
        Counts { outcomes, layers, measured, errors, error_rate }
    }
}

/// Per route × layer, every outcome merged.
fn route_reports(t: &Totals, req_keys: &[(&Key, &Pair)], rate_base: f64, m: &mut Merger) -> Vec<RouteReport> {
    let mut by_route: BTreeMap<(&str, Layer), Vec<(&Key, &Pair)>> = BTreeMap::new();
    for (k, p) in req_keys {
        by_route.entry((k.route, k.layer)).or_default().push((k, p));
    }
    by_route
        .iter()
        .map(|((route, layer), v)| {
            let n: u64 = v.iter().map(|(k, p)| t.count(k, p)).sum();
            RouteReport {
                route: route.to_string(),
                layer: *layer,
                count: n,
                rate: round2(n as f64 / rate_base),
                errors: v.iter().filter(|(k, _)| k.outcome.is_error()).map(|(k, p)| t.count(k, p)).sum(),
                outcomes: v.iter().map(|(k, p)| (k.outcome.name().to_string(), t.count(k, p))).collect(),
                corrected: m.percentiles(v.iter().map(|(_, p)| &p.corrected)),
                uncorrected: m.percentiles(v.iter().map(|(_, p)| p.uncorrected())),
            }
        })
        .collect()
}

/// Every route × layer × outcome.
fn key_reports(t: &Totals) -> Vec<KeyReport> {
    t.pairs
        .iter()
        .map(|(k, p)| KeyReport {
            route: k.route.to_string(),
            layer: k.layer,
            outcome: k.outcome,
            count: t.count(k, p),
            corrected: Percentiles::of(&p.corrected),
            uncorrected: Percentiles::of(p.uncorrected()),
        })
        .collect()
}

/// Stream fan-out, when the phase had subscribers.
fn fanout_report(phase: &LoadPhase, t: &Totals) -> Option<FanoutReport> {
    (phase.websocket.stream_subscribers > 0).then(|| {
        let d = t.pairs.iter().find(|(k, _)| k.outcome == Outcome::Delivered).map(|(_, p)| &p.corrected);
        FanoutReport {
            delivered: d.map_or(0, |h| h.len()),
            missed: t.pairs.iter().filter(|(k, _)| k.outcome == Outcome::Missed).map(|(_, p)| p.corrected.len()).sum(),
            delay: d.map(Percentiles::of).unwrap_or_default(),
        }
    })
}

/// The per-route series in route × layer order (the aggregator keeps them in order of first
/// appearance).
fn sorted_route_intervals(t: &Totals) -> RouteIntervals {
    let mut ri = t.route_intervals.clone();
    ri.series.sort_by(|a, b| (&a.route, a.layer).cmp(&(&b.route, b.layer)));
    ri
}

/// The stalls the aggregator detected, as outages (deaths are added by the watchdog).
fn stall_outages(t: &Totals) -> Vec<Outage> {
    t.stalls
        .iter()
        .map(|s| Outage {
            cause: OutageCause::Stall,
            start_s: round2(s.start_s),
            end_s: round2(s.end_s),
            peak_in_flight: s.peak_in_flight,
            failed: s.failed,
            exit: None,
            restarted: false,
            detail: String::new(),
            suspects: Vec::new(),
            death: None,
            inputs: None,
            bucket: None,
        })
        .collect()
}

impl PhaseReport {
    /// The report of what a phase measured, its thresholds evaluated.
    pub fn build(phase: &LoadPhase, f: PhaseFacts, t: &Totals) -> PhaseReport {
        let req_keys: Vec<(&Key, &Pair)> = t.pairs.iter().filter(|(k, _)| k.outcome.is_request()).collect();
        let counts = Counts::of(t, &req_keys, &f);
        let elapsed_s = f.elapsed.as_secs_f64().max(1e-9);
        let span = f.send_span.unwrap_or(f.sending).as_secs_f64();
        let achieved_rate =
            if f.sent > 1 && span > 0.0 { (f.sent - 1) as f64 / span } else { f.sent as f64 / elapsed_s };
        let rate_base = f.planned.duration_s.map(|d| d.min(elapsed_s)).unwrap_or(elapsed_s).max(1e-9);
        let mut m = Merger::new();
        let routes = route_reports(t, &req_keys, rate_base, &mut m);
        let mut r = PhaseReport {
            name: phase.name.clone(),
            started_at_ms: f
                .started_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            planned: f.planned,
            elapsed_s: round2(elapsed_s),
            requests_sent: f.sent,
            requests_measured: counts.measured,
            consistent: counts.measured == f.sent && f.lane_panics == 0,
            achieved_rate: round2(achieved_rate),
            throughput: round2(counts.measured as f64 / elapsed_s),
            interrupted: f.interrupted,
            lane_panics: f.lane_panics,
            outcomes: counts.outcomes,
            layers: counts.layers,
            errors: counts.errors,
            error_rate: counts.error_rate,
            latency: m.percentiles(req_keys.iter().map(|(_, p)| &p.corrected)),
            latency_uncorrected: m.percentiles(req_keys.iter().map(|(_, p)| p.uncorrected())),
            send_lag: Percentiles::of(&t.lag),
            routes,
            detail: key_reports(t),
            fanout: fanout_report(phase, t),
            timeline: t.timeline.clone(),
            route_intervals: sorted_route_intervals(t),
            thresholds: Vec::new(),
            passed: true,
            unanswered: f.suspects,
            interval_log: f.interval_log,
            excluded: t.down.values().sum(),
            outages: stall_outages(t),
            restarts: 0,
            skipped_down: f.skipped_down,
            triage: None,
            windows: t.windows.clone(),
            soak: None,
        };
        r.thresholds = evaluate(phase, &r, t);
        r.passed = r.consistent && r.thresholds.iter().all(|t| t.passed);
        r
    }

    /// Record a death seen by the watchdog; stalls the detector found overlapping it (the
    /// refused requests of a dead target) become part of it.
    pub fn add_death(&mut self, mut d: Outage) {
        const SLACK_S: f64 = 0.5;
        let mut keep = Vec::new();
        for o in self.outages.drain(..) {
            if o.cause == OutageCause::Stall && o.start_s <= d.end_s + SLACK_S && o.end_s >= d.start_s - SLACK_S {
                d.start_s = d.start_s.min(o.start_s);
                d.end_s = d.end_s.max(o.end_s);
                d.peak_in_flight = d.peak_in_flight.max(o.peak_in_flight);
                d.failed += o.failed;
            } else {
                keep.push(o);
            }
        }
        keep.push(d);
        keep.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        self.outages = keep;
    }

    /// Exit code of this phase alone (see [`crate::exit`]); `crashed` comes from the watchdog.
    pub fn exit_code(&self, crashed: bool) -> u8 {
        if self.interrupted && !crashed {
            return crate::exit::INTERRUPTED;
        }
        crate::exit::verdict(!self.passed, crashed)
    }

    /// The per-route table and the verdict lines.
    pub fn print_table(&self, w: &mut impl Write) -> std::io::Result<()> {
        self.print_headline(w)?;
        self.print_routes(w)?;
        self.print_events(w)?;
        self.print_verdict(w)
    }

    /// What was asked and what was sent, in one line.
    fn print_headline(&self, w: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            w,
            "phase {:?} ({} loop, {} lanes{}): {} requests in {:.2}s, {:.1} req/s sent{}, {} errors ({:.3}%){}",
            self.name,
            self.planned.mode,
            self.planned.concurrency,
            if self.planned.keep_alive { ", keep-alive" } else { ", connection per request" },
            self.requests_sent,
            self.elapsed_s,
            self.achieved_rate,
            self.planned.asked_rate.map(|a| format!(" (asked {a:.1})")).unwrap_or_default(),
            self.errors,
            self.error_rate * 100.0,
            if self.interrupted { ", INTERRUPTED" } else { "" }
        )
    }

    /// The table: a row per route × layer, then every route together.
    fn print_routes(&self, w: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            w,
            "{:<24} {:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  outcomes",
            "route", "layer", "count", "rate/s", "p50", "p90", "p99", "p99.9", "max"
        )?;
        let row = |w: &mut dyn Write, route: &str, layer: &str, count: u64, rate: f64, p: &Percentiles, oc: String| {
            writeln!(
                w,
                "{:<24} {:<6} {:>9} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                route,
                layer,
                count,
                rate,
                fmt_us(p.p50),
                fmt_us(p.p90),
                fmt_us(p.p99),
                fmt_us(p.p999),
                fmt_us(p.max),
                oc
            )
        };
        for r in &self.routes {
            let oc = r.outcomes.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ");
            row(w, &r.route, &layer_name(r.layer), r.count, r.rate, &r.corrected, oc)?;
        }
        let oc = self.outcomes.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ");
        row(w, "ALL (corrected)", "", self.requests_measured, self.throughput, &self.latency, oc)?;
        row(
            w,
            "ALL (uncorrected)",
            "",
            self.requests_measured,
            self.throughput,
            &self.latency_uncorrected,
            String::new(),
        )
    }

    /// Send lag, fan-out, the target's deaths and outages, soak findings.
    fn print_events(&self, w: &mut impl Write) -> std::io::Result<()> {
        if self.planned.mode == "open" {
            writeln!(
                w,
                "send lag (actual - intended): p50 {} p99 {} max {}",
                fmt_us(self.send_lag.p50),
                fmt_us(self.send_lag.p99),
                fmt_us(self.send_lag.max)
            )?;
        }
        if let Some(f) = &self.fanout {
            writeln!(
                w,
                "stream fan-out: {} delivered, {} missed, delay p50 {} p99 {} max {}",
                f.delivered,
                f.missed,
                fmt_us(f.delay.p50),
                fmt_us(f.delay.p99),
                fmt_us(f.delay.max)
            )?;
        }
        if self.restarts > 0 {
            writeln!(w, "the target died and was restarted {} time(s)", self.restarts)?;
        }
        if self.excluded > 0 {
            writeln!(
                w,
                "{} requests failed while the target was down: counted as errors, not as latency samples",
                self.excluded
            )?;
        }
        for o in &self.outages {
            writeln!(w, "outage: {}", o.describe())?;
        }
        if let Some(s) = &self.soak {
            for f in &s.findings {
                writeln!(w, "soak {:<14} {}  {}", f.kind, f.summary, if f.flagged { "FLAGGED" } else { "ok" })?;
            }
            for n in &s.notes {
                writeln!(w, "soak: {n}")?;
            }
        }
        Ok(())
    }

    /// Consistency, unanswered requests, thresholds and the verdict.
    fn print_verdict(&self, w: &mut impl Write) -> std::io::Result<()> {
        if !self.consistent {
            writeln!(
                w,
                "INCONSISTENT: {} sent but {} measured ({} lane panics)",
                self.requests_sent, self.requests_measured, self.lane_panics
            )?;
        }
        if !self.unanswered.is_empty() {
            writeln!(
                w,
                "{} requests were sent and never answered (report.json lists their seeds)",
                self.unanswered.len()
            )?;
        }
        for t in &self.thresholds {
            writeln!(
                w,
                "threshold {:<28} limit {:>10} actual {:>10}  {}",
                t.name,
                t.limit,
                t.actual,
                if t.passed { "ok" } else { "FAILED" }
            )?;
        }
        writeln!(w, "verdict: {}", self.verdict_word())
    }

    /// `passed`, `FAILED` or `interrupted` (with the measured part's result).
    pub fn verdict_word(&self) -> &'static str {
        match (self.interrupted, self.passed) {
            (true, true) => "interrupted (passed so far)",
            (true, false) => "interrupted (FAILED so far)",
            (false, true) => "passed",
            (false, false) => "FAILED",
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn layer_name(l: Layer) -> String {
    serde_json::to_value(l).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// Evaluate the phase's thresholds. Route p99 limits use the route's valid-layer corrected
/// latency when it has valid traffic, else all layers; interrupted requests are left out. A
/// route named in `p99_max` without any sample fails (nothing was proven).
pub fn evaluate(p: &LoadPhase, r: &PhaseReport, totals: &Totals) -> Vec<ThresholdResult> {
    let th = &p.thresholds;
    let mut out = p99_thresholds(th, r, totals);
    if let Some(max) = th.error_rate_max {
        out.push(ThresholdResult {
            name: "error rate".into(),
            limit: format!("{:.3}%", max * 100.0),
            actual: format!("{:.3}%", r.error_rate * 100.0),
            passed: r.error_rate <= max,
        });
    }
    if let Some(min) = th.min_rate {
        out.push(ThresholdResult {
            name: "achieved rate".into(),
            limit: format!("{min:.1}/s"),
            actual: format!("{:.1}/s", r.achieved_rate),
            passed: r.achieved_rate >= min,
        });
    }
    out.extend(answered_threshold(r, totals));
    if let Some(max) = th.fanout_p99_max {
        let f = r.fanout.as_ref();
        let actual = f.filter(|f| f.delivered > 0).map(|f| f.delay.p99);
        out.push(ThresholdResult {
            name: "fan-out p99".into(),
            limit: fmt_us(max.as_micros() as u64),
            actual: actual.map(fmt_us).unwrap_or_else(|| "no data".into()),
            passed: actual.is_some_and(|a| a as u128 <= max.as_micros()) && f.is_some_and(|f| f.missed == 0),
        });
    }
    out
}

/// One result per `p99_max` entry; `"*"` expands to every measured route without its own entry.
fn p99_thresholds(th: &crate::drive::Thresholds, r: &PhaseReport, totals: &Totals) -> Vec<ThresholdResult> {
    let mut out = Vec::new();
    let mut m = Merger::new();
    let mut p99_of = |route: &str| route_p99(&mut m, totals, route);
    let mut routes: Vec<String> = r.routes.iter().map(|x| x.route.clone()).collect();
    routes.dedup();
    for (name, limit) in &th.p99_max {
        if name == "*" {
            for route in routes.iter().filter(|x| !th.p99_max.contains_key(*x)) {
                let actual = p99_of(route).unwrap_or(0);
                out.push(ThresholdResult {
                    name: format!("p99 {route}"),
                    limit: fmt_us(limit.as_micros() as u64),
                    actual: fmt_us(actual),
                    passed: actual as u128 <= limit.as_micros(),
                });
            }
        } else {
            let actual = p99_of(name);
            out.push(ThresholdResult {
                name: format!("p99 {name}"),
                limit: fmt_us(limit.as_micros() as u64),
                actual: actual.map(fmt_us).unwrap_or_else(|| "no data".into()),
                passed: actual.is_some_and(|a| a as u128 <= limit.as_micros()),
            });
        }
    }
    out
}

/// A route's corrected p99: of its valid layer when it has valid traffic, else of all layers;
/// interrupted requests left out. `None`: no sample.
fn route_p99(m: &mut Merger, totals: &Totals, route: &str) -> Option<u64> {
    let mut of_layer = |valid_only: bool| {
        let h = m.merged(
            totals
                .pairs
                .iter()
                .filter(|(k, _)| {
                    k.route == route
                        && k.outcome.is_request()
                        && k.outcome != Outcome::Interrupted
                        && (!valid_only || k.layer == Layer::Valid)
                })
                .map(|(_, p)| &p.corrected),
        );
        (!h.is_empty()).then(|| h.value_at_quantile(0.99))
    };
    of_layer(true).or_else(|| of_layer(false))
}

/// Always judged: a phase in which the target answered nothing at all did not pass, whatever the
/// limits (a server that accepts and never answers has no p99 and no 5xx).
fn answered_threshold(r: &PhaseReport, totals: &Totals) -> Option<ThresholdResult> {
    let tried = r.requests_measured.saturating_sub(r.outcomes.get(Outcome::Interrupted.name()).copied().unwrap_or(0));
    if tried == 0 {
        return None;
    }
    let answered: u64 =
        totals.pairs.iter().filter(|(k, _)| k.outcome.is_answer()).map(|(k, p)| totals.count(k, p)).sum();
    Some(ThresholdResult {
        name: "target answered".into(),
        limit: "at least one answer".into(),
        actual: format!("{answered} of {tried} requests answered"),
        passed: answered > 0,
    })
}

pub use crate::util::fs::write_json_atomic;
