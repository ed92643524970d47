//! Shared helpers for the facade's integration tests: a real `conduit::Server` on
//! 127.0.0.1:0, real hyper clients (HTTP/1.1 and h2c prior knowledge) and raw sockets.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use conduit::{Config, Handler, Server, ServerError, ShutdownHandle};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A running server; shut down when dropped (the serve task is aborted with the runtime).
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ShutdownHandle,
    pub task: JoinHandle<Result<(), ServerError>>,
}

/// Test defaults: a free port, no signal handling (tests share the process).
pub fn config() -> Config {
    Config::new("127.0.0.1:0").handle_signals(false)
}

pub async fn start<H: Handler>(config: Config, handler: H) -> Running {
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    let task = tokio::spawn(server.serve(handler));
    Running { addr, handle, task }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

pub type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
pub type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 connection with hyper's client.
pub async fn h1_client(addr: SocketAddr) -> H1 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    tx
}

/// An HTTP/2 connection over cleartext with prior knowledge (h2c) with hyper's client.
pub async fn h2_client(addr: SocketAddr) -> H2 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }
}

/// A request builder with a `Host` header (the h2 client turns it into `:authority`).
pub fn request(method: &str, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test")
}

pub fn get_req(path: &str) -> http::Request<Full<Bytes>> {
    request("GET", path).body(Full::new(Bytes::new())).unwrap()
}

/// A request with a body and its content type.
pub fn body_req(
    method: &str,
    path: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> http::Request<Full<Bytes>> {
    request(method, path)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

pub async fn send<S: SendReq>(client: &mut S, req: http::Request<Full<Bytes>>) -> Reply {
    let res = client.send(req).await.expect("request failed");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// One GET on a fresh HTTP/1.1 connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(&mut h1_client(addr).await, get_req(path)).await
}

/// Both hyper client kinds.
pub trait SendReq {
    fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> impl Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>>;
}

impl SendReq for H1 {
    fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> impl Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>> {
        self.send_request(req)
    }
}

impl SendReq for H2 {
    fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> impl Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>> {
        self.send_request(req)
    }
}

/// Write raw bytes and read until the server closes or `timeout` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, s.read_to_end(&mut out)).await;
    out
}

/// `target/<profile>/examples/<name>`, found from the running test's own executable
/// (`target/<profile>/deps/<test>-<hash>`), so `CARGO_TARGET_DIR` and profiles work. Cargo gives
/// integration tests no path to example binaries; `cargo build --examples` (which
/// `scripts/test.sh` runs first) leaves them there.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "example binary {} not found: run `cargo build --examples` (or scripts/test.sh) first",
        bin.display()
    );
    bin
}

/// A free port on 127.0.0.1 (bound, then released for a child process to take).
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local_addr")
}
