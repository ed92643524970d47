#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod compression;
pub mod decompression;
pub mod logging;
pub mod recovery;
pub mod request_id;
pub mod timeout;

pub use compression::{Compression, CompressionHandler, Encoding};
pub use decompression::{Decompression, DecompressionHandler};
pub use logging::{Logging, LoggingHandler};
pub use recovery::{Recovery, RecoveryHandler};
pub use request_id::{RequestId, RequestIdExt, RequestIdHandler, RequestIdValue};
pub use timeout::{Timeout, TimeoutHandler};
