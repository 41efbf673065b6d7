//! Triage end to end against a real crashing server process (`support::crashy`): attribution,
//! minimisation, buckets, reproducers (repro.sh really reproduces), replay verdicts, surviving
//! many deaths, and reproducers intact after `kill -9` of the tool.

use crate::support::crashy::*;
use mesher_stress::model::{Generated, HttpRequest, Layer, Payload, RequestSeed};
use mesher_stress::triage::Death;
use mesher_stress::triage::bucket::{self, Store};
use mesher_stress::triage::session::{TriageOptions, Triager};
use mesher_stress::triage::target::TargetFactory;
use std::time::Duration;

fn mkgen(index: u64, p: HttpRequest) -> Generated {
    Generated {
        seed: RequestSeed { run: 7, stream: 0, index },
        layer: Layer::Json,
        payload: Payload::Http(p),
        trail: vec![],
    }
}

fn post(target: &str, body: &[u8]) -> HttpRequest {
    let mut r = HttpRequest::new(None, "POST", target.into(), body.to_vec());
    r.headers.push(("x-sentry-auth".into(), b"mshr_0123".to_vec()));
    r.headers.push(("x-noise".into(), b"abc".to_vec()));
    r
}

fn opts() -> TriageOptions {
    let mut o = TriageOptions::default();
    o.oracle.grace = Duration::from_millis(150);
    o.oracle.timeout = Duration::from_secs(3);
    o.repro_tries = 2;
    o.run_seed = Some(7);
    o
}

#[test]
fn attributes_and_minimises_the_json_trigger_among_benign_suspects() {
    let dir = tempfile::tempdir().unwrap();
    let f = crashy_factory(&[]);
    let store = Store::open(dir.path().join("crashes")).unwrap();
    let mut t = Triager::new(&f, store, opts());
    let trigger = serde_json::to_vec_pretty(&noisy_trigger_body()).unwrap();
    // Suspects as the flight recorder would order them: benign ones first here, the culprit
    // later, to exercise the alone-replay loop.
    let suspects = vec![
        mkgen(1, post("/api/v1/events?x=1&y=2", br#"{"message":"fine"}"#)),
        mkgen(2, post("/api/v1/events", br#"{"ctx":{"nothing":1}}"#)),
        mkgen(3, post("/api/v1/events?limit=5&cursor=abc", &trigger)),
        mkgen(4, post("/api/v1/events", b"not json")),
    ];
    let r = t.on_crash(Death::Signal { signo: 11, core_dumped: false }, &suspects).unwrap();
    eprintln!("report: {r:?}");
    assert_eq!(r.kind, "single");
    let dir = r.dir.clone().unwrap();
    let meta = bucket::read_meta(&dir).unwrap();
    let inputs = bucket::read_inputs(&dir).unwrap();
    let Payload::Http(min) = &inputs.payloads[0] else { panic!() };
    // The smallest trigger body is {"ctx":{"boom":""}} (18 bytes).
    let body = String::from_utf8_lossy(&min.body).to_string();
    assert!(min.body.len() <= 36, "not minimal enough: {body}");
    assert!(body.contains("\"ctx\"") && body.contains("\"boom\""), "{body}");
    // This server's trigger does not depend on the request line: filed as `GET /`, without the
    // route (and without the query).
    assert_eq!((min.method.as_str(), min.target.as_str()), ("GET", "/"), "route kept");
    assert!(
        min.header("x-noise").is_none() && min.header("x-sentry-auth").is_none(),
        "headers kept: {:?}",
        min.headers
    );
    assert_eq!(meta.signal.as_deref(), Some("SIGSEGV"));
    assert_eq!(meta.shell_exit, Some(139));
    // Filed without its route (see above); the seed still names the input it came from.
    assert_eq!(meta.route, "unrouted");
    assert_eq!(meta.request_seeds, vec![RequestSeed { run: 7, stream: 0, index: 3 }]);
    assert_eq!(meta.repro.serial_hits, 2);
    assert!(meta.size_after < meta.size_before / 5, "{} -> {}", meta.size_before, meta.size_after);
    assert!(dir.join("request.http").exists() && dir.join("repro.sh").exists());
    eprintln!(
        "MINIMISE json: {} -> {} bytes, {} executions, {} restarts, {:.2}s",
        r.size_before, r.size_after, r.executions, r.restarts, r.seconds
    );

    // The same crash again with a differently-noisy trigger: same bucket, count 2.
    let mut v = noisy_trigger_body();
    v["message"] = serde_json::json!("another message");
    v["extra"]["more"] = serde_json::json!([1, 2, {"q": null}]);
    let r2 = t
        .on_crash(
            Death::Signal { signo: 11, core_dumped: false },
            &[mkgen(9, post("/api/v1/events", &serde_json::to_vec(&v).unwrap()))],
        )
        .unwrap();
    assert_eq!(r2.bucket_id, r.bucket_id);
    assert!(!r2.new_bucket);
    // 998 more hits of the same (coarse key → fast path, no replay): one bucket, count 1000.
    let again = mkgen(9, post("/api/v1/events", &serde_json::to_vec(&v).unwrap()));
    for _ in 0..998 {
        let r3 = t.on_crash(Death::Signal { signo: 11, core_dumped: false }, std::slice::from_ref(&again)).unwrap();
        assert!(r3.fast_path);
    }
    let all = t.store.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].count, 1000);
    assert!(all[0].last_seen >= all[0].first_seen);

    // repro.sh really reproduces: start a target, run the script against its port.
    let mut target = f.start().unwrap();
    let port = target.addrs().http.port().to_string();
    let out = std::process::Command::new("bash").arg(dir.join("repro.sh")).env("PORT", &port).output().unwrap();
    eprintln!("repro.sh: {}", String::from_utf8_lossy(&out.stdout));
    let d = target.wait_death(Duration::from_secs(5));
    assert_eq!(d.map(|d| d.key()), Some("SIGSEGV".to_string()));
    target.kill();
}

#[test]
fn oversized_content_length_raw_request_is_minimised_by_lines_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let f = crashy_factory(&[]);
    let mut t = Triager::new(&f, Store::open(dir.path()).unwrap(), opts());
    let raw = b"GET /api/v1/projects/default/dashboard/health HTTP/1.1\r\nhost: x\r\nx-a: 1\r\nContent-Length: 281474976710656\r\nx-b: 2\r\naccept: */*\r\n\r\npartial body bytes".to_vec();
    let g = Generated {
        seed: RequestSeed { run: 1, stream: 0, index: 0 },
        layer: Layer::Http,
        payload: Payload::Http(mesher_stress::wire::http::parse_request(&raw)),
        trail: vec![],
    };
    let r = t.minimize_input(g).unwrap();
    eprintln!(
        "MINIMISE raw: {} -> {} bytes, {} executions, {} restarts, {:.2}s",
        r.size_before, r.size_after, r.executions, r.restarts, r.seconds
    );
    assert_eq!(r.death.key(), "SIGABRT");
    let inputs = bucket::read_inputs(r.dir.as_ref().unwrap()).unwrap();
    let Payload::Http(min) = &inputs.payloads[0] else { panic!() };
    let wire = String::from_utf8_lossy(min.raw.as_ref().unwrap()).to_string();
    // Any request line aborts: filed as `GET /`.
    assert!(wire.starts_with("GET / HTTP/1.1\r\n"), "{wire}");
    assert!(wire.contains("Content-Length: 281474976710656"), "{wire}");
    assert!(!wire.contains("x-a") && !wire.contains("x-b") && !wire.contains("partial"), "{wire}");
    let script = std::fs::read_to_string(r.dir.as_ref().unwrap().join("repro.sh")).unwrap();
    assert!(script.contains("/dev/tcp"), "lying lengths need /dev/tcp: {script}");
}

#[test]
fn concurrent_pair_and_cumulative_and_not_reproduced() {
    let dir = tempfile::tempdir().unwrap();
    // A crash needing two requests in flight: no suspect alone reproduces it.
    let f = crashy_factory(&[]);
    let mut o = opts();
    o.attribution.concurrency = 3;
    let mut t = Triager::new(&f, Store::open(dir.path().join("a")).unwrap(), o.clone());
    let suspects: Vec<Generated> = vec![
        mkgen(1, HttpRequest::new(None, "GET", "/race".into(), vec![])),
        mkgen(2, HttpRequest::new(None, "GET", "/x".into(), vec![])),
        mkgen(3, HttpRequest::new(None, "GET", "/race".into(), vec![])),
        mkgen(4, HttpRequest::new(None, "GET", "/y".into(), vec![])),
        mkgen(5, HttpRequest::new(None, "GET", "/z".into(), vec![])),
    ];
    let r = t.on_crash(Death::Signal { signo: 11, core_dumped: false }, &suspects).unwrap();
    eprintln!("pair: {r:?}");
    assert_eq!(r.kind, "set");
    let m = bucket::read_meta(r.dir.as_ref().unwrap()).unwrap();
    assert_eq!(m.request_seeds.iter().map(|s| s.index).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(m.concurrency, 2);
    let script = std::fs::read_to_string(r.dir.as_ref().unwrap().join("repro.sh")).unwrap();
    assert!(script.contains("mesher-stress}\" replay"), "{script}");

    // Cumulative: dies (SIGBUS) after the 40th request, whatever it is.
    let fc = crashy_factory(&[("CRASHY_DIE_AFTER", "40")]);
    let mut t = Triager::new(&fc, Store::open(dir.path().join("b")).unwrap(), o.clone());
    let benign: Vec<Generated> =
        (0..5).map(|i| mkgen(i, HttpRequest::new(None, "GET", format!("/p{i}"), vec![]))).collect();
    let r = t.on_crash(Death::Signal { signo: 7, core_dumped: false }, &benign).unwrap();
    eprintln!("cumulative: {r:?}");
    assert_eq!(r.kind, "cumulative");
    let m = bucket::read_meta(r.dir.as_ref().unwrap()).unwrap();
    // 39 benign requests: the readiness probe that let each fresh target in was the first.
    assert_eq!(m.cumulative_count, Some(39));
    assert_eq!(m.signal.as_deref(), Some("SIGBUS"));

    // Nothing reproduces: reported as such (no bucket), no endless loop.
    let mut t = Triager::new(&f, Store::open(dir.path().join("c")).unwrap(), o);
    t.opts.attribution.cumulative_max = 50;
    let r = t.on_crash(Death::Signal { signo: 11, core_dumped: false }, &benign).unwrap();
    assert_eq!(r.kind, "not-reproduced");
    assert!(r.bucket_id.is_none());
}

#[test]
fn hang_is_attributed_with_a_probe() {
    let dir = tempfile::tempdir().unwrap();
    let f = crashy_factory(&[]);
    let mut o = opts();
    o.oracle.probe_timeout = Duration::from_millis(700);
    let mut t = Triager::new(&f, Store::open(dir.path()).unwrap(), o);
    let mut stall = HttpRequest::new(None, "GET", "/api/v1/projects/default/dashboard/health?a=1".into(), vec![]);
    stall.headers.push(("x-other".into(), b"1".to_vec()));
    stall.headers.push(("x-stall".into(), b"yes".to_vec()));
    let suspects = vec![mkgen(1, HttpRequest::new(None, "GET", "/ok".into(), vec![])), mkgen(2, stall)];
    let r = t.on_crash(Death::Hang, &suspects).unwrap();
    eprintln!("hang: {r:?}");
    assert_eq!(r.kind, "single");
    let inputs = bucket::read_inputs(r.dir.as_ref().unwrap()).unwrap();
    let Payload::Http(min) = &inputs.payloads[0] else { panic!() };
    assert_eq!(min.headers.len(), 1, "{:?}", min.headers);
    assert_eq!(min.headers[0].0, "x-stall");
    assert!(!min.target.contains('?'));
}
