//! [`Config`]: every knob of the server, with defaults that follow Go's `net/http` guidance.
//!
//! | setting | default |
//! |---|---|
//! | `read_timeout` (whole request body) | 15 s |
//! | `header_read_timeout` (from accept, or from the first byte of a later request) | 15 s |
//! | `write_timeout` (a write that makes no progress) | 15 s |
//! | `idle_timeout` (keep-alive between requests) | 60 s |
//! | `max_header_bytes` | 1 MiB |
//! | `max_body_bytes` | 2 MiB |
//! | `max_connections` | 10 000 |
//! | `http2` | on (h2c prior knowledge and TLS ALPN `h2`) |
//! | `shutdown_timeout` | 30 s |
//!
//! ```
//! use std::time::Duration;
//! use conduit_server::Config;
//!
//! let config = Config::new("127.0.0.1:0")
//!     .read_timeout(Duration::from_secs(5))
//!     .max_connections(1024)
//!     .http2_max_concurrent_streams(100);
//! config.validate().unwrap();
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
#[cfg(feature = "tls")]
use std::path::PathBuf;
use std::time::Duration;

use conduit_core::ErrorRenderer;

use crate::ServerError;

/// The lowest TLS protocol version the server accepts (feature `tls`).
#[cfg(feature = "tls")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// TLS settings: PEM files, minimum version and the handshake timeout. ALPN offers `h2`
/// (when HTTP/2 is enabled) and `http/1.1` (feature `tls`).
#[cfg(feature = "tls")]
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub(crate) cert_path: PathBuf,
    pub(crate) key_path: PathBuf,
    pub(crate) min_version: TlsVersion,
    pub(crate) handshake_timeout: Duration,
}

#[cfg(feature = "tls")]
impl TlsConfig {
    /// TLS from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert_path: cert.into(),
            key_path: key.into(),
            min_version: TlsVersion::Tls12,
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// The minimum TLS version (default 1.2).
    #[must_use]
    pub fn min_version(mut self, v: TlsVersion) -> Self {
        self.min_version = v;
        self
    }

    /// How long a client may take to complete the handshake (default 10 s).
    #[must_use]
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }
}

/// Server configuration. Build it with the chainable setters; [`Config::validate`] checks it.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) addr: String,
    pub(crate) read_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_body_bytes: u64,
    pub(crate) max_connections: usize,
    pub(crate) tcp_nodelay: bool,
    pub(crate) reuse_port: bool,
    pub(crate) backlog: i32,
    pub(crate) workers: Option<usize>,
    pub(crate) http2: bool,
    pub(crate) http2_max_concurrent_streams: u32,
    pub(crate) http2_keep_alive_interval: Option<Duration>,
    pub(crate) http2_keep_alive_timeout: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) drain_delay: Duration,
    pub(crate) handle_signals: bool,
    pub(crate) errors: Option<ErrorRenderer>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new("127.0.0.1:8080")
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $t:ty;)*) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = v;
            self
        }
    )*};
}

impl Config {
    /// Defaults, listening on `addr` (`host:port`; port 0 picks a free port).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            read_timeout: Duration::from_secs(15),
            header_read_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 1 << 20,
            max_headers: 100,
            max_body_bytes: 2 << 20,
            max_connections: 10_000,
            tcp_nodelay: true,
            reuse_port: false,
            backlog: 1024,
            workers: None,
            http2: true,
            http2_max_concurrent_streams: 250,
            http2_keep_alive_interval: Some(Duration::from_secs(20)),
            http2_keep_alive_timeout: Duration::from_secs(20),
            #[cfg(feature = "tls")]
            tls: None,
            shutdown_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            handle_signals: true,
            errors: None,
        }
    }

    /// Listen address from the `ADDR` environment variable, else `default`.
    pub fn from_env_addr(default: &str) -> Self {
        Self::new(std::env::var("ADDR").unwrap_or_else(|_| default.to_owned()))
    }

    setters! {
        /// The listen address, `host:port`.
        addr: String;
        /// Longest time to receive a whole request body, from the moment its headers arrived;
        /// a handler reading the body past it gets a 408 error (default 15 s).
        read_timeout: Duration;
        /// Longest time to receive a request's headers: from accept for the first request,
        /// from its first byte for later ones. The connection is closed past it (default 15 s).
        header_read_timeout: Duration;
        /// Longest time one write to the client may make no progress (a client that stopped
        /// reading); the connection is closed past it (default 15 s).
        write_timeout: Duration;
        /// Longest time a keep-alive connection may sit between requests (default 60 s).
        idle_timeout: Duration;
        /// Most bytes of request line and headers (HTTP/1: the whole head up to and including
        /// its blank line; a head of this size is served, one byte more gets 431, however it
        /// arrives; HTTP/2: the `SETTINGS_MAX_HEADER_LIST_SIZE`). Default 1 MiB, at least 8 KiB.
        max_header_bytes: usize;
        /// Most header fields in an HTTP/1 request (431 past it; default 100).
        max_headers: usize;
        /// Most bytes of a request body; reading more fails with 413 (default 2 MiB).
        max_body_bytes: u64;
        /// Most connections open at once; past it the server stops accepting (default 10 000).
        max_connections: usize;
        /// Set `TCP_NODELAY` on accepted sockets (default on).
        tcp_nodelay: bool;
        /// Set `SO_REUSEPORT`, so several processes can share the port (default off).
        reuse_port: bool;
        /// The listen backlog (default 1024).
        backlog: i32;
        /// Serve HTTP/2 (h2c with prior knowledge, and `h2` over TLS ALPN). Default on.
        http2: bool;
        /// `SETTINGS_MAX_CONCURRENT_STREAMS`; streams past it are refused (default 250).
        http2_max_concurrent_streams: u32;
        /// Send an HTTP/2 PING after this much silence (default 20 s; `None` disables).
        http2_keep_alive_interval: Option<Duration>;
        /// Close the connection when a PING is not answered in time (default 20 s).
        http2_keep_alive_timeout: Duration;
        /// How long graceful shutdown waits for in-flight requests before it force-closes
        /// them (default 30 s). Cleanup hooks share what is left of this deadline.
        shutdown_timeout: Duration;
        /// After a shutdown signal, keep serving this long with the readiness handler
        /// answering 503, so load balancers take the instance out first (default 0).
        drain_delay: Duration;
        /// Start graceful shutdown on SIGINT / SIGTERM (default on).
        handle_signals: bool;
    }

    /// Serve TLS (rustls) with these files and settings (feature `tls`).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Answer every framework error with `renderer` (plain text, RFC 9457 problem+json,
    /// negotiated by `Accept`, or the app's own; see [`ErrorRenderer`]): the app's errors —
    /// the router's 404 and 405, request-data rejections, middleware such as timeouts, rate
    /// limits and recovery, static files' 4xx — and the server's own (400 for a request that
    /// breaks HTTP's rules, 413 and 408 for a body over the limits, 500 after a panic). Without
    /// one, errors are plain text. A renderer inside the app (`Router::errors`) wins for the
    /// responses it rendered.
    ///
    /// ```
    /// use conduit_core::ErrorRenderer;
    /// use conduit_server::Config;
    ///
    /// let config = Config::new("127.0.0.1:0").errors(ErrorRenderer::problem_json());
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn errors(mut self, renderer: ErrorRenderer) -> Self {
        self.errors = Some(renderer);
        self
    }

    /// Worker threads of the runtime built by [`run`](crate::run) (default: one per CPU).
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Check the values; every error names the setting at fault.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |msg: String| Err(ServerError::Config(msg));
        if self.max_header_bytes < 8192 {
            return bad(format!(
                "max_header_bytes must be at least 8192, got {}",
                self.max_header_bytes
            ));
        }
        if self.max_header_bytes > u32::MAX as usize {
            return bad(format!(
                "max_header_bytes must fit in 32 bits, got {}",
                self.max_header_bytes
            ));
        }
        if self.max_headers == 0 {
            return bad("max_headers must be at least 1".into());
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1".into());
        }
        if self.workers == Some(0) {
            return bad("workers must be at least 1".into());
        }
        if self.http2_max_concurrent_streams == 0 {
            return bad("http2_max_concurrent_streams must be at least 1".into());
        }
        for (name, d) in [
            ("read_timeout", self.read_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("write_timeout", self.write_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be greater than zero"));
            }
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            if tls.handshake_timeout.is_zero() {
                return bad("tls handshake_timeout must be greater than zero".into());
            }
        }
        self.socket_addr().map(|_| ())
    }

    pub(crate) fn socket_addr(&self) -> Result<SocketAddr, ServerError> {
        let err = |reason: String| ServerError::Address {
            addr: self.addr.clone(),
            reason,
        };
        let mut addrs = self
            .addr
            .to_socket_addrs()
            .map_err(|e| err(e.to_string()))?;
        addrs
            .next()
            .ok_or_else(|| err("resolves to no address".into()))
    }
}
