//! Triage against the built-in Mesher-compatible target (real PostgreSQL via db::Cluster, started
//! by `mesher-stress minimize --fault ...`): the service-reply-abi SIGSEGV is minimised to at
//! most twice the documented smallest trigger, with gdb frames naming the crash function.

use crate::support::bin;
use mesher_stress::db::fixtures::{Fixtures, SeedOptions};
use mesher_stress::model::Payload;
use mesher_stress::reference::faults::SERVICE_REPLY_ABI_SMALLEST_TRIGGER;
use mesher_stress::triage::bucket::{self, Store};

#[test]
fn service_reply_abi_is_minimised_against_the_builtin_target() {
    let dir = tempfile::tempdir().unwrap();
    let key = Fixtures::plan(&SeedOptions::default()).api_key().to_string();
    let body = serde_json::to_vec_pretty(&serde_json::json!({
        "message": "checkout failed", "level": "error", "platform": "javascript",
        "tags": {"env": "prod", "release": "9.9.9"},
        "stacktrace": [
            {"filename": "a.js", "function": "f", "lineno": 3, "colno": 7, "in_app": true},
            {"filename": "b.js", "function": "g", "lineno": 9, "colno": 0, "in_app": false, "vars": {"x": [1, 2]}}
        ],
        "user_context": {"id": "u1", "email": "a@b.c", "ip": "1.2.3.4"},
        "extra": {"k": [1, 2, 3, {"deep": "value"}]}
    }))
    .unwrap();
    let mut raw = format!(
        "POST /api/v1/events HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/json\r\nx-sentry-auth: {key}\r\nx-extra: 1\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let file = dir.path().join("event.http");
    std::fs::write(&file, &raw).unwrap();
    let corpus = dir.path().join("crashes");
    let out = bin()
        .args(["minimize", file.to_str().unwrap(), "--fault", "service-reply-abi", "--gdb", "--tries", "2"])
        .args(["--corpus", corpus.to_str().unwrap()])
        .output()
        .unwrap();
    eprintln!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3));
    let metas = Store::open(&corpus).unwrap().list().unwrap();
    assert_eq!(metas.len(), 1);
    let m = &metas[0];
    let inputs = bucket::read_inputs(&corpus.join(&m.bucket_id)).unwrap();
    let Payload::Http(r) = &inputs.payloads[0] else { panic!() };
    eprintln!(
        "MINIMISE builtin: {} -> {} bytes, body {} -> {} bytes, {} executions, {:.1}s, frames {:?}",
        m.size_before,
        m.size_after,
        body.len(),
        r.body.len(),
        m.executions,
        m.seconds,
        m.signature.frames
    );
    assert_eq!(m.signal.as_deref(), Some("SIGSEGV"));
    assert_eq!(m.route, "events-ingest");
    assert!(r.body.len() <= 2 * SERVICE_REPLY_ABI_SMALLEST_TRIGGER.len(), "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-sentry-auth"), Some(key.as_bytes()));
    assert!(r.header("x-extra").is_none());
    assert!(
        m.signature.frames.iter().any(|f| f.contains("service_reply_abi_crash")),
        "{:?} {:?}",
        m.signature.frames,
        m.backtrace
    );
}

#[test]
fn ws_ingest_frames_are_minimised_against_the_builtin_target() {
    use mesher_stress::api::WsPath;
    use mesher_stress::model::{WsFrame, WsScript};
    let dir = tempfile::tempdir().unwrap();
    let key = Fixtures::plan(&SeedOptions::default()).api_key().to_string();
    let noise = WsFrame::text(r#"{"message":"hello","level":"info"}"#);
    let trigger = WsFrame::text(
        serde_json::to_vec(&serde_json::json!({
            "message": "x", "tags": {"a": "b"},
            "stacktrace": [{"filename": "q.js", "colno": 0, "in_app": false, "lineno": 4}],
            "user_context": {"email": "e@x", "id": 3}
        }))
        .unwrap(),
    );
    let script = WsScript {
        kind: WsPath::Ingest,
        path: WsPath::Ingest.path(""),
        headers: vec![("x-sentry-auth".into(), key.into_bytes()), ("x-junk".into(), b"1".to_vec())],
        frames: vec![noise.clone(), trigger, noise],
    };
    let file = dir.path().join("ws.json");
    std::fs::write(&file, serde_json::to_vec(&Payload::Ws(script)).unwrap()).unwrap();
    let corpus = dir.path().join("crashes");
    let out = bin()
        .args(["minimize", file.to_str().unwrap(), "--fault", "service-reply-abi", "--tries", "1"])
        .args(["--corpus", corpus.to_str().unwrap()])
        .output()
        .unwrap();
    eprintln!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3));
    let m = &Store::open(&corpus).unwrap().list().unwrap()[0];
    let dirb = corpus.join(&m.bucket_id);
    let inputs = bucket::read_inputs(&dirb).unwrap();
    let Payload::Ws(w) = &inputs.payloads[0] else { panic!() };
    eprintln!(
        "MINIMISE ws: {} -> {} bytes, {} executions, {:.1}s",
        m.size_before, m.size_after, m.executions, m.seconds
    );
    assert_eq!(m.route, "ws-ingest");
    assert_eq!(w.frames.len(), 1, "{w:?}");
    assert!(w.headers.iter().all(|(n, _)| n != "x-junk"));
    assert!(w.frames[0].payload.len() <= 2 * SERVICE_REPLY_ABI_SMALLEST_TRIGGER.len());
    assert!(dirb.join("frames.json").exists());
    assert!(std::fs::read_to_string(dirb.join("repro.sh")).unwrap().contains("replay"));
}
