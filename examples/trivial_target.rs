//! A trivial HTTP/1.1 target for driver benchmarks (`benches/anchors.sh`): every request gets a
//! 32-byte JSON answer; keep-alive unless `--close` (then `Connection: close` on every response,
//! like Mesher). `--delay-ms N` answers each request N ms after it arrived (Mesher's answers take
//! milliseconds: the client then spends its time on connections in flight, not on a busy
//! server). Single-threaded so it can be pinned to one core.
//!
//! Usage: cargo run --release --example trivial_target -- 127.0.0.1:18080 [--close] [--delay-ms N]

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const BODY: &[u8] = b"{\"status\":\"ok\",\"pad\":\"abcdefgh\"}";

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18080".into());
    let rest: Vec<String> = args.collect();
    let close = rest.iter().any(|a| a == "--close");
    let delay = match rest.iter().position(|a| a == "--delay-ms") {
        Some(i) => match rest.get(i + 1).and_then(|v| v.parse::<u64>().ok()) {
            Some(ms) => std::time::Duration::from_millis(ms),
            None => return Err(std::io::Error::other("--delay-ms needs a number of milliseconds")),
        },
        None => std::time::Duration::ZERO,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!(
            "trivial_target listening on {} ({}, answers after {:?})",
            l.local_addr()?,
            if close { "close" } else { "keep-alive" },
            delay
        );
        loop {
            let Ok((s, _)) = l.accept().await else { continue };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(move |_req| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let mut r = hyper::Response::new(Full::new(Bytes::from_static(BODY)));
                    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
                    if close {
                        r.headers_mut().insert("connection", hyper::header::HeaderValue::from_static("close"));
                    }
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
            });
        }
    })
}
