//! `report`: what users read. `report.json` (every figure), `report.html` (self-contained, no
//! network), `junit.xml` (one test case per check, threshold, invariant and crash bucket), the
//! verdict and its exit code. `mesher-stress report RUN_DIR` re-renders HTML and JUnit from
//! `report.json`; `mesher-stress report compare A B` compares two runs ([`compare`]).

pub mod compare;
pub mod html;
pub mod junit;
pub mod load;
pub mod soak;
pub mod stats;

use crate::checks::{CheckResult, Status};
use crate::cli::Global;
use crate::watch::ExitInfo;
use anyhow::{Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use load::{PhaseReport, Planned, fmt_us, write_json_atomic};

/// One phase's outcome in `report.json` (`{"kind": "load", ...}`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunPhase {
    Checks { results: Vec<CheckResult> },
    Load(Box<PhaseReport>),
    Fuzz(Box<crate::triage::session::FuzzReport>),
    Invariants { results: Vec<crate::invariants::InvariantResult> },
}

/// Read back by hand: serde's derived reader for tagged enums buffers the content, which loses
/// serde_json's arbitrary-precision numbers; going through a `Value` keeps them.
impl<'de> Deserialize<'de> for RunPhase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        struct Results<T> {
            results: Vec<T>,
        }
        let mut v = serde_json::Value::deserialize(d)?;
        let kind = v.as_object_mut().and_then(|o| o.remove("kind")).and_then(|k| k.as_str().map(String::from));
        let e = |e: serde_json::Error| D::Error::custom(e.to_string());
        match kind.as_deref() {
            Some("checks") => {
                Ok(RunPhase::Checks { results: serde_json::from_value::<Results<_>>(v).map_err(e)?.results })
            }
            Some("load") => Ok(RunPhase::Load(Box::new(serde_json::from_value(v).map_err(e)?))),
            Some("fuzz") => Ok(RunPhase::Fuzz(Box::new(serde_json::from_value(v).map_err(e)?))),
            Some("invariants") => {
                Ok(RunPhase::Invariants { results: serde_json::from_value::<Results<_>>(v).map_err(e)?.results })
            }
            other => Err(D::Error::custom(format!("unknown phase kind {other:?}"))),
        }
    }
}

impl RunPhase {
    /// A check, threshold or invariant failed (crashes are counted apart).
    pub fn failed(&self) -> bool {
        match self {
            RunPhase::Checks { results } => results.iter().any(|r| r.status == Status::Fail),
            RunPhase::Load(r) => !r.passed,
            RunPhase::Fuzz(_) => false,
            RunPhase::Invariants { results } => results.iter().any(|r| !r.passed),
        }
    }
}

/// `report.json` of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub tool: String,
    pub version: String,
    pub profile: String,
    pub profile_file: PathBuf,
    pub seed: u64,
    pub started: String,
    pub elapsed_ms: u64,
    pub target: String,
    pub database: String,
    pub phases: Vec<RunPhase>,
    /// Deaths of the target seen during the run.
    pub crashes: Vec<ExitInfo>,
    /// Hangs of the target seen during the run (it was killed and, when a phase followed,
    /// started again).
    #[serde(default)]
    pub hangs: Vec<String>,
    /// The crash buckets the run's deaths landed in (fuzz phases and triaged load phases).
    #[serde(default)]
    pub buckets: Vec<RunBucket>,
    /// The target's RSS, descriptors, threads and CPU, sampled from /proc every second.
    #[serde(default)]
    pub telemetry: Vec<crate::watch::sampler::ProcSample>,
    /// The comparison with `--baseline` (a regression fails the verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<compare::Comparison>,
    pub interrupted: bool,
    /// A checkpoint written while the run was going (`crate::checkpoint`): the run may have
    /// been killed after it. False in the report written when the run ends.
    #[serde(default)]
    pub partial: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    pub verdict: Verdict,
}

/// One crash bucket a run hit: what it is, how often this run hit it, where its reproducer is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunBucket {
    pub bucket_id: String,
    /// `SIGSEGV`, `SIGABRT`, `hang`, `exit-3`.
    pub death: String,
    pub route: String,
    /// `single`, `set`, `cumulative`.
    pub kind: String,
    /// Deaths of this run filed under it.
    pub count: u64,
    /// When the bucket was first seen (it may predate the run).
    pub first_seen: String,
    /// Its directory: `repro.sh`, `request.http`, `payloads.json`, `meta.json`.
    pub reproducer: PathBuf,
}

impl RunReport {
    /// An empty report of a run that starts now.
    pub fn new(profile: &crate::profile::Profile, seed: u64, started_at: std::time::SystemTime) -> RunReport {
        RunReport {
            tool: "mesher-stress".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            profile: profile.name.clone(),
            profile_file: profile.source.clone(),
            seed,
            started: humantime::format_rfc3339_seconds(started_at).to_string(),
            elapsed_ms: 0,
            target: String::new(),
            database: String::new(),
            phases: Vec::new(),
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

    /// Add the fuzz phase `n` (1-based) with its crashes and hangs: one entry per distinct way
    /// of dying (its buckets hold the counts).
    pub fn add_fuzz(&mut self, n: usize, r: crate::triage::session::FuzzReport) {
        let mut kinds: Vec<String> = Vec::new();
        for o in &r.outages {
            let key = o.death.key();
            if kinds.contains(&key) {
                continue;
            }
            if o.death == crate::watch::Death::Hang {
                self.hangs.push(format!("fuzz phase {n}: the target hung"));
            } else {
                self.crashes.push(o.death.exit_info());
            }
            kinds.push(key);
        }
        self.phases.push(RunPhase::Fuzz(Box::new(r)));
    }
    /// The target died or hung during the run.
    pub fn found_crashes(&self) -> bool {
        !self.crashes.is_empty() || !self.hangs.is_empty()
    }
}

/// The buckets the run's phases hit, most hits first: per bucket, the deaths of this run filed
/// under it (fuzz phases count every hit in their table; load phases one per triaged death).
pub fn run_buckets(r: &RunReport) -> Vec<RunBucket> {
    let mut out: Vec<RunBucket> = Vec::new();
    let mut add = |b: &crate::triage::session::BucketRow, dir: Option<&Path>, n: u64| {
        if let Some(x) = out.iter_mut().find(|x| x.bucket_id == b.bucket_id) {
            x.count += n;
            return;
        }
        out.push(RunBucket {
            bucket_id: b.bucket_id.clone(),
            death: b.death.clone(),
            route: b.route.clone(),
            kind: b.kind.clone(),
            count: n,
            first_seen: b.first_seen.clone(),
            reproducer: dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(&b.bucket_id)),
        });
    };
    for p in &r.phases {
        match p {
            RunPhase::Fuzz(f) => {
                for b in &f.buckets {
                    let hits = f.triage.iter().filter(|t| t.bucket_id.as_deref() == Some(&b.bucket_id)).count() as u64;
                    if hits == 0 {
                        continue;
                    }
                    let dir = f
                        .triage
                        .iter()
                        .find(|t| t.bucket_id.as_deref() == Some(&b.bucket_id))
                        .and_then(|t| t.dir.clone());
                    add(b, dir.as_deref(), hits);
                }
            }
            RunPhase::Load(l) => {
                let Some(t) = &l.triage else { continue };
                for b in &t.buckets {
                    let hits = t.results.iter().filter(|x| x.bucket_id.as_deref() == Some(&b.bucket_id)).count() as u64;
                    let dir = t
                        .results
                        .iter()
                        .find(|x| x.bucket_id.as_deref() == Some(&b.bucket_id))
                        .and_then(|x| x.dir.clone());
                    add(b, dir.as_deref(), hits);
                }
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.bucket_id.cmp(&b.bucket_id)));
    out
}

/// The report's buckets (reports written before the run-level table derive it from their
/// phases).
fn buckets_of(r: &RunReport) -> Vec<RunBucket> {
    if r.buckets.is_empty() { run_buckets(r) } else { r.buckets.clone() }
}

/// The run's bucket table as text (terminal).
pub fn format_buckets(rows: &[RunBucket]) -> String {
    let mut s = format!(
        "CRASH BUCKETS ({})
{:<48} {:<8} {:<22} {:>5}  {:<24} {}
",
        rows.len(),
        "bucket",
        "signal",
        "route",
        "count",
        "first seen",
        "reproducer"
    );
    for b in rows {
        s.push_str(&format!(
            "{:<48} {:<8} {:<22} {:>5}  {:<24} {}
",
            b.bucket_id,
            b.death,
            b.route,
            b.count,
            b.first_seen,
            b.reproducer.join("repro.sh").display()
        ));
    }
    s
}

/// When and how far a checkpoint was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Wall-clock time of the checkpoint (RFC 3339).
    pub at: String,
    /// The phase (1-based) that was running; its figures are those measured so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_phase: Option<usize>,
    /// Checkpoint interval (`checkpoint_every`), milliseconds.
    pub every_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub failed: bool,
    pub crashed: bool,
    pub exit_code: u8,
}

/// Write `report.json`, `report.html` and `junit.xml` into `dir`, each atomically.
pub fn write_all(dir: &Path, report: &RunReport) -> Result<()> {
    crate::util::fs::write_json_atomic(&dir.join("report.json"), report)?;
    render_files(dir, report)
}

fn render_files(dir: &Path, report: &RunReport) -> Result<()> {
    crate::util::fs::write_atomic(&dir.join("report.html"), render_html(report).as_bytes())?;
    crate::util::fs::write_atomic(&dir.join("junit.xml"), render_junit(report).as_bytes())?;
    Ok(())
}

fn status_class(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Pass => ("pass", "PASS"),
        Status::Fail => ("fail", "FAIL"),
        Status::Skip => ("skip", "SKIP"),
    }
}

/// The HTML report.
pub fn render_html(r: &RunReport) -> String {
    use html::escape;
    let ok = r.verdict.exit_code == 0 && !r.partial;
    let mut b = format!(
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
    );
    let buckets = buckets_of(r);
    if !buckets.is_empty() || !r.hangs.is_empty() {
        // In a hunt, what the user came for: before any latency table.
        b.push_str(&format!("<h2>Crash buckets ({})</h2>", buckets.len()));
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
        b.push_str(&html::table(&["bucket", "signal", "route", "kind", "count", "first seen", "reproducer"], &rows));
        if !r.hangs.is_empty() {
            b.push_str(&format!(
                "<p>Hangs: {}</p>",
                r.hangs.iter().map(|h| escape(h)).collect::<Vec<_>>().join("<br>")
            ));
        }
    }
    if let Some(c) = r.checkpoint.as_ref().filter(|_| r.partial) {
        b.push_str(&format!(
            "<p class=\"partial\">Checkpoint of {}: the run had not finished{} (checkpoints every {:.0} s). \
             Everything below was measured up to then.</p>",
            escape(&c.at),
            c.running_phase.map(|p| format!("; phase {p} was running")).unwrap_or_default(),
            c.every_ms as f64 / 1000.0
        ));
    }
    for (i, p) in r.phases.iter().enumerate() {
        match p {
            RunPhase::Checks { results } => {
                b.push_str(&format!("<h2>Phase {}: checks</h2>", i + 1));
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
                b.push_str(&html::table(&["", "check", "summary", "evidence", "ms"], &rows));
            }
            RunPhase::Load(l) => b.push_str(&load_html(i + 1, l, &r.telemetry)),
            RunPhase::Fuzz(f) => {
                b.push_str(&format!(
                    "<h2>Phase {}: fuzz + triage</h2><p>{} inputs, {} deaths, {:.0} s</p>",
                    i + 1,
                    f.inputs_sent,
                    f.deaths,
                    f.seconds
                ));
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
                b.push_str(&html::table(
                    &["bucket (corpus/crashes/…)", "death", "route", "kind", "count", "bytes", "last seen"],
                    &rows,
                ));
                if let Some(c) = &f.coverage {
                    b.push_str(&coverage_html(c));
                }
            }
            RunPhase::Invariants { results } => {
                b.push_str(&format!("<h2>Phase {}: nothing lost</h2>", i + 1));
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
                b.push_str(&html::table(&["", "invariant", "summary", "missing"], &rows));
            }
        }
    }
    if let Some(c) = &r.baseline {
        b.push_str(&comparison_html(c));
    }
    if !r.telemetry.is_empty() {
        use html::{Chart, Scale, Series};
        b.push_str("<h2>Target health</h2>");
        // Outages of the load phases, on the run's time axis (samples carry their wall clock).
        let origin_ms = r.telemetry.iter().find(|s| s.unix_ms > 0).map(|s| s.unix_ms as f64 - s.t_ms as f64);
        let shaded: Vec<(f64, f64, String)> = match origin_ms {
            Some(o) => r
                .phases
                .iter()
                .filter_map(|p| match p {
                    RunPhase::Load(l) => Some(l),
                    _ => None,
                })
                .flat_map(|l| {
                    let base = (l.started_at_ms as f64 - o) / 1000.0;
                    l.outages.iter().map(move |x| (base + x.start_s, base + x.end_s, x.describe()))
                })
                .collect(),
            None => Vec::new(),
        };
        let pts = |f: &dyn Fn(&crate::watch::sampler::ProcSample) -> f64| -> Vec<(f64, f64)> {
            r.telemetry.iter().map(|x| (x.t_ms as f64 / 1000.0, f(x))).collect()
        };
        b.push_str(&html::line_chart(&Chart {
            title: "target RSS (MiB)",
            x_label: "seconds since the run started",
            y_label: "MiB",
            series: &[Series { name: "RSS".into(), points: pts(&|x| x.rss_bytes as f64 / 1048576.0) }],
            shaded: &shaded,
            x_scale: Scale::Linear,
        }));
        b.push_str(&html::line_chart(&Chart {
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
    }
    b.push_str("<h2>Target deaths</h2>");
    if r.crashes.is_empty() {
        b.push_str("<p>none</p>");
    } else {
        let rows: Vec<Vec<String>> =
            r.crashes.iter().map(|c| vec![escape(&c.describe()), format!("{}", c.after.as_millis())]).collect();
        b.push_str(&html::table(&["how", "ms after start"], &rows));
    }
    html::page(&format!("mesher-stress {}", r.profile), &b)
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

/// The JUnit document.
pub fn render_junit(r: &RunReport) -> String {
    use junit::{Outcome, TestCase, TestSuite};
    let mut suites = Vec::new();
    for p in &r.phases {
        if let RunPhase::Checks { results } = p {
            suites.push(TestSuite {
                name: "checks".into(),
                cases: results
                    .iter()
                    .map(|c: &CheckResult| TestCase {
                        name: c.name.as_str().into(),
                        seconds: c.millis as f64 / 1000.0,
                        outcome: match c.status {
                            Status::Pass => Outcome::Passed,
                            Status::Fail => {
                                Outcome::Failed { message: c.summary.clone(), details: c.evidence.join("\n") }
                            }
                            Status::Skip => Outcome::Skipped { message: c.summary.clone() },
                        },
                        output: format!("{}\n{}", c.summary, c.evidence.join("\n")),
                    })
                    .collect(),
            });
        }
    }
    for p in &r.phases {
        match p {
            RunPhase::Load(l) => suites.push(TestSuite {
                name: format!("thresholds.{}", l.name),
                cases: std::iter::once(TestCase {
                    name: "requests accounted for".into(),
                    seconds: l.elapsed_s,
                    outcome: if l.consistent && l.lane_panics == 0 {
                        Outcome::Passed
                    } else {
                        Outcome::Failed {
                            message: format!(
                                "{} sent, {} measured, {} tool panics",
                                l.requests_sent, l.requests_measured, l.lane_panics
                            ),
                            details: String::new(),
                        }
                    },
                    output: format!(
                        "{} requests, {:.0} req/s, p99 {} µs",
                        l.requests_sent, l.throughput, l.latency.p99
                    ),
                })
                .chain(l.thresholds.iter().map(|t| {
                    let v = serde_json::to_value(t).unwrap_or_default();
                    let passed = v.get("passed").and_then(|x| x.as_bool()).unwrap_or(false);
                    let name = v.get("name").and_then(|x| x.as_str()).unwrap_or("threshold").to_string();
                    TestCase {
                        name,
                        seconds: 0.0,
                        outcome: if passed {
                            Outcome::Passed
                        } else {
                            Outcome::Failed { message: v.to_string(), details: String::new() }
                        },
                        output: v.to_string(),
                    }
                }))
                .collect(),
            }),
            RunPhase::Invariants { results } => suites.push(TestSuite {
                name: "invariants".into(),
                cases: results
                    .iter()
                    .map(|i| TestCase {
                        name: i.name.clone(),
                        seconds: 0.0,
                        outcome: if i.passed {
                            Outcome::Passed
                        } else {
                            Outcome::Failed { message: i.summary.clone(), details: i.missing.join("\n") }
                        },
                        output: i.summary.clone(),
                    })
                    .collect(),
            }),
            RunPhase::Fuzz(_) => {}
            RunPhase::Checks { .. } => {}
        }
    }
    // One failing case per crash bucket and per hang: the target died or hung.
    let buckets = buckets_of(r);
    if !buckets.is_empty() || !r.hangs.is_empty() {
        suites.push(TestSuite {
            name: "crash-buckets".into(),
            cases: buckets
                .iter()
                .map(|b| TestCase {
                    name: b.bucket_id.clone(),
                    seconds: 0.0,
                    outcome: Outcome::Failed {
                        message: format!("{} on {} ({} hits in this run)", b.death, b.route, b.count),
                        details: format!("reproducer: {}", b.reproducer.join("repro.sh").display()),
                    },
                    output: String::new(),
                })
                .chain(r.hangs.iter().enumerate().map(|(i, h)| TestCase {
                    name: format!("hang-{}", i + 1),
                    seconds: 0.0,
                    outcome: Outcome::Failed { message: h.clone(), details: String::new() },
                    output: String::new(),
                }))
                .collect(),
        });
    }
    if let Some(c) = &r.baseline {
        suites.push(comparison_junit(c));
    }
    // One case per soak finding.
    for p in &r.phases {
        if let RunPhase::Load(l) = p
            && let Some(s) = &l.soak
        {
            suites.push(TestSuite {
                name: format!("soak.{}", l.name),
                cases: s
                    .findings
                    .iter()
                    .map(|f| TestCase {
                        name: f.kind.clone(),
                        seconds: 0.0,
                        outcome: if f.flagged {
                            Outcome::Failed {
                                message: f.summary.clone(),
                                details: serde_json::to_string(&f.figures).unwrap_or_default(),
                            }
                        } else {
                            Outcome::Passed
                        },
                        output: f.summary.clone(),
                    })
                    .collect(),
            });
        }
    }
    if let Some(c) = r.checkpoint.as_ref().filter(|_| r.partial) {
        suites.push(TestSuite {
            name: "run".into(),
            cases: vec![TestCase {
                name: "run finished".into(),
                seconds: r.elapsed_ms as f64 / 1000.0,
                outcome: Outcome::Failed {
                    message: format!("the run did not finish: this report is its checkpoint of {}", c.at),
                    details: c.running_phase.map(|p| format!("phase {p} was running")).unwrap_or_default(),
                },
                output: String::new(),
            }],
        });
    }
    suites.push(TestSuite {
        name: "crashes".into(),
        cases: vec![TestCase {
            name: "target stays alive".into(),
            seconds: 0.0,
            outcome: match r.crashes.first() {
                None => Outcome::Passed,
                Some(c) => Outcome::Failed {
                    message: format!("the target {}", c.describe()),
                    details: r.crashes.iter().map(ExitInfo::describe).collect::<Vec<_>>().join("\n"),
                },
            },
            output: String::new(),
        }],
    });
    junit::render(&r.profile, &r.started, &suites)
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReportArgs {
    /// A run directory (holding report.json); report.html and junit.xml are written beside it.
    #[arg(required = true)]
    pub run_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<ReportCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Compare a run with a baseline run: per route throughput, p50 and p99 over the per-interval
    /// figures (Mann–Whitney U). Exit 0 no regression, 1 regression, 2 unreadable input.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a report.json or a run directory holding one.
    pub baseline: PathBuf,
    /// The run to judge: a report.json or a run directory holding one.
    pub current: PathBuf,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// The `[baseline]` settings as flags (defaults as in profiles/README.md).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Regression settings (the profile's [baseline] keys)")]
pub struct SettingsArgs {
    /// Significance level of the Mann–Whitney test [default: 0.01].
    #[arg(long, value_name = "P")]
    pub alpha: Option<f64>,
    /// Smallest relative worsening that counts, as a fraction (0.2 = 20 %) [default: 0.2].
    #[arg(long, value_name = "FRACTION")]
    pub min_change: Option<f64>,
    /// Smallest absolute p50 increase that counts [default: 1ms].
    #[arg(long, value_name = "DURATION", value_parser = crate::util::duration::parse)]
    pub min_p50_delta: Option<std::time::Duration>,
    /// Smallest absolute p99 increase that counts [default: 5ms].
    #[arg(long, value_name = "DURATION", value_parser = crate::util::duration::parse)]
    pub min_p99_delta: Option<std::time::Duration>,
    /// Intervals starting within this much of a phase are left out [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = crate::util::duration::parse)]
    pub warmup: Option<std::time::Duration>,
    /// Intervals with fewer requests of a route are left out of its latency [default: 10].
    #[arg(long, value_name = "N")]
    pub min_requests: Option<u64>,
    /// Fewer usable intervals on either side: insufficient data, no verdict [default: 6].
    #[arg(long, value_name = "N")]
    pub min_intervals: Option<usize>,
}

impl SettingsArgs {
    /// `base` with the given flags applied, validated.
    pub fn apply(&self, base: &compare::BaselineSettings) -> Result<compare::BaselineSettings> {
        let mut s = base.clone();
        if let Some(v) = self.alpha {
            s.alpha = v;
        }
        if let Some(v) = self.min_change {
            s.min_change = v;
        }
        if let Some(v) = self.min_p50_delta {
            s.min_p50_delta = v;
        }
        if let Some(v) = self.min_p99_delta {
            s.min_p99_delta = v;
        }
        if let Some(v) = self.warmup {
            s.warmup = v;
        }
        if let Some(v) = self.min_requests {
            s.min_requests = v;
        }
        if let Some(v) = self.min_intervals {
            s.min_intervals = v;
        }
        s.validate().map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("baseline.", "--").replace('_', "-")))?;
        Ok(s)
    }
}

/// `mesher-stress report RUN_DIR`: re-render report.html and junit.xml from report.json;
/// `mesher-stress report compare A B`: compare two runs.
pub async fn main(args: ReportArgs, g: &Global) -> Result<u8> {
    if let Some(ReportCommand::Compare(c)) = args.command {
        return compare_main(c, g);
    }
    let run_dir = args.run_dir.context("a run directory is required")?;
    let path = run_dir.join("report.json");
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let report: RunReport =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a mesher-stress report", path.display()))?;
    render_files(&run_dir, &report)?;
    if !g.quiet {
        println!("{}\n{}", run_dir.join("report.html").display(), run_dir.join("junit.xml").display());
    }
    Ok(crate::exit::SUCCESS)
}

/// `report compare A B`: the table (or `--json`), exit 0 / 1 (regression) / 2 (unreadable input).
fn compare_main(args: CompareArgs, g: &Global) -> Result<u8> {
    let usage = |e: anyhow::Error| {
        eprintln!("error: {e:#}");
        Ok(crate::exit::USAGE)
    };
    let settings = match args.settings.apply(&compare::BaselineSettings::default()) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let (bpath, base) = match compare::read_report(&args.baseline) {
        Ok(x) => x,
        Err(e) => return usage(e.context("the baseline (first argument)")),
    };
    let (_, cur) = match compare::read_report(&args.current) {
        Ok(x) => x,
        Err(e) => return usage(e.context("the current run (second argument)")),
    };
    let c = compare::compare(&base, &bpath, &cur, &settings);
    if g.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else if g.quiet {
        println!("{}", c.summary());
    } else {
        c.print_table(&mut std::io::stdout())?;
    }
    Ok(if c.regressed() { crate::exit::FAILED } else { crate::exit::SUCCESS })
}

/// The HTML section of a baseline comparison.
fn comparison_html(c: &compare::Comparison) -> String {
    use html::escape;
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
    b.push_str(&html::table(
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

/// The JUnit suite of a baseline comparison: one case per route × metric.
fn comparison_junit(c: &compare::Comparison) -> junit::TestSuite {
    use junit::{Outcome, TestCase};
    let mut cases: Vec<TestCase> = c
        .rows
        .iter()
        .map(|r| {
            let line = format!(
                "baseline {} current {} change {} p-value {} intervals {}/{}",
                r.metric.format(r.baseline),
                r.metric.format(r.current),
                compare::fmt_change(r.change),
                compare::fmt_p(r.p_value),
                r.n_baseline,
                r.n_current
            );
            TestCase {
                name: r.title(),
                seconds: 0.0,
                outcome: match r.verdict {
                    compare::Call::Regression => {
                        Outcome::Failed { message: format!("regression: {line}"), details: String::new() }
                    }
                    compare::Call::InsufficientData => Outcome::Skipped {
                        message: format!("insufficient data (fewer than {} intervals)", c.settings.min_intervals),
                    },
                    _ => Outcome::Passed,
                },
                output: line,
            }
        })
        .collect();
    if cases.is_empty() {
        cases.push(TestCase {
            name: "compared".into(),
            seconds: 0.0,
            outcome: Outcome::Skipped { message: c.notes.join("; ") },
            output: String::new(),
        });
    }
    junit::TestSuite { name: "baseline".into(), cases }
}

/// `<pre>text</pre>`, or nothing for empty text (no empty grey boxes).
fn pre_or_empty(text: &str) -> String {
    if text.trim().is_empty() { String::new() } else { format!("<pre>{}</pre>", html::escape(text)) }
}

/// A layer as report.json and the terminal table spell it (`valid`, `json`, ...).
fn layer_text(l: crate::model::Layer) -> String {
    serde_json::to_value(l).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// The HTML section of a load phase: totals, throughput and latency over time (outages shaded),
/// per-route table, outages and soak findings.
fn load_html(n: usize, l: &PhaseReport, telemetry: &[crate::watch::sampler::ProcSample]) -> String {
    use html::{Chart, Scale, Series, escape};
    let mut b = format!(
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
    );
    let t = |f: &dyn Fn(&crate::drive::metrics::Second) -> f64| -> Vec<(f64, f64)> {
        l.timeline.iter().map(|s| (s.t as f64, f(s))).collect()
    };
    let shaded = soak::shaded(l);
    b.push_str(&html::line_chart(&Chart {
        title: "throughput (requests/s)",
        x_label: "seconds",
        y_label: "req/s",
        series: &[
            Series { name: "answered".into(), points: t(&|s| s.requests as f64 / s.span.max(1) as f64) },
            Series { name: "errors".into(), points: t(&|s| s.errors as f64 / s.span.max(1) as f64) },
        ],
        shaded: &shaded,
        x_scale: Scale::Linear,
    }));
    b.push_str(&html::line_chart(&Chart {
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
    // The 8 slowest routes by p99 (the rest are in the table below).
    let mut slowest: Vec<&load::RouteReport> = l.routes.iter().collect();
    slowest.sort_by_key(|r| std::cmp::Reverse(r.corrected.p99));
    let dist: Vec<Series> = slowest
        .into_iter()
        .take(8)
        .map(|r| {
            let p = &r.corrected;
            Series {
                name: if r.layer == crate::model::Layer::Valid {
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
    b.push_str(&html::line_chart(&Chart {
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
    }));
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
    b.push_str(&html::table(
        &["route", "layer", "count", "req/s", "p50", "p90", "p99", "p99.9", "max", "outcomes"],
        &rows,
    ));
    b.push_str(&soak::phase_html(l, telemetry));
    b
}

/// A field campaign's coverage: per route, then the pairs that killed the target or got a 5xx.
fn coverage_html(c: &crate::generate::campaign::CoverageReport) -> String {
    use html::escape;
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
    b.push_str(&html::table(&["route", "pairs", "tried", "covered", "deaths", "5xx", "new answers"], &rows));
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
        b.push_str(&html::table(&["route", "field", "operator", "deaths", "5xx", "first"], &rows));
    }
    b
}
