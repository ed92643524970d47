//! [`ServerError`]: the failures a user can act on, each naming the address or file at fault.
//!
//! ```
//! use conduit_server::{Config, ServerError};
//!
//! let err = Config::default().max_header_bytes(10).validate().unwrap_err();
//! assert!(matches!(err, ServerError::Config(_)));
//! assert!(err.to_string().contains("max_header_bytes"));
//! ```

use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::path::PathBuf;

/// Why a server could not start (or stopped with an error).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listen address is not a valid `host:port`.
    #[error("invalid listen address {addr:?}: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding or listening on the address failed (in use, permission denied, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS certificate or key file could not be read or used (feature `tls`).
    #[cfg(feature = "tls")]
    #[error("TLS {what} file {}: {reason}", path.display())]
    Tls {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// Building the runtime or another I/O failure outside any one connection.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// `Debug` prints the message (and its causes), so `fn main() -> Result<(), ServerError>`
/// reports `Error: cannot listen on 127.0.0.1:8080: Address already in use ...`.
impl std::fmt::Debug for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            write!(f, "\n  caused by: {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
