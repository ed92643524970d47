#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod conn;
mod health;
pub mod hub;
pub mod store;

pub use conn::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_PREFIX, Redis, RedisBuilder};
pub use health::{Health, HealthGate};
pub use hub::{EntryId, HubBackendStats, RedisEvents, RedisStreams, RedisStreamsBuilder};
pub use store::{OnError, RedisStore, StoreStats};
