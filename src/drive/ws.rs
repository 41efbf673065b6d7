//! WebSocket executors.
//!
//! * [`run_raw_script`]: a [`WsScript`] written byte by byte (the shared codec `crate::wire::ws`:
//!   handshake, frames exactly as described — unmasked, fragmented, RSV bits, lying lengths,
//!   delays), then whatever the server answers first (a data frame, a close frame, EOF, nothing) is the outcome.
//!   Used for every WebSocket script in the request mix (mutated traffic).
//! * [`ws_connect`]: fastwebsockets client handshake, for the long-lived lanes in `lanes.rs`
//!   (ingest connections with acks, stream subscribers, churn).
//! * [`Fanout`]: correlation of ingested events (by their `message` text) with their arrival on
//!   `/stream/projects/:id` subscribers.

use crate::drive::metrics::Outcome;
use crate::drive::net::{self, ConnectOpts, Timeouts};
use crate::model::WsScript;
use crate::wire::ws::{Given, ServerFrame, close_frame, handshake, parse_server_frame};
use bytes::Bytes;
use fastwebsockets::WebSocket;
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Run a WebSocket script on raw bytes: handshake, frames as described, then wait (request
/// timeout) for the server's first answer. Returns the outcome and how many frames were written.
pub async fn run_raw_script(o: &ConnectOpts, t: Timeouts, host: &str, script: &WsScript) -> (Outcome, usize) {
    let mut s = match net::connect(o).await {
        Ok(s) => s,
        Err(e) => return (e, 0),
    };
    let hs = handshake(script, host, Given::Added);
    if let Err(e) = net::write_bounded(&mut s, &hs, t.write()).await {
        return (Outcome::from_write_error(&e), 0);
    }
    // Handshake answer.
    let mut buf = Vec::with_capacity(512);
    let head = match net::read_head(&mut s, &mut buf, t.request, Outcome::Closed).await {
        Ok(h) => h,
        Err(o) => return (o, 0),
    };
    if head.status != 101 {
        return (Outcome::from_status(head.status), 0);
    }
    buf.drain(..head.len);
    let mut written = 0;
    let mut mask = [0x5a, 0x17, 0xc3, 0x2e];
    for f in &script.frames {
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms as u64)).await;
        }
        mask.rotate_left(1);
        if let Err(e) = net::write_bounded(&mut s, &f.encode(mask), t.write()).await {
            return (Outcome::from_write_error(&e), written);
        }
        written += 1;
    }
    // First meaningful answer: data frame (ack), close frame, EOF or silence.
    let answer = tokio::time::timeout(t.request, async {
        loop {
            while let Some(ServerFrame { opcode, start, end }) = parse_server_frame(&buf) {
                match opcode {
                    8 => return Outcome::WsClose,
                    9 | 10 => {
                        buf.drain(..end);
                    }
                    _ => return ack_outcome(&buf[start..end]),
                }
            }
            let mut c = [0u8; 4096];
            match s.read(&mut c).await {
                Ok(0) => return Outcome::Closed,
                Ok(n) => buf.extend_from_slice(&c[..n]),
                Err(e) => return Outcome::from_io_error(&e),
            }
        }
    })
    .await
    .unwrap_or(Outcome::Timeout);
    // Polite close (ignored if the socket is gone or not read).
    let _ = tokio::time::timeout(CLOSE_WAIT, s.write_all(&close_frame().encode(mask))).await;
    (answer, written)
}

/// How long a polite close frame may take to go out.
pub const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Write one frame on a client WebSocket, bounded like a request's bytes (a server that does
/// not read would otherwise hold the lane in the write forever).
pub async fn write_frame_bounded<S: tokio::io::AsyncWrite + Unpin>(
    wr: &mut fastwebsockets::WebSocketWrite<S>,
    frame: fastwebsockets::Frame<'_>,
    t: Timeouts,
) -> Result<(), Outcome> {
    match tokio::time::timeout(t.write().1, wr.write_frame(frame)).await {
        Err(_) => Err(Outcome::WriteTimeout),
        Ok(Err(fastwebsockets::WebSocketError::IoError(e))) => Err(Outcome::from_write_error(&e)),
        Ok(Err(_)) => Err(Outcome::Reset),
        Ok(Ok(())) => Ok(()),
    }
}

struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::task::spawn(fut);
    }
}

/// A client WebSocket after the handshake.
pub type Ws = WebSocket<TokioIo<Upgraded>>;

/// fastwebsockets client handshake on `path` with extra headers.
pub async fn ws_connect(
    o: &ConnectOpts,
    t: Timeouts,
    host: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<Ws, Outcome> {
    let stream = net::connect(o).await?;
    let mut b = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::CONNECTION, "upgrade")
        .header("sec-websocket-key", fastwebsockets::handshake::generate_key())
        .header("sec-websocket-version", "13");
    for (n, v) in headers {
        b = b.header(n.as_str(), v.as_slice());
    }
    let req = b.body(Empty::<Bytes>::new()).map_err(|_| Outcome::BadResponse)?;
    match tokio::time::timeout(t.request, fastwebsockets::handshake::client(&SpawnExecutor, req, stream)).await {
        Err(_) => Err(Outcome::Timeout),
        Ok(Err(e)) => Err(match e {
            fastwebsockets::WebSocketError::InvalidStatusCode(c) => Outcome::from_status(c),
            fastwebsockets::WebSocketError::IoError(io) => Outcome::from_io_error(&io),
            fastwebsockets::WebSocketError::HTTPError(h) => crate::drive::http::classify(&h),
            _ => Outcome::BadResponse,
        }),
        Ok(Ok((mut ws, _))) => {
            ws.set_auto_close(false);
            ws.set_auto_pong(false);
            Ok(ws)
        }
    }
}

/// Outcome of an ack frame's text.
pub fn ack_outcome(payload: &[u8]) -> Outcome {
    if payload.starts_with(b"{\"error\"") { Outcome::AckError } else { Outcome::AckOk }
}

/// The `message` of an event body (the fan-out marker), if the body is a JSON object with one.
pub fn event_marker(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(v.get("message")?.as_str()?.to_string())
}

/// The marker of a stream message `{"type":"event",...,"data":<body>}`.
pub fn stream_marker(frame: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(frame).ok()?;
    if v.get("type")?.as_str()? != "event" {
        return None;
    }
    Some(v.get("data")?.get("message")?.as_str()?.to_string())
}

struct Pending {
    sent: Instant,
    accepted: bool,
    remaining: u32,
}

/// Fan-out correlation: ingest paths register the marker of each event they send; stream
/// subscribers look arriving events up. Bounded: entries expire after `timeout` and the table
/// holds at most 200 000 markers. One mutex guards both the markers and their expiry order, so
/// no path can take them in different orders.
pub struct Fanout {
    table: Mutex<Table>,
    pub subscribers: u32,
    pub timeout: Duration,
}

#[derive(Default)]
struct Table {
    map: HashMap<String, VecDeque<Pending>>,
    order: VecDeque<(Instant, String)>,
}

impl Fanout {
    pub fn new(subscribers: u32, timeout: Duration) -> Arc<Fanout> {
        Arc::new(Fanout { table: Mutex::new(Table::default()), subscribers, timeout })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An event with this marker was sent at `sent`.
    pub fn register(&self, marker: String, sent: Instant) {
        let mut t = self.table();
        if t.map.len() >= 200_000 {
            return;
        }
        t.map.entry(marker.clone()).or_default().push_back(Pending {
            sent,
            accepted: false,
            remaining: self.subscribers,
        });
        t.order.push_back((sent, marker));
    }

    /// The ingest of this marker was acknowledged as accepted.
    pub fn accept(&self, marker: &str) {
        let mut t = self.table();
        if let Some(q) = t.map.get_mut(marker)
            && let Some(p) = q.iter_mut().find(|p| !p.accepted)
        {
            p.accepted = true;
        }
    }

    /// A subscriber received this marker: the send time of its ingest, if known.
    pub fn arrived(&self, marker: &str) -> Option<Instant> {
        let mut t = self.table();
        let q = t.map.get_mut(marker)?;
        let p = q.iter_mut().find(|p| p.remaining > 0)?;
        p.remaining -= 1;
        Some(p.sent)
    }

    /// Drop entries older than the timeout (all of them when `all`); returns how many accepted
    /// events were missed by at least one subscriber.
    pub fn sweep(&self, now: Instant, all: bool) -> u64 {
        let mut missed = 0;
        let mut guard = self.table();
        let Table { map, order } = &mut *guard;
        while let Some((sent, _)) = order.front() {
            if !all && now.saturating_duration_since(*sent) < self.timeout {
                break;
            }
            let (_, marker) = order.pop_front().expect("front exists");
            if let Some(q) = map.get_mut(&marker) {
                if let Some(p) = q.pop_front()
                    && p.accepted
                    && p.remaining > 0
                {
                    missed += 1;
                }
                if q.is_empty() {
                    map.remove(&marker);
                }
            }
        }
        missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_correlation() {
        let f = Fanout::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        f.register("m1".into(), t0);
        f.register("m2".into(), t0);
        f.accept("m1");
        f.accept("m2");
        assert_eq!(f.arrived("m1"), Some(t0));
        assert_eq!(f.arrived("m1"), Some(t0));
        assert_eq!(f.arrived("m1"), None);
        assert_eq!(f.arrived("m2"), Some(t0));
        assert_eq!(f.sweep(t0, true), 1);
        assert_eq!(stream_marker(br#"{"type":"event","issue_id":"x","data":{"message":"m9"}}"#), Some("m9".into()));
        assert_eq!(event_marker(br#"{"message":"m9","level":"error"}"#), Some("m9".into()));
    }

    /// Registering and sweeping from several threads at once never waits forever (the markers
    /// and their expiry order were two mutexes once, taken in opposite orders by these two paths:
    /// a deadlock under load).
    #[test]
    fn fanout_register_and_sweep_from_many_threads_finish() {
        let f = Fanout::new(1, Duration::from_millis(0));
        let (done, finished) = std::sync::mpsc::channel();
        for w in 0..4 {
            let (f, done) = (f.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    if w % 2 == 0 {
                        f.register(format!("{w}-{i}"), Instant::now());
                    } else {
                        f.sweep(Instant::now(), false);
                    }
                }
                done.send(()).unwrap();
            });
        }
        for _ in 0..4 {
            finished.recv_timeout(Duration::from_secs(60)).expect("a fan-out thread is stuck: lock-order deadlock");
        }
        f.sweep(Instant::now(), true);
        assert!(f.table().map.is_empty() && f.table().order.is_empty());
    }
}
