#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod compression;
pub mod decompression;
mod future;
pub mod logging;
pub mod recovery;
pub mod request_id;
pub mod stack;
pub mod timeout;

pub use compression::{Compression, CompressionHandler, Encoding};
pub use decompression::{Decompression, DecompressionHandler};
pub use logging::{Logging, LoggingHandler};
pub use recovery::{Recovery, RecoveryHandler};
pub use request_id::{RequestId, RequestIdExt, RequestIdHandler, RequestIdValue};
pub use stack::{Stack, StackHandler};
pub use timeout::{Timeout, TimeoutHandler};

pub mod cache_control;
pub mod client_ip;
pub mod cors;
pub mod etag;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod rate_limit;

pub use cache_control::{CacheControl, CacheControlHandler};
#[allow(deprecated)]
pub use client_ip::ClientIpHandler;
pub use client_ip::{ClientIp, InvalidCidr, TrustedProxies, TrustedProxiesHandler};
pub use cors::{Cors, CorsBuilder, CorsError, CorsHandler};
pub use etag::{ETag, ETagHandler};
#[cfg(feature = "metrics")]
pub use metrics::{Metrics, MetricsBuilder, MetricsEndpoint, MetricsHandler, MetricsRegistry};
/// The Prometheus client library the metrics are built on, for registering your own.
#[cfg(feature = "metrics")]
pub use prometheus_client;
pub use rate_limit::{
    Decision, MemoryStore, Quota, RateLimit, RateLimitHandler, RateLimitStore, ip_key,
};
