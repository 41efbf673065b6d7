//! A tiny crashing HTTP server for the triage and supervision tests, run by re-executing the test
//! binary itself (`<test exe> --exact support::crashy::crashy_entry --nocapture` with
//! `CRASHY_SERVE=1`): real process, real signals. Behaviour:
//! - JSON body with an object member `"ctx"` whose value contains a key `"boom"` at any depth →
//!   answers 202, then `raise(SIGSEGV)` (like Mesher's §6.1 crash after the response);
//! - `Content-Length` above 10^12 → "memory allocation of N bytes failed" + `abort()` (SIGABRT);
//! - path `/race`: two in flight at once → SIGSEGV (needs concurrency);
//! - header `x-stall` → the server stops answering anything (hang);
//! - `CRASHY_DIE_AFTER=N` → after the N-th request, SIGBUS (cumulative crash);
//! - `CRASHY_FIXED=1` → the JSON trigger is "fixed" (no crash).

use mesher_stress::triage::target::CommandFactory;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

static COUNT: AtomicU64 = AtomicU64::new(0);
static RACE: AtomicU64 = AtomicU64::new(0);
static STALLED: AtomicBool = AtomicBool::new(false);

fn has_boom(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.contains_key("boom") || m.values().any(has_boom),
        serde_json::Value::Array(a) => a.iter().any(has_boom),
        _ => false,
    }
}

fn trigger(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, c)| (k == "ctx" && has_boom(c)) || trigger(c)),
        serde_json::Value::Array(a) => a.iter().any(trigger),
        _ => false,
    }
}

fn handle(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    while STALLED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_string();
    let mut cl: u64 = 0;
    let mut stall = false;
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                cl = v.trim().parse().unwrap_or(0);
            }
            if n.eq_ignore_ascii_case("x-stall") {
                stall = true;
            }
        }
    }
    if cl > 1_000_000_000_000 {
        eprintln!("memory allocation of {cl} bytes failed");
        unsafe { libc::abort() };
    }
    if stall {
        STALLED.store(true, Ordering::SeqCst);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let mut body = buf[head_end + 4..].to_vec();
    while (body.len() as u64) < cl {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    let mut status = "200 OK";
    let mut crash = false;
    if path == "/race" {
        if RACE.fetch_add(1, Ordering::SeqCst) >= 1 {
            unsafe { libc::raise(libc::SIGSEGV) };
        }
        std::thread::sleep(Duration::from_millis(300));
        RACE.fetch_sub(1, Ordering::SeqCst);
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && trigger(&v)
        && std::env::var_os("CRASHY_FIXED").is_none()
    {
        status = "202 Accepted";
        crash = true;
    }
    let resp = format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 11\r\n\r\n{{\"ok\":true}}");
    let _ = s.write_all(resp.as_bytes());
    let _ = s.flush();
    drop(s);
    if crash {
        std::thread::sleep(Duration::from_millis(5));
        unsafe { libc::raise(libc::SIGSEGV) };
    }
    if let Some(after) = std::env::var("CRASHY_DIE_AFTER").ok().and_then(|v| v.parse::<u64>().ok())
        && n >= after
    {
        unsafe { libc::raise(libc::SIGBUS) };
    }
}

/// The server's entry: a test that serves in the re-executed binary and passes at once in the
/// suite.
#[test]
fn crashy_entry() {
    if std::env::var_os("CRASHY_SERVE").is_some() {
        serve();
    }
}

/// The arguments that re-execute this binary as the crashy server (with `CRASHY_SERVE=1`).
fn entry_args() -> Vec<String> {
    let name = super::test_name(module_path!(), "crashy_entry");
    ["--exact", &name, "--nocapture", "--test-threads=1", "-q"].iter().map(|s| s.to_string()).collect()
}

/// Serve forever (called in the re-executed test binary).
fn serve() -> ! {
    // Rust's std installs SIGSEGV/SIGBUS handlers (stack-overflow detection) that swallow a
    // raised signal once; a real fault would re-trigger, raise() does not. Default them.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    eprintln!("[mesh-rt] HTTP server listening on {a}");
    for s in l.incoming().flatten() {
        std::thread::spawn(move || handle(s));
    }
    unreachable!()
}

/// The factory for this test binary's crashy server.
pub fn crashy_factory(env: &[(&str, &str)]) -> CommandFactory {
    let exe = std::env::current_exe().unwrap().to_string_lossy().to_string();
    let mut f = CommandFactory::new(exe, entry_args()).env("CRASHY_SERVE", "1");
    for (k, v) in env {
        f = f.env(k, v);
    }
    f.ready_timeout = Duration::from_secs(20);
    f
}

/// The `--target-cmd` string for the mesher-stress CLI.
pub fn crashy_cmd() -> String {
    format!("{} {}", std::env::current_exe().unwrap().display(), entry_args().join(" "))
}

/// A noisy event body that contains the trigger deep inside.
pub fn noisy_trigger_body() -> serde_json::Value {
    serde_json::json!({
        "message": "something failed in the payment flow with a long message text",
        "level": "error",
        "tags": {"env": "prod", "release": "1.2.3", "region": "eu-west-1"},
        "exception": {"values": [{"type": "TypeError", "value": "x is undefined", "stacktrace": {"frames": [
            {"filename": "a.js", "lineno": 10, "function": "f"},
            {"filename": "b.js", "lineno": 20, "function": "g"},
            {"filename": "c.js", "lineno": 30, "function": "h"}]}}]},
        "extra": {"user": {"id": 42, "email": "someone@example.com"}, "ctx": {"noise": [1, 2, 3, 4, 5], "inner": {"boom": "zzzzzzzzzzzz", "other": true}}},
        "fingerprint": ["a", "b", "c"],
        "timestamp": "2026-01-01T00:00:00Z"
    })
}
