#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod chunked;
pub mod hub;
pub mod json;
pub mod sse;

pub use chunked::Chunked;
pub use hub::{Backend, Hub, InMemory, SlowConsumer};
pub use json::{JsonArray, Ndjson};
pub use sse::{Event, EventError, LastEventId, Sse};
