//! Connection IO of the target: a TCP stream wrapper that
//! - records the raw request heads as they arrive, so handlers can look headers up with Mesher's
//!   case-sensitive, last-occurrence-wins rules (hyper lowercases names and keeps no raw form
//!   it would share: `HeaderCaseMap` is crate-private in hyper 1), and
//! - enforces Mesher's 30 s *per read* timeout (a trickling client is never timed out, which is
//!   what the slow-reader fault relies on). The WebSocket server switches the timeout off after
//!   the upgrade.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Mesher's per-read timeout (§2.1).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Heads longer than this are not recorded (hyper rejects them at 8192 bytes anyway).
const MAX_RECORDED_HEAD: usize = 64 * 1024;

/// State shared between the IO wrapper and the request handlers of one connection.
#[derive(Debug, Default)]
pub struct ConnShared {
    heads: Mutex<VecDeque<Vec<u8>>>,
    no_timeout: AtomicBool,
}

impl ConnShared {
    /// The raw head (request line + header lines) of the next request, in arrival order.
    pub fn next_head(&self) -> Option<Vec<u8>> {
        self.heads.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }

    /// Switch the per-read timeout off (upgraded WebSocket connections are long-lived).
    pub fn disable_timeout(&self) {
        self.no_timeout.store(true, Ordering::Relaxed);
    }
}

enum Rec {
    Head(Vec<u8>),
    Skip(u64),
    Off,
}

pub struct RecordingIo {
    inner: TcpStream,
    shared: Arc<ConnShared>,
    rec: Rec,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// End of the last successful read (a read times out READ_TIMEOUT after it).
    last_read: tokio::time::Instant,
}

impl RecordingIo {
    pub fn new(inner: TcpStream) -> (RecordingIo, Arc<ConnShared>) {
        let shared = Arc::new(ConnShared::default());
        (
            RecordingIo {
                inner,
                shared: shared.clone(),
                rec: Rec::Head(Vec::new()),
                timer: None,
                last_read: tokio::time::Instant::now(),
            },
            shared,
        )
    }

    fn record(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.rec {
                Rec::Off => return,
                Rec::Skip(n) => {
                    let k = (*n).min(data.len() as u64) as usize;
                    *n -= k as u64;
                    data = &data[k..];
                    if *n == 0 {
                        self.rec = Rec::Head(Vec::new());
                    }
                }
                Rec::Head(buf) => {
                    let start = buf.len().saturating_sub(3);
                    buf.extend_from_slice(data);
                    data = &[];
                    // Leading empty lines before a request line are skipped, as hyper does.
                    while buf.starts_with(b"\r\n") {
                        buf.drain(..2);
                    }
                    let Some(end) = find_head_end(&buf[start.min(buf.len())..]).map(|e| e + start.min(buf.len()))
                    else {
                        if buf.len() > MAX_RECORDED_HEAD {
                            self.rec = Rec::Off;
                        }
                        continue;
                    };
                    let mut head = std::mem::take(buf);
                    let rest = head.split_off(end);
                    let (len, chunked) = body_framing(&head);
                    self.shared.heads.lock().unwrap_or_else(|e| e.into_inner()).push_back(head);
                    // Chunked bodies cannot be skipped without parsing them: stop recording (later
                    // keep-alive requests on this connection fall back to hyper's header map).
                    self.rec = if chunked {
                        Rec::Off
                    } else if len > 0 {
                        Rec::Skip(len)
                    } else {
                        Rec::Head(Vec::new())
                    };
                    if !rest.is_empty() {
                        self.record_owned(rest);
                    }
                    return;
                }
            }
        }
    }

    fn record_owned(&mut self, rest: Vec<u8>) {
        self.record(&rest);
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    memchr::memmem::find(b, b"\r\n\r\n").map(|p| p + 4)
}

/// The header lines of a raw head (after the request line), split at their first `:` into a
/// trimmed name and a trimmed value; lines without `:` are skipped.
fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n').skip(1).filter_map(split_header_line)
}

fn split_header_line(l: &[u8]) -> Option<(&[u8], &[u8])> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let colon = l.iter().position(|&b| b == b':')?;
    Some((l[..colon].trim_ascii(), l[colon + 1..].trim_ascii()))
}

/// Content-Length (last numeric occurrence, 0 if none) and whether the body is chunked.
fn body_framing(head: &[u8]) -> (u64, bool) {
    let mut len = 0;
    let mut chunked = false;
    // Most header lines are neither: skip them on their first letter before splitting.
    let candidates = head
        .split(|&b| b == b'\n')
        .skip(1)
        .filter(|l| matches!(l.trim_ascii_start().first(), Some(b'c' | b'C' | b't' | b'T')));
    for (n, v) in candidates.filter_map(split_header_line) {
        if n.eq_ignore_ascii_case(b"content-length") {
            len = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        }
    }
    (len, chunked)
}

/// Mesher's header lookup on a raw head: exact (case-sensitive) trimmed name, trimmed value,
/// the last occurrence wins, lines without `:` are ignored.
pub fn raw_header(head: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(head).ok()?;
    let mut found = None;
    for (n, v) in header_lines(head) {
        if n == name.as_bytes() {
            found = Some(v);
        }
    }
    // The head is valid UTF-8 and both ends of `v` are ASCII boundaries: this cannot fail.
    found.map(|v| String::from_utf8_lossy(v).into_owned())
}

impl AsyncRead for RecordingIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.last_read = tokio::time::Instant::now();
                if !matches!(this.rec, Rec::Off) {
                    this.record(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.shared.no_timeout.load(Ordering::Relaxed) {
                    return Poll::Pending;
                }
                // One timer per connection, armed at the first wait and moved forward lazily
                // when it fires early: no timer-wheel work per request on a busy connection.
                let last_read = this.last_read;
                let t = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(last_read + READ_TIMEOUT)));
                loop {
                    match t.as_mut().poll(cx) {
                        Poll::Ready(()) => {
                            let due = this.last_read + READ_TIMEOUT;
                            if due > tokio::time::Instant::now() {
                                t.as_mut().reset(due);
                                continue;
                            }
                            this.timer = None;
                            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "read timeout (30 s)")));
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }
}

use std::future::Future;

impl AsyncWrite for RecordingIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_header_is_case_sensitive_and_last_wins() {
        let head = b"POST /x HTTP/1.1\r\nX-Sentry-Auth: A\r\nx-sentry-auth:  b \r\nnocolon\r\nx-sentry-auth: c\r\n\r\n";
        assert_eq!(raw_header(head, "x-sentry-auth").as_deref(), Some("c"));
        assert_eq!(raw_header(head, "X-Sentry-Auth").as_deref(), Some("A"));
        assert_eq!(raw_header(head, "authorization"), None);
    }

    #[test]
    fn framing() {
        assert_eq!(body_framing(b"POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n"), (12, false));
        assert_eq!(body_framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), (0, true));
    }
}
