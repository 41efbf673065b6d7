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
//! Framing handled: `Content-Length` (several equal values allowed, differing ones are a bad
//! response), `Transfer-Encoding: chunked` (with trailers), bodies delimited by the connection's
//! close, no body for HEAD, 1xx-final, 204 and 304, interim 1xx answers (`100 Continue`) skipped.
//! A connection is kept only when the answer was complete, well framed, not `Connection: close`
//! (or HTTP/1.0 without `keep-alive`) and nothing followed it. A kept connection the server closed
//! meanwhile (EOF or reset before the first byte of the answer) is retried once on a new one, as
//! hyper does for a closed idle connection.

use crate::drive::metrics::Outcome;
use crate::drive::net::{self, ConnectOpts, Timeouts};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most headers accepted in a response.
const MAX_HEADERS: usize = 128;
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

/// A response head's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    Close,
}

/// Parse a response head at the start of `buf`: Ok(None) = need more bytes.
fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, Outcome> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
        _ => return Err(Outcome::BadResponse),
    };
    let status = r.code.unwrap_or(0);
    let mut keep = r.version == Some(1);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
            match (v, length) {
                (None, _) => return Err(Outcome::BadResponse),
                (Some(v), Some(l)) if v != l => return Err(Outcome::BadResponse),
                (Some(v), _) => length = Some(v),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked =
                h.value.rsplit(|&b| b == b',').next().is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && r.version == Some(0) {
                    keep = true;
                }
            }
        }
    }
    let framing = if head_request || status / 100 == 1 || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(l) = length {
        Framing::Length(l)
    } else {
        keep = false;
        Framing::Close
    };
    if status == 101 {
        keep = false;
    }
    Ok(Some(Head { status, len, framing, keep }))
}

/// Where a chunked body stands after decoding what `buf[from..]` holds.
enum Chunks {
    /// The body ends at this offset (trailers included).
    Done(usize),
    /// More bytes needed; decoding resumes at this offset.
    More(usize),
}

/// Decode chunks in `buf[from..]`, adding data lengths to `body_len` and the data to `keep`.
fn decode_chunks(
    buf: &[u8],
    mut from: usize,
    body_len: &mut usize,
    keep: &mut Option<Vec<u8>>,
) -> Result<Chunks, Outcome> {
    loop {
        let (used, size) = match httparse::parse_chunk_size(&buf[from..]) {
            Ok(httparse::Status::Complete(x)) => x,
            Ok(httparse::Status::Partial) => return Ok(Chunks::More(from)),
            Err(_) => return Err(Outcome::BadResponse),
        };
        if size == 0 {
            // Trailers: header lines up to an empty line.
            let rest = &buf[from + used..];
            if rest.starts_with(b"\r\n") {
                return Ok(Chunks::Done(from + used + 2));
            }
            return match net::find(rest, b"\r\n\r\n") {
                Some(i) => Ok(Chunks::Done(from + used + i + 4)),
                None => Ok(Chunks::More(from)),
            };
        }
        let size = usize::try_from(size).map_err(|_| Outcome::BadResponse)?;
        let end = from.saturating_add(used).saturating_add(size);
        if buf.len() < end.saturating_add(2) {
            return Ok(Chunks::More(from));
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(Outcome::BadResponse);
        }
        *body_len += size;
        if let Some(k) = keep.as_mut() {
            k.extend_from_slice(&buf[from + used..end]);
        }
        from = end + 2;
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
    pub async fn open(opts: &ConnectOpts) -> Result<WireConn, Outcome> {
        Ok(WireConn { stream: net::connect(opts).await?, buf: Vec::with_capacity(8 * 1024), used: 0 })
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Send `req` and then `body` (the two are the request's bytes; `body` may be empty) and read
    /// its answer.
    pub async fn exchange(
        &mut self,
        req: &[u8],
        body: &[u8],
        head_request: bool,
        t: Timeouts,
        keep_body: bool,
    ) -> WireAnswer {
        self.buf.clear();
        let write = async {
            net::write_bounded(&mut self.stream, req, t.write()).await?;
            if !body.is_empty() {
                net::write_bounded(&mut self.stream, body, t.write()).await?;
            }
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = write.await {
            return WireAnswer::fail(Outcome::from_write_error(&e), reset_like(&e));
        }
        // The head (interim 1xx answers skipped).
        let head = tokio::time::timeout(t.request, async {
            loop {
                match parse_head(&self.buf, head_request).map_err(|o| (o, false))? {
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
            Framing::Length(n) => {
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
            Framing::Chunked => {
                let mut from = start;
                loop {
                    match decode_chunks(&self.buf, from, body_len, kept)? {
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
            Framing::Close => {
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
    }
}

/// Errors that mean "the peer had closed the connection".
fn reset_like(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_framing() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", false).unwrap().unwrap();
        assert_eq!((h.status, h.len, h.framing, h.keep), (200, 38, Framing::Length(5), true));
        let h = parse_head(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep), (Framing::Length(2), false));
        let h = parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse_head(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false).unwrap().unwrap();
        assert!(!h.keep, "HTTP/1.0 closes unless keep-alive");
        let h = parse_head(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(h.keep);
        let h = parse_head(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep), (Framing::Close, false));
        let h = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true).unwrap().unwrap();
        assert_eq!(h.framing, Framing::None, "HEAD: no body whatever the length");
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep), (Framing::None, true));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false), Ok(None));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", false),
            Err(Outcome::BadResponse)
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", false), Err(Outcome::BadResponse));
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", false), Err(Outcome::BadResponse));
    }

    #[test]
    fn chunks_decode_across_reads_with_trailers() {
        let all = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for cut in 0..all.len() {
            let (mut n, mut keep) = (0, Some(Vec::new()));
            let first = decode_chunks(&all[..cut], 0, &mut n, &mut keep).unwrap();
            let from = match first {
                Chunks::Done(_) => panic!("done after {cut} bytes"),
                Chunks::More(at) => at,
            };
            match decode_chunks(all, from, &mut n, &mut keep).unwrap() {
                Chunks::Done(end) => assert_eq!(end, all.len()),
                Chunks::More(_) => panic!("not done"),
            }
            assert_eq!((n, keep.as_deref()), (11, Some(&b"hello world"[..])), "cut at {cut}");
        }
        let (mut n, mut keep) = (0, None);
        assert!(matches!(decode_chunks(b"3\r\nabcX\r\n", 0, &mut n, &mut keep), Err(Outcome::BadResponse)));
        assert!(matches!(decode_chunks(b"zz\r\n", 0, &mut n, &mut keep), Err(Outcome::BadResponse)));
    }
}
