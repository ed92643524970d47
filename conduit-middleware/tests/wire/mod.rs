//! The middleware wire tests' helpers: `conduit_test_support`, with `start` logging to the
//! test output and `send(addr, method, path, headers)`.
#![allow(dead_code, unused_imports)]

use conduit_core::Handler;

pub use conduit_test_support::send_to as send;
pub use conduit_test_support::{Reply, Running, get};

/// Serve `handler` with the test defaults, logging INFO and above to the test output.
pub async fn start<H: Handler>(handler: H) -> Running {
    conduit_test_support::init_tracing();
    conduit_test_support::start(conduit_test_support::config(), handler).await
}
