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
use crate::watch::ExitInfo;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use load::{PhaseReport, Planned, fmt_us, write_json_atomic};

/// One phase's outcome in `report.json` (`{"kind": "load", ...}`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunPhase {
    Checks { results: Vec<CheckResult> },
    Load(Box<PhaseReport>),
    Fuzz(Box<crate::triage::fuzz::FuzzReport>),
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
    /// An empty report of a run of the profile `profile` (read from `profile_file`) that starts
    /// at `started_at`.
    pub fn new(profile: &str, profile_file: &Path, seed: u64, started_at: std::time::SystemTime) -> RunReport {
        RunReport {
            tool: "mesher-stress".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            profile: profile.to_string(),
            profile_file: profile_file.to_path_buf(),
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
    pub fn add_fuzz(&mut self, n: usize, r: crate::triage::fuzz::FuzzReport) {
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
    let mut add = |b: &crate::triage::bucket::BucketRow, dir: Option<&Path>, n: u64| {
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

pub fn render_files(dir: &Path, report: &RunReport) -> Result<()> {
    crate::util::fs::write_atomic(&dir.join("report.html"), html::render_run(report).as_bytes())?;
    crate::util::fs::write_atomic(&dir.join("junit.xml"), junit::render_run(report).as_bytes())?;
    Ok(())
}

/// Escape text for HTML or XML content and attributes: `apos` spells `'`; with `xml`, the
/// characters XML 1.0 cannot carry become `\u{..}` (HTML keeps them).
fn escape_markup(s: &str, apos: &str, xml: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str(apos),
            '\t' | '\n' | '\r' => out.push(c),
            c if xml && ((c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}') => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
