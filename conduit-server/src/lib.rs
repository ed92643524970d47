#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod body;
pub mod config;
mod conformance;
mod conn;
mod error;
mod io;
mod preface;
mod server;
pub mod shutdown;
mod tls;
mod watchdog;

pub use config::{Config, TlsConfig, TlsVersion};
pub use error::ServerError;
pub use server::{Server, run};
pub use shutdown::{Readiness, ShutdownHandle, ShutdownHooks};
