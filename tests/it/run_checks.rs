//! `mesher-stress run` end to end against the built-in target: the verification checks pass,
//! the planted §6.1 crash is reported on the event check, and Ctrl-C leaves no orphan.

use crate::support::{BIN, alive, bin, free_ports, run_cmd};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn write_profile(dir: &std::path::Path, faults: &str) -> std::path::PathBuf {
    let p = dir.join("p.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"t\"\nmax_duration = \"2m\"\n[target]\nkind = \"builtin\"\nfaults = [{faults}]\n[[phases]]\nkind = \"checks\"\n"
        ),
    )
    .unwrap();
    p
}

fn report(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("run/report.json")).expect("report.json written")).unwrap()
}

#[test]
fn verify_profile_passes_against_the_builtin_target() {
    let dir = tempfile::tempdir().unwrap();
    let verify = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/verify-mesher.toml");
    let out = run_cmd(dir.path().join("run"), verify).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for check in ["startup", "health", "members", "websocket", "ingest"] {
        assert!(stdout.lines().any(|l| l.starts_with(&format!("PASS {check}"))), "{check} did not pass:\n{stdout}");
    }
    let r = report(dir.path());
    let results = r["phases"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|c| c["status"] == "pass"), "{results:?}");
    assert!(results[4]["summary"].as_str().unwrap().contains("accepted"), "{}", results[4]);
    assert_eq!(r["verdict"]["exit_code"], 0);
    assert!(dir.path().join("run/target.log").exists());
}

#[test]
fn planted_abi_crash_is_reported_on_the_event_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_profile(dir.path(), "\"service-reply-abi\"");
    let out = run_cmd(dir.path().join("run"), &p).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit 3 = target crashed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ingest = stdout.lines().find(|l| l.starts_with("PASS ingest")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(ingest.contains("SIGSEGV") && ingest.contains("139"), "{ingest}");
    let r = report(dir.path());
    assert_eq!(r["crashes"][0]["signal"], 11);
    assert_eq!(r["crashes"][0]["shell_code"], 139);
    assert_eq!(r["verdict"]["crashed"], true);
}

#[test]
fn ctrl_c_stops_postgres_and_the_target_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    // The run stays busy in the startup check, waiting for a line the target never prints.
    let (hp, wp) = free_ports();
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"t\"\n[target]\nkind = \"command\"\n\
             command = [\"{}\", \"target\", \"--http-port\", \"{hp}\", \"--ws-port\", \"{wp}\"]\n\
             http = \"http://127.0.0.1:{hp}\"\nws = \"ws://127.0.0.1:{wp}\"\nready_timeout = \"60s\"\n\
             startup_lines = [\"a line that never comes\"]\n\
             [[phases]]\nkind = \"checks\"\nchecks = [\"startup\"]\nstartup_timeout = \"5m\"\n",
            BIN
        ),
    )
    .unwrap();
    let mut child = run_cmd(dir.path().join("run"), &p).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut pg, mut target) = (None, None);
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        let pid = |l: &str| l.rsplit("pid ").next().unwrap().trim_end_matches(')').parse::<u32>().ok();
        if line.starts_with("database:") {
            pg = pid(&line);
        }
        if line.starts_with("target:") {
            target = pid(&line);
        }
        if line.contains("phase 1") {
            break;
        }
    }
    let (pg, target) = match (pg, target) {
        (Some(p), Some(t)) => (p, t),
        _ => panic!("no pids printed:\n{}", seen.join("\n")),
    };
    assert!(alive(pg) && alive(target));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "run did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert!(!alive(target), "target {target} orphaned");
    assert!(!alive(pg), "postgres {pg} orphaned");
    let r = report(dir.path());
    assert_eq!(r["interrupted"], true);
}

#[test]
fn smoke_profile_runs_checks_load_and_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--out")
        .arg(dir.path().join("run"))
        .args(["--quiet", "run", concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/smoke.toml")])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(dir.path());
    let kinds: Vec<&str> = r["phases"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["checks", "load", "invariants"]);
    let load = &r["phases"][1];
    assert!(load["requests_sent"].as_u64().unwrap() > 100, "{load}");
    assert_eq!(load["requests_sent"], load["requests_measured"]);
    assert_eq!(load["passed"], true);
    // Every route of the catalogue got traffic.
    let routes: std::collections::BTreeSet<&str> =
        load["routes"].as_array().unwrap().iter().map(|x| x["route"].as_str().unwrap()).collect();
    assert_eq!(routes.len(), 36, "{routes:?}");
    // Valid member adds never collide with members made earlier (the `members` check adds one of
    // the fixtures' free users before the load starts).
    let adds = load["routes"].as_array().unwrap().iter().find(|x| x["route"] == "members-add").unwrap();
    assert!(adds["outcomes"]["2xx"].as_u64().unwrap_or(0) > 0, "{adds}");
    assert_eq!(adds["outcomes"].get("5xx"), None, "{adds}");
    // The target's health was sampled from /proc every second.
    let t = r["telemetry"].as_array().unwrap();
    assert!(t.len() >= 5, "{} samples", t.len());
    assert!(t.iter().all(|s| s["rss_bytes"].as_u64().unwrap() > 0 && s["fds"].as_u64().unwrap() > 0));
    for i in r["phases"][2]["results"].as_array().unwrap() {
        assert_eq!(i["passed"], true, "{i}");
    }
    // The HTML report is self-contained and the JUnit file counts the cases.
    let html = std::fs::read_to_string(dir.path().join("run/report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("all-routes") && html.contains("events-stored"));
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"),
        "not self-contained"
    );
    let junit = std::fs::read_to_string(dir.path().join("run/junit.xml")).unwrap();
    assert!(junit.contains("failures=\"0\"") && junit.contains("<testcase name=\"events-stored\""), "{junit}");
    // `report RUN_DIR` re-renders both from report.json.
    std::fs::remove_file(dir.path().join("run/report.html")).unwrap();
    let st = bin().arg("report").arg(dir.path().join("run")).status().unwrap();
    assert!(st.success());
    assert!(dir.path().join("run/report.html").exists());
}

/// The `members` check adds one of the fixtures' free users; a load phase after it must know that
/// user is taken (it reads the org's members when it starts), or its valid adds get 500 duplicates.
#[test]
fn load_after_the_members_check_never_adds_an_existing_member() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        r#"version = 1
name = "members-after-check"
seed = 7
max_duration = "2m"
[target]
kind = "builtin"
[[phases]]
kind = "checks"
checks = ["members"]
[[phases]]
kind = "load"
name = "adds"
duration = "3s"
concurrency = 4
mix = { valid = 1.0, json = 0.0, http = 0.0, routes = { "members-add" = 500 } }
"#,
    )
    .unwrap();
    let out = bin().arg("--out").arg(dir.path().join("run")).args(["--quiet", "run"]).arg(&p).output().unwrap();
    let r = report(dir.path());
    let load = &r["phases"][1];
    let adds =
        load["routes"].as_array().unwrap().iter().find(|x| x["route"] == "members-add").expect("members-add sent");
    assert!(adds["outcomes"]["2xx"].as_u64().unwrap_or(0) > 0, "{adds}");
    assert_eq!(adds["outcomes"].get("5xx"), None, "{adds}");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
