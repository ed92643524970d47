#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod body;
pub mod config;
mod conformance;
mod conn;
#[cfg(feature = "profiling")]
pub mod debug;
mod error;
mod io;
#[cfg(feature = "pool")]
pub mod pool;
mod preface;
mod server;
pub mod shutdown;
#[cfg(feature = "tls")]
mod tls;
mod watchdog;

pub use config::Config;
#[cfg(feature = "tls")]
pub use config::{TlsConfig, TlsVersion};
pub use error::ServerError;
pub use server::{Server, run};
pub use shutdown::{Readiness, ShutdownHandle, ShutdownHooks};
