//! The blocking one-request client: sends one [`Payload`] over a fresh TCP connection exactly
//! as recorded and reports what came back. HTTP requests go out as `HttpRequest::to_wire(host)`
//! bytes (lying lengths, odd headers and raw bytes included); WebSocket scripts get the
//! handshake of [`super::ws::handshake`] (the script's own headers replace ours) and frames
//! encoded field by field (masking, fragmentation, RSV bits, lying lengths, delays).
//!
//! Blocking std sockets with timeouts, for the callers that send one request at a time: triage
//! (serial by nature, in its own thread), the readiness gate and the hang probe of `watch`.
//! The load lanes have their own async executors (`drive::wire`, `drive::http`, `drive::ws`).

use super::http::{self, Framing};
use super::ws::{self, Given};
use crate::model::{HttpRequest, Payload, WsScript};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Where to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    pub http: SocketAddr,
    /// WebSocket listener (None: WS payloads fail with `Refused`).
    pub ws: Option<SocketAddr>,
}

/// What one send observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reply {
    /// An HTTP response (status parsed from the status line when present); `shape` hashes the
    /// answer's form ([`answer_shape`]) so a fuzzer can tell a new kind of answer.
    Http { status: Option<u16>, bytes: usize, shape: u64 },
    /// WebSocket: handshake status and number of bytes of frames received after it.
    Ws { status: Option<u16>, frame_bytes: usize },
    /// The server closed the connection without a byte (e.g. Mesher's parse errors).
    Closed,
    /// Connection reset.
    Reset,
    /// Nothing listens (the target is dead or not up).
    Refused,
    /// No (complete) answer within the timeout.
    Timeout,
    /// Another I/O error.
    Error { message: String },
}

impl Reply {
    /// True when the server produced an answer (a response or a handshake status).
    pub fn answered(&self) -> bool {
        matches!(self, Reply::Http { status: Some(_), .. } | Reply::Ws { status: Some(_), .. })
    }
}

fn classify_err(e: &std::io::Error) -> Reply {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => Reply::Refused,
        ConnectionReset | ConnectionAborted | BrokenPipe => Reply::Reset,
        WouldBlock | TimedOut => Reply::Timeout,
        _ => Reply::Error { message: e.to_string() },
    }
}

fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Reply> {
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| classify_err(&e))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(timeout)).map_err(|e| classify_err(&e))?;
    s.set_write_timeout(Some(timeout)).map_err(|e| classify_err(&e))?;
    Ok(s)
}

/// Write all of `bytes` before `deadline` (the socket's write timeout bounds each write call;
/// this bounds them all: a peer that takes a byte now and then cannot hold a sender forever).
fn write_until(s: &mut TcpStream, bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    let mut at = 0;
    while at < bytes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer stopped reading"));
        }
        s.set_write_timeout(Some(left))?;
        match s.write(&bytes[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read until EOF or `deadline`; returns the bytes and whether EOF was reached.
fn read_until_eof(s: &mut TcpStream, deadline: Instant, limit: usize) -> (Vec<u8>, Result<(), Reply>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return (buf, Err(Reply::Timeout));
        }
        let _ = s.set_read_timeout(Some(deadline - now));
        match s.read(&mut chunk) {
            Ok(0) => return (buf, Ok(())),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() >= limit || response_complete(&buf) {
                    return (buf, Ok(()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return (buf, Err(classify_err(&e))),
        }
    }
}

/// True when `buf` holds a whole answer whose head announces its end (a `Content-Length`, or no
/// body at all), so a keep-alive server need not close the connection for us to stop reading.
/// Interim 1xx answers are not whole: the final answer follows them.
fn response_complete(buf: &[u8]) -> bool {
    match http::parse_head(buf, false) {
        Ok(Some(h)) => match h.framing {
            Framing::Length(n) => buf.len() >= h.len + n,
            Framing::None => h.status / 100 != 1,
            Framing::Chunked | Framing::Close => false,
        },
        _ => false,
    }
}

/// A hash of an answer's form: its status, and its body's JSON skeleton (member names and
/// value types; string values only under an `error` member, digits dropped) or, for a body that
/// is not JSON, its first 64 bytes without digits. Ids, counts and timestamps do not make two
/// answers differ; a new error message or a new member does.
pub fn answer_shape(buf: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    http::status_line(buf).hash(&mut h);
    let body = http::body_of(buf);
    fn skeleton(v: &serde_json::Value, under_error: bool, h: &mut impl Hasher) {
        use serde_json::Value as V;
        match v {
            V::Object(m) => {
                b'{'.hash(h);
                for (k, x) in m {
                    k.hash(h);
                    skeleton(x, k == "error", h);
                }
            }
            // An array's form is its first element's.
            V::Array(a) => {
                b'['.hash(h);
                if let Some(x) = a.first() {
                    skeleton(x, false, h);
                }
            }
            V::String(s) if under_error => s.chars().filter(|c| !c.is_ascii_digit()).take(80).for_each(|c| c.hash(h)),
            other => std::mem::discriminant(other).hash(h),
        }
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => skeleton(&v, false, &mut h),
        Err(_) => body.iter().take(64).filter(|b| !b.is_ascii_digit()).for_each(|b| b.hash(&mut h)),
    }
    h.finish()
}

/// Send one payload and wait for its answer (at most `timeout` in total).
pub fn send(payload: &Payload, addrs: &Addrs, timeout: Duration) -> Reply {
    match payload {
        Payload::Http(r) => send_http(r, addrs.http, timeout),
        Payload::Ws(w) => match addrs.ws {
            Some(a) => send_ws(w, a, timeout),
            None => Reply::Refused,
        },
    }
}

/// HTTP: write the wire bytes to a fresh connection, read until the server closes or the
/// response is complete (Content-Length).
pub fn send_http(r: &HttpRequest, addr: SocketAddr, timeout: Duration) -> Reply {
    let deadline = Instant::now() + timeout;
    let mut s = match connect(addr, timeout) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let wire = r.to_wire(&addr.to_string());
    if let Err(e) = write_until(&mut s, &wire, deadline) {
        // The server may answer (and close) before it read everything: still read the answer.
        let (buf, _) = read_until_eof(&mut s, deadline, 1 << 20);
        if let Some(st) = http::status_line(&buf) {
            return Reply::Http { status: Some(st), bytes: buf.len(), shape: answer_shape(&buf) };
        }
        return classify_err(&e);
    }
    let (buf, end) = read_until_eof(&mut s, deadline, 64 << 20);
    match (http::status_line(&buf), end) {
        (Some(st), _) => Reply::Http { status: Some(st), bytes: buf.len(), shape: answer_shape(&buf) },
        (None, Ok(())) if buf.is_empty() => Reply::Closed,
        (None, Ok(())) => Reply::Http { status: None, bytes: buf.len(), shape: answer_shape(&buf) },
        (None, Err(e)) => e,
    }
}

/// Open a connection, write the payload's first bytes (HTTP request / WS handshake + frames)
/// and return the socket without reading: used to hold culprits open while probing for a hang.
pub fn open_and_hold(payload: &Payload, addrs: &Addrs, timeout: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + timeout;
    match payload {
        Payload::Http(r) => {
            let mut s = connect(addrs.http, timeout).ok()?;
            let _ = write_until(&mut s, &r.to_wire(&addrs.http.to_string()), deadline);
            Some(s)
        }
        Payload::Ws(w) => {
            let a = addrs.ws?;
            let mut s = connect(a, timeout).ok()?;
            let _ = write_until(&mut s, &ws::handshake(w, &a.to_string(), Given::Replace), deadline);
            for f in &w.frames {
                let _ = write_until(&mut s, &f.encode(0x3712_a5c4_u32.to_be_bytes()), deadline);
            }
            Some(s)
        }
    }
}

/// WebSocket: handshake, then every frame (with its delay), then read replies until the server
/// closes or a quiet period of `min(timeout, 500ms)` passes.
pub fn send_ws(w: &WsScript, addr: SocketAddr, timeout: Duration) -> Reply {
    let deadline = Instant::now() + timeout;
    let mut s = match connect(addr, timeout) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = write_until(&mut s, &ws::handshake(w, &addr.to_string(), Given::Replace), deadline) {
        return classify_err(&e);
    }
    // Read the handshake response head.
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    let rest: Vec<u8>;
    loop {
        if let Some(pos) = http::find(&head, b"\r\n\r\n") {
            rest = head.split_off(pos + 4);
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            return Reply::Timeout;
        }
        let _ = s.set_read_timeout(Some(deadline - now));
        match s.read(&mut byte) {
            Ok(0) if head.is_empty() => return Reply::Closed,
            Ok(0) => return Reply::Ws { status: http::status_line(&head), frame_bytes: 0 },
            Ok(n) => head.extend_from_slice(&byte[..n]),
            Err(e) => return classify_err(&e),
        }
    }
    let status = http::status_line(&head);
    if status != Some(101) {
        return Reply::Ws { status, frame_bytes: 0 };
    }
    for (i, f) in w.frames.iter().enumerate() {
        if f.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(f.delay_ms as u64));
        }
        if write_until(&mut s, &f.encode((0x1234_5678 ^ i as u32).to_be_bytes()), deadline).is_err() {
            break;
        }
    }
    let quiet = timeout.min(Duration::from_millis(150));
    let mut got = rest.len();
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let _ = s.set_read_timeout(Some(quiet.min(deadline - now)));
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => break,
        }
    }
    Reply::Ws { status, frame_bytes: got }
}

/// Cheap liveness check: can we connect to the HTTP port at all?
pub fn port_open(addr: SocketAddr, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&addr, timeout).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_complete_when_their_head_says_so() {
        assert!(response_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok"));
        assert!(response_complete(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(!response_complete(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\n\r\nuntil close"));
        assert!(!response_complete(b"SSH-2.0-OpenSSH\r\n\r\n"));
    }
}
