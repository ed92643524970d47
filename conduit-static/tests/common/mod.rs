//! conduit-static's integration-test helpers: `conduit_test_support`, with `start` returning
//! the address, and a `Reply` (and its `Client`) whose status is a number.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;

use bytes::Bytes;
use conduit_core::Handler;

pub use conduit_test_support::*;

/// Serve `handler` (logging INFO and above to the test output); it lives as long as the
/// test's runtime.
pub async fn start<H: Handler>(handler: H) -> SocketAddr {
    init_tracing();
    conduit_test_support::start(config(), handler).await.addr
}

/// A response, fully read, its status as a number.
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

impl From<conduit_test_support::Reply> for Reply {
    fn from(r: conduit_test_support::Reply) -> Self {
        Self {
            status: r.status.as_u16(),
            headers: r.headers,
            body: r.body,
        }
    }
}

/// A client on one HTTP/1.1 connection.
pub struct Client(conduit_test_support::Client);

impl Client {
    pub async fn new(addr: SocketAddr) -> Self {
        Self(conduit_test_support::Client::new(addr).await)
    }

    pub async fn req(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.0.req(method, path, headers).await.into()
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.0.get(path).await.into()
    }
}
