//! Hunting crashes in a server binary run as a command target, the way a real Mesher is run:
//! `mesher-stress target --http-port P --ws-port Q --fault …` on fixed ports, spawned by `run`
//! from a `[target] kind = "command"` table, with three crash faults and a hang fault switched on
//! together:
//! - `api-key-reply-abi`: every created API key kills the server just after its 201 (mixed
//!   traffic reaches it within a second);
//! - `ws-binary-frame-segv`: a binary frame on `/ingest` kills it (ingest lanes reconnecting at
//!   once would kill every restarted server before its readiness gate passed);
//! - `oversized-content-length`: a Content-Length of 2^40 and more on any route aborts it;
//! - `global-lock-hang`: an assign with a non-string `user_id` leaves the registry lock taken.
//!
//! One bounded run: it ends on its own with exit 3; the phase survives more than 100 deaths in
//! its 40 s and goes on to its end; hangs are detected, killed, bucketed; every death is
//! triaged into one bucket per fault (and one for the hang). Then every bucket's `repro.sh`
//! kills (or hangs) a fresh target, `replay corpus` says still crashing against the run's own
//! target (the profile the buckets record) and fixed against the same server without faults.

use crate::support::db::PROJECT;
use crate::support::{BIN, bin, free_ports, run_cmd};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const FAULTS: [&str; 4] = ["api-key-reply-abi", "ws-binary-frame-segv", "oversized-content-length", "global-lock-hang"];

fn command(http: u16, ws: u16, db: &str, faults: &[&str]) -> Vec<String> {
    let mut c: Vec<String> = [BIN, "target", "--http-port", &http.to_string(), "--ws-port", &ws.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.extend(["--database-url".to_string(), db.to_string()]);
    for f in faults {
        c.extend(["--fault".to_string(), f.to_string()]);
    }
    c
}

fn profile(dir: &Path, name: &str, http: u16, ws: u16, faults: &[&str]) -> PathBuf {
    let cmd = command(http, ws, "{database_url}", faults);
    let text = format!(
        r#"version = 1
name = "{name}"
seed = 11
max_duration = "5m"

[target]
kind = "command"
command = {cmd:?}
http = "http://127.0.0.1:{http}"
ws = "ws://127.0.0.1:{ws}"

[watchdog]
hang_timeout = "3s"
hang_probe_timeout = "2s"

[[phases]]
kind = "load"
name = "mixed"
duration = "40s"
concurrency = 8
restart = true
max_restarts = 1000
mix = {{ valid = 0.45, json = 0.2, http = 0.3, ws = 0.05, routes = {{ "api-keys-create" = 3.0, "issue-assign" = 3.0 }} }}
websocket = {{ ingest_connections = 2 }}

[phases.triage]
corpus = {corpus:?}
timeout = "2s"
max_time = "20s"
budget = "45s"
repro_tries = 1
"#,
        corpus = dir.join("corpus").to_str().unwrap()
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Run a command to its end, killed (and the test failed) past `limit`.
fn bounded(mut c: Command, limit: Duration) -> Output {
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("did not end on its own within {limit:?}")
        }
    }
}

/// A target of our own on the fixed ports, ready (its `listening on` line and the probe).
fn start_target(http: u16, ws: u16, db: &str, faults: &[&str]) -> Child {
    let mut cmd = command(http, ws, db, faults);
    cmd.push("--prepare-db".into());
    let mut child = Command::new(&cmd[0]).args(&cmd[1..]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers(http, Duration::from_secs(1)) {
        assert!(child.try_wait().unwrap().is_none(), "the target died during startup");
        assert!(Instant::now() < deadline, "the target did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Does the target answer its probe (dashboard health) within `t`?
fn answers(http: u16, t: Duration) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], http).into(), t) else { return false };
    let _ = s.set_read_timeout(Some(t));
    let req = format!("GET /api/v1/projects/{PROJECT}/dashboard/health HTTP/1.1\r\nhost: x\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut b = [0u8; 12];
    matches!(s.read(&mut b), Ok(n) if n >= 12 && b.starts_with(b"HTTP/1.1 "))
}

#[test]
fn hunting_a_crashy_command_target_unattended() {
    let dir = tempfile::tempdir().unwrap();
    let (http, ws) = free_ports();
    let hunt = profile(dir.path(), "hunt", http, ws, &FAULTS);
    let started = Instant::now();
    let out = bounded(run_cmd(dir.path().join("run"), &hunt), Duration::from_secs(300));
    println!("run took {:.0} s", started.elapsed().as_secs_f64());
    let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("run/report.json")).unwrap()).unwrap();
    assert_eq!(out.status.code(), Some(3), "exit 3 (crashed)\n{}", text(&out));

    // The phase survived every death and went on to its end.
    let phase = &report["phases"][0];
    let deaths: Vec<&Value> = phase["outages"].as_array().unwrap().iter().filter(|o| o["cause"] == "death").collect();
    println!("{} deaths in a 40 s phase, {} restarts", deaths.len(), phase["restarts"]);
    assert!(deaths.len() >= 60, "{} deaths within the phase's 40 s\n{}", deaths.len(), text(&out));
    // Every death was survived (one at the very end of the traffic needs no restart).
    let survived = |o: &&&Value| o["restarted"] == true || o["start_s"].as_f64().unwrap() >= 39.0;
    assert!(deaths.iter().all(|o| survived(&o)), "every death was survived");
    assert!(phase["elapsed_s"].as_f64().unwrap() >= 39.0, "the phase ran to its end: {}", phase["elapsed_s"]);
    // Each death left its output and its exact inputs.
    for o in &deaths {
        let inputs = o["inputs"].as_str().expect("inputs saved");
        assert!(dir.path().join("run").join(inputs).exists(), "{inputs}");
    }

    // Hangs: detected, killed, bucketed, and the phase went on.
    let hangs: Vec<&&Value> = deaths.iter().filter(|o| o["death"]["kind"] == "hang").collect();
    println!("{} of the deaths were hangs", hangs.len());
    assert!(!hangs.is_empty(), "a hang was detected\n{}", text(&out));
    assert!(hangs.iter().any(|o| o["bucket"].as_str().is_some_and(|b| b.contains("hang-issue-assign"))), "{hangs:?}");
    assert!(!report["hangs"].as_array().unwrap().is_empty());

    // One bucket per planted fault, the table first in the terminal summary and in the HTML.
    let buckets = report["buckets"].as_array().unwrap();
    let mut kinds: Vec<(String, String)> = buckets
        .iter()
        .map(|b| (b["death"].as_str().unwrap().to_string(), b["route"].as_str().unwrap().to_string()))
        .collect();
    kinds.sort();
    let want: Vec<(String, String)> =
        [("SIGABRT", "unrouted"), ("SIGSEGV", "api-keys-create"), ("SIGSEGV", "ws-ingest"), ("hang", "issue-assign")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    let signatures: Vec<String> = buckets
        .iter()
        .map(|b| {
            std::fs::read_to_string(Path::new(b["reproducer"].as_str().unwrap()).join("meta.json")).unwrap_or_default()
        })
        .map(|m| serde_json::from_str::<Value>(&m).map(|v| v["signature"].to_string()).unwrap_or_default())
        .collect();
    assert_eq!(kinds, want, "one bucket per fault: {signatures:#?}\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let table = stdout.find("CRASH BUCKETS").expect("the bucket table");
    assert!(table < stdout.find("CRASHED").unwrap());
    let html = std::fs::read_to_string(dir.path().join("run/report.html")).unwrap();
    assert!(html.find("Crash buckets").unwrap() < html.find("Phase 1").unwrap(), "buckets before the phases");

    // Every reproducer kills (or hangs) a fresh target.
    let cluster = mesher_stress::db::Cluster::start().unwrap();
    for b in buckets {
        let dir = PathBuf::from(b["reproducer"].as_str().unwrap());
        let mut t = start_target(http, ws, cluster.url(), &FAULTS);
        let r = Command::new("bash")
            .arg(dir.join("repro.sh"))
            .env("HOST", "127.0.0.1")
            .env("PORT", http.to_string())
            .env("WS_PORT", ws.to_string())
            .env("MESHER_STRESS", BIN)
            .env("PROBE_TIMEOUT", "3")
            .output()
            .unwrap();
        println!("{}: {}", b["bucket_id"], String::from_utf8_lossy(&r.stdout).lines().last().unwrap_or(""));
        assert_eq!(r.status.code(), Some(0), "{} reproduced\n{}", b["bucket_id"], text(&r));
        if b["death"] == "hang" {
            assert!(t.try_wait().unwrap().is_none(), "a hang leaves the process alive");
            assert!(!answers(http, Duration::from_secs(2)), "and not answering");
        } else {
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(s) = t.try_wait().unwrap() {
                    break s;
                }
                assert!(Instant::now() < deadline, "{} did not kill the target", b["bucket_id"]);
                std::thread::sleep(Duration::from_millis(20));
            };
            use std::os::unix::process::ExitStatusExt;
            let want = if b["death"] == "SIGABRT" { libc::SIGABRT } else { libc::SIGSEGV };
            assert_eq!(status.signal(), Some(want), "{}", b["bucket_id"]);
        }
        let _ = t.kill();
        let _ = t.wait();
    }
    drop(cluster);

    // `replay` without a target: the run's own (the profile the buckets record): still crashing.
    let corpus = dir.path().join("corpus");
    let mut c = bin();
    c.args(["replay", "--tries", "1"]).arg(&corpus);
    let r = bounded(c, Duration::from_secs(180));
    println!("{}", String::from_utf8_lossy(&r.stdout));
    assert_eq!(r.status.code(), Some(1), "still crashing\n{}", text(&r));
    assert_eq!(String::from_utf8_lossy(&r.stdout).matches("still-crashing").count(), 4, "{}", text(&r));
    // The same server without its faults: fixed.
    let clean = profile(dir.path(), "clean", http, ws, &[]);
    let mut c = bin();
    c.args(["replay", "--tries", "1", "--profile"]).arg(&clean).arg(&corpus);
    let r = bounded(c, Duration::from_secs(180));
    println!("{}", String::from_utf8_lossy(&r.stdout));
    assert_eq!(r.status.code(), Some(0), "fixed\n{}", text(&r));
    assert_eq!(String::from_utf8_lossy(&r.stdout).matches("fixed").count(), 5, "4 rows and the summary\n{}", text(&r));

    // A death triaged again later from the run directory alone: its saved inputs, its target
    // (the run's profile.toml), a corpus of its own.
    let first = deaths[0]["inputs"].as_str().unwrap();
    let n: String = first.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut c = bin();
    c.args(["minimize", "--run"])
        .arg(dir.path().join("run"))
        .args(["--outage", &n, "--tries", "1", "--max-time", "20s", "--corpus"])
        .arg(dir.path().join("again"));
    let r = bounded(c, Duration::from_secs(180));
    println!("{}", text(&r));
    assert_eq!(r.status.code(), Some(3), "filed\n{}", text(&r));
    let again: Vec<String> = std::fs::read_dir(dir.path().join("again"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(buckets.iter().any(|b| b["bucket_id"] == again[0]), "the same bucket as the run's: {again:?}");
}

fn checks_profile(dir: &Path, name: &str, command: &[String], http: u16, ws: u16, retries: u32) -> PathBuf {
    let text = format!(
        r#"version = 1
name = "{name}"
max_duration = "2m"

[target]
kind = "command"
command = {command:?}
http = "http://127.0.0.1:{http}"
ws = "ws://127.0.0.1:{ws}"
ready_timeout = "20s"

[watchdog]
startup_retries = {retries}
startup_backoff = "50ms"

[[phases]]
kind = "checks"
checks = ["health"]
"#
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn deaths_during_startup_are_retried_and_a_target_that_never_starts_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let (http, ws) = free_ports();
    // Dies by SIGSEGV in its first two starts (a counter file), then comes up.
    let counter = dir.path().join("starts");
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; \
         if [ $n -lt 2 ]; then echo \"boot crash $n\" >&2; kill -SEGV $$; fi; exec {}",
        command(http, ws, "{database_url}", &[]).join(" "),
        c = counter.display()
    );
    let p = checks_profile(dir.path(), "flaky-start", &["sh".into(), "-c".into(), script], http, ws, 4);
    let out = bounded(run_cmd(dir.path().join("run1"), &p), Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ready after 3 attempts"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");

    // Never comes up: "cannot start" after 1 + 2 attempts, with its output; its signal is the
    // run's crash and no phase ran (exit 4: failed and crashed).
    let script = "echo 'boot crash: no database' >&2; kill -SEGV $$".to_string();
    let p = checks_profile(dir.path(), "never-starts", &["sh".into(), "-c".into(), script], http, ws, 2);
    let out = bounded(run_cmd(dir.path().join("run2"), &p), Duration::from_secs(120));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "{all}");
    assert!(all.contains("cannot start: 3 attempt(s) in a row failed"), "{all}");
    assert!(all.contains("boot crash: no database"), "{all}");
    let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("run2/report.json")).unwrap()).unwrap();
    assert_eq!(report["crashes"][0]["signal_name"], "SIGSEGV", "{report}");
}

#[test]
fn the_fuzz_phase_borrows_a_command_target_on_its_fixed_ports() {
    let dir = tempfile::tempdir().unwrap();
    let (http, ws) = free_ports();
    let cmd = command(http, ws, "{database_url}", &["api-key-reply-abi"]);
    let text_ = format!(
        r#"version = 1
name = "fuzz-command"
seed = 3
max_duration = "3m"

[target]
kind = "command"
command = {cmd:?}
http = "http://127.0.0.1:{http}"
ws = "ws://127.0.0.1:{ws}"

[[phases]]
kind = "checks"
checks = ["health"]

[[phases]]
kind = "fuzz"
duration = "90s"
stop_after_buckets = 1
mix = {{ valid = 1.0, json = 0.0, http = 0.0, routes = {{ "*" = 0.0, "api-keys-create" = 1.0, "api-keys-list" = 1.0 }} }}

[phases.triage]
corpus = {corpus:?}
repro_tries = 1

[[phases]]
kind = "checks"
checks = ["health"]
"#,
        corpus = dir.path().join("corpus").to_str().unwrap()
    );
    let p = dir.path().join("fuzz.toml");
    std::fs::write(&p, text_).unwrap();
    let out = bounded(run_cmd(dir.path().join("run"), &p), Duration::from_secs(180));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("run/report.json")).unwrap()).unwrap();
    assert_eq!(report["buckets"][0]["route"], "api-keys-create", "{all}");
    // The run's target came back on its ports for the phase after the fuzz phase.
    assert_eq!(report["phases"][2]["results"][0]["status"], "pass", "{all}");
}
