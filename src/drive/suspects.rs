//! The exact inputs behind flight-recorder entries, as a replay must send them: what the lanes
//! sent is regenerated from its seed (generation is a pure function of it), except the inputs
//! the recorder kept whole (those that depend on the run's state), and a frame an ingest lane
//! sent on its long-lived connection becomes a script of its own (handshake with the lane's
//! headers, then that frame).

use crate::drive::{FlightEntry, LoadPhase, Outcome};
use crate::model::{Generated, Payload, Source, WsFrame, WsScript};

/// The bytes of the n-th WebSocket frame a source offers: the first data frame of a script, or
/// the body of an HTTP request (ingest lanes send these on their connection); `true`: binary.
pub fn frame_from(g: &Generated) -> (Vec<u8>, bool) {
    match &g.payload {
        Payload::Ws(s) => s
            .frames
            .iter()
            .find(|f| f.opcode == 1 || f.opcode == 2)
            .map(|f| (f.payload.clone(), f.opcode == 2))
            .unwrap_or_default(),
        Payload::Http(r) => (r.body.clone(), false),
    }
}

/// The input an entry stands for (None: nothing reached the target, e.g. a refused connect).
pub fn input(e: &FlightEntry, source: &dyn Source, phase: &LoadPhase) -> Option<Generated> {
    if matches!(
        e.outcome,
        Some(
            Outcome::ConnectRefused
                | Outcome::ConnectReset
                | Outcome::ConnectTimeout
                | Outcome::ConnectAddrNotAvailable
                | Outcome::ConnectOther
        )
    ) {
        return None;
    }
    if let Some(g) = &e.input {
        return Some((**g).clone());
    }
    let g = source.generate(e.seed.stream, e.seed.index);
    // Frames of the ingest and churn lanes (their own streams) went out one by one on a
    // connection of the lane; anything else (an HTTP lane's request or whole WebSocket script)
    // went out as generated.
    let lanes = super::lanes::WS_INGEST_STREAM..super::lanes::SCHEDULE_STREAM;
    if !lanes.contains(&e.seed.stream) {
        return Some(g);
    }
    let (bytes, binary) = frame_from(&g);
    let mut frame = WsFrame::text(bytes);
    if binary {
        frame.opcode = 2;
    }
    let w = &phase.websocket;
    let script = WsScript {
        kind: crate::api::WsPath::classify(&w.ingest_path),
        path: w.ingest_path.clone(),
        headers: vec![("x-sentry-auth".to_string(), w.auth.clone().into_bytes())],
        frames: vec![frame],
    };
    Some(Generated { seed: g.seed, layer: g.layer, payload: Payload::Ws(script), trail: g.trail })
}

/// [`input`] for every entry that stands for one, in order.
pub fn inputs(entries: &[FlightEntry], source: &dyn Source, phase: &LoadPhase) -> Vec<Generated> {
    entries.iter().filter_map(|e| input(e, source, phase)).collect()
}
