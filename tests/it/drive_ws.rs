//! WebSocket load against an in-process fastwebsockets server: ingest acks, stream fan-out,
//! churn, and raw (mutated) scripts in the request mix.

use crate::support::load::*;
use crate::support::servers::*;
use mesher_stress::api::WsPath;
use mesher_stress::drive::{LoadPhase, PhaseCtx, TargetAddr};
use mesher_stress::model::{Generated, Layer, Payload, RequestSeed, Source, WsFrame, WsScript};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn phase(t: &str) -> LoadPhase {
    toml::from_str(t).unwrap()
}

async fn targets() -> (TargetAddr, Arc<Stats>) {
    let (h, _) = http_server(Mode::KeepAlive).await;
    let (w, st) = ws_server().await;
    (TargetAddr { http: http(h), ws: Some(format!("ws://{w}")) }, st)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_frames_are_acked_and_counted() {
    let (t, st) = targets().await;
    let p = phase("duration = \"2s\"\nconcurrency = 0\nwebsocket = { ingest_connections = 4, frame_rate = 100.0 }");
    let r = run_phase(&p, Arc::new(Events), &t, &PhaseCtx::quiet()).await.unwrap();
    check_consistent(&r);
    let acked = r.outcomes.get("ack-ok").copied().unwrap_or(0);
    assert_eq!(acked, r.requests_sent, "{:?}", r.outcomes);
    assert_eq!(st.requests.load(Ordering::Relaxed), acked);
    // 4 × 100/s × 2 s = 800 scheduled frames (loose bound: no timing asserts).
    assert!((600..=800).contains(&acked), "{acked}");
    assert_eq!(r.routes[0].route, "ws-ingest");
    assert!(r.latency.p50 > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_fanout_is_measured() {
    let (t, _) = targets().await;
    let p = phase(
        "duration = \"2s\"\nconcurrency = 0\n[websocket]\ningest_connections = 2\nframe_rate = 50.0\nstream_subscribers = 2\n[thresholds]\nfanout_p99_max = \"10s\"",
    );
    let r = run_phase(&p, Arc::new(Events), &t, &PhaseCtx::quiet()).await.unwrap();
    check_consistent(&r);
    let f = r.fanout.as_ref().expect("fan-out report");
    let acked = r.outcomes["ack-ok"];
    // Every accepted event reaches both subscribers (subscribers connect before the first
    // frame goes out: lanes start 20 ms after spawning; allow a few early misses).
    assert!(f.delivered + 8 >= 2 * acked && f.delivered <= 2 * acked, "delivered {} acked {acked}", f.delivered);
    assert!(f.missed <= 4, "missed {}", f.missed);
    assert!(f.delay.count == f.delivered && f.delay.max >= f.delay.p50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_connects_sends_and_closes() {
    let (t, st) = targets().await;
    let p = phase("duration = \"1s\"\nrequests = 60\nconcurrency = 0\nwebsocket = { churn = 3 }");
    let r = run_phase(&p, Arc::new(Events), &t, &PhaseCtx::quiet()).await.unwrap();
    check_consistent(&r);
    let ok = r.outcomes.get("ack-ok").copied().unwrap_or(0);
    assert_eq!(ok, r.requests_sent, "{:?}", r.outcomes);
    assert!(ok > 0 && ok <= 60);
    assert!(st.connections.load(Ordering::Relaxed) >= ok, "one connection per cycle");
    assert_eq!(r.routes[0].route, "ws-churn");
}

/// WebSocket scripts in the mix: valid, unmasked, fragmented-and-never-finished, lying length.
struct Scripts;
impl Source for Scripts {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        let mut f = WsFrame::text(format!("{{\"message\":\"s-{stream}-{index}\"}}"));
        let layer = match index % 4 {
            0 => Layer::Valid,
            1 => {
                f.masked = false;
                Layer::Ws
            }
            2 => {
                f.fin = false;
                Layer::Ws
            }
            _ => {
                f.declared_len = Some(1 << 20);
                Layer::Ws
            }
        };
        let script = WsScript {
            kind: WsPath::Ingest,
            path: WsPath::INGEST.into(),
            headers: vec![("x-sentry-auth".into(), b"k".to_vec())],
            frames: vec![f],
        };
        Generated { seed: RequestSeed { run: 3, stream, index }, layer, payload: Payload::Ws(script), trail: vec![] }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_scripts_run_in_the_request_mix() {
    let (t, _) = targets().await;
    let p = phase("requests = 20\nconcurrency = 1\nrequest_timeout = \"300ms\"");
    let ctx = PhaseCtx::quiet();
    let r = run_phase(&p, Arc::new(Scripts), &t, &ctx).await.unwrap();
    check_consistent(&r);
    // Valid scripts are acked.
    assert_eq!(r.layers["valid"].get("ack-ok"), Some(&5), "{:?}", r.layers);
    // Mutated ones never get a normal ack for the broken frames that need more bytes.
    let ws = &r.layers["ws"];
    assert_eq!(ws.values().sum::<u64>(), 15);
    assert!(ws.get("timeout").copied().unwrap_or(0) >= 5, "{ws:?}");
    assert!(r.routes.iter().all(|x| x.route == "ws-ingest"));
}
