//! Crash triage end to end against the built-in target's planted faults, each target a real
//! child process (`mesher-stress target ... --fault ...`) on a throwaway PostgreSQL:
//! - `oversized-content-length`: `mesher-stress minimize` writes one SIGABRT bucket whose
//!   `repro.sh` really aborts a target started by hand;
//! - `cumulative-crash=25`: attributed as cumulative with the exact count 25 (library API: a
//!   single benign request does not kill, so `minimize` has nothing to start from), and
//!   `replay` tells the count apart from 26;
//! - `slow-reader-stall`: attributed as a hang of two held connections, with a reproducer;
//! - `replay` verdicts for a service-reply-abi bucket: still crashing with the fault, fixed
//!   without it.
//!
//! The crashy-server versions of these scenarios live in `triage_crashes`.

use crate::support::child::ChildTarget;
use crate::support::{BIN, bin};
use mesher_stress::db::Cluster;
use mesher_stress::db::fixtures::{Fixtures, SeedOptions};
use mesher_stress::model::{Generated, HttpRequest, Layer, Payload, RequestSeed};
use mesher_stress::reference::faults::SERVICE_REPLY_ABI_SMALLEST_TRIGGER;
use mesher_stress::triage::Death;
use mesher_stress::triage::bucket::{self, Store};
use mesher_stress::triage::session::{TriageOptions, Triager};
use mesher_stress::triage::target::CommandFactory;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const HEALTH: &str = "/api/v1/projects/33333333-3333-3333-3333-333333333333/dashboard/health";

/// Run `mesher-stress ARGS`, echoing its output into the test log.
fn tool(args: &[&str]) -> Output {
    let out = bin().args(args).output().unwrap();
    eprintln!(
        "$ mesher-stress {}\n{}{}-> {:?}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    out
}

/// The built-in target's argument list (ports picked by the kernel).
fn target_args(db_url: &str, faults: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["target", "--http-port", "0", "--ws-port", "0", "--database-url", db_url, "--prepare-db"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for f in faults {
        a.push("--fault".into());
        a.push(f.to_string());
    }
    a
}

fn generated(index: u64, r: HttpRequest) -> Generated {
    Generated {
        seed: RequestSeed { run: 9, stream: 0, index },
        layer: Layer::Http,
        payload: Payload::Http(r),
        trail: vec![],
    }
}

fn health_get() -> HttpRequest {
    HttpRequest::new(None, "GET", HEALTH.into(), Vec::new())
}

fn one_bucket(corpus: &Path) -> (bucket::Meta, std::path::PathBuf) {
    let metas = Store::open(corpus).unwrap().list().unwrap();
    assert_eq!(metas.len(), 1, "{metas:?}");
    let m = metas.into_iter().next().unwrap();
    let dir = corpus.join(&m.bucket_id);
    (m, dir)
}

#[test]
fn oversized_content_length_is_minimised_and_repro_sh_aborts_a_fresh_target() {
    let dir = tempfile::tempdir().unwrap();
    let raw = format!(
        "GET {HEALTH} HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: */*\r\nx-request-id: abc-123\r\n\
         content-length: 1099511627776\r\nuser-agent: stress/1.0\r\n\r\n"
    );
    let file = dir.path().join("lie.http");
    std::fs::write(&file, &raw).unwrap();
    let corpus = dir.path().join("crashes");
    let out = tool(&[
        "minimize",
        file.to_str().unwrap(),
        "--fault",
        "oversized-content-length",
        "--tries",
        "1",
        "--corpus",
        corpus.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "minimize exit code");
    let (m, bdir) = one_bucket(&corpus);
    let inputs = bucket::read_inputs(&bdir).unwrap();
    let Payload::Http(min) = &inputs.payloads[0] else { panic!("{:?}", inputs.payloads) };
    let wire = min.to_wire("127.0.0.1:8080");
    let wire_text = String::from_utf8_lossy(&wire).to_string();
    eprintln!(
        "MINIMISE oversized-content-length: {} -> {} bytes, {} executions, {} restarts, {:.1}s: {wire_text:?}",
        m.size_before, m.size_after, m.executions, m.restarts, m.seconds
    );
    assert_eq!(m.signal.as_deref(), Some("SIGABRT"));
    assert_eq!(m.shell_exit, Some(134));
    assert_eq!(m.kind, "single");
    assert!(m.size_after < m.size_before, "{} -> {}", m.size_before, m.size_after);
    assert!(wire_text.contains("1099511627776"), "the lie is the trigger: {wire_text:?}");
    assert!(!wire_text.contains("x-request-id") && !wire_text.contains("user-agent"), "{wire_text:?}");

    // repro.sh (HOST/PORT from the environment) really aborts a target started by hand.
    let script = std::fs::read_to_string(bdir.join("repro.sh")).unwrap();
    assert!(script.contains("PORT=\"${PORT:-8080}\""), "{script}");
    let cluster = Cluster::start().unwrap();
    let mut target = ChildTarget::start(cluster.url(), &["--fault", "oversized-content-length"]);
    let sh = Command::new("bash")
        .arg(bdir.join("repro.sh"))
        .env("HOST", "127.0.0.1")
        .env("PORT", target.http.port().to_string())
        .output()
        .unwrap();
    eprintln!("repro.sh: {}{}", String::from_utf8_lossy(&sh.stdout), String::from_utf8_lossy(&sh.stderr));
    let st = target.wait_exit(Duration::from_secs(15)).expect("the target died");
    assert_eq!(st.signal(), Some(libc::SIGABRT), "{st:?}");
}

#[test]
fn cumulative_crash_is_attributed_with_its_exact_count() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start().unwrap();
    let f = CommandFactory::new(BIN, target_args(cluster.url(), &["cumulative-crash=25"]));
    let mut o = TriageOptions::default();
    o.oracle.grace = Duration::from_millis(300);
    o.repro_tries = 1;
    o.attribution.benign = Payload::Http(health_get());
    o.attribution.cumulative_max = 200;
    o.run_seed = Some(9);
    let corpus = dir.path().join("crashes");
    let mut t = Triager::new(&f, Store::open(&corpus).unwrap(), o);
    let r = t.on_crash(Death::Signal { signo: 11, core_dumped: false }, &[generated(1, health_get())]).unwrap();
    eprintln!(
        "CUMULATIVE: kind {} death {}, {} executions, {} restarts, {:.1}s",
        r.kind, r.death, r.executions, r.restarts, r.seconds
    );
    assert_eq!(r.kind, "cumulative");
    drop(t);
    let (m, bdir) = one_bucket(&corpus);
    assert_eq!(m.kind, "cumulative");
    // The 25th database-touching request kills: the readiness probe that let each fresh target
    // in (a GET of the dashboard health) was the first of them.
    assert_eq!(m.cumulative_count, Some(24));
    assert_eq!(m.signal.as_deref(), Some("SIGSEGV"));
    assert_eq!(m.route, "dashboard-health");
    assert_eq!(m.repro.serial_hits, 1);
    let inputs = bucket::read_inputs(&bdir).unwrap();
    assert_eq!(inputs.repeat, 24);
    assert!(std::fs::read_to_string(bdir.join("repro.sh")).unwrap().contains("seq 1 24"));

    // The count is exact: replay (the probe and 24 sends) kills a target dying at the 25th, not
    // one at the 26th.
    let d = bdir.to_str().unwrap();
    let out = tool(&["replay", d, "--fault", "cumulative-crash=25", "--tries", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("still-crashing"));
    let out = tool(&["replay", d, "--fault", "cumulative-crash=26", "--tries", "1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("fixed"));
}

#[test]
fn slow_reader_stall_is_attributed_as_a_hang_with_a_reproducer() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start().unwrap();
    let f = CommandFactory::new(BIN, target_args(cluster.url(), &["slow-reader-stall"]));
    let mut o = TriageOptions::default();
    o.oracle.probe_timeout = Duration::from_millis(1000);
    o.oracle.hold = Duration::from_millis(200);
    o.repro_tries = 1;
    o.max_executions = 12;
    o.max_time = Duration::from_secs(20);
    let corpus = dir.path().join("crashes");
    let mut t = Triager::new(&f, Store::open(&corpus).unwrap(), o);
    // Two slow writers (a head that never ends, a body shorter than announced) and an ordinary
    // request between them (answered and closed: keep-alive is off, so it holds no slot).
    let mut head = health_get();
    head.raw = Some(format!("GET {HEALTH} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: 1\r\n").into_bytes());
    let mut body = health_get();
    body.raw = Some(b"POST /api/v1/events HTTP/1.1\r\ncontent-length: 100\r\n\r\n{\"message\":".to_vec());
    let suspects = vec![generated(1, head), generated(2, health_get()), generated(3, body)];
    let r = t.on_crash(Death::Hang, &suspects).unwrap();
    eprintln!(
        "HANG: kind {} death {}, {} -> {} bytes, {} executions, {} restarts, {:.1}s",
        r.kind, r.death, r.size_before, r.size_after, r.executions, r.restarts, r.seconds
    );
    assert_eq!(r.death, Death::Hang);
    assert_eq!(r.kind, "set");
    drop(t);
    let (m, bdir) = one_bucket(&corpus);
    assert_eq!(m.death, Death::Hang);
    assert_eq!(m.signal, None);
    // Two slots: neither slow writer alone hangs it, the pair does; the answered request is out.
    assert_eq!(m.kind, "set");
    assert_eq!(m.concurrency, 2);
    assert_eq!(m.request_seeds.iter().map(|s| s.index).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(m.repro.serial_hits, 1);
    assert!(bdir.join("payloads.json").exists() && bdir.join("repro.sh").exists());
    assert_eq!(bucket::read_inputs(&bdir).unwrap().payloads.len(), 2);
}

#[test]
fn replay_says_still_crashing_with_the_fault_and_fixed_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = Fixtures::plan(&SeedOptions::default()).api_key().to_string();
    let body = SERVICE_REPLY_ABI_SMALLEST_TRIGGER;
    let raw = format!(
        "POST /api/v1/events HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/json\r\n\
         x-sentry-auth: {key}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let file = dir.path().join("event.http");
    std::fs::write(&file, raw).unwrap();
    let corpus = dir.path().join("crashes");
    let out = tool(&[
        "minimize",
        file.to_str().unwrap(),
        "--fault",
        "service-reply-abi",
        "--tries",
        "1",
        "--corpus",
        corpus.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let (m, bdir) = one_bucket(&corpus);
    eprintln!(
        "MINIMISE service-reply-abi (smallest trigger): {} -> {} bytes, {} executions, {} restarts, {:.1}s",
        m.size_before, m.size_after, m.executions, m.restarts, m.seconds
    );
    assert_eq!(m.signal.as_deref(), Some("SIGSEGV"));
    let d = bdir.to_str().unwrap();
    let out = tool(&["replay", d, "--fault", "service-reply-abi", "--tries", "2"]);
    assert_eq!(out.status.code(), Some(1), "still crashing");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("still-crashing") && text.contains(" 2/2 "), "{text}");
    // No target option at all: the built-in target without faults.
    let out = tool(&["replay", corpus.to_str().unwrap(), "--tries", "2"]);
    assert_eq!(out.status.code(), Some(0), "fixed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("fixed") && text.contains(" 0/2 "), "{text}");
}
