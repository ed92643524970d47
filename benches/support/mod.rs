//! Shared helpers for the end-to-end benches: a real conduit server on 127.0.0.1:0 running on
//! its own one-worker runtime (so the server and the benchmark loop use separate cores), and
//! hyper clients driven from a current-thread runtime. `cargo test --benches` runs every bench
//! once (criterion's test mode), which is how `scripts/test.sh` keeps them from rotting.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use conduit::{Config, Handler, Server, ShutdownHandle};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// A server bound to a loopback port, stopped on drop.
pub struct LoopbackServer {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    rt: Option<Runtime>,
}

impl LoopbackServer {
    /// Serve `handler` with the default server configuration (HTTP/1.1 + h2c, TCP_NODELAY).
    pub fn start<H: Handler>(handler: H) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let server = rt
            .block_on(Server::bind(
                Config::new("127.0.0.1:0")
                    .handle_signals(false)
                    .shutdown_timeout(Duration::from_secs(1)),
            ))
            .expect("bind 127.0.0.1:0");
        let addr = server.local_addr();
        let handle = server.handle();
        rt.spawn(server.serve(handler));
        Self {
            addr,
            handle,
            rt: Some(rt),
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// The runtime the benchmark loop drives clients with.
pub fn client_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
}

pub type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
pub type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// A new HTTP/1.1 keep-alive connection (call inside the client runtime).
pub async fn h1(addr: SocketAddr) -> H1 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    tx
}

/// A new HTTP/2 cleartext (prior knowledge) connection.
pub async fn h2(addr: SocketAddr) -> H2 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}

pub fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "bench")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub fn post(path: &str, content_type: &str, body: Bytes) -> http::Request<Full<Bytes>> {
    http::Request::post(path)
        .header("host", "bench")
        .header("content-type", content_type)
        .body(Full::new(body))
        .unwrap()
}

/// Send on an HTTP/1.1 connection and read the whole body; panics on a non-2xx status so a
/// broken bench fails loudly instead of measuring error pages.
pub async fn send1(c: &mut H1, req: http::Request<Full<Bytes>>) -> Bytes {
    let res = c.send_request(req).await.expect("request");
    read(res).await
}

/// Send on an HTTP/2 connection (clones are cheap and multiplex) and read the whole body.
pub async fn send2(c: &mut H2, req: http::Request<Full<Bytes>>) -> Bytes {
    let res = c.send_request(req).await.expect("request");
    read(res).await
}

async fn read(res: http::Response<hyper::body::Incoming>) -> Bytes {
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    body
}
