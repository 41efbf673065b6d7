//! Sockets: connecting (with source addresses spread over 127.0.0.0/8 for connections closed
//! with FIN, IP_BIND_ADDRESS_NO_PORT, optional SO_LINGER 0, TCP_NODELAY, connect timeout) and the raw
//! executor (exact bytes on a TcpStream, the answer read with the shared codec `crate::wire::http`).
//!
//! Why spread source addresses: on loopback every connection's 4-tuple must be unique, and
//! TIME_WAIT sockets keep tuples busy for 60 s; one source address gives ~28k ephemeral ports,
//! i.e. ~470 new connections/s sustained. Rotating over 65 534 addresses of 127.1.0.0/16 removes
//! the limit.

use crate::drive::metrics::Outcome;
use crate::wire::http::{Framing, Head, find, parse_head};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How to open connections.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    pub addr: SocketAddr,
    pub connect_timeout: Duration,
    /// Rotate the local address over 127.1.0.0/16 (only when the target is IPv4 loopback).
    pub spread_source: bool,
    /// SO_LINGER 0: close with RST, leaving no TIME_WAIT behind.
    pub linger_zero: bool,
}

static NEXT_SRC: AtomicU32 = AtomicU32::new(0);

fn next_source() -> Ipv4Addr {
    // 127.1.0.1 ..= 127.1.255.254
    let n = NEXT_SRC.fetch_add(1, Ordering::Relaxed) % 65_534 + 1;
    Ipv4Addr::new(127, 1, (n >> 8) as u8, (n & 0xff) as u8)
}

/// Open a TCP connection; the error is already classified.
pub async fn connect(o: &ConnectOpts) -> Result<TcpStream, Outcome> {
    let sock = socket(o, true)?;
    let sock = TcpSocket::from_std_stream(sock.into());
    match tokio::time::timeout(o.connect_timeout, sock.connect(o.addr)).await {
        Err(_) => Err(Outcome::ConnectTimeout),
        Ok(Err(e)) => Err(Outcome::from_connect_error(&e)),
        Ok(Ok(s)) => Ok(s),
    }
}

/// Open a TCP connection and send `first` (the start of a request) on it in the same turn;
/// returns the stream and how many bytes of `first` went out (the caller writes the rest).
/// `nodelay`: set TCP_NODELAY now (a connection that carries more than one write).
///
/// Why not [`connect`] and then a write: on loopback the handshake is over when connect()
/// returns, so the request can go at once, without a trip through the event loop for the
/// socket's writable event and without the getsockopt(SO_ERROR) that reads the connect's
/// result: a connect that failed shows in the send's error (refused, reset). When the handshake
/// is not over (a remote target, a full accept queue), the send finds EAGAIN and this waits for
/// it as [`connect`] does. Without `nodelay`, TCP_NODELAY is set only before a second write: a
/// connection's first segment is never held back by Nagle (nothing of it is in flight yet), so a
/// request sent whole by the first send needs no setsockopt.
pub async fn connect_sending(o: &ConnectOpts, first: &[u8], nodelay: bool) -> Result<(TcpStream, usize), Outcome> {
    let sock = socket(o, nodelay)?;
    match sock.connect(&o.addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(Outcome::from_connect_error(&e)),
    }
    let sent = match sock.send(first) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        // A broken pipe is a connection the peer ended after it was made; any other error of the
        // first send is the connect's own (refused, reset during the handshake, unreachable).
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Err(Outcome::from_write_error(&e)),
        Err(e) => return Err(Outcome::from_connect_error(&e)),
    };
    let stream = TcpStream::from_std(sock.into()).map_err(|e| Outcome::from_connect_error(&e))?;
    if sent == 0 {
        match tokio::time::timeout(o.connect_timeout, stream.writable()).await {
            Err(_) => return Err(Outcome::ConnectTimeout),
            Ok(Err(e)) => return Err(Outcome::from_connect_error(&e)),
            Ok(Ok(())) => {}
        }
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return Err(Outcome::from_connect_error(&e)),
        }
    }
    if sent < first.len() && !nodelay {
        let _ = stream.set_nodelay(true);
    }
    Ok((stream, sent))
}

/// A non-blocking TCP socket for `o`, not yet connected: SO_LINGER 0 when asked, TCP_NODELAY
/// when `nodelay`, bound to a spread source address when that is needed.
fn socket(o: &ConnectOpts, nodelay: bool) -> Result<socket2::Socket, Outcome> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if o.addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::STREAM.nonblocking().cloexec(), Some(Protocol::TCP))
        .map_err(|e| Outcome::from_connect_error(&e))?;
    if o.linger_zero {
        let _ = sock.set_linger(Some(Duration::ZERO));
    }
    if nodelay {
        let _ = sock.set_tcp_nodelay(true);
    }
    // A connection closed with RST (SO_LINGER 0) leaves no TIME_WAIT on either side, so its
    // 4-tuple is free at once: spreading is needed only for connections closed with FIN, and
    // the others save its two system calls.
    if o.spread_source
        && !o.linger_zero
        && let IpAddr::V4(ip) = o.addr.ip()
        && ip.is_loopback()
    {
        set_bind_no_port(&sock);
        let src = SocketAddr::new(IpAddr::V4(next_source()), 0);
        sock.bind(&src.into()).map_err(|e| Outcome::from_connect_error(&e))?;
    }
    Ok(sock)
}

/// IP_BIND_ADDRESS_NO_PORT: let connect() pick the port per 4-tuple instead of bind().
fn set_bind_no_port(sock: &socket2::Socket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: valid fd owned by `sock`, option value is a c_int of the right size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Timeouts for one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
    pub body: Duration,
}

impl Timeouts {
    /// The bound on writing one request: no byte taken for `request`, or all of it not taken
    /// within `request + body`.
    pub fn write(&self) -> (Duration, Duration) {
        (self.request, self.request + self.body)
    }
}

/// Write all of `bytes`: every write must move bytes within `idle` (a peer that stopped reading
/// fills the socket's buffers, and the write then waits for nothing), and all of them must be
/// taken within `total` (a peer that reads a byte now and then). A stall is an error of kind
/// `TimedOut` ([`Outcome::from_write_error`]: `write-timeout`).
pub async fn write_bounded<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    (idle, total): (Duration, Duration),
) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    // Most writes are taken whole at once: one try before the stall clocks are set.
    let mut at = 0;
    let first = std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *w).poll_write(cx, bytes) {
        std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    });
    match first.await {
        Some(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
        Some(Ok(n)) => at = n,
        Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Some(Err(e)) => return Err(e),
        None => {}
    }
    if at == bytes.len() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + total;
    while at < bytes.len() {
        let until = deadline.min(tokio::time::Instant::now() + idle);
        match tokio::time::timeout_at(until, w.write(&bytes[at..])).await {
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer stopped reading")),
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => at += n,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(())
}

/// Read until `buf` holds a whole response head, within `within`; the bytes after the head stay
/// in `buf`. `cut_short` is what a connection closed after part of a head means to the caller.
pub async fn read_head(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    within: Duration,
    cut_short: Outcome,
) -> Result<Head, Outcome> {
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match parse_head(buf, false) {
                Err(_) => return Err(Outcome::BadResponse),
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {}
            }
            match s.read(&mut chunk).await {
                Ok(0) => return Err(if buf.is_empty() { Outcome::Closed } else { cut_short }),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(Outcome::from_io_error(&e)),
            }
        }
    };
    tokio::time::timeout(within, read).await.unwrap_or(Err(Outcome::Timeout))
}

/// The answer of a raw exchange.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub body_len: usize,
}

/// Largest body read in raw mode; beyond it the rest is discarded.
const RAW_BODY_MAX: usize = 16 * 1024 * 1024;

/// Send `bytes` on a fresh connection and read one response (its head, then the body its head
/// announces: none, a Content-Length body, a chunked body until its terminator, or until close). The connection
/// is closed afterwards. Errors are outcomes, never panics.
pub async fn raw_exchange(o: &ConnectOpts, t: Timeouts, bytes: &[u8]) -> RawAnswer {
    let (mut s, sent) = match connect_sending(o, bytes, false).await {
        Ok(s) => s,
        Err(outcome) => return RawAnswer { outcome, status: None, body_len: 0 },
    };
    raw_on_stream(&mut s, t, &bytes[sent..]).await
}

/// Like [`raw_exchange`] on an open stream: `bytes` (the request, or what of it is still to
/// send) written, then one response read.
pub async fn raw_on_stream(s: &mut TcpStream, t: Timeouts, bytes: &[u8]) -> RawAnswer {
    let fail = |outcome| RawAnswer { outcome, status: None, body_len: 0 };
    if let Err(e) = write_bounded(s, bytes, t.write()).await {
        return fail(Outcome::from_write_error(&e));
    }
    let mut buf = Vec::with_capacity(1024);
    let head = match read_head(s, &mut buf, t.request, Outcome::BadResponse).await {
        Ok(h) => h,
        Err(o) => return fail(o),
    };
    let status = head.status;
    let mut body = buf.len() - head.len;
    let body_read = async {
        let mut chunk = vec![0u8; 16 * 1024];
        let mut tail: Vec<u8> = buf[head.len..].to_vec();
        loop {
            let done = match head.framing {
                Framing::None => true,
                Framing::Length(n) => body >= n,
                Framing::Chunked => find(&tail, b"0\r\n\r\n").is_some(),
                Framing::Close => false,
            };
            if done {
                return Ok(());
            }
            match s.read(&mut chunk).await {
                Ok(0) => {
                    return match head.framing {
                        Framing::Length(_) | Framing::Chunked => Err(Outcome::Closed),
                        Framing::None | Framing::Close => Ok(()),
                    };
                }
                Ok(n) => {
                    body += n;
                    if head.framing == Framing::Chunked {
                        tail.extend_from_slice(&chunk[..n]);
                        if tail.len() > 16 {
                            tail.drain(..tail.len() - 16);
                        }
                    }
                    if body > RAW_BODY_MAX {
                        return Ok(());
                    }
                }
                Err(e) => return Err(Outcome::from_io_error(&e)),
            }
        }
    };
    match tokio::time::timeout(t.body, body_read).await {
        Err(_) => RawAnswer { outcome: Outcome::Timeout, status: Some(status), body_len: body },
        Ok(Err(o)) => RawAnswer { outcome: o, status: Some(status), body_len: body },
        Ok(Ok(())) => RawAnswer { outcome: Outcome::from_status(status), status: Some(status), body_len: body },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(addr: SocketAddr) -> ConnectOpts {
        ConnectOpts { addr, connect_timeout: Duration::from_millis(300), spread_source: false, linger_zero: true }
    }

    #[tokio::test]
    async fn connect_sending_sends_with_the_connect_and_sets_nodelay_only_when_needed() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let o = opts(l.local_addr().unwrap());
        let (s, sent) = connect_sending(&o, b"GET / HTTP/1.1\r\n\r\n", false).await.unwrap();
        assert_eq!(sent, 18);
        // Sent whole by the first send: Nagle had nothing to hold back, no setsockopt was made.
        assert!(!s.nodelay().unwrap());
        let (mut peer, _) = l.accept().unwrap();
        let mut got = [0u8; 18];
        std::io::Read::read_exact(&mut peer, &mut got).unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
        let (s, _) = connect_sending(&o, b"x", true).await.unwrap();
        assert!(s.nodelay().unwrap());
    }

    #[tokio::test]
    async fn connect_sending_leaves_the_rest_of_a_large_request_to_the_caller_with_nodelay() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let o = opts(l.local_addr().unwrap());
        // More than the socket buffers of both ends hold: the peer never reads.
        let big = vec![b'a'; 64 << 20];
        let (s, sent) = connect_sending(&o, &big, false).await.unwrap();
        assert!(sent > 0 && sent < big.len(), "sent {sent}");
        // The rest is a second write: Nagle must not hold it back.
        assert!(s.nodelay().unwrap());
    }

    #[tokio::test]
    async fn an_empty_write_is_done_at_once() {
        let (mut a, _b) = tokio::io::duplex(1);
        let t = Duration::from_millis(100);
        assert!(write_bounded(&mut a, b"", (t, t)).await.is_ok());
    }

    #[tokio::test]
    async fn connect_sending_classifies_refused_and_unanswered_connects() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert_eq!(connect_sending(&opts(addr), b"x", false).await.err(), Some(Outcome::ConnectRefused));
        // A listener whose accept queue is full drops new SYNs: the handshake is not over when
        // connect() returns, the first send finds EAGAIN, and the connect times out.
        let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        l.listen(0).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let mut held = Vec::new();
        let mut outcome = None;
        for _ in 0..8 {
            match connect_sending(&opts(addr), b"x", false).await {
                Ok(s) => held.push(s),
                Err(o) => {
                    outcome = Some(o);
                    break;
                }
            }
        }
        assert_eq!(outcome, Some(Outcome::ConnectTimeout), "{} connections were accepted", held.len());
    }

    #[test]
    fn sources_are_loopback() {
        for _ in 0..70_000 {
            let a = next_source();
            assert!(a.is_loopback() && a.octets()[3] != 0 || a.octets()[2] != 0);
        }
    }
}
