//! Acceptance: every valid generator's output gets the route's success status from the live
//! built-in target, across thousands of seeds. Contract with the target: spawn
//! `mesher-stress target --http-port 0 --ws-port 0 --database-url URL --prepare-db --keep-alive`
//! on a throwaway cluster, wait for `[mesh-rt] HTTP server listening on 127.0.0.1:PORT` and the
//! WebSocket line, then send with a plain hyper client. The driver's role (feeding created ids
//! back into the pool) is played here by `IdPool::observe`.

use crate::support::child::ChildTarget;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mesher_stress::api::Route;
use mesher_stress::db::fixtures::SeedOptions;
use mesher_stress::db::{Cluster, Fixtures};
use mesher_stress::generate::{GenOptions, Generator, Mix};
use mesher_stress::model::{HttpRequest, Layer, Payload, Source};
use std::io::{Read, Write};
use std::time::Duration;

async fn send(port: u16, req: &HttpRequest) -> (u16, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let mut b = hyper::Request::builder().method(req.method.as_str()).uri(req.target.as_str());
    b = b.header("host", format!("127.0.0.1:{port}"));
    for (n, v) in &req.headers {
        b = b.header(n.as_str(), v.as_slice());
    }
    let request = b.body(Full::new(Bytes::from(req.body.clone()))).expect("request");
    sender.ready().await.expect("ready");
    let resp = sender.send_request(request).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    (status, body)
}

#[test]
fn valid_requests_succeed_against_the_builtin_target() {
    let cluster = Cluster::start().expect("throwaway PostgreSQL");
    let target = ChildTarget::start(cluster.url(), &["--keep-alive"]);
    let fixtures = Fixtures::plan(&SeedOptions::default());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut failures = Vec::new();
    let mut sent = 0;
    // One generator, as in a run (its id pool tracks what the run created), over 3000 request
    // seeds: 30 streams x 100 indices.
    let g = Generator::new(7, fixtures.clone(), Mix::only(Layer::Valid), GenOptions::default());
    for seed in 0..30u64 {
        for n in 0..100 {
            let item = g.generate(seed, n);
            let Payload::Http(req) = &item.payload else { unreachable!("valid layer is HTTP") };
            let route = Route::get(req.route.expect("valid requests are routed"));
            let (status, body) = rt.block_on(send(target.http.port(), req));
            g.ids().observe(req, status, &body);
            sent += 1;
            if status != route.success {
                failures.push(format!(
                    "stream {seed} index {n} {} {} -> {status} {}",
                    req.method,
                    req.target,
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {sent} valid requests failed:\n{}", failures.len(), failures.join("\n"));

    // WebSocket: valid scripts complete the handshake (101) on the WS port.
    let g = Generator::new(1, fixtures, Mix::only(Layer::Ws), GenOptions::default());
    let mut checked = 0;
    for n in 0..200 {
        let item = g.generate(0, n);
        let Payload::Ws(script) = &item.payload else { unreachable!() };
        if !item.trail.is_empty() {
            continue;
        }
        let mut s = std::net::TcpStream::connect(("127.0.0.1", target.ws.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&mesher_stress::wire::ws_script_bytes(script)).unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HTTP/1.1 101", "{script:?}");
        checked += 1;
    }
    assert!(checked > 20);
}
