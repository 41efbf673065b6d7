//! Checkpoints: `mesher-stress run` killed with SIGKILL in the middle of a load phase, after
//! several deaths of its target, leaves a run directory with what was measured up to the last
//! checkpoint (report.json marked partial, the load phase's timeline and histograms so far, every
//! death so far with its suspects and saved inputs, the crashes, the target's telemetry, the
//! flushed HdrHistogram interval log, valid JUnit), `mesher-stress report DIR` renders it, and the
//! throwaway PostgreSQL and the target do not outlive the tool (PR_SET_PDEATHSIG). Killed in the
//! middle of a fuzz phase against a command target on fixed ports, it keeps the phase's deaths,
//! crashes and buckets so far.

use crate::support::{BIN, alive, bin, free_ports, run_cmd, validate_junit};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills the run if the test fails before it does.
struct Guard(Child);

/// `mesher-stress --out RUN run PROFILE`, its stderr piped or dropped.
fn start_run(run: &std::path::Path, profile: &std::path::Path, stderr: Stdio) -> Guard {
    Guard(run_cmd(run, profile).stdout(Stdio::null()).stderr(stderr).spawn().unwrap())
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PROFILE: &str = r#"version = 1
name = "checkpoint"
seed = 7
max_duration = "2m"
checkpoint_every = "2s"

[target]
kind = "builtin"
faults = ["cumulative-crash=250"]

[[phases]]
kind = "load"
name = "steady"
duration = "30s"
rate = 150.0
concurrency = 8
restart = true
max_restarts = 100
mix = { valid = 1.0, json = 0.0, http = 0.0 }

[[phases]]
kind = "invariants"
"#;

#[test]
fn a_run_killed_mid_load_leaves_a_checkpoint_that_renders() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let run = dir.path().join("run");
    let mut child = start_run(&run, &profile, Stdio::piped());
    // Drain stderr on a thread (the run keeps writing progress lines); note the pids and when
    // the load phase starts.
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    {
        let lines = lines.clone();
        let stderr = BufReader::new(child.0.stderr.take().unwrap());
        std::thread::spawn(move || {
            for l in stderr.lines().map_while(Result::ok) {
                let load = l.starts_with("phase 1: load");
                lines.lock().unwrap().push(l);
                if load {
                    let _ = tx.send(());
                }
            }
        });
    }
    let seen = || lines.lock().unwrap().join("\n");
    rx.recv_timeout(Duration::from_secs(90)).unwrap_or_else(|_| panic!("the load phase did not start:\n{}", seen()));
    let pid_of = |prefix: &str| -> u32 {
        let all = lines.lock().unwrap().clone();
        let l = all.iter().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} line:\n{}", seen()));
        l.rsplit("pid ").next().unwrap().trim_end_matches(')').parse().unwrap()
    };
    let (pg, target) = (pid_of("database:"), pid_of("target:"));
    assert!(alive(pg) && alive(target));

    // 8 s into the 30 s phase: checkpoints at 2, 4, 6 and 8 s of it. Kill -9, no clean-up.
    std::thread::sleep(Duration::from_secs(8));
    let tool = child.0.id();
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the tool was killed, it did not finish: {status:?}");

    // Its children die with it.
    let t = Instant::now();
    while (alive(pg) || alive(target)) && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(target), "target {target} outlived the killed tool {tool}");
    assert!(!alive(pg), "postgres {pg} outlived the killed tool {tool}");

    // The last checkpoint.
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["partial"], true, "{}", r["checkpoint"]);
    assert_eq!(r["checkpoint"]["running_phase"], 1);
    assert_eq!(r["checkpoint"]["every_ms"], 2000);
    let phases = r["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 1, "the load phase so far, nothing after it");
    let load = &phases[0];
    assert_eq!(load["kind"], "load");
    assert_eq!(load["name"], "steady");
    let timeline = load["timeline"].as_array().unwrap();
    let seconds: u64 = timeline.iter().map(|s| s["span"].as_u64().unwrap_or(1)).sum();
    assert!(seconds >= 4, "{seconds} s of timeline in the checkpoint");
    let per_second: u64 = timeline.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
    assert!(per_second > 300, "{per_second} requests in the timeline");
    assert_eq!(load["requests_sent"], load["requests_measured"]);
    assert!(load["routes"].as_array().unwrap().len() > 10, "per-route histograms so far");
    // The target died every ~250 requests (~2 s): every death up to the checkpoint, with its
    // suspects and its saved inputs, and the run's crashes.
    let deaths: Vec<&serde_json::Value> =
        load["outages"].as_array().unwrap().iter().filter(|o| o["cause"] == "death").collect();
    println!("{} deaths in the checkpoint, {} restarts", deaths.len(), load["restarts"]);
    assert!(deaths.len() >= 2, "{}", load["outages"]);
    for d in &deaths {
        assert_eq!(d["exit"]["signal_name"], "SIGSEGV", "{d}");
        assert!(!d["suspects"].as_array().unwrap().is_empty(), "{d}");
        assert!(run.join(d["inputs"].as_str().unwrap()).exists(), "{d}");
    }
    assert!(load["restarts"].as_u64().unwrap() >= 2);
    assert_eq!(r["crashes"][0]["signal_name"], "SIGSEGV", "{}", r["crashes"]);
    let telemetry = r["telemetry"].as_array().unwrap();
    assert!(telemetry.len() >= 4, "{} telemetry samples", telemetry.len());
    assert!(telemetry.iter().all(|s| s["rss_bytes"].as_u64().unwrap() > 0));
    // The interval log was flushed at least up to the checkpoint.
    let hlog = std::fs::read_to_string(run.join("steady.hlog")).unwrap();
    let intervals = hlog.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())).count();
    assert!(intervals as u64 >= seconds, "{intervals} intervals in the log, {seconds} s in the checkpoint");
    assert!(run.join("target.log").exists());
    // The checkpoint's own renderings, then `report DIR` renders them again from report.json.
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert!(junit.contains("<testcase name=\"run finished\"") && junit.contains("did not finish"), "{junit}");
    // CI reads it: valid JUnit (`junit_schema` has the schema's own tests).
    validate_junit(&run.join("junit.xml")).unwrap_or_else(|e| panic!("{e}\n{junit}"));
    std::fs::remove_file(run.join("report.html")).unwrap();
    std::fs::remove_file(run.join("junit.xml")).unwrap();
    let out = bin().arg("report").arg(&run).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("Checkpoint of") && html.contains("UNFINISHED") && html.contains("steady"), "{html}");
    assert!(html.contains("<h3>Outages</h3>") && html.contains("SIGSEGV"), "the deaths rendered");
    assert!(html.contains("<svg"));
    assert!(run.join("junit.xml").exists());
}

const FUZZ_PROFILE: &str = r#"version = 1
name = "checkpoint-fuzz"
seed = 7
max_duration = "3m"
checkpoint_every = "1s"

[target]
kind = "command"
command = COMMAND
http = "http://127.0.0.1:HTTP"
ws = "ws://127.0.0.1:WS"

[[phases]]
kind = "fuzz"
duration = "2m"
mix = { valid = 1.0, json = 0.0, http = 0.0, routes = { "*" = 0.0, "api-keys-create" = 1.0 } }

[phases.triage]
corpus = "CORPUS"
repro_tries = 1
"#;

#[test]
fn a_run_killed_mid_fuzz_keeps_its_deaths_and_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    let corpus = dir.path().join("corpus");
    // The target as a real Mesher runs: an external command on fixed ports.
    let (http, ws) = free_ports();
    let command = [BIN, "target", "--http-port", &http.to_string(), "--ws-port"]
        .into_iter()
        .map(String::from)
        .chain([ws.to_string(), "--database-url".into(), "{database_url}".into()])
        .chain(["--fault".into(), "api-key-reply-abi".into()])
        .collect::<Vec<String>>();
    let text = FUZZ_PROFILE
        .replace("CORPUS", corpus.to_str().unwrap())
        .replace("COMMAND", &format!("{command:?}"))
        .replace("HTTP", &http.to_string())
        .replace("WS", &ws.to_string());
    std::fs::write(&profile, text).unwrap();
    let run = dir.path().join("run");
    let mut child = start_run(&run, &profile, Stdio::null());
    // Every input kills the target: wait for a checkpoint of the fuzz phase with three deaths.
    let read =
        || -> Option<serde_json::Value> { serde_json::from_slice(&std::fs::read(run.join("report.json")).ok()?).ok() };
    let t = Instant::now();
    let deaths = |r: &serde_json::Value| r["phases"][0]["deaths"].as_u64().unwrap_or(0);
    while read().is_none_or(|r| deaths(&r) < 3) {
        assert!(t.elapsed() < Duration::from_secs(90), "no checkpoint with three deaths: {:?}", read());
        std::thread::sleep(Duration::from_millis(200));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let r = read().unwrap();
    assert_eq!(r["partial"], true);
    assert_eq!(r["checkpoint"]["running_phase"], 1);
    let fuzz = &r["phases"][0];
    assert_eq!(fuzz["kind"], "fuzz");
    assert!(fuzz["outages"].as_array().unwrap().len() as u64 >= 3, "{fuzz}");
    assert_eq!(r["crashes"][0]["signal_name"], "SIGSEGV", "{}", r["crashes"]);
    assert_eq!(r["verdict"]["crashed"], true);
    let bucket = &r["buckets"][0];
    assert_eq!(bucket["route"], "api-keys-create", "{}", r["buckets"]);
    assert!(std::path::Path::new(bucket["reproducer"].as_str().unwrap()).join("repro.sh").exists(), "{bucket}");
    std::fs::remove_file(run.join("report.html")).unwrap();
    let out = bin().arg("report").arg(&run).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("UNFINISHED") && html.contains("api-keys-create"), "the bucket rendered");
}
