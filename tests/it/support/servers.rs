//! In-process servers for the load tests (real sockets on 127.0.0.1): HTTP in several modes, and
//! WebSocket ingest with stream fan-out.

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    KeepAlive,
    /// `Connection: close` on every response (like Mesher).
    Close,
    /// Every `every`, a stop-the-world pause of `len` (requests arriving then wait).
    Stall {
        every: Duration,
        len: Duration,
    },
    /// Answers `n` requests, then closes every connection without answering.
    DieAfter(u64),
}

#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub connections: AtomicU64,
}

/// In every mode, a request for this path is answered after [`SLOW_FOR`].
pub const SLOW_PATH: &str = "/slow";
pub const SLOW_FOR: Duration = Duration::from_millis(1500);

/// Start an HTTP server; returns its address and counters.
pub async fn http_server(mode: Mode) -> (SocketAddr, Arc<Stats>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    let start = Instant::now();
    let dead = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { continue };
            st.connections.fetch_add(1, Ordering::Relaxed);
            let st = st.clone();
            let dead = dead.clone();
            tokio::spawn(async move {
                let st2 = st.clone();
                let dead2 = dead.clone();
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let st = st2.clone();
                    let dead = dead2.clone();
                    async move {
                        let n = st.requests.fetch_add(1, Ordering::Relaxed) + 1;
                        let slow = req.uri().path() == SLOW_PATH;
                        let _ = req.into_body().collect().await;
                        if slow {
                            tokio::time::sleep(SLOW_FOR).await;
                        }
                        if let Mode::Stall { every, len } = mode {
                            let e = Instant::now().duration_since(start).as_nanos() % every.as_nanos();
                            if e < len.as_nanos() {
                                tokio::time::sleep(Duration::from_nanos((len.as_nanos() - e) as u64)).await;
                            }
                        }
                        if let Mode::DieAfter(k) = mode
                            && n > k
                        {
                            dead.store(true, Ordering::SeqCst);
                            return Err("dead");
                        }
                        let mut r = hyper::Response::new(Full::new(Bytes::from_static(
                            b"{\"status\":\"ok\",\"pad\":\"abcdefgh\"}",
                        )));
                        if matches!(mode, Mode::Close) {
                            r.headers_mut().insert("connection", hyper::header::HeaderValue::from_static("close"));
                        }
                        Ok::<_, &'static str>(r)
                    }
                });
                if dead.load(Ordering::SeqCst) {
                    return; // drop the connection unanswered
                }
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
            });
        }
    });
    (addr, stats)
}

/// A WebSocket server: `/ingest` answers every data frame with `{"status":"accepted"}` and
/// broadcasts `{"type":"event","issue_id":"x","data":<frame>}` to every `/stream/projects/*`
/// subscriber.
pub async fn ws_server() -> (SocketAddr, Arc<Stats>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    let (btx, _) = tokio::sync::broadcast::channel::<Vec<u8>>(65536);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { continue };
            st.connections.fetch_add(1, Ordering::Relaxed);
            let st = st.clone();
            let btx = btx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    let st = st.clone();
                    let btx = btx.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let (resp, fut) = fastwebsockets::upgrade::upgrade(&mut req).map_err(|e| e.to_string())?;
                        tokio::spawn(async move {
                            let Ok(mut ws) = fut.await else { return };
                            if path.contains("/stream/projects/") {
                                let mut rx = btx.subscribe();
                                while let Ok(m) = rx.recv().await {
                                    if ws.write_frame(Frame::text(m.into())).await.is_err() {
                                        break;
                                    }
                                }
                            } else {
                                while let Ok(f) = ws.read_frame().await {
                                    match f.opcode {
                                        OpCode::Text | OpCode::Binary => {
                                            st.requests.fetch_add(1, Ordering::Relaxed);
                                            let mut msg = b"{\"type\":\"event\",\"issue_id\":\"x\",\"data\":".to_vec();
                                            msg.extend_from_slice(&f.payload);
                                            msg.push(b'}');
                                            drop(f);
                                            let _ = btx.send(msg);
                                            if ws
                                                .write_frame(Frame::text(b"{\"status\":\"accepted\"}".to_vec().into()))
                                                .await
                                                .is_err()
                                            {
                                                break;
                                            }
                                        }
                                        OpCode::Close => break,
                                        _ => {}
                                    }
                                }
                            }
                        });
                        let (parts, _) = resp.into_parts();
                        Ok::<_, String>(hyper::Response::from_parts(parts, Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, stats)
}
