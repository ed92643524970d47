#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod deflate;
mod error;
mod frame;
#[cfg(feature = "hub")]
pub mod hub;
mod message;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod socket;
pub mod split;
pub mod stats;
pub mod upgrade;

pub use deflate::Deflate;
pub use error::WsError;
pub use message::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use socket::{Config, WebSocket};
pub use split::{WsReceiver, WsSender};
pub use stats::{WsStats, stats};
pub use upgrade::{WebSocketUpgrade, WsRejection, accept_key};

/// The connection a [`WebSocket`] runs over once the server has upgraded it.
pub type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;
