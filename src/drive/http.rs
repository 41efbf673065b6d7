//! The HTTP executors of a sending lane: the lean "wire" client ([`crate::drive::wire`], the
//! default) or hyper's client connection API (`hyper::client::conn::http1`), chosen per phase.
//!
//! One [`HttpLane`] per sending task: with keep-alive it reuses one connection (reconnecting when
//! the server closes it); without, it opens a connection per request and sends
//! `connection: close`. Requests hyper cannot express (raw bytes, invalid methods, header names
//! or targets) go through the raw executor ([`crate::drive::net::raw_exchange`]) on a fresh
//! connection. Every failure becomes an [`Outcome`]; nothing here panics on network input.

use crate::drive::metrics::Outcome;
use crate::drive::net::{self, ConnectOpts, Timeouts};
use crate::drive::wire::WireConn;
use crate::model::HttpRequest;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub body_len: usize,
    /// True when it went through the raw executor.
    pub raw: bool,
    /// The body, when the caller asked for it (see `send_prepared`).
    pub body: Option<Bytes>,
}

/// A request ready to go.
#[allow(clippy::large_enum_variant)] // built and consumed once per request, never stored
pub enum Prepared<'a> {
    Hyper(hyper::Request<Full<Bytes>>),
    /// Well-formed request bytes for the wire executor: `bytes`, then `body` (the request's own
    /// body, not copied, when it is larger than [`INLINE_BODY_MAX`]; else empty and the body is
    /// in `bytes`); `head`: a HEAD request (no body back).
    Wire {
        bytes: Vec<u8>,
        body: &'a [u8],
        head: bool,
    },
    Raw(Vec<u8>),
}

/// Bodies up to this size are copied behind the head and go out in one write; larger ones (the
/// mutators' strings and arrays of up to a MiB and more) are written from the request itself,
/// after the head: no second copy of a MiB is made (and its pages faulted in) per request.
pub const INLINE_BODY_MAX: usize = 16 * 1024;

impl Prepared<'_> {
    /// The exact bytes, for raw requests.
    pub fn raw(&self) -> Option<&[u8]> {
        match self {
            Prepared::Raw(b) => Some(b),
            Prepared::Hyper(_) | Prepared::Wire { .. } => None,
        }
    }
}

fn is_token(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Well-formed enough to share a kept-alive connection: nothing in it can desynchronise the
/// framing (the mutations that can go raw, on a connection of their own).
fn well_formed(r: &HttpRequest) -> bool {
    if r.raw.is_some() || !is_token(r.method.as_bytes()) || r.target.is_empty() {
        return false;
    }
    if !r.target.bytes().all(|c| (0x21..0x7f).contains(&c)) {
        return false;
    }
    let mut length = None;
    for (n, v) in &r.headers {
        if !is_token(n.as_bytes()) || v.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
            return false;
        }
        if n.eq_ignore_ascii_case("transfer-encoding") || n.eq_ignore_ascii_case("expect") {
            return false;
        }
        if n.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return false;
            }
            match std::str::from_utf8(v).ok().and_then(|v| v.trim().parse::<usize>().ok()) {
                Some(l) if l == r.body.len() => length = Some(l),
                _ => return false,
            }
        }
    }
    length.is_some() || r.body.is_empty()
}

/// A sending lane's HTTP client state.
pub struct HttpLane {
    pub opts: ConnectOpts,
    pub timeouts: Timeouts,
    pub keep_alive: bool,
    /// `host` header value.
    pub host: String,
    host_value: Option<hyper::header::HeaderValue>,
    sender: Option<SendRequest<Full<Bytes>>>,
    executor: crate::drive::Executor,
    wire: Option<WireConn>,
    /// The answer buffer of the lane's last closed connection, for its next one (a connection
    /// per request would otherwise allocate, and fault in, a fresh buffer per request).
    spare: Option<Vec<u8>>,
    /// Connections opened so far (the flight recorder's connection number).
    pub conns: u64,
}

impl HttpLane {
    pub fn new(opts: ConnectOpts, timeouts: Timeouts, keep_alive: bool, host: String) -> HttpLane {
        let host_value = hyper::header::HeaderValue::from_str(&host).ok();
        HttpLane {
            opts,
            timeouts,
            keep_alive,
            host,
            host_value,
            sender: None,
            executor: crate::drive::Executor::Hyper,
            wire: None,
            spare: None,
            conns: 0,
        }
    }

    /// Send well-formed requests with `executor` (hyper unless told otherwise).
    pub fn with_executor(mut self, executor: crate::drive::Executor) -> HttpLane {
        self.executor = executor;
        self
    }

    /// The request's bytes for the wire executor (`connection: close` added without keep-alive):
    /// the head with the body behind it, or the head and the body apart when the body is larger
    /// than [`INLINE_BODY_MAX`].
    fn wire_bytes<'r>(&self, r: &'r HttpRequest) -> (Vec<u8>, &'r [u8]) {
        let close = !self.keep_alive && !r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("connection"));
        let extra: &[u8] = if close { b"connection: close\r\n" } else { b"" };
        if r.body.len() > INLINE_BODY_MAX {
            (r.head_with(Some(&self.host), extra, 0), &r.body)
        } else {
            (r.to_wire_with(&self.host, extra), &[])
        }
    }

    async fn send_wire(&mut self, bytes: &[u8], body: &[u8], head: bool, keep_body: bool) -> Answer {
        for attempt in 0..2 {
            let reused = self.wire.is_some();
            let (mut conn, sent) = match self.wire.take() {
                Some(c) => (c, 0),
                None => {
                    let buf = self.spare.take().unwrap_or_default();
                    match WireConn::open_sending(&self.opts, bytes, self.keep_alive, !body.is_empty(), buf).await {
                        Ok(c) => {
                            self.conns += 1;
                            c
                        }
                        Err(outcome) => return Answer { outcome, status: None, body_len: 0, raw: false, body: None },
                    }
                }
            };
            let a = conn.exchange(bytes, sent, body, head, self.timeouts, keep_body).await;
            if a.nothing && reused && attempt == 0 {
                // The server had closed the idle connection: once more on a new one.
                continue;
            }
            if self.keep_alive && a.reusable {
                self.wire = Some(conn);
            } else {
                self.spare = conn.into_buf();
            }
            return Answer { outcome: a.outcome, status: a.status, body_len: a.body_len, raw: false, body: a.body };
        }
        unreachable!("the second attempt always returns")
    }

    /// Convert to a hyper request; None when hyper would refuse or rewrite it.
    fn to_hyper(&self, r: &HttpRequest) -> Option<hyper::Request<Full<Bytes>>> {
        if r.raw.is_some() {
            return None;
        }
        let mut b = hyper::Request::builder()
            .method(hyper::Method::from_bytes(r.method.as_bytes()).ok()?)
            .uri(hyper::Uri::try_from(r.target.as_str()).ok()?);
        let mut has_host = false;
        let mut has_conn = false;
        let mut has_te = false;
        {
            let h = b.headers_mut()?;
            for (n, v) in &r.headers {
                let name = hyper::header::HeaderName::from_bytes(n.as_bytes()).ok()?;
                // hyper lowercases names: a request whose case matters must go raw.
                if name.as_str() != n {
                    return None;
                }
                let value = hyper::header::HeaderValue::from_bytes(v).ok()?;
                has_host |= name == hyper::header::HOST;
                has_conn |= name == hyper::header::CONNECTION;
                has_te |= name == hyper::header::TRANSFER_ENCODING;
                h.append(name, value);
            }
            if !has_host {
                h.insert(hyper::header::HOST, self.host_value.clone()?);
            }
            if !self.keep_alive && !has_conn {
                h.insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
            }
        }
        // hyper would frame a body itself; lying lengths and chunked requests go raw.
        if has_te {
            return None;
        }
        if let Some(cl) = r.header("content-length") {
            if std::str::from_utf8(cl).ok()?.trim().parse::<usize>().ok()? != r.body.len() {
                return None;
            }
        } else if !r.body.is_empty() {
            return None;
        }
        b.body(Full::new(Bytes::copy_from_slice(&r.body))).ok()
    }

    async fn open(&mut self) -> Result<SendRequest<Full<Bytes>>, Outcome> {
        let stream = net::connect(&self.opts).await?;
        self.conns += 1;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| classify(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Decide how `r` goes out: through hyper, or raw (exact bytes) when hyper would refuse or
    /// rewrite it.
    pub fn prepare<'r>(&self, r: &'r HttpRequest) -> Prepared<'r> {
        if self.executor == crate::drive::Executor::Wire {
            return if well_formed(r) {
                let (bytes, body) = self.wire_bytes(r);
                Prepared::Wire { bytes, body, head: r.method == "HEAD" }
            } else {
                Prepared::Raw(r.to_wire(&self.host))
            };
        }
        match self.to_hyper(r) {
            Some(req) => Prepared::Hyper(req),
            None => Prepared::Raw(r.to_wire(&self.host)),
        }
    }

    /// Send one request and read its whole answer.
    pub async fn send(&mut self, r: &HttpRequest) -> Answer {
        let p = self.prepare(r);
        self.send_prepared(p, false).await
    }

    /// Send a prepared request and read its whole answer.
    /// Send; with `keep_body` the response body is returned in [`Answer::body`].
    pub async fn send_prepared(&mut self, p: Prepared<'_>, keep_body: bool) -> Answer {
        let req = match p {
            Prepared::Hyper(req) => req,
            Prepared::Wire { bytes, body, head } => return self.send_wire(&bytes, body, head, keep_body).await,
            Prepared::Raw(bytes) => {
                self.conns += 1;
                let a = net::raw_exchange(&self.opts, self.timeouts, &bytes).await;
                return Answer { outcome: a.outcome, status: a.status, body_len: a.body_len, raw: true, body: None };
            }
        };
        let fail = |outcome| Answer { outcome, status: None, body_len: 0, raw: false, body: None };
        // A kept-alive connection the server has closed meanwhile: open a new one (the request
        // was not sent on the dead one).
        let (mut sender, reused) = match self.sender.take() {
            Some(s) if !s.is_closed() => (s, true),
            _ => match self.open().await {
                Ok(s) => (s, false),
                Err(o) => return fail(o),
            },
        };
        if !matches!(tokio::time::timeout(self.timeouts.request, sender.ready()).await, Ok(Ok(()))) {
            if !reused {
                return fail(Outcome::Closed);
            }
            sender = match self.open().await {
                Ok(s) => s,
                Err(o) => return fail(o),
            };
            match tokio::time::timeout(self.timeouts.request, sender.ready()).await {
                Err(_) => return fail(Outcome::Timeout),
                Ok(Err(e)) => return fail(classify(&e)),
                Ok(Ok(())) => {}
            }
        }
        let t = self.timeouts;
        let resp = match tokio::time::timeout(t.request, sender.send_request(req)).await {
            Err(_) => return fail(Outcome::Timeout),
            Ok(Err(e)) => return fail(classify(&e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        let server_closes =
            resp.headers().get(hyper::header::CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let mut body = resp.into_body();
        let mut len = 0usize;
        let mut kept = keep_body.then(bytes::BytesMut::new);
        let read = async {
            while let Some(f) = body.frame().await {
                match f {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            len += d.len();
                            if let Some(k) = kept.as_mut() {
                                k.extend_from_slice(d);
                            }
                        }
                    }
                    Err(e) => return Err(classify(&e)),
                }
            }
            Ok(())
        };
        let outcome = match tokio::time::timeout(t.body, read).await {
            Err(_) => Outcome::Timeout,
            Ok(Err(o)) => o,
            Ok(Ok(())) => Outcome::from_status(status),
        };
        if self.keep_alive && !server_closes && outcome == Outcome::from_status(status) {
            self.sender = Some(sender);
        }
        Answer { outcome, status: Some(status), body_len: len, raw: false, body: kept.map(|k| k.freeze()) }
    }
}

/// Classify a hyper error by its I/O cause.
pub fn classify(e: &hyper::Error) -> Outcome {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Outcome::from_io_error(io);
        }
        src = s.source();
    }
    if e.is_parse() || e.is_parse_status() {
        Outcome::BadResponse
    } else if e.is_timeout() {
        Outcome::Timeout
    } else {
        // incomplete message, canceled (connection closed before the answer), closed channel
        Outcome::Closed
    }
}

/// An HTTP response, as the checks need it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    /// The body as text, cut at `max` characters.
    pub fn body_text(&self, max: usize) -> String {
        let t = String::from_utf8_lossy(&self.body);
        if t.chars().count() > max { format!("{}…", t.chars().take(max).collect::<String>()) } else { t.to_string() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no response (connection closed or reset): {0}")]
    NoResponse(String),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

/// One request on a fresh connection (hyper's client connection API), reading the whole
/// response: the checks and the invariants ask the target through hyper, a parser of its own. Header names are sent as given.
pub async fn exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: std::time::Duration,
) -> Result<Response, ExchangeError> {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(ExchangeError::Connect)?;
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(false)
            .handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ExchangeError::NoResponse(e.to_string()))?;
        tokio::spawn(conn.with_upgrades());
        let mut req = http::Request::builder().method(method).uri(path).header("host", addr.to_string());
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| ExchangeError::NoResponse(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| ExchangeError::NoResponse(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).to_string()))
            .collect();
        let body = if status == 101 {
            Bytes::new()
        } else {
            resp.into_body().collect().await.map_err(|e| ExchangeError::NoResponse(e.to_string()))?.to_bytes()
        };
        Ok(Response { status, headers, body })
    };
    tokio::time::timeout(timeout, fut).await.unwrap_or(Err(ExchangeError::Timeout(timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lane(keep_alive: bool) -> HttpLane {
        let opts = ConnectOpts {
            addr: "127.0.0.1:9".parse().unwrap(),
            connect_timeout: Duration::from_secs(1),
            spread_source: false,
            linger_zero: false,
        };
        let t =
            Timeouts { connect: Duration::from_secs(1), request: Duration::from_secs(1), body: Duration::from_secs(1) };
        HttpLane::new(opts, t, keep_alive, "127.0.0.1:9".into()).with_executor(crate::drive::Executor::Wire)
    }

    #[test]
    fn wire_bytes_close_the_connection_unless_kept_alive_or_told_otherwise() {
        let r = HttpRequest::new(None, "POST", "/x".into(), b"{\"a\":1}\r\n\r\n".to_vec());
        let plain = r.to_wire("127.0.0.1:9");
        let head_end = plain.len() - r.body.len() - 2;
        let mut closed = plain.clone();
        closed.splice(head_end..head_end, b"connection: close\r\n".iter().copied());
        let joined = |(mut head, body): (Vec<u8>, &[u8])| {
            head.extend_from_slice(body);
            head
        };
        assert_eq!(lane(false).wire_bytes(&r), (closed, &[][..]));
        assert_eq!(lane(true).wire_bytes(&r), (plain, &[][..]));
        let mut own = r.clone();
        own.headers.push(("Connection".into(), b"keep-alive".to_vec()));
        assert_eq!(joined(lane(false).wire_bytes(&own)), own.to_wire("127.0.0.1:9"));
        // A large body stays where it is, behind the head.
        let big = HttpRequest::new(None, "POST", "/x".into(), vec![b'a'; INLINE_BODY_MAX + 1]);
        let (head, body) = lane(false).wire_bytes(&big);
        assert!(std::ptr::eq(body, &big.body[..]));
        assert!(head.ends_with(b"connection: close\r\n\r\n"));
        let mut whole = big.to_wire("127.0.0.1:9");
        let at = whole.len() - big.body.len() - 2;
        whole.splice(at..at, b"connection: close\r\n".iter().copied());
        assert_eq!(joined((head, body)), whole);
    }
}
