//! The `junit.xml` of real runs validates against the JUnit XML schema CI systems read
//! (`tests/data/junit-4.xsd`), with `xmllint --schema` (Debian: libxml2-utils; `.ci/run`
//! installs it). Runs: one that passes (checks, a short load, invariants), and one that fails a
//! threshold and kills the target with the planted §6.1 crash (failures with messages full of
//! quotes and angle brackets). The schema itself is shown to reject a malformed document, so
//! the validation can fail.

use crate::support::{bin, validate_junit};
use std::path::{Path, PathBuf};

/// Run `profile` (TOML text) into a fresh run directory; returns (exit code, run directory).
fn run(dir: &Path, profile: &str) -> (Option<i32>, PathBuf) {
    let p = dir.join("p.toml");
    std::fs::write(&p, profile).unwrap();
    let run = dir.join("run");
    let out = bin().arg("--out").arg(&run).arg("--quiet").arg("run").arg(&p).output().unwrap();
    assert!(
        run.join("junit.xml").exists(),
        "no junit.xml: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), run)
}

#[test]
fn junit_of_a_passing_run_validates() {
    let dir = tempfile::tempdir().unwrap();
    let (code, run) = run(
        dir.path(),
        r#"version = 1
name = "junit-pass"
seed = 3
max_duration = "2m"
[target]
kind = "builtin"
[[phases]]
kind = "checks"
[[phases]]
kind = "load"
name = "short"
duration = "3s"
concurrency = 4
mix = { valid = 1.0, json = 0.0, http = 0.0 }
[phases.thresholds]
error_rate_max = 0.01
[[phases]]
kind = "invariants"
flush_wait = "3s"
"#,
    );
    assert_eq!(code, Some(0));
    let junit = run.join("junit.xml");
    validate_junit(&junit).unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&junit).unwrap()));
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("failures=\"0\"") && x.contains("<testcase name=\"ingest\""), "{x}");
}

#[test]
fn junit_of_a_failing_and_crashing_run_validates() {
    let dir = tempfile::tempdir().unwrap();
    // A load phase that cannot meet its p99 limit (and stays away from the ingestion routes,
    // which would trip the planted crash early), then the checks: the ingest check kills the
    // target (SIGSEGV).
    let (code, run) = run(
        dir.path(),
        r#"version = 1
name = "junit-fail"
seed = 3
max_duration = "2m"
[target]
kind = "builtin"
faults = ["service-reply-abi"]
[[phases]]
kind = "load"
name = "impossible"
duration = "2s"
concurrency = 2
mix = { valid = 1.0, json = 0.0, http = 0.0, routes = { "events-ingest" = 0.0, "events-bulk" = 0.0 } }
[phases.thresholds]
p99_max = { "*" = "1us" }
[[phases]]
kind = "checks"
"#,
    );
    assert_eq!(code, Some(4), "exit 4 = a threshold failed and the target crashed");
    let junit = run.join("junit.xml");
    let x = std::fs::read_to_string(&junit).unwrap();
    validate_junit(&junit).unwrap_or_else(|e| panic!("{e}\n{x}"));
    assert!(x.contains("<failure message=\"the target") && x.contains("SIGSEGV"), "{x}");
    assert!(x.contains("<failure message=\"{&quot;"), "threshold failures carry their JSON, escaped: {x}");
}

#[test]
fn the_schema_rejects_malformed_junit() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.xml");
    // A test case without a name, and a failure count that is not a number.
    std::fs::write(
        &f,
        "<?xml version=\"1.0\"?>\n<testsuites><testsuite name=\"s\" tests=\"1\" failures=\"x\" errors=\"0\" skipped=\"0\" time=\"0\">\
         <testcase classname=\"c\" time=\"0\"/></testsuite></testsuites>\n",
    )
    .unwrap();
    let e = validate_junit(&f).expect_err("a malformed document must not validate");
    assert!(e.contains("failures") && e.contains("name"), "{e}");
}
