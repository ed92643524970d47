//! Shared helpers: a temporary directory tree, a real conduit server on 127.0.0.1:0 and a
//! real hyper HTTP/1.1 client (plus raw sockets where the exact bytes matter).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use conduit_core::Handler;
use conduit_server::{Config, Server};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("conduit-static-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, content).expect("write file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

/// Start a server for `handler`; it lives as long as the test's runtime.
pub async fn start<H: Handler>(handler: H) -> SocketAddr {
    init_tracing();
    let server = Server::bind(Config::new("127.0.0.1:0").handle_signals(false))
        .await
        .expect("bind");
    let addr = server.local_addr();
    tokio::spawn(server.serve(handler));
    addr
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }
}

/// A client on one HTTP/1.1 connection.
pub struct Client {
    tx: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Client {
    pub async fn new(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Self { tx }
    }

    pub async fn req(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Empty::new()).expect("request");
        tokio::time::timeout(Duration::from_secs(30), async {
            let res = self.tx.send_request(req).await.expect("send");
            let (parts, body) = res.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            }
        })
        .await
        .expect("response in time")
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.req("GET", path, &[]).await
    }
}

/// One request as raw bytes on a fresh connection; returns (status, whole response).
pub async fn raw_get(addr: SocketAddr, target: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(&req).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    let status = std::str::from_utf8(out.get(9..12).unwrap_or(b"000"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}
