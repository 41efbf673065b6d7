//! `junit.xml`: one test case per check, threshold, invariant and crash bucket, in the JUnit XML
//! dialect CI systems read (Jenkins / GitLab / GitHub test reporters; Ant's `junit.xsd` shape:
//! `testsuites > testsuite > testcase > (failure | skipped)?, system-out?`).

use std::fmt::Write;

/// The outcome of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
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
    pub outcome: Outcome,
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
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Render the document. `name` names the whole run (the profile), `timestamp` is ISO 8601.
pub fn render(name: &str, timestamp: &str, suites: &[TestSuite]) -> String {
    let count = |f: &dyn Fn(&Outcome) -> bool| suites.iter().flat_map(|s| &s.cases).filter(|c| f(&c.outcome)).count();
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures = count(&|o| matches!(o, Outcome::Failed { .. }));
    let skipped = count(&|o| matches!(o, Outcome::Skipped { .. }));
    let time: f64 = suites.iter().flat_map(|s| &s.cases).map(|c| c.seconds).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        escape(name)
    );
    for (id, s) in suites.iter().enumerate() {
        let f = s.cases.iter().filter(|c| matches!(c.outcome, Outcome::Failed { .. })).count();
        let sk = s.cases.iter().filter(|c| matches!(c.outcome, Outcome::Skipped { .. })).count();
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
                Outcome::Passed => {}
                Outcome::Failed { message, details } => {
                    let _ = write!(
                        x,
                        "\n      <failure message=\"{}\" type=\"{}\">{}</failure>",
                        escape(message),
                        escape(&s.name),
                        escape(details)
                    );
                }
                Outcome::Skipped { message } => {
                    let _ = write!(x, "\n      <skipped message=\"{}\"/>", escape(message));
                }
            }
            if !c.output.is_empty() {
                let _ = write!(x, "\n      <system-out>{}</system-out>", escape(&c.output));
            }
            if !matches!(c.outcome, Outcome::Passed) || !c.output.is_empty() {
                x.push_str("\n    ");
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("    <system-out/>\n    <system-err/>\n  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_escapes() {
        let suites = vec![TestSuite {
            name: "checks".into(),
            cases: vec![
                TestCase { name: "health".into(), seconds: 0.01, outcome: Outcome::Passed, output: "200 <ok>".into() },
                TestCase {
                    name: "ingest".into(),
                    seconds: 1.0,
                    outcome: Outcome::Failed { message: "a \"quote\" & \u{1}".into(), details: "d".into() },
                    output: String::new(),
                },
                TestCase {
                    name: "startup".into(),
                    seconds: 0.0,
                    outcome: Outcome::Skipped { message: "n/a".into() },
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
