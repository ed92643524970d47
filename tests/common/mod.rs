//! The facade's integration-test helpers: `conduit_test_support`, re-exported.
#![allow(unused_imports)]

pub use conduit_test_support::*;
