//! The lean HTTP/1.1 executor ("wire", the default): a request's bytes written straight to a
//! `TcpStream`, its answer read into one reused buffer and parsed with `httparse`, all inside the
//! sending lane's own task.
//!
//! Why beside hyper: hyper's client runs each connection as a second task fed through channels,
//! and rebuilds every request as an `http::Request` (header map, URI); on loopback that user-space
//! work is about a third of a keep-alive request's cost (docs/performance.md, "Why the wire
//! executor"). Here a request costs
//! one `writev`-sized write and (usually) one read. hyper stays available (`executor = "hyper"`,
//! `--executor hyper`) as an independent second implementation to cross-check against.
//!
//! Heads, framing and chunks are read by the shared codec (`crate::wire::http`); interim 1xx
//! answers (`100 Continue`) are skipped here. A connection is kept only when the answer was
//! complete, well framed, its head allows it and nothing followed it. A kept connection the
//! server closed meanwhile (EOF or reset before the first byte of the answer) is retried once on
//! a new one, as hyper does for a closed idle connection.

use crate::drive::metrics::Outcome;
use crate::drive::net::{self, ConnectOpts, Timeouts};
use crate::wire::http::{Chunks, Framing, Head, decode_chunks, parse_head};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Largest body counted; past it the connection is dropped (the answer is complete enough).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What came back from one exchange.
#[derive(Debug)]
pub struct WireAnswer {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub body_len: usize,
    pub body: Option<Bytes>,
    /// True when the connection can carry another request.
    pub reusable: bool,
    /// True when nothing at all came back before EOF or a reset (a closed idle connection).
    pub nothing: bool,
}

impl WireAnswer {
    fn fail(outcome: Outcome, nothing: bool) -> WireAnswer {
        WireAnswer { outcome, status: None, body_len: 0, body: None, reusable: false, nothing }
    }
}

/// One connection of a lane.
pub struct WireConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Requests answered on it so far.
    pub used: u64,
}

impl WireConn {
    /// Open a connection and send `req` on it in the same turn ([`net::connect_sending`]);
    /// `exchange` then goes on from the returned count of bytes sent. `keep_alive`: the
    /// connection will carry more requests; `more`: more bytes follow `req` (a body apart).
    /// `buf`: the answer buffer of a closed connection, reused (cleared).
    pub async fn open_sending(
        opts: &ConnectOpts,
        req: &[u8],
        keep_alive: bool,
        more: bool,
        mut buf: Vec<u8>,
    ) -> Result<(WireConn, usize), Outcome> {
        let (stream, sent) = net::connect_sending(opts, req, keep_alive || more).await?;
        buf.clear();
        if buf.capacity() < 8 * 1024 {
            buf.reserve(8 * 1024);
        }
        Ok((WireConn { stream, buf, used: 0 }, sent))
    }

    /// The answer buffer, for the lane's next connection; None when a large answer grew it
    /// (it is not kept).
    pub fn into_buf(self) -> Option<Vec<u8>> {
        (self.buf.capacity() <= 64 * 1024).then_some(self.buf)
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Send `req` from byte `from` on (the bytes before it went out with the connect) and then
    /// `body` (the two are the request's bytes; `body` may be empty) and read its answer.
    pub async fn exchange(
        &mut self,
        req: &[u8],
        from: usize,
        body: &[u8],
        head_request: bool,
        t: Timeouts,
        keep_body: bool,
    ) -> WireAnswer {
        self.buf.clear();
        let write = async {
            net::write_bounded(&mut self.stream, &req[from..], t.write()).await?;
            net::write_bounded(&mut self.stream, body, t.write()).await?;
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = write.await {
            return WireAnswer::fail(Outcome::from_write_error(&e), reset_like(&e));
        }
        // The head (interim 1xx answers skipped).
        let head = tokio::time::timeout(t.request, async {
            loop {
                match parse_head(&self.buf, head_request).map_err(|_| (Outcome::BadResponse, false))? {
                    Some(h) if h.status / 100 == 1 && h.status != 101 => {
                        self.buf.drain(..h.len);
                        continue;
                    }
                    Some(h) => return Ok(h),
                    None => {}
                }
                match self.read_more().await {
                    Ok(0) if self.buf.is_empty() => return Err((Outcome::Closed, true)),
                    Ok(0) => return Err((Outcome::BadResponse, false)),
                    Ok(_) => {}
                    Err(e) => return Err((Outcome::from_io_error(&e), self.buf.is_empty() && reset_like(&e))),
                }
            }
        });
        let head = match head.await {
            Err(_) => return WireAnswer::fail(Outcome::Timeout, false),
            Ok(Err((o, nothing))) => return WireAnswer::fail(o, nothing),
            Ok(Ok(h)) => h,
        };
        let mut a = WireAnswer {
            outcome: Outcome::from_status(head.status),
            status: Some(head.status),
            body_len: 0,
            body: None,
            reusable: false,
            nothing: false,
        };
        let mut kept = keep_body.then(Vec::new);
        let body = tokio::time::timeout(t.body, self.read_body(head, &mut a.body_len, &mut kept));
        match body.await {
            Err(_) => a.outcome = Outcome::Timeout,
            Ok(Err(o)) => a.outcome = o,
            Ok(Ok(clean)) => a.reusable = clean && head.keep,
        }
        a.body = kept.map(Bytes::from);
        if a.reusable {
            self.used += 1;
        }
        a
    }

    /// Read the body the head announced. Ok(true): complete and nothing followed it.
    async fn read_body(
        &mut self,
        head: Head,
        body_len: &mut usize,
        kept: &mut Option<Vec<u8>>,
    ) -> Result<bool, Outcome> {
        let start = head.len;
        match head.framing {
            Framing::None => Ok(self.buf.len() == start),
            Framing::Length(n) => self.read_length_body(start, n, body_len, kept).await,
            Framing::Chunked => self.read_chunked_body(start, body_len, kept).await,
            Framing::Close => self.read_close_body(start, body_len, kept).await,
        }
    }

    /// A `Content-Length` body of `n` bytes starting at `start` in the buffer.
    async fn read_length_body(
        &mut self,
        start: usize,
        n: usize,
        body_len: &mut usize,
        kept: &mut Option<Vec<u8>>,
    ) -> Result<bool, Outcome> {
        // Count and (when kept) copy; big bodies do not accumulate in the buffer.
        let mut have = self.buf.len() - start;
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&self.buf[start..start + have.min(n)]);
        }
        let mut pos = self.buf.len();
        while have < n {
            if have > MAX_BODY {
                *body_len = have;
                return Ok(false);
            }
            if pos > 64 * 1024 {
                self.buf.clear();
                pos = 0;
            }
            match self.read_more().await {
                Ok(0) => {
                    *body_len = have;
                    return Err(Outcome::Closed);
                }
                Ok(_) => {
                    let got = &self.buf[pos..];
                    if let Some(k) = kept.as_mut() {
                        k.extend_from_slice(&got[..got.len().min(n - have)]);
                    }
                    have += got.len();
                    pos = self.buf.len();
                }
                Err(e) => {
                    *body_len = have;
                    return Err(Outcome::from_io_error(&e));
                }
            }
        }
        *body_len = n;
        Ok(have == n)
    }

    /// A chunked body whose first chunk starts at `start` in the buffer.
    async fn read_chunked_body(
        &mut self,
        start: usize,
        body_len: &mut usize,
        kept: &mut Option<Vec<u8>>,
    ) -> Result<bool, Outcome> {
        let mut from = start;
        loop {
            match decode_chunks(&self.buf, from, body_len, kept).map_err(|_| Outcome::BadResponse)? {
                Chunks::Done(end) => return Ok(end == self.buf.len()),
                Chunks::More(at) => from = at,
            }
            if *body_len > MAX_BODY {
                return Ok(false);
            }
            if from > 64 * 1024 {
                self.buf.drain(..from);
                from = 0;
            }
            match self.read_more().await {
                Ok(0) => return Err(Outcome::Closed),
                Ok(_) => {}
                Err(e) => return Err(Outcome::from_io_error(&e)),
            }
        }
    }

    /// A body delimited by the end of the connection, starting at `start` in the buffer; such a
    /// connection is never reused, so this is never Ok(true).
    async fn read_close_body(
        &mut self,
        start: usize,
        body_len: &mut usize,
        kept: &mut Option<Vec<u8>>,
    ) -> Result<bool, Outcome> {
        let mut have = self.buf.len() - start;
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&self.buf[start..]);
        }
        loop {
            self.buf.clear();
            match self.read_more().await {
                Ok(0) => {
                    *body_len = have;
                    return Ok(false);
                }
                Ok(n) => {
                    have += n;
                    if let Some(k) = kept.as_mut() {
                        k.extend_from_slice(&self.buf);
                    }
                    if have > MAX_BODY {
                        *body_len = have;
                        return Ok(false);
                    }
                }
                Err(e) => {
                    *body_len = have;
                    return Err(Outcome::from_io_error(&e));
                }
            }
        }
    }
}

/// Errors that mean "the peer had closed the connection".
fn reset_like(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof)
}
