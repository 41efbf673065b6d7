//! Planted faults and graceful shutdown of `mesher-stress target`, each against a real child
//! process on a throwaway PostgreSQL: deaths are observed as signals, hangs as timeouts.

use crate::support::bin;
use crate::support::child::*;
use crate::support::client::*;
use crate::support::db::*;
use mesher_stress::reference::faults::SERVICE_REPLY_ABI_SMALLEST_TRIGGER;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const HEALTH: &str = "/api/v1/projects/33333333-3333-3333-3333-333333333333/dashboard/health";

fn key(f: &mesher_stress::db::Fixtures) -> String {
    f.api_key().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_reply_abi_dies_by_sigsegv_without_answering() {
    let (url, _db, f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "service-reply-abi"]);
    // Near misses are served normally.
    let near = r#"{"message":"m","stacktrace":[{"colno":0,"in_app":true}],"user_context":{"email":"a@b"}}"#;
    assert_eq!(ingest(t.http, &key(&f), near).await.status, 202);
    // The trigger without a valid key never reaches processing.
    assert_eq!(ingest(t.http, "mshr_wrong", SERVICE_REPLY_ABI_SMALLEST_TRIGGER).await.status, 401);
    assert!(t.alive());
    let mut r = String::new();
    r.push_str(&format!(
        "POST /api/v1/events HTTP/1.1\r\nx-sentry-auth: {}\r\nContent-Length: {}\r\n\r\n{}",
        key(&f),
        SERVICE_REPLY_ABI_SMALLEST_TRIGGER.len(),
        SERVICE_REPLY_ABI_SMALLEST_TRIGGER
    ));
    assert!(raw(t.http, r.as_bytes()).await.is_err(), "no response");
    let st = t.wait_exit(Duration::from_secs(10)).expect("process died");
    assert_eq!(st.signal(), Some(libc::SIGSEGV), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_reply_abi_via_websocket_ingest() {
    let (url, _db, f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "service-reply-abi"]);
    let k = key(&f);
    let mut ws = ws_connect(t.ws, "/ingest", &[("x-sentry-auth", &k)]).await;
    ws_send(&mut ws, r#"{"message":"fine"}"#).await;
    assert_eq!(ws_next(&mut ws).await.unwrap()["status"], "accepted");
    ws_send(&mut ws, SERVICE_REPLY_ABI_SMALLEST_TRIGGER).await;
    let st = t.wait_exit(Duration::from_secs(10)).expect("process died");
    assert_eq!(st.signal(), Some(libc::SIGSEGV));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_bool_first_check_is_limited() {
    let (url, _db, f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "rate-limit-bool"]);
    let ev = r#"{"message":"hello"}"#;
    assert_eq!(ingest(t.http, &key(&f), ev).await.status, 429);
    assert_eq!(ingest(t.http, &key(&f), ev).await.status, 202);
    assert_eq!(ingest(t.http, &key(&f), ev).await.status, 202);
    assert!(t.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_content_length_aborts() {
    let (url, _db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "oversized-content-length"]);
    // Below the threshold: an ordinary 400, the process lives.
    let r = raw(t.http, b"POST /x HTTP/1.1\r\nContent-Length: 1099511627775\r\n\r\n").await.unwrap();
    assert_eq!(r.status, 404);
    assert!(t.alive());
    let _ = raw(t.http, b"GET /anything HTTP/1.1\r\nContent-Length: 1099511627776\r\n\r\n").await;
    let st = t.wait_exit(Duration::from_secs(10)).expect("process died");
    assert_eq!(st.signal(), Some(libc::SIGABRT), "{st:?}");
    assert!(t.stderr.lock().unwrap().contains("memory allocation of 1099511627776 bytes failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_stall_hangs_other_requests() {
    let (url, _db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "slow-reader-stall"]);
    assert_eq!(get(t.http, HEALTH).await.status, 200);
    // Two idle connections (one trickling) hold both slots.
    let mut idle = tokio::net::TcpStream::connect(t.http).await.unwrap();
    let mut trickle = tokio::net::TcpStream::connect(t.http).await.unwrap();
    trickle.write_all(b"GET ").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stalled = tokio::time::timeout(Duration::from_secs(3), get(t.http, HEALTH)).await;
    assert!(stalled.is_err(), "a normal request must hang while slow readers hold the server");
    assert!(t.alive(), "a hang, not a death");
    // Releasing the slow readers lets requests through again.
    idle.shutdown().await.unwrap();
    drop(idle);
    drop(trickle);
    let r = tokio::time::timeout(Duration::from_secs(10), get(t.http, HEALTH)).await.expect("served again");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_grows_rss() {
    let (url, _db, _f) = seeded_db().await;
    let t = ChildTarget::start(&url, &["--fault", "leak=1048576"]);
    for _ in 0..5 {
        get(t.http, HEALTH).await;
    }
    let before = t.rss_kib();
    for _ in 0..80 {
        assert_eq!(get(t.http, HEALTH).await.status, 200);
    }
    let grown = t.rss_kib().saturating_sub(before);
    assert!(grown >= 70 * 1024, "RSS grew by {grown} KiB, expected about 80 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_blocks_requests_for_its_length() {
    let (url, _db, _f) = seeded_db().await;
    let t = ChildTarget::start(&url, &["--fault", "pause=1s/800ms"]);
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_millis(2600) {
        let t0 = Instant::now();
        assert_eq!(get(t.http, HEALTH).await.status, 200);
        worst = worst.max(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(worst >= Duration::from_millis(500), "worst request {worst:?} should have waited out a pause");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_holds_every_answer() {
    let (url, _db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "delay=300ms"]);
    // Routed and unrouted requests alike are answered normally, after the delay.
    for (path, status) in [(HEALTH, 200), ("/nope", 404)] {
        let t0 = Instant::now();
        assert_eq!(get(t.http, path).await.status, status);
        assert!(t0.elapsed() >= Duration::from_millis(300), "{path} answered after {:?}", t0.elapsed());
    }
    assert!(t.alive(), "a slowdown, not a death");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulative_crash_after_n_requests() {
    let (url, _db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "cumulative-crash=6"]);
    // Unrouted requests do not touch the database and do not count.
    for _ in 0..3 {
        assert_eq!(get(t.http, "/nope").await.status, 404);
    }
    for i in 1..6 {
        assert_eq!(get(t.http, HEALTH).await.status, 200, "request {i}");
    }
    assert!(t.alive(), "alive after N-1 requests");
    assert!(raw(t.http, format!("GET {HEALTH} HTTP/1.1\r\n\r\n").as_bytes()).await.is_err());
    let st = t.wait_exit(Duration::from_secs(10)).expect("process died");
    assert_eq!(st.signal(), Some(libc::SIGSEGV));
}

/// Wait (at most 5 s) for the target's stderr to contain `text`: the reader thread may still be
/// draining the pipe when the exit is seen.
fn stderr_says(t: &ChildTarget, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.stderr.lock().unwrap().contains(text) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A POST on a new connection that must get no response, then the process must die by SIGSEGV
/// with `fault`'s line on stderr.
async fn post_kills(t: &mut ChildTarget, path: &str, body: &str, fault: &str) {
    let r = format!("POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    assert!(raw(t.http, r.as_bytes()).await.is_err(), "no response to {body}");
    let st = t.wait_exit(Duration::from_secs(10)).expect("process died");
    assert_eq!(st.signal(), Some(libc::SIGSEGV), "{st:?}");
    assert!(stderr_says(t, &format!("[mesher-stress target] {fault}:")), "{}", t.stderr.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_negative_retention_dies_by_sigsegv() {
    let (url, db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "settings-negative-retention"]);
    let settings = format!("/api/v1/projects/{PROJECT}/settings");
    // Near misses: zero, positive, -0, a string and null are handled normally (a string is not a
    // number, even "-1").
    for body in [
        r#"{"retention_days":0}"#,
        r#"{"retention_days":30}"#,
        r#"{"retention_days":-0}"#,
        r#"{"retention_days":"-1"}"#,
        r#"{"retention_days":null}"#,
        r#"[{"retention_days":-1}]"#,
    ] {
        let r = post(t.http, &settings, body).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        assert_eq!(r.json()["status"], "ok", "{body}");
    }
    let days: i32 = sqlx::query_scalar("SELECT retention_days FROM projects WHERE id = $1::uuid")
        .bind(PROJECT)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(days, -1, "the string \"-1\" was stored normally");
    assert!(t.alive());
    post_kills(&mut t, &settings, r#"{"sample_rate":0.5,"retention_days":-1}"#, "settings-negative-retention").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_negative_retention_by_a_negative_fraction() {
    let (url, _db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "settings-negative-retention"]);
    post_kills(
        &mut t,
        "/api/v1/projects/default/settings",
        r#"{"retention_days":-0.5}"#,
        "settings-negative-retention",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_cooldown_overflow_dies_by_sigsegv() {
    let (url, db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "alert-cooldown-overflow"]);
    let rules = format!("/api/v1/projects/{PROJECT}/alert-rules");
    // i32::MAX itself fits: created.
    let r = post(t.http, &rules, r#"{"name":"max","cooldown_minutes":2147483647}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let stored: i32 =
        sqlx::query_scalar("SELECT cooldown_minutes FROM alert_rules WHERE name = 'max'").fetch_one(&db).await.unwrap();
    assert_eq!(stored, i32::MAX);
    // Not JSON integers above i32::MAX: PostgreSQL's ordinary 400.
    for body in [r#"{"cooldown_minutes":"2147483648"}"#, r#"{"cooldown_minutes":2147483648.0}"#] {
        assert_eq!(post(t.http, &rules, body).await.status, 400, "{body}");
    }
    assert!(t.alive());
    post_kills(&mut t, &rules, r#"{"name":"over","cooldown_minutes":2147483648}"#, "alert-cooldown-overflow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_issues_negative_limit_dies_by_sigsegv() {
    let (url, _db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "top-issues-negative-limit"]);
    let top = format!("/api/v1/projects/{PROJECT}/dashboard/top-issues");
    for q in ["", "?limit=0", "?limit=-0", "?limit=3", "?limit=-1&limit=2"] {
        let r = get(t.http, &format!("{top}{q}")).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
    }
    assert_eq!(get(t.http, &format!("{top}?limit=0")).await.json(), serde_json::json!([]));
    // Non-numeric: PostgreSQL's ordinary error answer.
    assert_eq!(get(t.http, &format!("{top}?limit=abc")).await.status, 500);
    assert!(t.alive());
    let r = format!("GET {top}?limit=-1 HTTP/1.1\r\n\r\n");
    assert!(raw(t.http, r.as_bytes()).await.is_err(), "no response");
    let st = t.wait_exit(Duration::from_secs(10)).expect("process died");
    assert_eq!(st.signal(), Some(libc::SIGSEGV), "{st:?}");
    assert!(stderr_says(&t, "[mesher-stress target] top-issues-negative-limit:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_level_case_dies_by_sigsegv_on_websocket_ingest_only() {
    let (url, _db, f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "ws-level-case"]);
    let k = key(&f);
    // HTTP ingestion of the same event: the ordinary validation answer.
    let r = ingest(t.http, &k, r#"{"message":"m","level":"Error"}"#).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let mut ws = ws_connect(t.ws, "/ingest", &[("x-sentry-auth", &k)]).await;
    ws_send(&mut ws, r#"{"message":"m","level":"error"}"#).await;
    assert_eq!(ws_next(&mut ws).await.unwrap()["status"], "accepted");
    ws_send(&mut ws, r#"{"message":"m","level":"loud"}"#).await;
    assert!(ws_next(&mut ws).await.unwrap()["error"].as_str().unwrap().contains("level"));
    ws_send(&mut ws, r#"{"message":"m","level":"ERROR"}"#).await;
    let next = tokio::time::timeout(Duration::from_secs(10), ws.read_frame()).await.expect("connection ends");
    assert!(next.is_err(), "no reply frame");
    let st = t.wait_exit(Duration::from_secs(10)).expect("process died");
    assert_eq!(st.signal(), Some(libc::SIGSEGV), "{st:?}");
    assert!(stderr_says(&t, "[mesher-stress target] ws-level-case:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_cumulative_kills_on_the_nth_request_to_its_route() {
    let (url, _db, _f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &["--fault", "route-cumulative=alerts-list/4"]);
    let alerts = format!("/api/v1/projects/{PROJECT}/alerts");
    // Requests to the route, whatever they contain, interleaved with other routes, an unrouted
    // path and a POST to the same path (no such route): only the first count.
    for i in 1..4 {
        let q = ["", "?status=active", "?status=nonsense"][i - 1];
        assert_eq!(get(t.http, &format!("{alerts}{q}")).await.status, 200, "alerts-list request {i}");
        assert_eq!(get(t.http, HEALTH).await.status, 200);
        assert_eq!(get(t.http, &format!("/api/v1/projects/{PROJECT}/settings")).await.status, 200);
        assert_eq!(get(t.http, "/nope").await.status, 404);
        assert_eq!(post(t.http, &alerts, "{}").await.status, 404);
    }
    assert!(t.alive(), "alive after N-1 requests to the route");
    assert!(raw(t.http, b"GET /api/v1/projects/default/alerts HTTP/1.1\r\n\r\n").await.is_err(), "no response");
    let st = t.wait_exit(Duration::from_secs(10)).expect("process died");
    assert_eq!(st.signal(), Some(libc::SIGSEGV), "{st:?}");
    assert!(stderr_says(&t, "[mesher-stress target] route-cumulative: request 4 to alerts-list"));
}

#[test]
fn route_cumulative_without_its_parameter_is_a_usage_error() {
    let out = bin().args(["target", "--fault", "route-cumulative"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("route-cumulative=ROUTE/N"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_every_accepted_event() {
    let (url, db, f) = seeded_db().await;
    let mut t = ChildTarget::start(&url, &[]);
    let k = key(&f);
    let mut accepted = 0;
    for i in 0..40 {
        let r = ingest(t.http, &k, &format!(r#"{{"message":"shutdown {i}","level":"info"}}"#)).await;
        assert_eq!(r.status, 202);
        accepted += 1;
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.pid(), libc::SIGTERM) };
    let st = t.wait_exit(Duration::from_secs(20)).expect("exited");
    assert_eq!(st.code(), Some(0), "{st:?}");
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE message LIKE 'shutdown %'").fetch_one(&db).await.unwrap();
    assert_eq!(n, accepted);
}

#[test]
fn help_documents_every_fault() {
    let out = bin().args(["target", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in mesher_stress::reference::faults::Fault::NAMES {
        assert!(text.contains(name), "--help lacks {name}");
    }
    assert!(text.contains("user_context") && text.contains("colno"));
    assert!(text.contains("SIGSEGV") && text.contains("SIGABRT"));
}

/// Worker threads named by tokio in a process.
fn tokio_workers(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == "tokio-rt-worker")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_choose_the_runtime_and_both_serve_and_flush() {
    let (url, db, f) = seeded_db().await;
    let k = key(&f);
    for (threads, workers) in [("1", 0), ("3", 3)] {
        let mut t = ChildTarget::start(&url, &["--threads", threads]);
        for i in 0..20 {
            let r = ingest(t.http, &k, &format!(r#"{{"message":"threads-{threads} {i}","level":"info"}}"#)).await;
            assert_eq!(r.status, 202);
        }
        assert_eq!(get(t.http, HEALTH).await.status, 200);
        assert_eq!(tokio_workers(t.pid()), workers, "--threads {threads}");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(t.pid(), libc::SIGTERM) };
        let st = t.wait_exit(Duration::from_secs(20)).expect("exited");
        assert_eq!(st.code(), Some(0), "{st:?}");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE message LIKE $1")
            .bind(format!("threads-{threads} %"))
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(n, 20, "--threads {threads}: every accepted event stored");
    }
    let bad = bin().args(["target", "--threads", "0"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--threads"));
}
