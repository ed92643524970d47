//! conduit-server's integration-test helpers: `conduit_test_support`, with `get`, `send` and
//! `raw` in the shapes these tests use.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

pub use conduit_test_support::*;

/// One GET on a fresh HTTP/1.1 connection: (status, headers, body).
pub async fn get(addr: SocketAddr, path: &str) -> (http::StatusCode, http::HeaderMap, Bytes) {
    conduit_test_support::get(addr, path).await.into_parts()
}

/// Send `req` on `client`: (status, headers, body).
pub async fn send<S: SendReq>(
    client: &mut S,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    conduit_test_support::send(client, req).await.into_parts()
}

/// Write raw bytes and read, as text, until the server closes or `timeout` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> String {
    raw_text(addr, bytes, timeout).await
}
