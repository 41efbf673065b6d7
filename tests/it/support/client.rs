//! Raw clients for the targets under test: HTTP/1.1 one request per connection, and WebSocket.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one request on a new connection and read until the server closes it. `Err` when the
/// connection ends without a response.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Result<Reply, String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(bytes).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    parse(&buf)
}

fn parse(buf: &[u8]) -> Result<Reply, String> {
    let end =
        buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("no response ({} bytes)", buf.len()))?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
    Ok(Reply { status, head, body: buf[end + 4..].to_vec() })
}

pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    raw(addr, r.as_bytes()).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], "").await
}

pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(addr, "POST", path, &[], body).await
}

pub async fn ingest(addr: SocketAddr, key: &str, body: &str) -> Reply {
    request(addr, "POST", "/api/v1/events", &[("x-sentry-auth", key)], body).await
}

struct Exec;
impl<F> hyper::rt::Executor<F> for Exec
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

pub type Ws = fastwebsockets::WebSocket<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Open a WebSocket to `path` with extra headers.
pub async fn ws_connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Ws {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut b = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header("Host", addr.to_string())
        .header("Upgrade", "websocket")
        .header("Connection", "upgrade")
        .header("Sec-WebSocket-Key", fastwebsockets::handshake::generate_key())
        .header("Sec-WebSocket-Version", "13");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    let (ws, _) = fastwebsockets::handshake::client(&Exec, req, stream).await.unwrap();
    ws
}

/// Next text frame as JSON (skipping control frames), or the close code.
pub async fn ws_next(ws: &mut Ws) -> Result<serde_json::Value, u16> {
    loop {
        let f = tokio::time::timeout(Duration::from_secs(5), ws.read_frame()).await.expect("ws frame in 5 s").unwrap();
        match f.opcode {
            fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => {
                return Ok(serde_json::from_slice(&f.payload).expect("valid JSON frame"));
            }
            fastwebsockets::OpCode::Close => {
                return Err(if f.payload.len() >= 2 { u16::from_be_bytes([f.payload[0], f.payload[1]]) } else { 1005 });
            }
            _ => {}
        }
    }
}

pub async fn ws_send(ws: &mut Ws, text: &str) {
    ws.write_frame(fastwebsockets::Frame::text(fastwebsockets::Payload::Owned(text.as_bytes().to_vec())))
        .await
        .unwrap();
}

/// Next JSON message whose `type` is `ty`, skipping other messages.
pub async fn ws_next_type(ws: &mut Ws, ty: &str) -> serde_json::Value {
    loop {
        let m = ws_next(ws).await.unwrap_or_else(|c| panic!("closed {c} while waiting for {ty}"));
        if m["type"] == ty {
            return m;
        }
    }
}
