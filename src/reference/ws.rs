//! The WebSocket side (`docs/mesher-interface.md` §3): handshake on the WS port (any path), `/ingest`-style
//! connections (every text/binary message = one event of the API key's project), stream
//! connections (`/stream/projects/:id`, room `project:<raw id>`), and the [`Hub`] that
//! broadcasts issue/event/count/alert messages to rooms.
//!
//! Broadcasts never block the sender: each subscriber has a bounded queue drained by its own
//! writer task; a subscriber whose queue is full misses that message (Mesher blocks, §6.4 R3).
//! Stream filters (`filters.level`, `filters.environment`) are applied to `event` messages
//! (Mesher stores but never applies them, §6.3 F9).

use super::App;
use super::ingest;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Largest message accepted (§3.5).
pub const MAX_MESSAGE: usize = 16 << 20;
const QUEUE: usize = 1024;

#[derive(Debug, Default, Clone)]
struct Filters {
    level: String,
    environment: String,
}

struct Sub {
    id: u64,
    tx: mpsc::Sender<Frame<'static>>,
    filters: Arc<Mutex<Filters>>,
}

/// Rooms of stream subscribers, keyed by the raw project id they subscribed with.
#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<String, Vec<Sub>>>,
    next: AtomicU64,
}

fn text_frame(s: String) -> Frame<'static> {
    Frame::text(Payload::Owned(s.into_bytes()))
}

impl Hub {
    fn join(&self, room: &str, tx: mpsc::Sender<Frame<'static>>, filters: Arc<Mutex<Filters>>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).entry(room.to_string()).or_default().push(Sub {
            id,
            tx,
            filters,
        });
        id
    }

    fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = rooms.get_mut(room) {
            v.retain(|s| s.id != id);
            if v.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// True when someone listens to `project`'s room.
    pub fn has_room(&self, project: &str) -> bool {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).contains_key(project)
    }

    /// Send `msg` to every subscriber of `project` (without filtering).
    pub fn broadcast(&self, project: &str, msg: Value) {
        self.send_filtered(project, &msg.to_string(), |_| true);
    }

    /// The `event` message of an accepted (or discarded) event; stream filters apply.
    pub fn broadcast_event(&self, project: &str, issue_id: &str, data: &Value) {
        if !self.has_room(project) {
            return;
        }
        let text = json!({"type":"event","issue_id":issue_id,"data":data}).to_string();
        let level = data.get("level").map(ingest::text_form).unwrap_or_default();
        let env = data.get("tags").and_then(|t| t.get("environment")).map(ingest::text_form).unwrap_or_default();
        self.send_filtered(project, &text, |f| {
            (f.level.is_empty() || f.level == level) && (f.environment.is_empty() || f.environment == env)
        });
    }

    fn send_filtered(&self, project: &str, text: &str, pass: impl Fn(&Filters) -> bool) {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(subs) = rooms.get(project) {
            for s in subs {
                let ok = pass(&s.filters.lock().unwrap_or_else(|e| e.into_inner()));
                if ok {
                    let _ = s.tx.try_send(text_frame(text.to_string()));
                }
            }
        }
    }
}

/// What a connection is, decided from the handshake (§3.2).
pub enum Kind {
    /// `key` = the raw value of `x-sentry-auth`, else `authorization` (None: rejected with 1008).
    Ingest {
        key: Option<String>,
    },
    Stream {
        room: String,
    },
}

/// Serve one upgraded connection.
pub async fn serve_conn(
    app: Arc<App>,
    fut: fastwebsockets::upgrade::UpgradeFut,
    kind: Kind,
    _guard: super::http::Guard,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ws = match fut.await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("[mesh-rt] WS upgrade failed: {e}");
            return;
        }
    };
    ws.set_max_message_size(MAX_MESSAGE);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    if let Kind::Ingest { key: None } = kind {
        let _ = ws.write_frame(Frame::close(1008, b"rejected")).await;
        return;
    }
    let (rd, mut wr) = ws.split(tokio::io::split);
    let mut rd = fastwebsockets::FragmentCollectorRead::new(rd);
    let (tx, mut rx) = mpsc::channel::<Frame<'static>>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            let close = f.opcode == OpCode::Close;
            if wr.write_frame(f).await.is_err() || close {
                break;
            }
        }
    });
    let filters = Arc::new(Mutex::new(Filters::default()));
    let joined = match &kind {
        Kind::Stream { room } => Some((room.clone(), app.hub.join(room, tx.clone(), filters.clone()))),
        Kind::Ingest { .. } => None,
    };
    let mut code = 1000u16;
    loop {
        let send_tx = tx.clone();
        let mut send_fn = move |f: Frame<'static>| {
            let t = send_tx.clone();
            async move { t.send(f).await.map_err(|_| "connection closed") }
        };
        let read = tokio::select! {
            r = rd.read_frame(&mut send_fn) => r,
            _ = stop.changed() => {
                code = 1001;
                let _ = tx.send(Frame::close(1001, b"going away")).await;
                break;
            }
        };
        let frame = match read {
            Ok(f) => f,
            Err(e) => {
                let (c, reason) = close_for(e);
                if c != 0 {
                    code = c;
                    let _ = tx.send(Frame::close(c, reason)).await;
                }
                break;
            }
        };
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => {
                let reply = answer(&app, &kind, &filters, frame.opcode == OpCode::Binary, &frame.payload).await;
                if tx.send(text_frame(reply.to_string())).await.is_err() {
                    break;
                }
            }
            _ => {}
        }
    }
    if let Some((room, id)) = joined {
        app.hub.leave(&room, id);
    }
    drop(tx);
    let _ = writer.await;
    println!("[WS] Connection closed: {code}");
}

/// The close code and reason a read error ends the connection with; code 0 when the peer is
/// already gone and no close frame can reach it.
fn close_for(e: WebSocketError) -> (u16, &'static [u8]) {
    match e {
        WebSocketError::InvalidUTF8 => (1007, b"invalid UTF-8"),
        WebSocketError::FrameTooLarge => (1009, b"message too big"),
        WebSocketError::IoError(_)
        | WebSocketError::UnexpectedEOF
        | WebSocketError::ConnectionClosed
        | WebSocketError::SendError(_) => (0, b""),
        _ => (1002, b"protocol error"),
    }
}

/// The reply to one text or binary message: a stream connection's new filters, an ingest
/// connection's event; the planted faults see the message first.
async fn answer(app: &App, kind: &Kind, filters: &Mutex<Filters>, binary: bool, payload: &[u8]) -> Value {
    if let Kind::Ingest { .. } = kind {
        app.faults.ingest_frame(binary, payload);
    }
    app.faults.pass_registry().await;
    match kind {
        Kind::Stream { .. } => {
            set_filters(filters, payload);
            json!({"type":"filters_updated"})
        }
        Kind::Ingest { key } => ingest_frame(app, key.as_deref().unwrap_or(""), payload).await,
    }
}

fn set_filters(filters: &Mutex<Filters>, payload: &[u8]) {
    let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let get = |k: &str| v.get("filters").and_then(|f| f.get(k)).map(ingest::text_form).unwrap_or_default();
    *filters.lock().unwrap_or_else(|e| e.into_inner()) =
        Filters { level: get("level"), environment: get("environment") };
}

async fn ingest_frame(app: &App, key: &str, payload: &[u8]) -> Value {
    let Some(project) = ingest::project_of_key(&app.pool, key).await else {
        return json!({"error":"unauthorized"});
    };
    let events = match ingest::prepare(app, payload, false) {
        Ok(e) => e,
        Err(msg) => return json!({ "error": msg }),
    };
    match ingest::process(app, &project, events).await {
        Ok(_) => json!({"status":"accepted"}),
        Err(e) => json!({ "error": super::routes::pg_error_text(&e) }),
    }
}
