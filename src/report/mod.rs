//! `report`: what users read. `report.json` (every figure), `report.html` (self-contained, no
//! network), `junit.xml` (one test case per check, threshold, invariant and crash bucket), the
//! verdict and its exit code. `mesher-stress report RUN_DIR` re-renders HTML and JUnit from
//! `report.json`.

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

pub use load::{BuildInput, PhaseReport, Planned, fmt_us, write_json_atomic};

/// One phase's outcome in `report.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunPhase {
    Checks { results: Vec<CheckResult> },
}

impl RunPhase {
    pub fn failed(&self) -> bool {
        match self {
            RunPhase::Checks { results } => results.iter().any(|r| r.status == Status::Fail),
        }
    }
}

/// `report.json` of a run.
#[derive(Debug, Serialize, Deserialize)]
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
    pub interrupted: bool,
    pub verdict: Verdict,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Verdict {
    pub failed: bool,
    pub crashed: bool,
    pub exit_code: u8,
}

/// Write `report.json`, `report.html` and `junit.xml` into `dir`, each atomically.
pub fn write_all(dir: &Path, report: &RunReport) -> Result<()> {
    crate::fsutil::write_json_atomic(&dir.join("report.json"), report)?;
    render_files(dir, report)
}

fn render_files(dir: &Path, report: &RunReport) -> Result<()> {
    crate::fsutil::write_atomic(&dir.join("report.html"), render_html(report).as_bytes())?;
    crate::fsutil::write_atomic(&dir.join("junit.xml"), render_junit(report).as_bytes())?;
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
    let ok = r.verdict.exit_code == 0;
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
                            format!("<pre>{}</pre>", escape(&c.evidence.join("\n"))),
                            format!("{}", c.millis),
                        ]
                    })
                    .collect();
                b.push_str(&html::table(&["", "check", "summary", "evidence", "ms"], &rows));
            }
        }
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
        match p {
            RunPhase::Checks { results } => suites.push(TestSuite {
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
            }),
        }
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
pub struct ReportArgs {
    /// A run directory (holding report.json); report.html and junit.xml are written beside it.
    pub run_dir: PathBuf,
}

/// `mesher-stress report RUN_DIR`: re-render report.html and junit.xml from report.json.
pub async fn main(args: ReportArgs, g: &Global) -> Result<u8> {
    let path = args.run_dir.join("report.json");
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let report: RunReport =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a mesher-stress report", path.display()))?;
    render_files(&args.run_dir, &report)?;
    if !g.quiet {
        println!("{}\n{}", args.run_dir.join("report.html").display(), args.run_dir.join("junit.xml").display());
    }
    Ok(crate::exit::SUCCESS)
}
