//! Test helpers for the ETag, metrics, CORS, rate-limit and client-IP tests: a real
//! `conduit_server::Server` on 127.0.0.1:0 and a real hyper HTTP/1.1 client, one connection per
//! request.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use conduit_core::Handler;
use conduit_server::{Config, Server, ShutdownHandle};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A running server, shut down when dropped.
pub struct Running {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

pub async fn start<H: Handler>(handler: H) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let config = Config::new("127.0.0.1:0").handle_signals(false);
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    tokio::spawn(server.serve(handler));
    Running { addr, handle }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// Send `method path` with `headers` on a fresh HTTP/1.1 connection (30 s guard against hangs).
pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let fut = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let res = tx.send_request(req).await.expect("request");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("request hung")
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[]).await
}
