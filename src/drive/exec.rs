//! Replay executor: sends one [`Payload`] over a fresh TCP connection exactly as recorded and
//! reports what came back. HTTP requests go out as `HttpRequest::to_wire(host)` bytes (lying
//! lengths, odd headers and raw bytes included); WebSocket scripts get a hand-written handshake
//! and hand-encoded frames (masking, fragmentation, RSV bits, lying lengths, delays).
//!
//! Blocking std sockets with timeouts, for the callers that send one request at a time: triage
//! (serial by nature, in its own thread), the readiness gate and the hang probe of `watch`.
//! The load lanes have their own async executors (`wire`, `http`, `ws`).

use crate::model::{HttpRequest, Payload, WsFrame, WsScript};
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

/// True when `buf` holds a whole response with a `Content-Length` (so a keep-alive server
/// need not close the connection for us to stop reading).
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&buf[..end]);
    if !head.starts_with("HTTP/") {
        return false;
    }
    let len = head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
    });
    len.is_some_and(|n| buf.len() >= end + 4 + n)
}

/// A hash of an answer's form: its status, and its body's JSON skeleton (member names and
/// value types; string values only under an `error` member, digits dropped) or, for a body that
/// is not JSON, its first 64 bytes without digits. Ids, counts and timestamps do not make two
/// answers differ; a new error message or a new member does.
pub fn answer_shape(buf: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parse_status(buf).hash(&mut h);
    let body = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| &buf[i + 4..]).unwrap_or(&[]);
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

/// Parse the status code of `HTTP/1.x NNN ...`.
pub fn parse_status(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let mut parts = line.split(|&b| b == b' ');
    let v = parts.next()?;
    if !v.starts_with(b"HTTP/") {
        return None;
    }
    std::str::from_utf8(parts.next()?).ok()?.trim().parse().ok()
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
        if let Some(st) = parse_status(&buf) {
            return Reply::Http { status: Some(st), bytes: buf.len(), shape: answer_shape(&buf) };
        }
        return classify_err(&e);
    }
    let (buf, end) = read_until_eof(&mut s, deadline, 64 << 20);
    match (parse_status(&buf), end) {
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
            let _ = write_until(&mut s, &ws_handshake(w, &a.to_string()), deadline);
            for f in &w.frames {
                let _ = write_until(&mut s, &encode_frame(f, 0x3712_a5c4), deadline);
            }
            Some(s)
        }
    }
}

/// The client handshake request of a script.
pub fn ws_handshake(w: &WsScript, host: &str) -> Vec<u8> {
    let mut out = format!("GET {} HTTP/1.1\r\n", w.path).into_bytes();
    if !w.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        out.extend_from_slice(format!("host: {host}\r\n").as_bytes());
    }
    let has = |name: &str| w.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("upgrade") {
        out.extend_from_slice(b"upgrade: websocket\r\n");
    }
    if !has("connection") {
        out.extend_from_slice(b"connection: Upgrade\r\n");
    }
    if !has("sec-websocket-key") {
        out.extend_from_slice(b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    }
    if !has("sec-websocket-version") {
        out.extend_from_slice(b"sec-websocket-version: 13\r\n");
    }
    for (n, v) in &w.headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Encode one frame as RFC 6455 bytes, honouring every field (including lies).
pub fn encode_frame(f: &WsFrame, mask_key: u32) -> Vec<u8> {
    f.encode(mask_key.to_be_bytes())
}

/// WebSocket: handshake, then every frame (with its delay), then read replies until the server
/// closes or a quiet period of `min(timeout, 500ms)` passes.
pub fn send_ws(w: &WsScript, addr: SocketAddr, timeout: Duration) -> Reply {
    let deadline = Instant::now() + timeout;
    let mut s = match connect(addr, timeout) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = write_until(&mut s, &ws_handshake(w, &addr.to_string()), deadline) {
        return classify_err(&e);
    }
    // Read the handshake response head.
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    let rest: Vec<u8>;
    loop {
        if let Some(pos) = head.windows(4).position(|x| x == b"\r\n\r\n") {
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
            Ok(0) => return Reply::Ws { status: parse_status(&head), frame_bytes: 0 },
            Ok(n) => head.extend_from_slice(&byte[..n]),
            Err(e) => return classify_err(&e),
        }
    }
    let status = parse_status(&head);
    if status != Some(101) {
        return Reply::Ws { status, frame_bytes: 0 };
    }
    for (i, f) in w.frames.iter().enumerate() {
        if f.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(f.delay_ms as u64));
        }
        if write_until(&mut s, &encode_frame(f, 0x1234_5678 ^ i as u32), deadline).is_err() {
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
    fn frames_encode_lies_and_masks() {
        let mut f = WsFrame::text("hi");
        let b = encode_frame(&f, 0x01020304);
        assert_eq!(b[0], 0x81);
        assert_eq!(b[1], 0x80 | 2);
        assert_eq!(&b[2..6], &[1, 2, 3, 4]);
        assert_eq!(b[6], b'h' ^ 1);
        f.declared_len = Some(1 << 40);
        f.masked = false;
        let b = encode_frame(&f, 0);
        assert_eq!(b[1], 127);
        assert_eq!(u64::from_be_bytes(b[2..10].try_into().unwrap()), 1 << 40);
        assert_eq!(parse_status(b"HTTP/1.1 202 Accepted\r\n"), Some(202));
    }
}
