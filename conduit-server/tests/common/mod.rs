//! Shared helpers for the integration tests: a real server on 127.0.0.1:0 and real clients.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use conduit_core::{Handler, Request};
use conduit_server::{Config, Server, ServerError, ShutdownHandle};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ShutdownHandle,
    pub task: JoinHandle<Result<(), ServerError>>,
}

pub fn config() -> Config {
    Config::new("127.0.0.1:0").handle_signals(false)
}

pub async fn start<H: Handler>(config: Config, handler: H) -> Running {
    let server = Server::bind(config).await.expect("bind");
    start_server(server, handler)
}

pub fn start_server<H: Handler>(server: Server, handler: H) -> Running {
    let addr = server.local_addr();
    let handle = server.handle();
    let task = tokio::spawn(server.serve(handler));
    Running { addr, handle, task }
}

/// A plain handler: `/` hello, `/sleep/{ms}` sleeps then answers, `/echo` echoes the body
/// (reading it through the server's limits), `/panic` panics, `/forever` never answers.
pub fn app() -> impl Handler {
    |req: Request| async move {
        let path = req.uri().path().to_owned();
        if let Some(ms) = path.strip_prefix("/sleep/") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            return conduit_core::IntoResponse::into_response("slept");
        }
        match path.as_str() {
            "/echo" => match conduit_core::to_bytes(req.into_body(), usize::MAX).await {
                Ok(b) => conduit_core::IntoResponse::into_response(b),
                Err(e) => conduit_core::IntoResponse::into_response(e),
            },
            "/panic" => panic!("boom"),
            "/forever" => std::future::pending().await,
            "/version" => conduit_core::IntoResponse::into_response(format!("{:?}", req.version())),
            _ => conduit_core::IntoResponse::into_response("Hello, World!"),
        }
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

/// One HTTP/1.1 request on a fresh connection via hyper's client.
pub async fn get(addr: SocketAddr, path: &str) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let mut c = h1_client(addr).await;
    send(
        &mut c,
        http::Request::get(path)
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

pub type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
pub type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

pub async fn h1_client(addr: SocketAddr) -> H1 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    tx
}

pub async fn h2_client(addr: SocketAddr) -> H2 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}

pub async fn send<S>(
    client: &mut S,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes)
where
    S: SendReq,
{
    let res = client.send(req).await.expect("request failed");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
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
pub async fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in a raw HTTP/1 reply.
pub fn status_of(reply: &str) -> u16 {
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
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

// ---- TLS: a self-signed certificate for "localhost" and a rustls client ----

pub struct Cert {
    pub dir: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub der: rustls::pki_types::CertificateDer<'static>,
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn make_cert(tag: &str) -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("conduit-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Cert {
        dir,
        cert,
        key,
        der: ck.cert.der().clone(),
    }
}

pub fn client_config(
    cert: &Cert,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

/// A TLS connection to `addr` for the server name "localhost".
pub async fn connect(
    addr: SocketAddr,
    cfg: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connect_over(tcp, cfg).await
}

/// TLS over an existing TCP stream, for the server name "localhost".
pub async fn connect_over(
    tcp: TcpStream,
    cfg: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
}

// ---- logs: capture what the server logs, on a current-thread test runtime ----

/// A log sink; `text()` is everything logged so far.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    /// Capture INFO and above logged on this thread (the current-thread test runtime runs the
    /// server's tasks here) until the guard is dropped.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---- HTTP/2 frames by hand ----

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

pub async fn read_frame<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (u8, u8, u32, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), try_read_frame(s))
        .await
        .expect("frame in time")
        .expect("frame")
}
