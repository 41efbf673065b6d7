//! Stream subscribers: the fan-out delay of ingested events, and the events never delivered.

use super::{Shared, Stop};
use crate::drive::metrics::{Key, Outcome, Recorder, Sample};
use crate::drive::ws;
use crate::model::Layer;
use fastwebsockets::{Frame, OpCode};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(super) async fn ws_stream_lane(
    sh: Arc<Shared>,
    lane: u32,
    mut rec: Recorder,
    mut producers_done: watch::Receiver<bool>,
    stop: Stop,
) {
    let (opts, host) = sh.ws.clone().expect("checked: ws target");
    let w = &sh.phase.websocket;
    let path = crate::api::WsPath::Stream.path(&w.stream_project);
    let fanout = sh.fanout.clone().expect("subscribers imply fan-out");
    let grace = w.fanout_timeout.min(Duration::from_secs(2));
    let mut end: Option<Instant> = None;
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let fan_key = |outcome| Key { route: "ws-stream", layer: Layer::Valid, outcome };
    'outer: loop {
        if stop.is_set() || end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        if !sh.wait_until_up(&stop).await {
            break;
        }
        let s = tokio::select! {
            r = ws::ws_connect(&opts, sh.timeouts, &host, &path, &[]) => r,
            _ = stop.wait() => break,
        };
        let Ok(s) = s else {
            if *producers_done.borrow() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (mut rd, mut wr) = s.split(tokio::io::split);
        loop {
            let mut noop = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
            let end_at = end.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                f = rd.read_frame(&mut noop) => match f {
                    Ok(f) if matches!(f.opcode, OpCode::Text | OpCode::Binary) => {
                        let now = Instant::now();
                        if let Some(m) = ws::stream_marker(&f.payload)
                            && let Some(sent) = fanout.arrived(&m)
                        {
                            let us = now.saturating_duration_since(sent).as_micros() as u64;
                            rec.push(Sample::observation(fan_key(Outcome::Delivered), us, now), now);
                        }
                    }
                    Ok(f) if f.opcode == OpCode::Ping => {
                        let p = f.payload.to_vec();
                        let _ = ws::write_frame_bounded(&mut wr, Frame::pong(p.into()), sh.timeouts).await;
                    }
                    Ok(f) if f.opcode == OpCode::Close => continue 'outer,
                    Ok(_) => {}
                    Err(_) => continue 'outer,
                },
                _ = sweep.tick(), if lane == 0 => {
                    let now = Instant::now();
                    for _ in 0..fanout.sweep(now, false) {
                        rec.push(Sample::observation(fan_key(Outcome::Missed), 0, now), now);
                    }
                }
                ok = async { producers_done.wait_for(|v| *v).await.is_ok() }, if end.is_none() => {
                    if ok { end = Some(Instant::now() + grace); }
                }
                _ = tokio::time::sleep_until(end_at.into()), if end.is_some() => break 'outer,
                _ = stop.wait() => break 'outer,
            }
        }
    }
    if lane == 0 {
        let now = Instant::now();
        for _ in 0..fanout.sweep(now, true) {
            rec.push(Sample::observation(fan_key(Outcome::Missed), 0, now), now);
        }
    }
}
