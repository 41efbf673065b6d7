//! `junit.xml`: one test case per check, threshold, invariant and crash bucket, in the JUnit XML
//! dialect CI systems read (Jenkins / GitLab / GitHub test reporters; Ant's `junit.xsd` shape:
//! `testsuites > testsuite > testcase > (failure | skipped)?, system-out?`). [`render`] writes any
//! suites; [`render_run`] builds a run's.

use super::{PhaseReport, RunPhase, RunReport, buckets_of, compare};
use crate::checks::{CheckResult, Status};
use crate::invariants::InvariantResult;
use crate::watch::ExitInfo;
use std::fmt::Write;

/// The outcome of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseResult {
    Passed,
    /// Failed with a one-line message and details.
    Failed {
        message: String,
        details: String,
    },
    Skipped {
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub seconds: f64,
    pub outcome: CaseResult,
    /// Evidence shown by CI next to the case.
    pub output: String,
}

#[derive(Debug, Clone)]
pub struct TestSuite {
    /// e.g. `checks`, `thresholds`, `invariants`, `crashes`.
    pub name: String,
    pub cases: Vec<TestCase>,
}

/// Escape text for XML content and attributes; characters XML 1.0 cannot carry become `\u{..}`.
pub fn escape(s: &str) -> String {
    super::escape_markup(s, "&apos;", true)
}

/// Render the document. `name` names the whole run (the profile), `timestamp` is ISO 8601.
pub fn render(name: &str, timestamp: &str, suites: &[TestSuite]) -> String {
    let count =
        |f: &dyn Fn(&CaseResult) -> bool| suites.iter().flat_map(|s| &s.cases).filter(|c| f(&c.outcome)).count();
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures = count(&|o| matches!(o, CaseResult::Failed { .. }));
    let skipped = count(&|o| matches!(o, CaseResult::Skipped { .. }));
    let time: f64 = suites.iter().flat_map(|s| &s.cases).map(|c| c.seconds).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        escape(name)
    );
    for (id, s) in suites.iter().enumerate() {
        let f = s.cases.iter().filter(|c| matches!(c.outcome, CaseResult::Failed { .. })).count();
        let sk = s.cases.iter().filter(|c| matches!(c.outcome, CaseResult::Skipped { .. })).count();
        let t: f64 = s.cases.iter().map(|c| c.seconds).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"0\" skipped=\"{sk}\" time=\"{t:.3}\" timestamp=\"{}\" hostname=\"localhost\" id=\"{id}\" package=\"mesher-stress\">",
            escape(&format!("{name}.{}", s.name)),
            s.cases.len(),
            escape(timestamp.trim_end_matches('Z')),
        );
        x.push_str("    <properties/>\n");
        for c in &s.cases {
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
                escape(&c.name),
                escape(&format!("mesher-stress.{}", s.name)),
                c.seconds
            );
            match &c.outcome {
                CaseResult::Passed => {}
                CaseResult::Failed { message, details } => {
                    let _ = write!(
                        x,
                        "\n      <failure message=\"{}\" type=\"{}\">{}</failure>",
                        escape(message),
                        escape(&s.name),
                        escape(details)
                    );
                }
                CaseResult::Skipped { message } => {
                    let _ = write!(x, "\n      <skipped message=\"{}\"/>", escape(message));
                }
            }
            if !c.output.is_empty() {
                let _ = write!(x, "\n      <system-out>{}</system-out>", escape(&c.output));
            }
            if !matches!(c.outcome, CaseResult::Passed) || !c.output.is_empty() {
                x.push_str("\n    ");
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("    <system-out/>\n    <system-err/>\n  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

// The run's document: `junit.xml`, suites in a fixed order (checks first, the target's survival
// last) so CI shows the same layout run after run.

/// The JUnit document of a run.
pub fn render_run(r: &RunReport) -> String {
    let mut suites: Vec<TestSuite> = r.phases.iter().filter_map(checks_suite).collect();
    suites.extend(r.phases.iter().filter_map(|p| match p {
        RunPhase::Load(l) => Some(thresholds_suite(l)),
        RunPhase::Invariants { results } => Some(invariants_suite(results)),
        RunPhase::Fuzz(_) | RunPhase::Checks { .. } => None,
    }));
    suites.extend(buckets_suite(r));
    if let Some(c) = &r.baseline {
        suites.push(comparison_suite(c));
    }
    suites.extend(r.phases.iter().filter_map(soak_suite));
    suites.extend(checkpoint_suite(r));
    suites.push(crashes_suite(r));
    render(&r.profile, &r.started, &suites)
}

/// One case per check.
fn checks_suite(p: &RunPhase) -> Option<TestSuite> {
    let RunPhase::Checks { results } = p else { return None };
    Some(TestSuite {
        name: "checks".into(),
        cases: results
            .iter()
            .map(|c: &CheckResult| TestCase {
                name: c.name.as_str().into(),
                seconds: c.millis as f64 / 1000.0,
                outcome: match c.status {
                    Status::Pass => CaseResult::Passed,
                    Status::Fail => CaseResult::Failed { message: c.summary.clone(), details: c.evidence.join("\n") },
                    Status::Skip => CaseResult::Skipped { message: c.summary.clone() },
                },
                output: format!("{}\n{}", c.summary, c.evidence.join("\n")),
            })
            .collect(),
    })
}

/// A load phase: every request accounted for, then one case per threshold.
fn thresholds_suite(l: &PhaseReport) -> TestSuite {
    let accounted = TestCase {
        name: "requests accounted for".into(),
        seconds: l.elapsed_s,
        outcome: if l.consistent && l.lane_panics == 0 {
            CaseResult::Passed
        } else {
            CaseResult::Failed {
                message: format!(
                    "{} sent, {} measured, {} tool panics",
                    l.requests_sent, l.requests_measured, l.lane_panics
                ),
                details: String::new(),
            }
        },
        output: format!("{} requests, {:.0} req/s, p99 {} µs", l.requests_sent, l.throughput, l.latency.p99),
    };
    let thresholds = l.thresholds.iter().map(|t| {
        let v = serde_json::to_value(t).unwrap_or_default();
        let passed = v.get("passed").and_then(|x| x.as_bool()).unwrap_or(false);
        let name = v.get("name").and_then(|x| x.as_str()).unwrap_or("threshold").to_string();
        TestCase {
            name,
            seconds: 0.0,
            outcome: if passed {
                CaseResult::Passed
            } else {
                CaseResult::Failed { message: v.to_string(), details: String::new() }
            },
            output: v.to_string(),
        }
    });
    TestSuite { name: format!("thresholds.{}", l.name), cases: std::iter::once(accounted).chain(thresholds).collect() }
}

fn invariants_suite(results: &[InvariantResult]) -> TestSuite {
    TestSuite {
        name: "invariants".into(),
        cases: results
            .iter()
            .map(|i| TestCase {
                name: i.name.clone(),
                seconds: 0.0,
                outcome: if i.passed {
                    CaseResult::Passed
                } else {
                    CaseResult::Failed { message: i.summary.clone(), details: i.missing.join("\n") }
                },
                output: i.summary.clone(),
            })
            .collect(),
    }
}

/// One failing case per crash bucket and per hang: the target died or hung.
fn buckets_suite(r: &RunReport) -> Option<TestSuite> {
    let buckets = buckets_of(r);
    if buckets.is_empty() && r.hangs.is_empty() {
        return None;
    }
    let bucket_cases = buckets.iter().map(|b| TestCase {
        name: b.bucket_id.clone(),
        seconds: 0.0,
        outcome: CaseResult::Failed {
            message: format!("{} on {} ({} hits in this run)", b.death, b.route, b.count),
            details: format!("reproducer: {}", b.reproducer.join("repro.sh").display()),
        },
        output: String::new(),
    });
    let hang_cases = r.hangs.iter().enumerate().map(|(i, h)| TestCase {
        name: format!("hang-{}", i + 1),
        seconds: 0.0,
        outcome: CaseResult::Failed { message: h.clone(), details: String::new() },
        output: String::new(),
    });
    Some(TestSuite { name: "crash-buckets".into(), cases: bucket_cases.chain(hang_cases).collect() })
}

/// One case per soak finding of a load phase.
fn soak_suite(p: &RunPhase) -> Option<TestSuite> {
    let RunPhase::Load(l) = p else { return None };
    let s = l.soak.as_ref()?;
    Some(TestSuite {
        name: format!("soak.{}", l.name),
        cases: s
            .findings
            .iter()
            .map(|f| TestCase {
                name: f.kind.clone(),
                seconds: 0.0,
                outcome: if f.flagged {
                    CaseResult::Failed {
                        message: f.summary.clone(),
                        details: serde_json::to_string(&f.figures).unwrap_or_default(),
                    }
                } else {
                    CaseResult::Passed
                },
                output: f.summary.clone(),
            })
            .collect(),
    })
}

/// A checkpoint fails "run finished": CI must not read an unfinished run as a pass.
fn checkpoint_suite(r: &RunReport) -> Option<TestSuite> {
    let c = r.checkpoint.as_ref().filter(|_| r.partial)?;
    Some(TestSuite {
        name: "run".into(),
        cases: vec![TestCase {
            name: "run finished".into(),
            seconds: r.elapsed_ms as f64 / 1000.0,
            outcome: CaseResult::Failed {
                message: format!("the run did not finish: this report is its checkpoint of {}", c.at),
                details: c.running_phase.map(|p| format!("phase {p} was running")).unwrap_or_default(),
            },
            output: String::new(),
        }],
    })
}

fn crashes_suite(r: &RunReport) -> TestSuite {
    TestSuite {
        name: "crashes".into(),
        cases: vec![TestCase {
            name: "target stays alive".into(),
            seconds: 0.0,
            outcome: match r.crashes.first() {
                None => CaseResult::Passed,
                Some(c) => CaseResult::Failed {
                    message: format!("the target {}", c.describe()),
                    details: r.crashes.iter().map(ExitInfo::describe).collect::<Vec<_>>().join("\n"),
                },
            },
            output: String::new(),
        }],
    }
}

/// The JUnit suite of a baseline comparison: one case per route × metric.
fn comparison_suite(c: &compare::Comparison) -> TestSuite {
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
                        CaseResult::Failed { message: format!("regression: {line}"), details: String::new() }
                    }
                    compare::Call::InsufficientData => CaseResult::Skipped {
                        message: format!("insufficient data (fewer than {} intervals)", c.settings.min_intervals),
                    },
                    _ => CaseResult::Passed,
                },
                output: line,
            }
        })
        .collect();
    if cases.is_empty() {
        cases.push(TestCase {
            name: "compared".into(),
            seconds: 0.0,
            outcome: CaseResult::Skipped { message: c.notes.join("; ") },
            output: String::new(),
        });
    }
    TestSuite { name: "baseline".into(), cases }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_escapes() {
        let suites = vec![TestSuite {
            name: "checks".into(),
            cases: vec![
                TestCase {
                    name: "health".into(),
                    seconds: 0.01,
                    outcome: CaseResult::Passed,
                    output: "200 <ok>".into(),
                },
                TestCase {
                    name: "ingest".into(),
                    seconds: 1.0,
                    outcome: CaseResult::Failed { message: "a \"quote\" & \u{1}".into(), details: "d".into() },
                    output: String::new(),
                },
                TestCase {
                    name: "startup".into(),
                    seconds: 0.0,
                    outcome: CaseResult::Skipped { message: "n/a".into() },
                    output: String::new(),
                },
            ],
        }];
        let x = render("smoke", "2026-11-23T10:00:00Z", &suites);
        assert!(x.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""), "{x}");
        assert!(x.contains("200 &lt;ok&gt;"));
        assert!(x.contains("a &quot;quote&quot; &amp; \\u{1}"));
        assert!(x.contains("timestamp=\"2026-11-23T10:00:00\""));
    }
}
