//! Fuzz phase profiles through `mesher-stress run` (throwaway PostgreSQL, the built-in target):
//! a profile like profiles/abi-hunt.toml, shortened, with the service-reply-abi fault and the
//! built-in generators (fuzz-heavy mix), watchdog + triage, the bucket table at the end, exit code
//! 3 (crashed); and a field campaign (below).

use crate::support::{bin, run_cmd};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

#[test]
fn fuzz_phase_profile_ends_with_the_bucket_table() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("crashes");
    let profile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/abi-hunt.toml"))
        .unwrap()
        .replace("duration = \"3m\"", "duration = \"150s\"")
        .replace("max_inputs = 20000", "max_inputs = 6000\nstop_after_buckets = 1")
        .replace("faults = [\"service-reply-abi\", \"oversized-content-length\"]", "faults = [\"service-reply-abi\"]")
        .replace("corpus = \"corpus/crashes\"", &format!("corpus = {:?}", corpus.to_str().unwrap()))
        .replace("gdb = true", "gdb = false")
        .replace("repro_tries = 3", "repro_tries = 1");
    let p = dir.path().join("abi.toml");
    std::fs::write(&p, profile).unwrap();
    let out =
        bin().args(["run", p.to_str().unwrap(), "--out", dir.path().join("run").to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "crashed");
    assert!(stdout.contains("sigsegv-events-ingest"), "bucket table: {stdout}");
    let n = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert!(n >= 1);
}

// The field campaign (`fields = true`) against four crashes planted behind typed boundary values
// of one field each (a body integer below zero, a body integer past i32, a negative query limit, a
// WebSocket frame's level in the wrong case), a frequent crash (every created API key) and a
// cumulative one (the 60th `alerts-list` of a process lifetime): one bounded run files each in a
// bucket of its own, the cumulative one as cumulative; the field coverage is in report.json, the
// terminal and the HTML; the feedback corpus is written and seeds a second run.

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn profile(dir: &Path, name: &str, duration: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            r#"version = 1
name = "{name}"
seed = 20
max_duration = "4m"

[target]
kind = "builtin"
faults = ["settings-negative-retention", "alert-cooldown-overflow", "top-issues-negative-limit", "ws-level-case", "api-key-reply-abi", "route-cumulative=alerts-list/60"]

[[phases]]
kind = "fuzz"
duration = "{duration}"
{extra}
mix = {{ valid = 0.5, json = 0.3, http = 0.1, ws = 0.1, routes = {{ "*" = 0.0, "settings-update" = 1.0, "alert-rules-create" = 1.0, "dashboard-top-issues" = 1.0, "api-keys-create" = 1.0, "alerts-list" = 12.0, "ws-ingest" = 1.0 }} }}

[phases.triage]
corpus = {corpus:?}
repro_tries = 1
max_time = "20s"
cumulative_max = 400
# The built-in target dies within milliseconds of its trigger.
grace = "100ms"
"#,
            corpus = dir.join("corpus").to_str().unwrap()
        ),
    )
    .unwrap();
    p
}

#[test]
fn one_bounded_run_finds_every_field_boundary_crash_and_the_cumulative_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), "fields", "150s", "fields = true\nsettle = \"5ms\"\nstop_after_buckets = 6");
    let out = run_cmd(dir.path().join("run"), &p).output().unwrap();
    let all = text(&out);
    println!("{all}");
    assert_eq!(out.status.code(), Some(3), "{all}");
    let r: Value = serde_json::from_slice(&std::fs::read(dir.path().join("run/report.json")).unwrap()).unwrap();
    let fuzz = &r["phases"][0];
    let mut found: Vec<(String, String, String)> = fuzz["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["death"].as_str().unwrap().into(),
                b["route"].as_str().unwrap().into(),
                b["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    let want: Vec<(String, String, String)> = [
        ("SIGSEGV", "alert-rules-create", "single"),
        ("SIGSEGV", "alerts-list", "cumulative"),
        ("SIGSEGV", "api-keys-create", "single"),
        ("SIGSEGV", "dashboard-top-issues", "single"),
        ("SIGSEGV", "settings-update", "single"),
        ("SIGSEGV", "ws-ingest", "single"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(found, want, "one bucket per planted crash\n{all}");

    // The coverage: the walk went through every pair of the mix's routes (but those of fields
    // already seen to kill into a filed bucket whatever their value).
    let c = &fuzz["coverage"];
    assert!(c["walk_done_s"].as_f64().is_some(), "{c}");
    assert!(c["pairs_tried"].as_u64().unwrap() * 10 >= c["pairs_total"].as_u64().unwrap() * 9, "{c}");
    assert!(c["pairs_total"].as_u64().unwrap() > 400, "{c}");
    let routes: Vec<&str> = c["routes"].as_array().unwrap().iter().map(|x| x["route"].as_str().unwrap()).collect();
    assert_eq!(
        routes,
        [
            "alert-rules-create",
            "alerts-list",
            "api-keys-create",
            "dashboard-top-issues",
            "settings-update",
            "ws-ingest"
        ]
    );
    let finding = |route: &str, field: &str| {
        c["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["route"] == route && f["field"] == field && f["deaths"].as_u64() > Some(0))
    };
    assert!(finding("settings-update", "body:retention_days"), "{c}");
    assert!(finding("alert-rules-create", "body:cooldown_minutes"), "{c}");
    assert!(finding("dashboard-top-issues", "query:limit"), "{c}");
    assert!(finding("ws-ingest", "frame:level"), "{c}");
    // The frequent crash stopped being sent once filed, so the cumulative one could build up.
    assert!(c["masked"].as_u64().unwrap() > 0, "{c}");
    let cumulative_death = fuzz["outages"].as_array().unwrap().iter().any(|o| {
        o["since_start"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x[0] == "alerts-list" && x[1].as_u64() >= Some(60)))
    });
    assert!(cumulative_death, "a death after 150 alerts-list requests, with its counts");
    assert!(all.contains("field coverage:"), "the terminal shows it");
    let html = std::fs::read_to_string(dir.path().join("run/report.html")).unwrap();
    assert!(html.contains("Field coverage") && html.contains("retention_days"));

    // The feedback corpus, then a second run seeded with it.
    let corpus = dir.path().join("run/fuzz-corpus-1");
    let saved = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum::<usize>();
    assert!(saved > 10, "{saved} inputs in the corpus");
    let p2 =
        profile(dir.path(), "seeded", "5s", &format!("fields = true\nseed_corpus = {:?}", corpus.to_str().unwrap()));
    let out = run_cmd(dir.path().join("run2"), &p2).output().unwrap();
    let r2: Value = serde_json::from_slice(&std::fs::read(dir.path().join("run2/report.json")).unwrap()).unwrap();
    assert!(r2["phases"][0]["coverage"]["corpus"].as_u64().unwrap() >= saved as u64, "{}", text(&out));

    // A seed corpus without the campaign is a profile error.
    let bad = profile(dir.path(), "bad", "5s", "fields = false\nseed_corpus = \"/nonexistent\"");
    let out = bin().arg("run").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
}
