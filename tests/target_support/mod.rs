//! Helpers shared by the `target_*` integration tests: one throwaway PostgreSQL per test binary
//! (a fresh database per test), a raw HTTP/1.1 client, a WebSocket client, and a child-process
//! target whose bound ports are parsed from its startup lines.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PROJECT: &str = "33333333-3333-3333-3333-333333333333";

/// The cluster's base URL (…/mesher). The cluster lives on a parked thread for the whole test
/// binary (PostgreSQL is told to stop when the thread that started it exits).
fn cluster_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let c = mesher_stress::db::Cluster::start().expect("throwaway PostgreSQL");
            tx.send(c.url().to_string()).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("cluster url")
    })
}

/// A fresh, empty database on the shared cluster; returns its URL.
pub async fn fresh_db() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = cluster_url().to_string();
    let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let admin = base.replace("/mesher", "/postgres");
    let pool = mesher_stress::db::connect(&admin, 1).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    pool.close().await;
    base.replace("/mesher", &format!("/{name}"))
}

/// A fresh database with schema and fixtures; returns (url, pool, fixtures).
pub async fn seeded_db() -> (String, sqlx::PgPool, mesher_stress::db::Fixtures) {
    let url = fresh_db().await;
    let pool = mesher_stress::db::connect(&url, 4).await.unwrap();
    mesher_stress::db::schema::apply(&pool).await.unwrap();
    let (f, _) = mesher_stress::db::fixtures::seed(&pool, &Default::default()).await.unwrap();
    (url, pool, f)
}

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
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("no response ({} bytes)", buf.len()))?;
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

/// The target as a child process.
pub struct ChildTarget {
    pub child: Child,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

impl ChildTarget {
    /// Start `mesher-stress target` on free ports against `url` (schema + fixtures prepared).
    pub fn start(url: &str, extra: &[&str]) -> ChildTarget {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mesher-stress"))
            .args(["target", "--http-port", "0", "--ws-port", "0", "--database-url", url, "--prepare-db"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn target");
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        let err = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                log2.lock().unwrap().push_str(&format!("{line}\n"));
                for (kind, p) in [("ws", "WebSocket server listening on "), ("http", "HTTP server listening on ")] {
                    if let Some(a) = line.split(p).nth(1) {
                        let _ = tx.send((kind, a.trim().parse::<SocketAddr>().unwrap()));
                    }
                }
            }
        });
        let (mut http, mut ws) = (None, None);
        while http.is_none() || ws.is_none() {
            let (k, a) = rx.recv_timeout(Duration::from_secs(60)).expect("target startup lines");
            if k == "http" { http = Some(a) } else { ws = Some(a) }
        }
        ChildTarget { child, http: http.unwrap(), ws: ws.unwrap(), stderr: log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait (at most `t`) for the process to exit; its exit status.
    pub fn wait_exit(&mut self, t: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + t;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for ChildTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
