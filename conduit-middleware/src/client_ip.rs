//! [`ClientIp`]: the address of the client, even behind trusted reverse proxies.
//!
//! Without configuration the client IP is the peer address of the connection
//! ([`ConnectInfo`](conduit_core::ConnectInfo)). Behind a load balancer that peer is the proxy,
//! which reports the real client in `X-Forwarded-For` (or the standard `Forwarded`). Those
//! headers are written by whoever sent the request, so they are believed only when the peer is
//! one of the [`TrustedProxies`], and then read from the **right**: each trusted proxy appends
//! the address it received the request from, so the right-most address that is not a trusted
//! proxy is the first hop nobody trusted vouches for — the client. The left-most entry is
//! whatever the client chose to write and is never used. A malformed entry met before that
//! address, or an empty header, falls back to the peer address (and is logged).
//!
//! Only one header is read — `X-Forwarded-For` by default, `Forwarded` with
//! [`TrustedProxies::use_forwarded`] — because a proxy that sets one passes the other through
//! from the client untouched, so reading "whichever is present" would let clients pick.
//!
//! The [`TrustedProxies`] middleware (its handler: [`TrustedProxiesHandler`]) resolves the
//! address once and stores it as a [`ClientIp`] request extension; [`ClientIp::of`] reads it (or the peer address when the middleware is not
//! installed). The rate limiter keys on it.
//!
//! ```
//! use conduit_core::{Body, ConnectInfo, Handler, HandlerExt, Request};
//! use conduit_middleware::{ClientIp, TrustedProxies};
//!
//! let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
//! let app = (|req: Request| async move {
//!     ClientIp::of(&req).map(|ip| ip.to_string()).unwrap_or_default()
//! })
//! .with(proxies);
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut req = Request::get("/")
//!     .header("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")
//!     .body(Body::empty())
//!     .unwrap();
//! // The server puts the connection's addresses on every request; here the peer is a proxy.
//! req.extensions_mut().insert(ConnectInfo::new(
//!     "10.0.0.1:40000".parse().unwrap(),
//!     "10.0.0.9:8080".parse().unwrap(),
//! ));
//! let res = app.call(req).await;
//! let body = conduit_core::to_bytes(res.into_body(), 1024).await.unwrap();
//! assert_eq!(body, "203.0.113.7"); // not the left-most 6.6.6.6, which the client wrote
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use conduit_core::{Handler, Middleware, Request, RequestExt, Response};
use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use ipnet::IpNet;

/// The client's IP address, as a request extension set by the [`TrustedProxies`] middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The client IP of `req`: the one [`TrustedProxies`] resolved, else the peer address of
    /// the connection; `None` for a request that did not come through the server.
    #[inline]
    pub fn of(req: &Request) -> Option<IpAddr> {
        if let Some(ip) = req.extensions().get::<ClientIp>() {
            return Some(ip.0);
        }
        req.connect_info()
            .map(|c| c.peer_addr().ip().to_canonical())
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A CIDR that does not parse, from [`TrustedProxies::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCidr(pub String);

impl fmt::Display for InvalidCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid trusted proxy `{}`: expected an IP address or a CIDR such as 10.0.0.0/8",
            self.0
        )
    }
}

impl std::error::Error for InvalidCidr {}

/// Which header the trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    XForwardedFor,
    Forwarded,
}

/// The reverse proxies whose forwarding headers are believed, as a middleware that stores the
/// resolved [`ClientIp`] on each request. See the [module docs](self).
#[derive(Clone)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
    source: Source,
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedProxies")
            .field("nets", &self.nets)
            .field("source", &self.source)
            .finish()
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::none()
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl TrustedProxies {
    /// Trust the proxies in these CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses
    /// (`192.0.2.1`), reading `X-Forwarded-For`.
    pub fn new<I, S>(cidrs: I) -> Result<Self, InvalidCidr>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = cidrs
            .into_iter()
            .map(|s| {
                let s = s.as_ref().trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| InvalidCidr(s.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            nets: nets.into(),
            source: Source::XForwardedFor,
        })
    }

    /// Trust no proxy: the client IP is always the peer address.
    pub fn none() -> Self {
        Self {
            nets: Arc::from([]),
            source: Source::XForwardedFor,
        }
    }

    /// Read the standard `Forwarded` header (RFC 7239, its `for=` parameters) instead of
    /// `X-Forwarded-For`.
    pub fn use_forwarded(mut self) -> Self {
        self.source = Source::Forwarded;
        self
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client IP for a request from `peer` carrying `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let hops = match self.source {
            Source::XForwardedFor => collect_hops(headers, &X_FORWARDED_FOR, parse_xff_hop),
            Source::Forwarded => collect_hops(headers, &FORWARDED, parse_forwarded_hop),
        };
        let Some(hops) = hops else {
            return peer; // a header that is not text at all
        };
        // Walk from the right: skip trusted proxies; the first other address is the client.
        let mut last_trusted = None;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.contains(*ip) => last_trusted = Some(*ip),
                Some(ip) => return *ip,
                None => {
                    tracing::info!(%peer, "malformed forwarding header from a trusted proxy; using the peer address");
                    return peer;
                }
            }
        }
        // Every hop is a trusted proxy: the farthest one is the best we know.
        last_trusted.unwrap_or(peer)
    }
}

/// Every hop listed in the (possibly repeated) header, left to right; `None` entries are
/// malformed. `None` overall if a header value is not visible ASCII.
fn collect_hops(
    headers: &HeaderMap,
    name: &HeaderName,
    parse: fn(&str) -> Option<Option<IpAddr>>,
) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else {
            tracing::debug!(header = %name, "forwarding header is not ASCII; using the peer address");
            return None;
        };
        for element in split_outside_quotes(value, b',') {
            if let Some(hop) = parse(element.trim()) {
                hops.push(hop);
            }
        }
    }
    Some(hops)
}

/// Split `s` on `sep`, ignoring separators inside double quotes.
fn split_outside_quotes(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let bytes = s.as_bytes();
    let mut parts = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == sep && !in_quotes {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, `192.0.2.1:443`, `[2001:db8::1]:443`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    // `[2001:db8::1]` without a port
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// One `X-Forwarded-For` element: `Some(Some(ip))`, `Some(None)` if malformed, `None` if empty.
fn parse_xff_hop(element: &str) -> Option<Option<IpAddr>> {
    if element.is_empty() {
        return Some(None); // `a,,b` or an empty header: malformed, not skipped
    }
    Some(parse_addr(element))
}

/// One `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`): its `for=` address.
/// Elements without `for=` are not hops; `for=unknown` and obfuscated names are malformed for
/// our purpose (they name no address).
fn parse_forwarded_hop(element: &str) -> Option<Option<IpAddr>> {
    if element.is_empty() {
        return Some(None);
    }
    for pair in split_outside_quotes(element, b';') {
        let Some((key, value)) = pair.trim().split_once('=') else {
            return Some(None);
        };
        if !key.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(rest) => match rest.strip_suffix('"') {
                Some(inner) => inner,
                None => return Some(None),
            },
            None => value,
        };
        return Some(parse_addr(value));
    }
    None
}

/// The handler built by [`TrustedProxies`]: stores each request's resolved [`ClientIp`].
#[derive(Debug, Clone)]
pub struct TrustedProxiesHandler<H> {
    inner: H,
    proxies: TrustedProxies,
}

/// The handler built by [`TrustedProxies`].
#[deprecated(
    since = "0.1.0",
    note = "renamed `TrustedProxiesHandler`: the handler is named after the middleware that builds it"
)]
pub type ClientIpHandler<H> = TrustedProxiesHandler<H>;

impl<H: Handler> Middleware<H> for TrustedProxies {
    type Output = TrustedProxiesHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        TrustedProxiesHandler {
            inner,
            proxies: self.clone(),
        }
    }
}

impl<H: Handler> Handler for TrustedProxiesHandler<H> {
    #[inline]
    fn call(&self, mut req: Request) -> impl Future<Output = Response> + Send + use<H> {
        if let Some(peer) = req.connect_info().map(|c| c.peer_addr().ip()) {
            let ip = self.proxies.resolve(peer, req.headers());
            req.extensions_mut().insert(ClientIp(ip));
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn invalid_cidrs_are_refused() {
        assert_eq!(
            TrustedProxies::new(["10.0.0.0/33"]).unwrap_err(),
            InvalidCidr("10.0.0.0/33".into())
        );
        assert!(TrustedProxies::new(["nope"]).is_err());
        let t = TrustedProxies::new(["10.1.2.3/8", "192.0.2.1", "2001:db8::/32"]).unwrap();
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("192.0.2.1")));
        assert!(!t.contains(ip("192.0.2.2")));
        assert!(t.contains(ip("2001:db8::5")));
        assert!(t.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped peers count");
    }

    #[test]
    fn table() {
        let xff = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let fwd = xff.clone().use_forwarded();
        let none = TrustedProxies::none();
        let proxy = ip("10.0.0.1");
        let outsider = ip("198.51.100.9");
        type Case<'a> = (
            &'a TrustedProxies,
            IpAddr,
            &'a [(&'a str, &'a str)],
            &'a str,
        );
        #[rustfmt::skip]
        let cases: &[Case<'_>] = &[
            // Untrusted peers: headers ignored.
            (&none, proxy, &[("x-forwarded-for", "1.1.1.1")], "10.0.0.1"),
            (&xff, outsider, &[("x-forwarded-for", "1.1.1.1")], "198.51.100.9"),
            // Trusted peer: right-most untrusted.
            (&xff, proxy, &[("x-forwarded-for", "1.1.1.1")], "1.1.1.1"),
            (&xff, proxy, &[("x-forwarded-for", "6.6.6.6, 2.2.2.2, 10.0.0.7")], "2.2.2.2"),
            (&xff, proxy, &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "2.2.2.2")], "2.2.2.2"),
            (&xff, proxy, &[("x-forwarded-for", "2.2.2.2:5000")], "2.2.2.2"),
            (&xff, proxy, &[("x-forwarded-for", "[2001:db8::1]:443")], "2001:db8::1"),
            (&xff, proxy, &[("x-forwarded-for", "2001:db8::1")], "2001:db8::1"),
            // Junk left of the client does not matter; junk right of it does.
            (&xff, proxy, &[("x-forwarded-for", "garbage, 2.2.2.2")], "2.2.2.2"),
            (&xff, proxy, &[("x-forwarded-for", "2.2.2.2, garbage")], "10.0.0.1"),
            (&xff, proxy, &[("x-forwarded-for", "")], "10.0.0.1"),
            (&xff, proxy, &[("x-forwarded-for", "2.2.2.2,,")], "10.0.0.1"),
            // No header, or only trusted hops.
            (&xff, proxy, &[], "10.0.0.1"),
            (&xff, proxy, &[("x-forwarded-for", "10.9.9.9, 10.0.0.2")], "10.9.9.9"),
            // X-Forwarded-For mode ignores Forwarded, and the other way round.
            (&xff, proxy, &[("forwarded", "for=3.3.3.3")], "10.0.0.1"),
            (&fwd, proxy, &[("x-forwarded-for", "3.3.3.3")], "10.0.0.1"),
            // Forwarded.
            (&fwd, proxy, &[("forwarded", "for=3.3.3.3")], "3.3.3.3"),
            (&fwd, proxy, &[("forwarded", "for=6.6.6.6, for=3.3.3.3;proto=https;by=10.0.0.1")], "3.3.3.3"),
            (&fwd, proxy, &[("forwarded", r#"For="[2001:db8:cafe::17]:4711""#)], "2001:db8:cafe::17"),
            (&fwd, proxy, &[("forwarded", r#"for="3.3.3.3:80", for=10.0.0.3"#)], "3.3.3.3"),
            (&fwd, proxy, &[("forwarded", "for=unknown")], "10.0.0.1"),
            (&fwd, proxy, &[("forwarded", "for=_hidden, for=3.3.3.3")], "3.3.3.3"),
            (&fwd, proxy, &[("forwarded", r#"for="unterminated"#)], "10.0.0.1"),
            (&fwd, proxy, &[("forwarded", "proto=https")], "10.0.0.1"),
            (&fwd, proxy, &[("forwarded", "nonsense")], "10.0.0.1"),
            (&fwd, proxy, &[("forwarded", r#"for="1.1.1.1, 2.2.2.2""#)], "10.0.0.1"),
        ];
        for (i, (proxies, peer, hdrs, want)) in cases.iter().enumerate() {
            let got = proxies.resolve(*peer, &headers(hdrs));
            assert_eq!(got, ip(want), "case {i}: {hdrs:?}");
        }
    }

    #[tokio::test]
    async fn trusted_proxies_build_a_trusted_proxies_handler() {
        let app: TrustedProxiesHandler<_> =
            TrustedProxies::none().wrap(|req: Request| async move {
                req.extensions()
                    .get::<ClientIp>()
                    .map(|ip| ip.to_string())
                    .unwrap_or_default()
            });
        let mut req = Request::get("/").body(Default::default()).unwrap();
        req.extensions_mut().insert(conduit_core::ConnectInfo::new(
            "192.0.2.9:4000".parse().unwrap(),
            "192.0.2.1:80".parse().unwrap(),
        ));
        let res = app.call(req).await;
        let body = conduit_core::to_bytes(res.into_body(), 64).await.unwrap();
        assert_eq!(body, "192.0.2.9");
        #[allow(deprecated)]
        let _deprecated: ClientIpHandler<_> = app;
    }

    #[test]
    fn non_ascii_header_falls_back() {
        let t = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"1.1.1.1\xff").unwrap(),
        );
        assert_eq!(t.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }
}
