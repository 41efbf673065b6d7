//! `report.html`: self-contained HTML, inline CSS and SVG, no script, no network. Building blocks
//! (tables, line charts with shaded intervals, the HdrHistogram-style percentile plot), then the
//! run's page assembled from them ([`render_run`]), one section per part of the run.

use super::load::{OutageCause, RouteReport, fmt_us};
use super::soak::{self, SoakReport};
use super::{PhaseReport, RunPhase, RunReport, buckets_of, compare};
use crate::checks::{CheckResult, Status};
use crate::drive::metrics::Second;
use crate::generate::campaign::CoverageReport;
use crate::invariants::InvariantResult;
use crate::model::Layer;
use crate::triage::fuzz::FuzzReport;
use crate::watch::sampler::ProcSample;
use std::fmt::Write;

/// Escape text for HTML content and attributes.
pub fn escape(s: &str) -> String {
    super::escape_markup(s, "&#39;", false)
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}.pass{color:#18794e;font-weight:600}\
.fail{color:#c4320a;font-weight:600}.skip{color:#777}.verdict{font-size:1.3em;padding:.4em .8em;display:inline-block;border-radius:4px}\
.verdict.pass{background:#e6f6ec}.verdict.fail{background:#fdecea}\
pre{background:#f7f7f7;padding:.5em;font-size:12px;margin:0;white-space:pre-wrap;overflow-wrap:anywhere}\
svg text{font:11px system-ui,sans-serif;fill:#444}.muted{color:#777}\
.partial{background:#fff4d6;border:1px solid #e8c66a;padding:.5em .8em;border-radius:4px}";

/// A whole page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

/// A table; cells are HTML already (escape text yourself). Figures (a digit, or `-` and a digit,
/// first, and no space: `12`, `3.5ms`, `0.1%`) are right-aligned; text is not.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut x = String::from("<table><tr>");
    for h in headers {
        let _ = write!(x, "<th>{}</th>", escape(h));
    }
    x.push_str("</tr>");
    for r in rows {
        x.push_str("<tr>");
        for c in r {
            let numeric = c.trim_start_matches('-').chars().next().is_some_and(|ch| ch.is_ascii_digit())
                && !c.contains(char::is_whitespace);
            if numeric {
                let _ = write!(x, "<td class=\"num\">{c}</td>");
            } else {
                let _ = write!(x, "<td>{c}</td>");
            }
        }
        x.push_str("</tr>");
    }
    x.push_str("</table>");
    x
}

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Axis scale.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// For the percentile plot: x = 1/(1-q) on a log scale, labelled as percentiles.
    PercentileLog,
}

/// A chart's description.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// Intervals on the x axis to shade (outages), with a label.
    pub shaded: &'a [(f64, f64, String)],
    pub x_scale: Scale,
}

const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = (range / ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let n = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

// A chart's size and its margins (left for the y figures, right for the legend), in pixels.
const W: f64 = 900.0;
const H: f64 = 260.0;
const L: f64 = 70.0;
const R: f64 = 190.0;
const T: f64 = 28.0;
const B: f64 = 40.0;

/// Where a chart's data lands in its SVG: the plot area, the axes' ranges and their scale.
struct Frame {
    x0: f64,
    x1: f64,
    y1: f64,
    scale: Scale,
}

impl Frame {
    /// The frame of `c`'s points: y from 0 to 8 % above the highest point, x over the points
    /// and, on a linear axis, the shaded intervals.
    fn fit(c: &Chart) -> Option<Frame> {
        let mut f = Frame { x0: 0.0, x1: 0.0, y1: 0.0, scale: c.x_scale };
        let pts: Vec<(f64, f64)> = c.series.iter().flat_map(|s| s.points.iter().map(|&(x, y)| (f.tx(x), y))).collect();
        if pts.is_empty() {
            return None;
        }
        let (mut x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let y1 = pts.iter().fold(0f64, |a, p| a.max(p.1)) * 1.08;
        if c.x_scale == Scale::Linear {
            for (s, e, _) in c.shaded {
                x0 = x0.min(*s);
                x1 = x1.max(*e);
            }
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        (f.x0, f.x1, f.y1) = (x0, x1, if y1 <= 0.0 { 1.0 } else { y1 });
        Some(f)
    }

    /// A data x on the axis (the percentile plot spreads the tail on a log scale).
    fn tx(&self, x: f64) -> f64 {
        match self.scale {
            Scale::Linear => x,
            Scale::PercentileLog => (1.0 / (1.0 - x.min(0.999999))).log10(),
        }
    }

    fn px(&self, v: f64) -> f64 {
        L + (v - self.x0) / (self.x1 - self.x0) * (W - L - R)
    }

    fn py(&self, v: f64) -> f64 {
        H - B - v / self.y1 * (H - T - B)
    }

    fn shaded(&self, x: &mut String, shaded: &[(f64, f64, String)]) {
        let (t, h, b) = (T, H, B);
        for (s, e, label) in shaded {
            let (a, z) = (self.px(*s), self.px(*e).max(self.px(*s) + 2.0));
            let _ = write!(
                x,
                "<rect x=\"{a:.1}\" y=\"{t}\" width=\"{:.1}\" height=\"{}\" fill=\"#f8d7d3\"><title>{}</title></rect>",
                z - a,
                h - t - b,
                escape(label)
            );
        }
    }

    /// The axes, the y grid with its figures, and the x ticks.
    fn axes(&self, x: &mut String) {
        let (w, h, l, r, t, b) = (W, H, L, R, T, B);
        let _ = write!(x, "<path d=\"M{l} {t}V{}H{}\" stroke=\"#999\" fill=\"none\"/>", h - b, w - r);
        let ys = nice_step(self.y1, 5.0);
        let mut v = 0.0;
        while v <= self.y1 {
            let y = self.py(v);
            let _ = write!(
                x,
                "<path d=\"M{l} {y:.1}H{}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                w - r,
                l - 6.0,
                y + 4.0,
                fmt_num(v)
            );
            v += ys;
        }
        match self.scale {
            Scale::Linear => {
                let xs = nice_step(self.x1 - self.x0, 8.0);
                let mut v = (self.x0 / xs).ceil() * xs;
                while v <= self.x1 {
                    let _ = write!(
                        x,
                        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                        self.px(v),
                        h - b + 16.0,
                        fmt_num(v)
                    );
                    v += xs;
                }
            }
            Scale::PercentileLog => {
                for (q, label) in [
                    (0.0, "0%"),
                    (0.9, "90%"),
                    (0.99, "99%"),
                    (0.999, "99.9%"),
                    (0.9999, "99.99%"),
                    (0.99999, "99.999%"),
                ] {
                    let lx = self.tx(q);
                    if lx >= self.x0 - 1e-9 && lx <= self.x1 + 1e-9 {
                        let _ = write!(
                            x,
                            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                            self.px(lx),
                            h - b + 16.0
                        );
                    }
                }
            }
        }
    }

    fn axis_labels(&self, x: &mut String, c: &Chart) {
        let (w, h, l, r, t, b) = (W, H, L, R, T, B);
        let _ = write!(
            x,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            (l + w - r) / 2.0,
            h - 6.0,
            escape(c.x_label)
        );
        let _ = write!(
            x,
            "<text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            (t + h - b) / 2.0,
            escape(c.y_label)
        );
    }

    /// Each series' line and its legend entry.
    fn series(&self, x: &mut String, series: &[Series]) {
        let (w, r, t) = (W, R, T);
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut d = String::new();
            for (j, &(vx, vy)) in s.points.iter().enumerate() {
                let _ = write!(d, "{}{:.1} {:.1}", if j == 0 { "M" } else { "L" }, self.px(self.tx(vx)), self.py(vy));
            }
            let _ = write!(x, "<path d=\"{d}\" stroke=\"{color}\" stroke-width=\"1.6\" fill=\"none\"/>");
            let ly = t + 14.0 + i as f64 * 16.0;
            // The legend column fits ~26 characters; longer names are cut (whole in the tooltip).
            let short: String = if s.name.chars().count() > 26 {
                s.name.chars().take(25).chain(std::iter::once('…')).collect()
            } else {
                s.name.clone()
            };
            let _ = write!(
                x,
                "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\"><title>{}</title>{}</text>",
                w - r + 10.0,
                ly - 4.0,
                w - r + 26.0,
                ly,
                escape(&s.name),
                escape(&short)
            );
        }
    }
}

/// An inline SVG line chart.
pub fn line_chart(c: &Chart) -> String {
    let (w, h, l) = (W, H, L);
    let mut x = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\">");
    let _ = write!(x, "<text x=\"{l}\" y=\"16\" style=\"font-weight:600;font-size:13px\">{}</text>", escape(c.title));
    let Some(f) = Frame::fit(c) else {
        let _ = write!(x, "<text x=\"{l}\" y=\"{}\">no data</text></svg>", h / 2.0);
        return x;
    };
    f.shaded(&mut x, c.shaded);
    f.axes(&mut x);
    f.axis_labels(&mut x, c);
    f.series(&mut x, c.series);
    x.push_str("</svg>");
    x
}

// The run's page: `report.html`, one section per part of the run, in the order users read it.

/// The HTML report of a run.
pub fn render_run(r: &RunReport) -> String {
    let mut b = run_header(r);
    b.push_str(&buckets_section(r));
    b.push_str(&checkpoint_note(r));
    for (i, p) in r.phases.iter().enumerate() {
        let section = match p {
            RunPhase::Checks { results } => checks_section(i + 1, results),
            RunPhase::Load(l) => load_section(i + 1, l, &r.telemetry),
            RunPhase::Fuzz(f) => fuzz_section(i + 1, f),
            RunPhase::Invariants { results } => invariants_section(i + 1, results),
        };
        b.push_str(&section);
    }
    if let Some(c) = &r.baseline {
        b.push_str(&comparison_section(c));
    }
    if !r.telemetry.is_empty() {
        b.push_str(&health_section(r));
    }
    b.push_str(&deaths_section(r));
    page(&format!("mesher-stress {}", r.profile), &b)
}

/// Title, what ran, and the verdict.
fn run_header(r: &RunReport) -> String {
    let ok = r.verdict.exit_code == 0 && !r.partial;
    format!(
        "<h1>mesher-stress · {}</h1><p class=\"muted\">{} · seed {} · {} · {:.1} s · target {} · database {}</p>\
         <p class=\"verdict {}\">{}</p>",
        escape(&r.profile),
        escape(&r.started),
        r.seed,
        escape(&r.version),
        r.elapsed_ms as f64 / 1000.0,
        escape(&r.target),
        escape(&r.database),
        if ok { "pass" } else { "fail" },
        escape(&verdict_text(r)),
    )
}

fn verdict_text(r: &RunReport) -> String {
    if r.partial {
        let so_far = match r.verdict.exit_code {
            0 => "all passed so far",
            1 => "FAILED so far",
            3 => "the target died",
            4 => "FAILED and the target died",
            _ => "",
        };
        return format!("UNFINISHED (checkpoint; {so_far})");
    }
    match r.verdict.exit_code {
        0 => "PASS".into(),
        1 => "FAIL".into(),
        3 => "CRASHED: the target died".into(),
        4 => "FAIL and CRASHED".into(),
        130 => "INTERRUPTED".into(),
        c => format!("exit code {c}"),
    }
}

/// The crash buckets and hangs: in a hunt, what the user came for, so before any latency table.
fn buckets_section(r: &RunReport) -> String {
    let buckets = buckets_of(r);
    if buckets.is_empty() && r.hangs.is_empty() {
        return String::new();
    }
    let mut b = format!("<h2>Crash buckets ({})</h2>", buckets.len());
    let rows: Vec<Vec<String>> = buckets
        .iter()
        .map(|x| {
            vec![
                escape(&x.bucket_id),
                escape(&x.death),
                escape(&x.route),
                escape(&x.kind),
                x.count.to_string(),
                escape(&x.first_seen),
                format!("<code>{}</code>", escape(&x.reproducer.join("repro.sh").display().to_string())),
            ]
        })
        .collect();
    b.push_str(&table(&["bucket", "signal", "route", "kind", "count", "first seen", "reproducer"], &rows));
    if !r.hangs.is_empty() {
        b.push_str(&format!("<p>Hangs: {}</p>", r.hangs.iter().map(|h| escape(h)).collect::<Vec<_>>().join("<br>")));
    }
    b
}

/// The banner of a checkpoint: the run had not finished when this report was written.
fn checkpoint_note(r: &RunReport) -> String {
    let Some(c) = r.checkpoint.as_ref().filter(|_| r.partial) else { return String::new() };
    format!(
        "<p class=\"partial\">Checkpoint of {}: the run had not finished{} (checkpoints every {:.0} s). \
         Everything below was measured up to then.</p>",
        escape(&c.at),
        c.running_phase.map(|p| format!("; phase {p} was running")).unwrap_or_default(),
        c.every_ms as f64 / 1000.0
    )
}

fn status_class(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Pass => ("pass", "PASS"),
        Status::Fail => ("fail", "FAIL"),
        Status::Skip => ("skip", "SKIP"),
    }
}

fn checks_section(n: usize, results: &[CheckResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|c| {
            let (class, tag) = status_class(c.status);
            vec![
                format!("<span class=\"{class}\">{tag}</span>"),
                escape(c.name.as_str()),
                escape(&c.summary),
                pre_or_empty(&c.evidence.join("\n")),
                format!("{}", c.millis),
            ]
        })
        .collect();
    format!("<h2>Phase {n}: checks</h2>{}", table(&["", "check", "summary", "evidence", "ms"], &rows))
}

fn fuzz_section(n: usize, f: &FuzzReport) -> String {
    let mut b = format!(
        "<h2>Phase {n}: fuzz + triage</h2><p>{} inputs, {} deaths, {:.0} s</p>",
        f.inputs_sent, f.deaths, f.seconds
    );
    let rows: Vec<Vec<String>> = f
        .buckets
        .iter()
        .map(|r| {
            vec![
                escape(&r.bucket_id),
                escape(&r.death),
                escape(&r.route),
                escape(&r.kind),
                r.count.to_string(),
                r.size_after.to_string(),
                escape(&r.last_seen),
            ]
        })
        .collect();
    b.push_str(&table(&["bucket (corpus/crashes/…)", "death", "route", "kind", "count", "bytes", "last seen"], &rows));
    if let Some(c) = &f.coverage {
        b.push_str(&coverage_section(c));
    }
    b
}

fn invariants_section(n: usize, results: &[InvariantResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let (class, tag) = if r.passed { ("pass", "PASS") } else { ("fail", "FAIL") };
            vec![
                format!("<span class=\"{class}\">{tag}</span>"),
                escape(&r.name),
                escape(&r.summary),
                pre_or_empty(&r.missing.join("\n")),
            ]
        })
        .collect();
    format!("<h2>Phase {n}: nothing lost</h2>{}", table(&["", "invariant", "summary", "missing"], &rows))
}

/// The target's RSS, descriptors and threads over the run, the load phases' outages shaded.
fn health_section(r: &RunReport) -> String {
    let mut b = String::from("<h2>Target health</h2>");
    let shaded = run_outages(r);
    let pts = |f: &dyn Fn(&ProcSample) -> f64| -> Vec<(f64, f64)> {
        r.telemetry.iter().map(|x| (x.t_ms as f64 / 1000.0, f(x))).collect()
    };
    b.push_str(&line_chart(&Chart {
        title: "target RSS (MiB)",
        x_label: "seconds since the run started",
        y_label: "MiB",
        series: &[Series { name: "RSS".into(), points: pts(&|x| x.rss_bytes as f64 / 1048576.0) }],
        shaded: &shaded,
        x_scale: Scale::Linear,
    }));
    b.push_str(&line_chart(&Chart {
        title: "target descriptors and threads",
        x_label: "seconds since the run started",
        y_label: "count",
        series: &[
            Series { name: "open fds".into(), points: pts(&|x| x.fds as f64) },
            Series { name: "threads".into(), points: pts(&|x| x.threads as f64) },
        ],
        shaded: &shaded,
        x_scale: Scale::Linear,
    }));
    b
}

/// Outages of the load phases on the run's time axis (samples carry their wall clock, which
/// places the run's start).
fn run_outages(r: &RunReport) -> Vec<(f64, f64, String)> {
    let Some(origin_ms) = r.telemetry.iter().find(|s| s.unix_ms > 0).map(|s| s.unix_ms as f64 - s.t_ms as f64) else {
        return Vec::new();
    };
    r.phases
        .iter()
        .filter_map(|p| match p {
            RunPhase::Load(l) => Some(l),
            _ => None,
        })
        .flat_map(|l| {
            let base = (l.started_at_ms as f64 - origin_ms) / 1000.0;
            l.outages.iter().map(move |x| (base + x.start_s, base + x.end_s, x.describe()))
        })
        .collect()
}

fn deaths_section(r: &RunReport) -> String {
    let mut b = String::from("<h2>Target deaths</h2>");
    if r.crashes.is_empty() {
        b.push_str("<p>none</p>");
    } else {
        let rows: Vec<Vec<String>> =
            r.crashes.iter().map(|c| vec![escape(&c.describe()), format!("{}", c.after.as_millis())]).collect();
        b.push_str(&table(&["how", "ms after start"], &rows));
    }
    b
}

/// The HTML section of a baseline comparison.
fn comparison_section(c: &compare::Comparison) -> String {
    let mut b = format!(
        "<h2>Baseline comparison</h2><p>against <code>{}</code> (profile {}, started {}) · {}</p><p class=\"{}\">{}</p>",
        escape(&c.baseline_path.display().to_string()),
        escape(&c.baseline_profile),
        escape(&c.baseline_started),
        escape(&c.settings.describe()),
        if c.regressed() { "fail" } else { "pass" },
        escape(&c.summary()),
    );
    let rows: Vec<Vec<String>> = c
        .rows
        .iter()
        .map(|r| {
            let class = match r.verdict {
                compare::Call::Regression => "fail",
                compare::Call::InsufficientData => "skip",
                _ => "pass",
            };
            vec![
                escape(&r.phase),
                escape(&r.route),
                escape(&format!("{:?}", r.layer)),
                r.metric.name().into(),
                escape(&r.metric.format(r.baseline)),
                escape(&r.metric.format(r.current)),
                compare::fmt_change(r.change),
                escape(&compare::fmt_p(r.p_value)),
                format!("{}/{}", r.n_baseline, r.n_current),
                format!("<span class=\"{class}\">{}</span>", r.verdict.name()),
            ]
        })
        .collect();
    b.push_str(&table(
        &["phase", "route", "layer", "metric", "baseline", "current", "change", "p-value", "intervals", "verdict"],
        &rows,
    ));
    if !c.notes.is_empty() {
        b.push_str("<ul>");
        for n in &c.notes {
            b.push_str(&format!("<li>{}</li>", escape(n)));
        }
        b.push_str("</ul>");
    }
    b
}

/// `<pre>text</pre>`, or nothing for empty text (no empty grey boxes).
fn pre_or_empty(text: &str) -> String {
    if text.trim().is_empty() { String::new() } else { format!("<pre>{}</pre>", escape(text)) }
}

/// A layer as report.json and the terminal table spell it (`valid`, `json`, ...).
fn layer_text(l: Layer) -> String {
    serde_json::to_value(l).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// The HTML section of a load phase: totals, throughput and latency over time (outages shaded),
/// per-route table, outages and soak findings.
fn load_section(n: usize, l: &PhaseReport, telemetry: &[ProcSample]) -> String {
    let mut b = load_summary(n, l);
    b.push_str(&timeline_charts(l));
    b.push_str(&percentile_chart(l));
    b.push_str(&routes_table(l));
    b.push_str(&outages_section(l));
    if let Some(s) = &l.soak {
        b.push_str(&soak_section(l, s, telemetry));
    }
    b
}

fn load_summary(n: usize, l: &PhaseReport) -> String {
    format!(
        "<h2>Phase {n}: load {}</h2><p>{} requests in {:.1} s · {:.0} req/s · errors {} ({:.2}%) · p50 {} · p99 {} · p99 uncorrected {} · {}</p>",
        escape(&l.name),
        l.requests_sent,
        l.elapsed_s,
        l.throughput,
        l.errors,
        l.error_rate * 100.0,
        fmt_us(l.latency.p50),
        fmt_us(l.latency.p99),
        fmt_us(l.latency_uncorrected.p99),
        match (l.passed, l.soak.as_ref().is_some_and(|s| s.flagged)) {
            (true, _) => "<span class=\"pass\">thresholds passed</span>",
            (false, true) => "<span class=\"fail\">soak findings flagged</span>",
            (false, false) => "<span class=\"fail\">thresholds failed</span>",
        }
    )
}

/// Throughput and latency per second of the phase, its outages shaded.
fn timeline_charts(l: &PhaseReport) -> String {
    let t = |f: &dyn Fn(&Second) -> f64| -> Vec<(f64, f64)> { l.timeline.iter().map(|s| (s.t as f64, f(s))).collect() };
    let shaded = soak::shaded(l);
    let mut b = line_chart(&Chart {
        title: "throughput (requests/s)",
        x_label: "seconds",
        y_label: "req/s",
        series: &[
            Series { name: "answered".into(), points: t(&|s| s.requests as f64 / s.span.max(1) as f64) },
            Series { name: "errors".into(), points: t(&|s| s.errors as f64 / s.span.max(1) as f64) },
        ],
        shaded: &shaded,
        x_scale: Scale::Linear,
    });
    b.push_str(&line_chart(&Chart {
        title: "latency over time (ms, corrected)",
        x_label: "seconds",
        y_label: "ms",
        series: &[
            Series { name: "p50".into(), points: t(&|s| s.p50_us as f64 / 1000.0) },
            Series { name: "p99".into(), points: t(&|s| s.p99_us as f64 / 1000.0) },
            Series { name: "max".into(), points: t(&|s| s.max_us as f64 / 1000.0) },
        ],
        shaded: &shaded,
        x_scale: Scale::Linear,
    }));
    b
}

/// Latency by percentile of the 8 slowest routes by p99 (the rest are in the routes table).
fn percentile_chart(l: &PhaseReport) -> String {
    let mut slowest: Vec<&RouteReport> = l.routes.iter().collect();
    slowest.sort_by_key(|r| std::cmp::Reverse(r.corrected.p99));
    let dist: Vec<Series> = slowest
        .into_iter()
        .take(8)
        .map(|r| {
            let p = &r.corrected;
            Series {
                name: if r.layer == Layer::Valid {
                    r.route.clone()
                } else {
                    format!("{} ({})", r.route, layer_text(r.layer))
                },
                points: vec![
                    (0.0, p.min as f64 / 1000.0),
                    (0.5, p.p50 as f64 / 1000.0),
                    (0.9, p.p90 as f64 / 1000.0),
                    (0.99, p.p99 as f64 / 1000.0),
                    (0.999, p.p999 as f64 / 1000.0),
                    (0.9999, p.max as f64 / 1000.0),
                ],
            }
        })
        .collect();
    line_chart(&Chart {
        title: if l.routes.len() > 8 {
            "latency by percentile (ms, corrected): the 8 routes with the highest p99"
        } else {
            "latency by percentile (ms, corrected)"
        },
        x_label: "percentile",
        y_label: "ms",
        series: &dist,
        shaded: &[],
        x_scale: Scale::PercentileLog,
    })
}

fn routes_table(l: &PhaseReport) -> String {
    let rows: Vec<Vec<String>> = l
        .routes
        .iter()
        .map(|r| {
            vec![
                escape(&r.route),
                escape(&layer_text(r.layer)),
                r.count.to_string(),
                format!("{:.1}", r.rate),
                fmt_us(r.corrected.p50),
                fmt_us(r.corrected.p90),
                fmt_us(r.corrected.p99),
                fmt_us(r.corrected.p999),
                fmt_us(r.corrected.max),
                escape(&r.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")),
            ]
        })
        .collect();
    table(&["route", "layer", "count", "req/s", "p50", "p90", "p99", "p99.9", "max", "outcomes"], &rows)
}

/// A load phase's outages: how many, the restarts, and one row per outage.
fn outages_section(r: &PhaseReport) -> String {
    if r.outages.is_empty() && r.excluded == 0 {
        return String::new();
    }
    let mut b = format!(
        "<h3>Outages</h3><p>{} outage(s), shaded in the charts · {} restart(s) · {} requests failed because the target was down (errors, not latency samples)</p>",
        r.outages.len(),
        r.restarts,
        r.excluded
    );
    let rows: Vec<Vec<String>> = r
        .outages
        .iter()
        .map(|o| {
            vec![
                escape(match o.cause {
                    OutageCause::Stall => "stall",
                    OutageCause::Death => "death",
                }),
                format!("{:.2}", o.start_s),
                format!("{:.2}", o.end_s),
                format!("{:.2}", o.seconds()),
                o.peak_in_flight.to_string(),
                o.failed.to_string(),
                escape(&o.exit.as_ref().map(|e| e.describe()).unwrap_or_default()),
                if o.restarted { "yes".into() } else { String::new() },
                escape(&o.detail),
                escape(
                    &o.suspects
                        .iter()
                        .take(5)
                        .map(|e| format!("{} seed {}:{}:{}", e.route, e.seed.run, e.seed.stream, e.seed.index))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ]
        })
        .collect();
    b.push_str(&table(
        &["cause", "from s", "to s", "seconds", "peak in flight", "failed", "exit", "restarted", "detail", "suspects"],
        &rows,
    ));
    b
}

/// A load phase's soak findings: the verdicts, RSS over the phase with the fitted line, and the
/// per-window trends.
fn soak_section(r: &PhaseReport, s: &SoakReport, telemetry: &[ProcSample]) -> String {
    let mut b = String::from("<h3>Soak findings</h3>");
    let rows: Vec<Vec<String>> = s
        .findings
        .iter()
        .map(|f| {
            vec![
                if f.flagged {
                    "<span class=\"fail\">FLAGGED</span>".into()
                } else {
                    "<span class=\"pass\">ok</span>".into()
                },
                escape(&f.kind),
                escape(&f.summary),
                format!("{}", f.value),
                format!("{}", f.threshold),
            ]
        })
        .collect();
    b.push_str(&table(&["", "finding", "summary", "value", "limit"], &rows));
    for n in &s.notes {
        b.push_str(&format!("<p class=\"muted\">{}</p>", escape(n)));
    }
    b.push_str(&phase_rss_chart(r, s, telemetry));
    b.push_str(&soak_windows_table(s));
    b
}

/// The target's RSS during the phase and the trend fitted after the warm-up.
fn phase_rss_chart(r: &PhaseReport, s: &SoakReport, telemetry: &[ProcSample]) -> String {
    let phase_t = |x: &ProcSample| (x.unix_ms as f64 - r.started_at_ms as f64) / 1000.0;
    let rss: Vec<(f64, f64)> = telemetry
        .iter()
        .filter(|x| x.unix_ms > 0 && (0.0..=r.elapsed_s + 0.5).contains(&phase_t(x)))
        .map(|x| (phase_t(x), x.rss_bytes as f64 / 1048576.0))
        .collect();
    if rss.is_empty() {
        return String::new();
    }
    let mut series = vec![Series { name: "RSS".into(), points: rss.clone() }];
    if let (Some(f), Some(last)) = (&s.rss_fit, rss.last()) {
        let y = |t: f64| (f.intercept + f.slope * t) / 1048576.0;
        series.push(Series {
            name: "fitted trend".into(),
            points: vec![(s.warmup_until_s, y(s.warmup_until_s)), (last.0, y(last.0))],
        });
    }
    let shaded = soak::shaded(r);
    line_chart(&Chart {
        title: "target RSS during the phase (MiB) and its trend after warm-up",
        x_label: "seconds since the phase started",
        y_label: "MiB",
        series: &series,
        shaded: &shaded,
        x_scale: Scale::Linear,
    })
}

fn soak_windows_table(s: &SoakReport) -> String {
    let rows: Vec<Vec<String>> = s
        .windows
        .iter()
        .map(|w| {
            let opt = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
            vec![
                format!("{:.0}–{:.0}", w.start_s, w.end_s),
                if w.warmup { "warm-up".into() } else { String::new() },
                w.answered.to_string(),
                w.p50_us.map(fmt_us).unwrap_or_default(),
                w.p99_us.map(fmt_us).unwrap_or_default(),
                opt(w.bytes_per_request),
                opt(w.bytes_per_s.map(|x| x * 3600.0 / 1048576.0)),
                opt(w.fds_per_s.map(|x| x * 3600.0)),
            ]
        })
        .collect();
    table(&["window (s)", "", "answered", "p50", "p99", "RSS bytes/request", "RSS MiB/hour", "fds/hour"], &rows)
}

/// A field campaign's coverage: per route, then the pairs that killed the target or got a 5xx.
fn coverage_section(c: &CoverageReport) -> String {
    let mut b = format!("<h3>Field coverage</h3><p>{}</p>", escape(&c.summary()));
    let rows: Vec<Vec<String>> = c
        .routes
        .iter()
        .map(|r| {
            let pct = if r.pairs == 0 { 0.0 } else { 100.0 * r.tried as f64 / r.pairs as f64 };
            vec![
                escape(&r.route),
                r.pairs.to_string(),
                r.tried.to_string(),
                format!("{pct:.0} %"),
                r.deaths.to_string(),
                r.s5xx.to_string(),
                r.new_answers.to_string(),
            ]
        })
        .collect();
    b.push_str(&table(&["route", "pairs", "tried", "covered", "deaths", "5xx", "new answers"], &rows));
    if !c.findings.is_empty() {
        b.push_str("<h3>Pairs that killed the target or got a 5xx</h3>");
        let rows: Vec<Vec<String>> = c
            .findings
            .iter()
            .map(|f| {
                vec![
                    escape(&f.route),
                    escape(&f.field),
                    escape(&f.op),
                    f.deaths.to_string(),
                    f.s5xx.to_string(),
                    format!("{:.0} s", f.first_s),
                ]
            })
            .collect();
        b.push_str(&table(&["route", "field", "operator", "deaths", "5xx", "first"], &rows));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_and_table_are_well_formed() {
        let s = vec![Series { name: "p99 <ms>".into(), points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)] }];
        let svg = line_chart(&Chart {
            title: "t",
            x_label: "s",
            y_label: "ms",
            series: &s,
            shaded: &[(1.0, 1.5, "outage".into())],
            x_scale: Scale::Linear,
        });
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("p99 &lt;ms&gt;") && svg.contains("<rect") && svg.contains("<title>outage</title>"));
        let empty = line_chart(&Chart {
            title: "t",
            x_label: "",
            y_label: "",
            series: &[],
            shaded: &[],
            x_scale: Scale::Linear,
        });
        assert!(empty.contains("no data"));
        let t = table(&["a", "b", "c"], &[vec!["x".into(), "12".into(), "3 routes".into()]]);
        assert!(t.contains("<td class=\"num\">12</td>") && t.contains("<td>3 routes</td>"), "{t}");
        let p = page("T & U", "<p>x</p>");
        assert!(p.contains("<title>T &amp; U</title>") && !p.contains("<script"));
    }
}
