//! # conduit
//!
//! A high-performance HTTP framework on hyper 1.x and tokio. This facade re-exports the
//! conduit crates: [`core`] (handlers, router, bodies, errors) at the top level, and the
//! [`server`] behind the `server` feature (on by default).
//!
//! ```no_run
//! use conduit::{Config, Request, Router, get};
//!
//! let app = Router::new().route("/", get(|_req: Request| async { "Hello, World!" }));
//! conduit::run(Config::from_env_addr("127.0.0.1:8080"), app).unwrap();
//! ```
#![warn(missing_docs)]

pub use conduit_core as core;
pub use conduit_core::*;

/// Tower interop: handlers as tower services, tower services as handlers, tower layers as
/// middleware (feature `tower`, off by default; see [`core::tower`]).
#[cfg(feature = "tower")]
pub use conduit_core::tower;

/// The HTTP/1.1 + HTTP/2 server (feature `server`).
#[cfg(feature = "server")]
pub use conduit_server as server;
#[cfg(feature = "server")]
pub use conduit_server::{Config, Readiness, Server, ServerError, ShutdownHandle, run};
/// TLS settings for the server (feature `tls`).
#[cfg(feature = "tls")]
pub use conduit_server::{TlsConfig, TlsVersion};

/// Streaming responses: JSON arrays, NDJSON, chunked bodies, SSE and the SSE hub (feature `stream`).
#[cfg(feature = "stream")]
pub use conduit_stream as stream;
#[cfg(feature = "stream")]
pub use conduit_stream::{Chunked, Event, Hub, JsonArray, LastEventId, Ndjson, Sse};

/// Standard middleware: request id, recovery, logging, timeout, compression, ETag and cache
/// policy, CORS, rate limiting, client IP (feature `middleware`), and Prometheus metrics (feature
/// `metrics`, on by default).
#[cfg(feature = "middleware")]
pub use conduit_middleware as middleware;

/// Static files: `ServeDir`, `ServeFile`, the hot-file cache (feature `static`).
#[cfg(feature = "static")]
pub use conduit_static as static_files;
#[cfg(feature = "static")]
pub use conduit_static::{ServeDir, ServeFile};

/// WebSockets over HTTP/1.1 and HTTP/2 (RFC 8441): the upgrade taken in a handler, the socket
/// as a stream and sink of messages, permessage-deflate (feature `ws`, off by default).
#[cfg(feature = "ws")]
pub use conduit_ws as ws;

/// Scale-out on Redis: the SSE hub backend on Redis Streams, the shared rate-limit store
/// (feature `redis`, off by default).
#[cfg(feature = "redis")]
pub use conduit_redis as redis;

/// The guides in `docs/`, compiled as doctests (`cargo test -p conduit --doc`) so their Rust
/// snippets keep up with the API; `scripts/check_guides.sh` runs their shell commands.
#[cfg(all(doctest, feature = "server", feature = "middleware"))]
#[allow(dead_code)]
mod guides {
    #[doc = include_str!("../docs/deployment.md")]
    struct Deployment;
    #[doc = include_str!("../docs/profiling.md")]
    struct Profiling;
    #[doc = include_str!("../docs/load-testing.md")]
    struct LoadTesting;
}
