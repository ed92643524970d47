//! Shared helpers: a real server on 127.0.0.1:0 and a real HTTP/1.1 client (hyper).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use conduit_core::Handler;
use conduit_server::{Config, Server, ShutdownHandle};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Generous: only guards against hangs on a loaded machine.
pub const HANG: Duration = Duration::from_secs(30);

pub struct Running {
    pub addr: SocketAddr,
    pub handle: ShutdownHandle,
}

pub fn config() -> Config {
    Config::new("127.0.0.1:0").handle_signals(false)
}

pub async fn start<H: Handler>(handler: H) -> Running {
    start_with(config(), handler).await
}

pub async fn start_with<H: Handler>(config: Config, handler: H) -> Running {
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    tokio::spawn(server.serve(handler));
    Running { addr, handle }
}

pub type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub async fn client(addr: SocketAddr) -> H1 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    tx
}

pub type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// An HTTP/2 (prior knowledge, h2c) connection.
pub async fn h2_client(addr: SocketAddr) -> H2 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}

pub fn request(path: &str) -> http::request::Builder {
    http::Request::get(path).header("host", "test")
}

/// Send `req` on a fresh connection; return the head and the raw body stream.
pub async fn send_streaming(
    addr: SocketAddr,
    req: http::Request<Full<Bytes>>,
) -> http::Response<Incoming> {
    let mut c = client(addr).await;
    tokio::time::timeout(HANG, c.send_request(req))
        .await
        .expect("response in time")
        .expect("request failed")
}

/// Send `req` on a fresh connection; return status, headers and the whole (raw) body.
pub async fn send(
    addr: SocketAddr,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let res = send_streaming(addr, req).await;
    let (parts, body) = res.into_parts();
    let body = tokio::time::timeout(HANG, body.collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    (parts.status, parts.headers, body)
}

pub fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

// ---------------------------------------------------------------------------------------------
// Log capture: every event's fields, plus `target` and `level`, for a scoped test subscriber.

pub type Events = std::sync::Arc<std::sync::Mutex<Vec<std::collections::BTreeMap<String, String>>>>;

pub struct Capture(pub Events);

struct Fields(std::collections::BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields(Default::default());
        event.record(&mut fields);
        let meta = event.metadata();
        fields.0.insert("target".into(), meta.target().into());
        fields.0.insert("level".into(), meta.level().to_string());
        self.0.lock().unwrap().push(fields.0);
    }
}

/// The captured events of `target`.
pub fn events_of(events: &Events, target: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == target)
        .cloned()
        .collect()
}

/// A handler that panics after its first await point ("handler broke").
pub async fn panics(_req: conduit_core::Request) -> &'static str {
    tokio::task::yield_now().await;
    if true {
        panic!("handler broke");
    }
    "unreachable"
}
