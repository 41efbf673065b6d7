//! The `replay` and `minimize` subcommands as real child processes of the mesher-stress binary,
//! against the crashy test server (`support::crashy`); gdb frames in the signature; reproducers
//! intact after `kill -9` of the tool; a fuzz phase surviving a target that dies 100 times.

use crate::support::bin;
use crate::support::crashy::*;
use mesher_stress::model::{Generated, HttpRequest, Layer, Payload, RequestSeed, Source};
use mesher_stress::triage::bucket::{self, Store};
use mesher_stress::triage::fuzz::{FuzzOptions, Inputs, ReplaySender, fuzz_phase};
use mesher_stress::triage::session::TriageOptions;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn raw_trigger_file(dir: &Path) -> std::path::PathBuf {
    let body = serde_json::to_vec_pretty(&noisy_trigger_body()).unwrap();
    let mut raw = format!(
        "POST /api/v1/events?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/json\r\nx-sentry-auth: mshr_abc\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let p = dir.join("crash.http");
    std::fs::write(&p, raw).unwrap();
    p
}

#[test]
fn minimize_then_replay_still_crashing_then_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("crashes");
    let file = raw_trigger_file(dir.path());
    let out = bin()
        .args(["minimize", file.to_str().unwrap(), "--target-cmd", &crashy_cmd(), "--target-env", "CRASHY_SERVE=1"])
        .args(["--corpus", corpus.to_str().unwrap(), "--gdb", "--tries", "2", "--grace", "150ms"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("minimize: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "minimize exits 3 (crashed) when it wrote a bucket");
    let store = Store::open(&corpus).unwrap();
    let metas = store.list().unwrap();
    assert_eq!(metas.len(), 1);
    let m = &metas[0];
    eprintln!(
        "MINIMISE cli: {} -> {} bytes, {} executions, {:.2}s, frames {:?}",
        m.size_before, m.size_after, m.executions, m.seconds, m.signature.frames
    );
    assert_eq!(m.signal.as_deref(), Some("SIGSEGV"));
    assert!(m.size_after * 5 < m.size_before);
    // gdb is installed here: the top non-libc frame is the crashy server's handler.
    assert!(
        m.signature.frames.iter().any(|f| f.contains("handle")),
        "frames {:?} / bt {:?}",
        m.signature.frames,
        m.backtrace
    );
    assert!(m.bucket_id.starts_with(&m.signature.bucket_id()));

    // Replay: still crashing against the same server.
    let out = bin()
        .args(["replay", corpus.to_str().unwrap(), "--target-cmd", &crashy_cmd(), "--target-env", "CRASHY_SERVE=1"])
        .args(["--tries", "3", "--json"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{rows}");
    assert_eq!(rows[0]["verdict"], "still-crashing");
    assert_eq!(rows[0]["hits"], 3);

    // Replay against the "fixed" server: exit 0.
    let out = bin()
        .args(["replay", corpus.to_str().unwrap(), "--target-cmd", &crashy_cmd(), "--target-env", "CRASHY_SERVE=1"])
        .args(["--target-env", "CRASHY_FIXED=1", "--tries", "2"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(s.contains("fixed"), "{s}");

    // Replay against a running target by URL: it dies → still-crashing.
    use mesher_stress::triage::target::TargetFactory;
    let f = crashy_factory(&[]);
    let t = f.start().unwrap();
    let url = format!("http://{}", t.addrs().http);
    let out = bin().args(["replay", corpus.to_str().unwrap(), "--http", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(t.wait_death(Duration::from_secs(5)).map(|d| d.key()), Some("SIGSEGV".into()));
}

#[test]
fn reproducers_survive_kill_9_of_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("crashes");
    let file = raw_trigger_file(dir.path());
    let run = || {
        let mut c = bin();
        c.args(["minimize", file.to_str().unwrap(), "--target-cmd", &crashy_cmd(), "--target-env", "CRASHY_SERVE=1"])
            .args(["--corpus", corpus.to_str().unwrap(), "--tries", "1", "--grace", "100ms", "-q"]);
        c
    };
    // A first complete bucket.
    assert_eq!(run().status().unwrap().code(), Some(3));
    let id = Store::open(&corpus).unwrap().list().unwrap()[0].bucket_id.clone();
    let payloads_before = std::fs::read(corpus.join(&id).join("payloads.json")).unwrap();
    // Kill the tool at many moments (during startup, attribution, minimisation, writing).
    for i in 0..12u64 {
        let mut child = run().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(150 + i * 250));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
    }
    // Every bucket directory is complete and parses; the first one is unchanged.
    for e in std::fs::read_dir(&corpus).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue; // temp dirs of killed writers are never buckets
        }
        let m = bucket::read_meta(&e.path()).unwrap();
        bucket::read_inputs(&e.path()).unwrap();
        assert!(e.path().join("repro.sh").exists());
        assert!(m.count >= 1);
    }
    assert_eq!(std::fs::read(corpus.join(&id).join("payloads.json")).unwrap(), payloads_before);
    let m = bucket::read_meta(&corpus.join(&id)).unwrap();
    eprintln!("count after kills: {}", m.count);
}

/// Benign events, and every third input the noisy trigger (same shape each time).
struct Mixed;

impl Source for Mixed {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        let body = if index % 3 == 2 {
            serde_json::to_vec(&noisy_trigger_body()).unwrap()
        } else {
            format!(r#"{{"message":"event {index}","level":"info"}}"#).into_bytes()
        };
        Generated {
            seed: RequestSeed { run: 99, stream, index },
            layer: Layer::Json,
            payload: Payload::Http(HttpRequest::new(None, "POST", "/api/v1/events".into(), body)),
            trail: vec![],
        }
    }
}

#[test]
fn fuzz_phase_survives_a_target_dying_100_times_one_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let f = crashy_factory(&[]);
    let mut topts = TriageOptions::default();
    topts.oracle.grace = Duration::from_millis(100);
    topts.repro_tries = 1;
    let fopts = FuzzOptions {
        duration: Duration::from_secs(300),
        max_inputs: Some(300),
        settle: Duration::from_millis(30),
        ..FuzzOptions::default()
    };
    let mut sender = ReplaySender { timeout: Duration::from_secs(3) };
    let r = fuzz_phase(
        Inputs::Plain(Arc::new(Mixed)),
        &mut sender,
        &f,
        Store::open(dir.path()).unwrap(),
        topts,
        &fopts,
        &|| false,
    )
    .unwrap();
    let down: f64 = r.outages.iter().map(|o| o.seconds).sum();
    eprintln!(
        "fuzz: sent {} deaths {} buckets {:?} in {:.1}s ({down:.1}s down)",
        r.inputs_sent, r.deaths, r.buckets, r.seconds
    );
    assert_eq!(r.inputs_sent, 300);
    assert_eq!(r.deaths, 100);
    assert_eq!(r.outages.len(), 100);
    assert_eq!(r.buckets.len(), 1);
    assert_eq!(r.buckets[0].count, 100);
    // Almost every repeat is counted without replaying (a death noticed one input late, on a
    // loaded machine, goes through full triage and still lands in the same bucket).
    assert!(r.triage.iter().filter(|t| t.fast_path).count() >= 90);
}
