//! Churn lanes: connect, send one frame, read one answer, close, in a loop.

use super::{Shared, Stop, WS_CHURN_STREAM, finish};
use crate::drive::flight::LaneRecorder;
use crate::drive::metrics::{Key, Outcome, Recorder};
use crate::drive::suspects::frame_from;
use crate::drive::ws;
use fastwebsockets::{Frame, OpCode};
use std::sync::Arc;
use std::time::Instant;

pub(super) async fn ws_churn_lane(
    sh: Arc<Shared>,
    lane: u32,
    mut rec: Recorder,
    fl: LaneRecorder,
    stop: Stop,
) -> (u64, Option<Instant>) {
    let (opts, host, headers) = sh.ws_ingest();
    let w = &sh.phase.websocket;
    let stream = WS_CHURN_STREAM + lane as u64;
    let mut j = 0u64;
    tokio::time::sleep_until(sh.start.into()).await;
    while !stop.is_set() && sh.wait_until_up(&stop).await && sh.take_budget() {
        let g = sh.ws_source.generate(stream, j);
        j += 1;
        let (bytes, binary) = frame_from(&g);
        let sent = Instant::now();
        rec.sent += 1;
        let t = fl.begin(g.seed, g.layer, "ws-churn", j, 0, sent, None);
        let cycle = async {
            let s = ws::ws_connect(&opts, sh.timeouts, &host, &w.ingest_path, &headers).await?;
            let (mut rd, mut wr) = s.split(tokio::io::split);
            let frame = if binary { Frame::binary(bytes.into()) } else { Frame::text(bytes.into()) };
            ws::write_frame_bounded(&mut wr, frame, sh.timeouts).await?;
            let mut noop = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
            let o = loop {
                match tokio::time::timeout(sh.timeouts.request, rd.read_frame(&mut noop)).await {
                    Err(_) => break Outcome::Timeout,
                    Ok(Err(_)) => break Outcome::Closed,
                    Ok(Ok(f)) => match f.opcode {
                        OpCode::Text | OpCode::Binary => break ws::ack_outcome(&f.payload),
                        OpCode::Close => break Outcome::WsClose,
                        _ => continue,
                    },
                }
            };
            let _ = tokio::time::timeout(ws::CLOSE_WAIT, wr.write_frame(Frame::close(1000, b""))).await;
            Ok::<Outcome, Outcome>(o)
        };
        let o = tokio::select! {
            r = cycle => r.unwrap_or_else(|e| e),
            _ = stop.wait() => Outcome::Interrupted,
        };
        finish(
            &mut rec,
            &fl,
            t,
            Key { route: "ws-churn", layer: g.layer, outcome: o },
            sent,
            sent,
            sent,
            Instant::now(),
        );
    }
    (rec.sent, rec.last_sent)
}
