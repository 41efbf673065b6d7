//! Bounded under hostile targets: small servers written to misbehave (real sockets; a real
//! process for the SIGSTOP case), each driven by `mesher-stress load` with the generators'
//! mixed traffic (the largest mutated bodies and WebSocket frames included), HTTP and WebSocket
//! ingest lanes, in closed and in open loop. For every one: the run ends within its duration
//! plus the lanes' grace, its report is written, the outcome classes are the right ones, and a
//! target that answered nothing does not pass; SIGINT in the middle ends it within 3 s with exit
//! 130 and the report.
//!
//! The runs are independent processes: they go eight at a time, so the suite takes a few
//! phase lengths, not one per run.

use crate::support::{bin, run_cmd, test_name};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The phase's sending time, and the longest a run may take: the phase, the lanes' grace (2 s)
/// and start-up and report writing.
const PHASE: Duration = Duration::from_secs(3);
const LIMIT: Duration = Duration::from_secs(9);

/// The ways a server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hostile {
    AcceptsNeverReads,
    ReadsNeverAnswers,
    OneByteASecond,
    EndlessChunked,
    EndlessHeaders,
    HugeLengthNoBody,
    ResetOnAccept,
    WsNeverReads,
    WsClosesMidFrame,
    WsGiantFrameHeader,
    WsGarbageHandshake,
}

const ALL: [Hostile; 11] = [
    Hostile::AcceptsNeverReads,
    Hostile::ReadsNeverAnswers,
    Hostile::OneByteASecond,
    Hostile::EndlessChunked,
    Hostile::EndlessHeaders,
    Hostile::HugeLengthNoBody,
    Hostile::ResetOnAccept,
    Hostile::WsNeverReads,
    Hostile::WsClosesMidFrame,
    Hostile::WsGiantFrameHeader,
    Hostile::WsGarbageHandshake,
];

/// Read a request head (up to the blank line); false when the peer went away.
fn read_head(s: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
        match s.read(&mut b) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

/// A well-formed answer to the HTTP side, so that only the WebSocket side misbehaves.
fn answer_ok(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if read_head(&mut s) {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
    }
}

fn ws_accept(s: &mut TcpStream) -> bool {
    if !read_head(s) {
        return false;
    }
    s.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    )
    .is_ok()
}

/// Serve one connection the hostile way (`ws`: on the WebSocket port).
fn serve(h: Hostile, mut s: TcpStream, ws: bool) {
    let hold = |s: TcpStream| {
        std::thread::sleep(Duration::from_secs(60));
        drop(s);
    };
    match (h, ws) {
        (Hostile::AcceptsNeverReads, _) => hold(s),
        (Hostile::ReadsNeverAnswers, _) => {
            let mut b = [0u8; 65536];
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        }
        (Hostile::OneByteASecond, false) => {
            if read_head(&mut s) {
                for b in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}" {
                    if s.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        (Hostile::EndlessChunked, false) => {
            if read_head(&mut s) && s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_ok() {
                let chunk =
                    b"400\r\n".iter().chain([b'a'; 1024].iter()).chain(b"\r\n".iter()).copied().collect::<Vec<u8>>();
                while s.write_all(&chunk).is_ok() {}
            }
        }
        (Hostile::EndlessHeaders, false) => {
            if read_head(&mut s) && s.write_all(b"HTTP/1.1 200 OK\r\n").is_ok() {
                while s.write_all(b"x-endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n").is_ok() {}
            }
        }
        (Hostile::HugeLengthNoBody, false) => {
            if read_head(&mut s) && s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2147483648\r\n\r\n").is_ok() {
                hold(s);
            }
        }
        (Hostile::ResetOnAccept, _) => {
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        (Hostile::WsNeverReads, true) => {
            if ws_accept(&mut s) {
                hold(s);
            }
        }
        (Hostile::WsClosesMidFrame, true) => {
            if ws_accept(&mut s) {
                let mut b = [0u8; 64];
                let _ = s.read(&mut b);
                // A text frame of 100 bytes announced, 3 sent, then gone.
                let _ = s.write_all(&[0x81, 100, b'{', b'"', b'a']);
            }
        }
        (Hostile::WsGiantFrameHeader, true) => {
            if ws_accept(&mut s) {
                let mut f = vec![0x82, 127];
                f.extend_from_slice(&(1u64 << 30).to_be_bytes());
                let _ = s.write_all(&f);
                hold(s);
            }
        }
        (Hostile::WsGarbageHandshake, true) => {
            if read_head(&mut s) {
                let _ = s.write_all(b"\x00\xffSSH-2.0-garbage\r\n\r\nmore garbage");
            }
        }
        // The side that is not this server's hostile one behaves.
        (_, _) => answer_ok(s),
    }
}

/// Start a hostile server: (HTTP address, WebSocket address).
fn hostile(h: Hostile) -> (SocketAddr, SocketAddr) {
    let mut addrs = Vec::new();
    for ws in [false, true] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        addrs.push(l.local_addr().unwrap());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || serve(h, s, ws));
            }
        });
    }
    (addrs[0], addrs[1])
}

/// The phase file: mixed valid and mutated traffic with the generators' largest bodies, HTTP
/// lanes and WebSocket ingest lanes, short timeouts, in closed or open loop.
fn phase_file(dir: &Path, open_loop: bool) -> std::path::PathBuf {
    let p = dir.join(if open_loop { "open.toml" } else { "closed.toml" });
    let rate = if open_loop { "rate = 50.0\n" } else { "" };
    std::fs::write(
        &p,
        format!(
            "duration = \"{}s\"\nconcurrency = 4\n{rate}connect_timeout = \"1s\"\nrequest_timeout = \"1s\"\nbody_timeout = \"1s\"\n\
             mix = {{ valid = 0.3, json = 0.4, http = 0.2, ws = 0.1 }}\n\
             generate = {{ max_string = 4194304, max_array = 200000 }}\n\
             websocket = {{ ingest_connections = 2 }}\n",
            PHASE.as_secs()
        ),
    )
    .unwrap();
    p
}

/// One run of `load` against a server; `interrupt`: SIGINT after this long.
struct Run {
    label: String,
    took: Duration,
    code: Option<i32>,
    report: Option<Value>,
    stderr: String,
}

fn run(
    label: String,
    dir: &Path,
    phase: &Path,
    (http, ws): (SocketAddr, SocketAddr),
    interrupt: Option<Duration>,
) -> Run {
    let out = dir.join(&label);
    let started = Instant::now();
    let mut child = bin()
        .arg("--out")
        .arg(&out)
        .args(["load", "--http", &format!("http://{http}"), "--ws", &format!("ws://{ws}"), "--phase"])
        .arg(phase)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut sent_int = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if !sent_int && interrupt.is_some_and(|t| started.elapsed() >= t) {
            unsafe { libc::kill(pid, libc::SIGINT) };
            sent_int = true;
        }
        if started.elapsed() > LIMIT * 3 {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let report = std::fs::read(out.join("report.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    Run { label, took, code: status.and_then(|s| s.code()), report, stderr }
}

/// A run to make.
type Job<T> = Box<dyn FnOnce() -> T + Send>;

/// Run `jobs` at most `n` at a time.
fn at_most<T: Send>(n: usize, jobs: Vec<Job<T>>) -> Vec<T> {
    let jobs = std::sync::Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let out = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                loop {
                    let Some((i, job)) = jobs.lock().unwrap().pop() else { break };
                    let r = job();
                    out.lock().unwrap().push((i, r));
                }
            });
        }
    });
    let mut v = out.into_inner().unwrap();
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

fn outcomes(r: &Value) -> Vec<String> {
    r["outcomes"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn count(r: &Value, outcome: &str) -> u64 {
    r["outcomes"][outcome].as_u64().unwrap_or(0)
}

#[test]
fn every_hostile_server_ends_in_time_with_its_report_and_the_right_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let phases = [phase_file(dir.path(), false), phase_file(dir.path(), true)];
    let mut jobs: Vec<Job<(Hostile, bool, Run)>> = Vec::new();
    for h in ALL {
        let addrs = hostile(h);
        for (open, phase) in [(false, phases[0].clone()), (true, phases[1].clone())] {
            let d = dir.path().to_path_buf();
            jobs.push(Box::new(move || {
                let label = format!("{h:?}-{}", if open { "open" } else { "closed" });
                (h, open, run(label, &d, &phase, addrs, None))
            }));
        }
    }
    let runs = at_most(8, jobs);
    let mut failures = Vec::new();
    for (h, open, r) in &runs {
        let Some(rep) = &r.report else {
            failures.push(format!(
                "{}: no report.json (exit {:?}, {:.1} s)\n{}",
                r.label,
                r.code,
                r.took.as_secs_f64(),
                r.stderr
            ));
            continue;
        };
        println!(
            "{:<32} {:>5.1} s  exit {:?}  sent {:>5}  {}",
            r.label,
            r.took.as_secs_f64(),
            r.code,
            rep["requests_sent"],
            rep["outcomes"]
        );
        if r.took > LIMIT {
            failures.push(format!("{}: took {:.1} s (limit {:?})", r.label, r.took.as_secs_f64(), LIMIT));
        }
        if rep["consistent"] != true {
            failures.push(format!(
                "{}: requests not accounted for: {} sent, {} measured",
                r.label, rep["requests_sent"], rep["requests_measured"]
            ));
        }
        // The classes each server must produce (HTTP side; the WebSocket servers' HTTP side
        // answers 200).
        let http_want: &[&str] = match h {
            Hostile::AcceptsNeverReads => &["write-timeout", "timeout"],
            Hostile::ReadsNeverAnswers => &["timeout"],
            Hostile::OneByteASecond | Hostile::HugeLengthNoBody => &["timeout"],
            Hostile::EndlessChunked | Hostile::EndlessHeaders => &["timeout", "bad-response", "2xx"],
            Hostile::ResetOnAccept => &["reset", "closed", "connect-reset"],
            _ => &["2xx"],
        };
        let o = outcomes(rep);
        if !http_want.iter().any(|w| o.iter().any(|x| x == w)) {
            failures.push(format!("{}: none of {http_want:?} among {o:?}", r.label));
        }
        let ws_route = rep["routes"].as_array().unwrap().iter().find(|x| x["route"] == "ws-ingest").cloned();
        // The WebSocket ingest lanes' classes: a peer that never reads leaves acks and writes to
        // time out; a 1 GiB frame header is no answer (refused unread: bad-response).
        let ws_want: &[&str] = match h {
            Hostile::WsNeverReads => &["timeout", "write-timeout", "interrupted"],
            Hostile::WsGiantFrameHeader => &["bad-response"],
            Hostile::WsClosesMidFrame => &["closed", "reset", "bad-response"],
            Hostile::WsGarbageHandshake => &["bad-response", "closed", "reset"],
            _ => &[],
        };
        if !ws_want.is_empty() {
            let ws = ws_route.as_ref().map(|x| x["outcomes"].to_string()).unwrap_or_default();
            if !ws_want.iter().any(|w| ws.contains(&format!("\"{w}\""))) {
                failures.push(format!("{}: ws-ingest outcomes {ws}, want one of {ws_want:?}", r.label));
            }
        }
        // A target that answered nothing did not pass.
        let answered: u64 =
            ["1xx", "2xx", "3xx", "4xx", "5xx", "ack-ok", "ack-error", "ws-close"].iter().map(|k| count(rep, k)).sum();
        if answered == 0 && (rep["passed"] == true || r.code == Some(0)) {
            failures.push(format!("{}: nothing answered, yet passed (exit {:?})", r.label, r.code));
        }
        let _ = open;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sigint_ends_a_run_against_each_hostile_server_within_3s() {
    let dir = tempfile::tempdir().unwrap();
    let phase = dir.path().join("long.toml");
    std::fs::write(
        &phase,
        "duration = \"60s\"\nconcurrency = 4\nmix = { valid = 0.3, json = 0.4, http = 0.2, ws = 0.1 }\n\
         generate = { max_string = 4194304 }\nwebsocket = { ingest_connections = 2 }\n",
    )
    .unwrap();
    let mut jobs: Vec<Job<(Hostile, Run)>> = Vec::new();
    for h in ALL {
        let addrs = hostile(h);
        let (d, p) = (dir.path().to_path_buf(), phase.clone());
        jobs.push(Box::new(move || {
            (h, run(format!("{h:?}-sigint"), &d, &p, addrs, Some(Duration::from_millis(1500))))
        }));
    }
    let runs = at_most(8, jobs);
    let mut failures = Vec::new();
    for (_, r) in &runs {
        let after = r.took.saturating_sub(Duration::from_millis(1500));
        println!("{:<32} ended {:.2} s after SIGINT, exit {:?}", r.label, after.as_secs_f64(), r.code);
        if after > Duration::from_secs(3) {
            failures.push(format!("{}: {:.2} s after SIGINT", r.label, after.as_secs_f64()));
        }
        if r.code != Some(130) {
            failures.push(format!("{}: exit {:?}\n{}", r.label, r.code, r.stderr));
        }
        if r.report.is_none() {
            failures.push(format!("{}: no report.json", r.label));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The re-executed test binary serving well (both ports) until it is frozen.
#[test]
fn frozen_entry() {
    if std::env::var_os("HOSTILE_SERVE").is_none() {
        return;
    }
    // Behave on both sides: a server that answers, until SIGSTOP freezes it whole.
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let ws = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{} {}", http.local_addr().unwrap(), ws.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    let wsl = ws;
    std::thread::spawn(move || {
        for s in wsl.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                if ws_accept(&mut s) {
                    let mut b = [0u8; 65536];
                    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
                }
            });
        }
    });
    for s in http.incoming().flatten() {
        std::thread::spawn(move || answer_ok(s));
    }
}

#[test]
fn a_frozen_process_bounds_the_run_and_sigint_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test_name(module_path!(), "frozen_entry"), "--nocapture", "--test-threads=1", "-q"])
        .env("HOSTILE_SERVE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        if line.contains("127.0.0.1:") {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let addrs: (SocketAddr, SocketAddr) =
        (parts.next().unwrap().parse().unwrap(), parts.next().unwrap().parse().unwrap());
    unsafe { libc::kill(server.id() as i32, libc::SIGSTOP) };
    let phases = [phase_file(dir.path(), false), phase_file(dir.path(), true)];
    let (d1, d2, d3) = (dir.path().to_path_buf(), dir.path().to_path_buf(), dir.path().to_path_buf());
    let (p1, p2, p3) = (phases[0].clone(), phases[1].clone(), phases[0].clone());
    let runs = at_most(
        3,
        vec![
            Box::new(move || run("frozen-closed".into(), &d1, &p1, addrs, None)) as Job<Run>,
            Box::new(move || run("frozen-open".into(), &d2, &p2, addrs, None)),
            Box::new(move || run("frozen-sigint".into(), &d3, &p3, addrs, Some(Duration::from_millis(1500)))),
        ],
    );
    unsafe { libc::kill(server.id() as i32, libc::SIGCONT) };
    let _ = server.kill();
    let _ = server.wait();
    for r in &runs {
        let rep = r.report.as_ref().unwrap_or_else(|| panic!("{}: no report\n{}", r.label, r.stderr));
        println!("{:<16} {:.1} s exit {:?} {}", r.label, r.took.as_secs_f64(), r.code, rep["outcomes"]);
        assert!(r.took <= LIMIT, "{}: {:.1} s", r.label, r.took.as_secs_f64());
        if r.label.ends_with("sigint") {
            assert_eq!(r.code, Some(130), "{}", r.stderr);
        } else {
            assert_ne!(rep["passed"], true, "a frozen target answers nothing: {}", rep["thresholds"]);
            assert!(
                count(rep, "timeout") + count(rep, "write-timeout") + count(rep, "interrupted") > 0,
                "{}",
                rep["outcomes"]
            );
        }
    }
}

/// The case that hung a run: a WebSocket server that completes the handshake and never reads,
/// ingest lanes with mutated traffic (multi-MiB frames), a 10 s phase; SIGTERM ends `run`
/// within 3 s (exit 130) with its report.
#[test]
fn sigterm_ends_a_run_whose_websocket_peer_never_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (http, ws) = hostile(Hostile::WsNeverReads);
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"never-reads\"\nmax_duration = \"2m\"\n\
             [target]\nkind = \"url\"\nhttp = \"http://{http}\"\nws = \"ws://{ws}\"\n\
             [[phases]]\nkind = \"load\"\nduration = \"10s\"\nconcurrency = 2\n\
             mix = {{ valid = 0.2, json = 0.5, http = 0.1, ws = 0.2 }}\ngenerate = {{ max_string = 4194304 }}\n\
             websocket = {{ ingest_connections = 4 }}\n"
        ),
    )
    .unwrap();
    let mut child = run_cmd(dir.path().join("run"), &p).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Once the load phase runs (its database is up and the target reachable).
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("phase 1: load") {
        line.clear();
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap() == 0 {
            panic!("the run ended before its load phase");
        }
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("SIGTERM ignored");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("ended {:.2} s after SIGTERM", t.elapsed().as_secs_f64());
    assert!(t.elapsed() <= Duration::from_secs(3), "{:.2} s after SIGTERM", t.elapsed().as_secs_f64());
    assert_eq!(status.code(), Some(130));
    let r: Value = serde_json::from_slice(&std::fs::read(dir.path().join("run/report.json")).unwrap()).unwrap();
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["phases"][0]["kind"], "load", "the phase measured so far is in the report");
}
