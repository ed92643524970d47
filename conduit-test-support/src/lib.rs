#![doc = include_str!("../README.md")]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use conduit_core::{Handler, IntoResponse, Request};
use conduit_server::{Config, Server, ServerError, ShutdownHandle};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

mod browser;
mod files;
mod logs;
mod redis;
#[cfg(feature = "tls")]
mod tls;

pub use browser::{Browser, chromium, launch};
pub use files::{TempDir, example_binary, free_addr};
pub use logs::{Capture, Events, Logs, events_of};
pub use redis::{RedisCluster, RedisServer, redis_cli};
#[cfg(feature = "tls")]
pub use tls::{Cert, client_config, connect, connect_over, make_cert};

/// Generous: only guards against hangs on a loaded machine.
pub const HANG: Duration = Duration::from_secs(30);

// ---- servers ------------------------------------------------------------------------------

/// A running server. It serves until the test's runtime ends or `handle.shutdown()`.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its shutdown handle.
    pub handle: ShutdownHandle,
    /// The task serving it: its result once shut down.
    pub task: JoinHandle<Result<(), ServerError>>,
}

/// Test defaults: a free port, no signal handling (tests share the process).
pub fn config() -> Config {
    Config::new("127.0.0.1:0").handle_signals(false)
}

/// Bind `config` and serve `handler` from a task of its own.
pub async fn start<H: Handler>(config: Config, handler: H) -> Running {
    let server = Server::bind(config).await.expect("bind");
    start_server(server, handler)
}

/// Serve `handler` on a bound `server` from a task of its own.
pub fn start_server<H: Handler>(server: Server, handler: H) -> Running {
    let addr = server.local_addr();
    let handle = server.handle();
    let task = tokio::spawn(server.serve(handler));
    Running { addr, handle, task }
}

/// A plain handler: `/` hello, `/sleep/{ms}` sleeps then answers, `/echo` echoes the body
/// (reading it through the server's limits), `/panic` panics, `/forever` never answers,
/// `/version` the request's HTTP version.
pub fn app() -> impl Handler {
    |req: Request| async move {
        let path = req.uri().path().to_owned();
        if let Some(ms) = path.strip_prefix("/sleep/") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            return "slept".into_response();
        }
        match path.as_str() {
            "/echo" => match conduit_core::to_bytes(req.into_body(), usize::MAX).await {
                Ok(b) => b.into_response(),
                Err(e) => e.into_response(),
            },
            "/panic" => panic!("boom"),
            "/forever" => std::future::pending().await,
            "/version" => format!("{:?}", req.version()).into_response(),
            _ => "Hello, World!".into_response(),
        }
    }
}

/// A handler that panics after its first await point ("handler broke").
pub async fn panics(_req: Request) -> &'static str {
    tokio::task::yield_now().await;
    if true {
        panic!("handler broke");
    }
    "unreachable"
}

/// Log INFO and above to the test's output (once per process; later calls do nothing).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

// ---- clients ------------------------------------------------------------------------------

/// hyper's HTTP/1.1 client connection.
pub type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
/// hyper's HTTP/2 client connection.
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

/// Both hyper client kinds.
pub trait SendReq {
    /// Send `req`; the response head and its body stream.
    fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> impl Future<Output = hyper::Result<http::Response<Incoming>>>;
}

impl SendReq for H1 {
    fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> impl Future<Output = hyper::Result<http::Response<Incoming>>> {
        self.send_request(req)
    }
}

impl SendReq for H2 {
    fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> impl Future<Output = hyper::Result<http::Response<Incoming>>> {
        self.send_request(req)
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: http::StatusCode,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The whole body, as sent (not decoded).
    pub body: Bytes,
}

impl Reply {
    /// The body as UTF-8 (panics otherwise).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    /// The value of header `name`, if present (panics if it is not ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// `(status, headers, body)`.
    pub fn into_parts(self) -> (http::StatusCode, http::HeaderMap, Bytes) {
        (self.status, self.headers, self.body)
    }

    /// Read `res` to its end (within [`HANG`]).
    pub async fn read(res: http::Response<Incoming>) -> Self {
        let (parts, body) = res.into_parts();
        let body = tokio::time::timeout(HANG, body.collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// A request builder with a `Host` header (the h2 client turns it into `:authority`).
pub fn request(method: &str, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test")
}

/// An empty request body.
pub fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

/// `GET path` without a body.
pub fn get_req(path: &str) -> http::Request<Full<Bytes>> {
    request("GET", path).body(empty()).unwrap()
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

/// `method path` with `headers` and no body.
pub fn request_with(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Request<Full<Bytes>> {
    let mut req = request(method, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(empty()).unwrap()
}

/// Send `req` on `client` and read the whole response (within [`HANG`]).
pub async fn send<S: SendReq>(client: &mut S, req: http::Request<Full<Bytes>>) -> Reply {
    let res = tokio::time::timeout(HANG, client.send(req))
        .await
        .expect("response in time")
        .expect("request failed");
    Reply::read(res).await
}

/// Send `req` on a fresh HTTP/1.1 connection; the response head and its body stream.
pub async fn send_streaming(
    addr: SocketAddr,
    req: http::Request<Full<Bytes>>,
) -> http::Response<Incoming> {
    let mut c = h1_client(addr).await;
    tokio::time::timeout(HANG, c.send_request(req))
        .await
        .expect("response in time")
        .expect("request failed")
}

/// Send `req` on a fresh HTTP/1.1 connection and read the whole response.
pub async fn fetch(addr: SocketAddr, req: http::Request<Full<Bytes>>) -> Reply {
    Reply::read(send_streaming(addr, req).await).await
}

/// `method path` with `headers` on a fresh HTTP/1.1 connection.
pub async fn send_to(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    fetch(addr, request_with(method, path, headers)).await
}

/// One GET on a fresh HTTP/1.1 connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    fetch(addr, get_req(path)).await
}

/// A client on one HTTP/1.1 connection, for requests that must share it.
#[derive(Debug)]
pub struct Client {
    tx: H1,
}

impl Client {
    /// Connect to `addr`.
    pub async fn new(addr: SocketAddr) -> Self {
        Self {
            tx: h1_client(addr).await,
        }
    }

    /// `method path` with `headers` and no body, on this connection.
    pub async fn req(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(&mut self.tx, request_with(method, path, headers)).await
    }

    /// `GET path` on this connection.
    pub async fn get(&mut self, path: &str) -> Reply {
        self.req("GET", path, &[]).await
    }
}

// ---- raw sockets --------------------------------------------------------------------------

/// Write raw bytes and read until the server closes or `timeout` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, s.read_to_end(&mut out)).await;
    out
}

/// [`raw`], as text (invalid UTF-8 replaced).
pub async fn raw_text(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> String {
    String::from_utf8_lossy(&raw(addr, bytes, timeout).await).into_owned()
}

/// The status code of the first response in a raw HTTP/1 reply (0 if there is none).
pub fn status_of(reply: &str) -> u16 {
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `GET target` as raw bytes on a fresh connection (`Connection: close`); the status and the
/// whole response.
pub async fn raw_get(addr: SocketAddr, target: &[u8]) -> (u16, Vec<u8>) {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let out = raw(addr, &req, HANG).await;
    let status = std::str::from_utf8(out.get(9..12).unwrap_or(b"000"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

/// Wait until `f` is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// Whether the peer has closed the connection (read returns EOF or an error) within `timeout`.
pub async fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

// ---- HTTP/2 frames by hand ----------------------------------------------------------------

/// One HTTP/2 frame: the 9-byte header, then `payload`.
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The next frame as (type, flags, stream id, payload), or `None` once the peer has closed.
pub async fn try_read_frame<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
    Some((head[3], head[4], stream, payload))
}

/// The next frame (within 10 s; panics if the peer closed).
pub async fn read_frame<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (u8, u8, u32, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), try_read_frame(s))
        .await
        .expect("frame in time")
        .expect("frame")
}
