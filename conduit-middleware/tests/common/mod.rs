//! conduit-middleware's integration-test helpers: `conduit_test_support`, with `start`,
//! `request` and `send` in the shapes these tests use.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;

use bytes::Bytes;
use conduit_core::Handler;
use conduit_server::Config;
use http_body_util::Full;

pub use conduit_test_support::h1_client as client;
pub use conduit_test_support::*;

/// Serve `handler` with the test defaults.
pub async fn start<H: Handler>(handler: H) -> Running {
    conduit_test_support::start(config(), handler).await
}

/// Serve `handler` with `config`.
pub async fn start_with<H: Handler>(config: Config, handler: H) -> Running {
    conduit_test_support::start(config, handler).await
}

/// A GET request builder with a `Host` header.
pub fn request(path: &str) -> http::request::Builder {
    conduit_test_support::request("GET", path)
}

/// Send `req` on a fresh connection: (status, headers, the whole raw body).
pub async fn send(
    addr: SocketAddr,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    fetch(addr, req).await.into_parts()
}
