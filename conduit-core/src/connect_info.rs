//! [`ConnectInfo`]: who is on the other end of the connection a request arrived on.
//!
//! Every request the server reads has a `ConnectInfo` (HTTP/1.1, h2c and TLS alike, and every
//! request of a kept-alive or multiplexed connection): the peer's address, the local address
//! the connection was accepted on and, over TLS, the negotiated ALPN protocol and the SNI
//! server name. Handlers and middleware read it with
//! [`RequestExt::connect_info`](crate::RequestExt::connect_info) and need no dependency on the
//! server. The server keeps it beside the request, current while the request's code runs, not
//! in its extensions, so the accessor is the way to read it: `extensions().get::<ConnectInfo>()`
//! finds nothing on a served request. A request built by hand (in a test) has none unless the
//! test inserts one as a plain extension, which the accessor then returns.
//!
//! ```
//! use conduit_core::{ConnectInfo, Handler, Request, RequestExt, Router, get};
//!
//! let app = Router::new().route("/ip", get(|req: Request| async move {
//!     match req.connect_info() {
//!         Some(info) => format!("you are {}", info.peer_addr().ip()),
//!         None => "unknown peer".to_owned(),
//!     }
//! }));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut req = Request::get("/ip").body(Default::default()).unwrap();
//! let info = ConnectInfo::new("203.0.113.7:50412".parse().unwrap(), "10.0.0.1:443".parse().unwrap())
//!     .with_tls(Some(b"h2"), Some("example.com"));
//! req.extensions_mut().insert(info);
//! let res = app.call(req).await;
//! let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, "you are 203.0.113.7");
//! # });
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

/// The connection a request arrived on: peer and local addresses and, over TLS, the
/// negotiated ALPN protocol and the SNI server name.
///
/// Built once per connection by the server, which its requests share;
/// [`RequestExt::connect_info`](crate::RequestExt::connect_info) hands out a clone, which
/// copies two addresses and, over TLS, bumps one reference count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectInfo {
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<Arc<TlsInfo>>,
}

#[derive(Debug, PartialEq, Eq)]
struct TlsInfo {
    alpn: Option<Box<[u8]>>,
    server_name: Option<Box<str>>,
}

impl ConnectInfo {
    /// A plain-text connection from `peer`, accepted on `local`.
    pub fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        Self {
            peer,
            local,
            tls: None,
        }
    }

    /// Mark the connection as TLS, with the negotiated ALPN protocol (`b"h2"`, `b"http/1.1"`)
    /// and the server name the client asked for with SNI, each if there was one.
    pub fn with_tls(mut self, alpn: Option<&[u8]>, server_name: Option<&str>) -> Self {
        self.tls = Some(Arc::new(TlsInfo {
            alpn: alpn.map(Into::into),
            server_name: server_name.map(Into::into),
        }));
        self
    }

    /// The remote address: the client, or the last proxy in front of the server.
    #[inline]
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The local address the connection was accepted on.
    #[inline]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the connection is TLS.
    #[inline]
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The protocol negotiated with ALPN over TLS (`b"h2"` or `b"http/1.1"`); `None` over
    /// plain text or when the client offered no ALPN.
    #[inline]
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tls.as_ref()?.alpn.as_deref()
    }

    /// The server name the client sent with SNI over TLS; `None` over plain text or when the
    /// client sent none (for example when it connected to an IP address).
    #[inline]
    pub fn server_name(&self) -> Option<&str> {
        self.tls.as_ref()?.server_name.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_tls() {
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let local: SocketAddr = "[::1]:8443".parse().unwrap();
        let plain = ConnectInfo::new(peer, local);
        assert_eq!(plain.peer_addr(), peer);
        assert_eq!(plain.local_addr(), local);
        assert!(!plain.is_tls());
        assert_eq!(plain.alpn(), None);
        assert_eq!(plain.server_name(), None);

        let tls = plain.clone().with_tls(Some(b"h2"), Some("localhost"));
        assert!(tls.is_tls());
        assert_eq!(tls.alpn(), Some(&b"h2"[..]));
        assert_eq!(tls.server_name(), Some("localhost"));
        assert_eq!(tls.clone(), tls);
        assert_ne!(tls, plain);

        let bare = plain.with_tls(None, None);
        assert!(bare.is_tls());
        assert_eq!(bare.alpn(), None);
        assert_eq!(bare.server_name(), None);
    }
}
