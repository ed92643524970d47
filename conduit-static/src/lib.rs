#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod body;
mod cache;
mod encoding;
mod listing;
pub mod load;
mod precond;
mod range;
pub mod resolve;
mod respond;
mod serve;
mod settings;

pub use cache::{CacheConfig, CacheStats};
pub use encoding::Encoding;
pub use load::ETagMode;

/// The old name of [`ETagMode`].
#[deprecated(
    since = "0.1.0",
    note = "renamed `ETagMode`, spelled like the `ETag` middleware"
)]
pub type EtagMode = ETagMode;
pub use range::MAX_RANGES;
pub use resolve::{PathRejection, ResolvedPath, resolve_path};
pub use serve::{ServeDir, ServeFile};
