//! Listeners of the target: the HTTP accept loop (hyper http1 per connection, Mesher's transport
//! rules of §2.1) and the WebSocket accept loop (hyper http1 + fastwebsockets upgrade, §3.1).
//!
//! Per HTTP request, in order: planted `oversized-content-length` check (before the body is
//! read), planted delay, pause and leak, routing via [`crate::api::match_route`] (404 `Not Found`
//! otherwise), planted `route-cumulative` and `cumulative-crash` counts, body read (Content-Length; chunked bodies are
//! seen as empty like Mesher), the read cache for GET routes (benchmark mode only) or the write
//! generation bump around other routes, handler, response with `Connection: close` unless
//! `--keep-alive`.

use super::App;
use super::io::{ConnShared, RecordingIo};
use super::routes::{self, Resp};
use super::ws;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};

/// Largest body read at all (4 bytes per code point × the bulk limit, plus slack). Larger
/// declared bodies get 400 `payload too large` without being read.
pub const BODY_LIMIT: u64 = 4 * 5_242_880 + 4096;

/// Counts live connections so shutdown can wait for them.
#[derive(Default)]
pub struct Tracker {
    n: AtomicUsize,
    idle: Notify,
}

pub struct Guard(Arc<Tracker>);

impl Tracker {
    pub fn enter(self: &Arc<Self>) -> Guard {
        self.n.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }
    /// Wait until no connection is open.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.n.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

fn builder(keep_alive: bool) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.keep_alive(keep_alive)
        .title_case_headers(true)
        .max_header_size(8192)
        // 100 headers at most: hyper's default. Left unset on purpose: an explicit
        // `max_headers` makes hyper fill a 100-slot buffer on every request.
        .auto_date_header(false)
        .header_read_timeout(None);
    b
}

fn respond(app: &App, r: Resp) -> Response<Full<Bytes>> {
    respond_bytes(app, r.status, Bytes::from(r.body))
}

fn respond_bytes(app: &App, status: u16, body: Bytes) -> Response<Full<Bytes>> {
    use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
    // Built in place (no `Response::builder`, no header-name parsing): this runs for every
    // request of a benchmark.
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    if !app.keep_alive {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The next connection (no Nagle), or `None` once `stop` turns true. An accept error (e.g. out
/// of descriptors) is logged and retried after 10 ms, as Mesher's runtime keeps serving.
async fn accept(listener: &TcpListener, stop: &mut watch::Receiver<bool>, what: &str) -> Option<tokio::net::TcpStream> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    return Some(stream);
                }
                Err(e) => {
                    eprintln!("[mesh-rt] {what} error: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            _ = stop.changed() => return None,
        }
    }
}

/// The HTTP accept loop; returns when `stop` turns true (open connections finish on their own,
/// tracked by `tracker`).
pub async fn serve_http(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>, tracker: Arc<Tracker>) {
    let slots = app.faults.slow_reader_stall.then(|| Arc::new(Semaphore::new(super::faults::SLOW_READER_SLOTS)));
    loop {
        // slow-reader-stall: a slot is taken before accepting and held until the connection ends.
        let permit = match &slots {
            Some(s) => tokio::select! {
                p = s.clone().acquire_owned() => Some(p.expect("semaphore never closed")),
                _ = stop.changed() => return,
            },
            None => None,
        };
        let Some(stream) = accept(&listener, &mut stop, "accept").await else { return };
        let app = app.clone();
        let guard = tracker.enter();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _guard = guard;
            let (io, shared) = RecordingIo::new(stream);
            let svc = {
                let app = app.clone();
                service_fn(move |req| handle(app.clone(), shared.clone(), req))
            };
            let conn = builder(app.keep_alive).serve_connection(TokioIo::new(io), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

async fn handle(
    app: Arc<App>,
    shared: Arc<ConnShared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let head = shared.next_head();
    if let Some(cl) = req.headers().get(hyper::header::CONTENT_LENGTH) {
        app.faults.check_content_length(cl.to_str().unwrap_or(""));
    }
    // delay: a planted slowdown; asynchronous, so other requests are served meanwhile.
    if let Some(d) = app.faults.delay {
        tokio::time::sleep(d).await;
    }
    let _pause = match &app.pause {
        Some(lock) => Some(lock.read().await),
        None => None,
    };
    app.faults.on_request();
    let (parts, body) = req.into_parts();
    let Some(m) = crate::api::match_route(parts.method.as_str(), parts.uri.path()) else {
        return Ok(respond(&app, Resp::not_found()));
    };
    app.faults.on_routed(m.route.id);
    if m.route.touches_db {
        app.faults.on_db_request();
        app.faults.pass_registry().await;
    }
    let declared: Option<u64> = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let chunked = parts.headers.contains_key(hyper::header::TRANSFER_ENCODING);
    let body: Bytes = if chunked || declared.unwrap_or(0) == 0 {
        Bytes::new()
    } else if declared.unwrap_or(0) > BODY_LIMIT {
        return Ok(respond(&app, Resp::error(400, "payload too large")));
    } else {
        match Limited::new(body, BODY_LIMIT as usize).collect().await {
            Ok(c) => c.to_bytes(),
            // The client went away or sent less than it declared: nobody to answer.
            Err(_) => return Ok(respond(&app, Resp::error(400, "incomplete body"))),
        }
    };
    let query = parts.uri.query().unwrap_or("");
    if m.route.method == crate::api::Method::Get && !m.route.mutates {
        // Benchmark mode's read cache (see `cache`): GET routes take no auth and no body.
        let key = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
        if let Some((status, body)) = app.cache.get(key, &app.generation) {
            return Ok(respond_bytes(&app, status, body));
        }
        let generation = app.generation.current();
        let r = routes::handle(&app, &m, query, head.as_deref(), &parts.headers, &body).await;
        let bytes = Bytes::from(r.body);
        app.cache.put(key, generation, r.status, &bytes);
        return Ok(respond_bytes(&app, r.status, bytes));
    }
    app.generation.bump();
    let r = routes::handle(&app, &m, query, head.as_deref(), &parts.headers, &body).await;
    app.generation.bump();
    Ok(respond(&app, r))
}

/// The WebSocket accept loop (§3.1): any path; invalid handshakes get 400 `Bad Request: <reason>`.
pub async fn serve_ws(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>, tracker: Arc<Tracker>) {
    loop {
        let Some(stream) = accept(&listener, &mut stop, "WS accept").await else { return };
        let app = app.clone();
        let guard = tracker.enter();
        let mut stop = stop.clone();
        let ws_ctx = (tracker.clone(), stop.clone());
        tokio::spawn(async move {
            let _guard = guard;
            let (io, shared) = RecordingIo::new(stream);
            let svc = {
                let app = app.clone();
                service_fn(move |req| ws_handshake(app.clone(), shared.clone(), ws_ctx.clone(), req))
            };
            let mut b = http1::Builder::new();
            // 100 headers at most: hyper's default (see `builder`).
            b.keep_alive(true).header_read_timeout(None).auto_date_header(false);
            let conn = b.serve_connection(TokioIo::new(io), svc).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

fn bad_request(reason: &str) -> Response<Full<Bytes>> {
    eprintln!("[mesh-rt] WS upgrade failed: {reason}");
    Response::builder()
        .status(400)
        .header("content-type", "text/plain")
        .header("connection", "close")
        .body(Full::new(Bytes::from(format!("Bad Request: {reason}"))))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn ws_handshake(
    app: Arc<App>,
    shared: Arc<ConnShared>,
    (tracker, stop): (Arc<Tracker>, watch::Receiver<bool>),
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let head = shared.next_head();
    if req.method() != hyper::Method::GET {
        return Ok(bad_request("method must be GET"));
    }
    let has = |name: hyper::header::HeaderName, want: &str| {
        req.headers().get_all(name).iter().any(|v| v.to_str().unwrap_or("").to_ascii_lowercase().contains(want))
    };
    if !has(hyper::header::UPGRADE, "websocket") {
        return Ok(bad_request("missing or invalid Upgrade header"));
    }
    if !has(hyper::header::CONNECTION, "upgrade") {
        return Ok(bad_request("missing or invalid Connection header"));
    }
    let target = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let kind = match crate::api::WsPath::classify(&target) {
        crate::api::WsPath::Stream => {
            ws::Kind::Stream { room: crate::api::WsPath::stream_project_id(&target).unwrap_or("").to_string() }
        }
        crate::api::WsPath::Ingest => ws::Kind::Ingest { key: routes::api_key(head.as_deref(), req.headers()) },
    };
    match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok((resp, fut)) => {
            shared.disable_timeout();
            tokio::spawn(ws::serve_conn(app, fut, kind, tracker.enter(), stop));
            let (parts, _) = resp.into_parts();
            Ok(Response::from_parts(parts, Full::new(Bytes::new())))
        }
        Err(e) => Ok(bad_request(&e.to_string())),
    }
}
