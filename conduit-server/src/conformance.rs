//! Checks the server makes on every request head before a handler sees it.
//!
//! - **Host** (RFC 9112 section 3.2): an HTTP/1.1 request needs exactly one `Host` field; any
//!   request with more than one, or with a value that is not `uri-host [ ":" port ]`, is 400.
//!   HTTP/1.0 requests may omit it. When the target is in absolute form
//!   (`GET http://a.example/ HTTP/1.1`), its authority wins over `Host` (section 3.2.2): the
//!   handler sees `Host: a.example`.
//! - **`:authority` and `Host`** over HTTP/2 (RFC 9113 section 8.3.1): a request needs one of
//!   them; if it has both they must name the same origin (host compared case-insensitively,
//!   the scheme's default port filled in), and `:authority` must not carry userinfo.
//! - **`*` target** (RFC 9110 section 9.3.7): `OPTIONS *` is answered by the server itself
//!   (200, `Allow` listing the methods it serves); any other method with `*` is 400.
//!
//! Each check returns an [`Early`] answer, which the connection logs with the peer address
//! and sends instead of calling the handler. The common case (one valid `Host`, an
//! origin-form target) costs one header lookup (none when `Host` is the first field and no
//! field repeats) and one pass over the `Host` value.

use conduit_core::http::header::{self, HeaderValue};
use conduit_core::http::{self, Method, StatusCode, Version};
use conduit_core::{Body, Response};

/// The methods conduit's server passes to handlers, as answered to `OPTIONS *`.
pub(crate) const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";

/// What the server answers itself instead of calling the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Early {
    /// `OPTIONS *`: 200 with `Allow`.
    OptionsStar,
    /// 400 Bad Request, for the reason given.
    BadRequest(&'static str),
}

impl Early {
    /// The response to send, for a request of `version`.
    pub(crate) fn response(self, version: Version) -> Response {
        let mut res = match self {
            Early::OptionsStar => {
                let mut res = Response::new(Body::empty());
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
                res
            }
            Early::BadRequest(reason) => conduit_core::Problem::with_message(
                StatusCode::BAD_REQUEST,
                format!("Bad Request: {reason}"),
            )
            .into_error_response(),
        };
        if matches!(self, Early::BadRequest(_)) && version < Version::HTTP_2 {
            // A client that gets the request head wrong may get the framing wrong too.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}

/// Check a request head; `Ok` means: call the handler. May rewrite `Host` (absolute form).
#[inline]
pub(crate) fn check<B>(req: &mut http::Request<B>) -> Result<(), Early> {
    match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => check_h2_authority(req)?,
        v => check_h1_host(req, v == Version::HTTP_11)?,
    }
    if req.uri().path().as_bytes() == b"*" {
        return Err(if req.method() == Method::OPTIONS {
            Early::OptionsStar
        } else {
            Early::BadRequest("the `*` target is only allowed with OPTIONS")
        });
    }
    Ok(())
}

#[inline]
fn check_h1_host<B>(req: &mut http::Request<B>, required: bool) -> Result<(), Early> {
    match the_host(req.headers())? {
        None if required => return Err(Early::BadRequest("missing Host header")),
        Some(host) if !valid_host(host.as_bytes()) => {
            return Err(Early::BadRequest("invalid Host header"));
        }
        _ => {}
    }
    if let Some(authority) = req.uri().authority() {
        // Absolute form (or CONNECT's authority form): the target's authority wins.
        if authority.as_str().contains('@') {
            return Err(Early::BadRequest("userinfo in the request target"));
        }
        let value = HeaderValue::from_str(authority.as_str())
            .map_err(|_| Early::BadRequest("invalid authority in the request target"))?;
        req.headers_mut().insert(header::HOST, value);
    }
    Ok(())
}

/// The request's one `Host` value, if it has one; 400 if it has more.
///
/// A head in which no field name repeats (`len() == keys_len()`, the common case) has at most
/// one; it is then taken from the first field when that is `Host`, where user agents send it
/// (RFC 9110 section 7.2), without a hash lookup.
#[inline]
fn the_host(headers: &http::HeaderMap) -> Result<Option<&HeaderValue>, Early> {
    if headers.len() == headers.keys_len() {
        return Ok(match headers.iter().next() {
            Some((name, value)) if name == header::HOST => Some(value),
            _ => headers.get(header::HOST),
        });
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(Early::BadRequest("more than one Host header")),
        (host, _) => Ok(host),
    }
}

#[inline]
fn check_h2_authority<B>(req: &http::Request<B>) -> Result<(), Early> {
    let host = match the_host(req.headers())? {
        Some(host) if !valid_host(host.as_bytes()) => {
            return Err(Early::BadRequest("invalid Host header"));
        }
        host => host,
    };
    match (req.uri().authority(), host) {
        (None, None) => Err(Early::BadRequest("neither :authority nor Host")),
        (None, Some(_)) => Ok(()),
        (Some(authority), host) => {
            if authority.as_str().contains('@') {
                return Err(Early::BadRequest("userinfo in :authority"));
            }
            match host {
                Some(host) if !same_origin(authority, host.as_bytes(), req.uri().scheme_str()) => {
                    Err(Early::BadRequest("Host differs from :authority"))
                }
                _ => Ok(()),
            }
        }
    }
}

/// Whether `host` (a valid `Host` value) names the same origin as `authority`, after
/// scheme-based normalization (RFC 3986 section 6.2.3): case-insensitive host, default port.
fn same_origin(authority: &http::uri::Authority, host: &[u8], scheme: Option<&str>) -> bool {
    let default_port = match scheme {
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
        _ => None,
    };
    let (h_host, h_port) = split_port(host);
    let h_port = match h_port {
        Some(p) if !p.is_empty() => std::str::from_utf8(p).ok().and_then(|p| p.parse().ok()),
        _ => default_port,
    };
    let a_port = authority.port_u16().or(default_port);
    authority.host().as_bytes().eq_ignore_ascii_case(h_host) && a_port == h_port
}

/// `host` and the bytes after its port colon, if any (IP literals keep their brackets).
fn split_port(v: &[u8]) -> (&[u8], Option<&[u8]>) {
    let colon = if v.first() == Some(&b'[') {
        v.iter()
            .position(|&b| b == b']')
            .and_then(|end| (v.get(end + 1) == Some(&b':')).then_some(end + 1))
    } else {
        v.iter().position(|&b| b == b':')
    };
    match colon {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    }
}

/// `unreserved / sub-delims` (RFC 3986), as a table: one load per byte of a `Host` value.
static HOST_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    t
};

#[inline]
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    HOST_CHARS[b as usize]
}

/// `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986 section 3.2.2), with the port
/// limited to 0..=65535. An empty value is valid (a target without an authority).
///
/// One pass over the common `name[:port]` (a table load per byte); IP literals take a
/// separate, colder path.
#[inline]
pub(crate) fn valid_host(v: &[u8]) -> bool {
    if v.first() == Some(&b'[') {
        return valid_bracketed_host(v);
    }
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        if HOST_CHARS[b as usize] {
            i += 1;
        } else if b == b':' {
            return valid_port(&v[i + 1..]);
        } else if b == b'%'
            && v.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && v.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

/// `IP-literal [ ":" port ]`.
#[cold]
fn valid_bracketed_host(v: &[u8]) -> bool {
    let Some(end) = v.iter().position(|&b| b == b']') else {
        return false;
    };
    if !valid_ip_literal(&v[1..end]) {
        return false;
    }
    match &v[end + 1..] {
        [] => true,
        [b':', port @ ..] => valid_port(port),
        _ => false,
    }
}

/// `*DIGIT`, at most 65535.
#[inline]
fn valid_port(p: &[u8]) -> bool {
    if p.len() > 5 {
        return false;
    }
    let mut n = 0u32;
    for &d in p {
        let x = d.wrapping_sub(b'0');
        if x > 9 {
            return false;
        }
        n = n * 10 + u32::from(x);
    }
    n <= 65535
}

/// `IP-literal` without its brackets: an IPv6 address or `IPvFuture`.
fn valid_ip_literal(lit: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = lit {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (ver, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !ver.is_empty()
            && ver.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| b == b':' || is_unreserved_or_sub_delim(b));
    }
    std::str::from_utf8(lit).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        for ok in [
            "example.com",
            "example.com:8080",
            "EXAMPLE.com:",
            "",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "[2001:db8::7]:1",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%20b",
            "sub_delims!$&'()*+,;=",
            "x:65535",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok:?} should be valid");
        }
        for bad in [
            "a b",
            "a/b",
            "a@b",
            "a:b",
            "a:80:80",
            "x:65536",
            "x:123456",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[zz::1]",
            "[v.x]",
            "[v1.]",
            "::1",
            "a%2",
            "a%zz",
            "exa\u{e9}mple",
            "a\tb",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?} should be invalid");
        }
    }

    fn req(version: Version, uri: &str, hosts: &[&str]) -> http::Request<()> {
        let mut r = http::Request::builder().version(version).uri(uri);
        for h in hosts {
            r = r.header(header::HOST, *h);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn http1_host_rules() {
        use Version as V;
        let bad = |r: &mut http::Request<()>| matches!(check(r), Err(Early::BadRequest(_)));
        assert_eq!(check(&mut req(V::HTTP_11, "/", &["x"])), Ok(()));
        assert!(bad(&mut req(V::HTTP_11, "/", &[])));
        assert!(bad(&mut req(V::HTTP_11, "/", &["x", "x"])));
        assert!(bad(&mut req(V::HTTP_11, "/", &["a b"])));
        assert_eq!(check(&mut req(V::HTTP_10, "/", &[])), Ok(()));
        assert!(bad(&mut req(V::HTTP_10, "/", &["x", "y"])));
        assert!(bad(&mut req(V::HTTP_10, "/", &["x/"])));

        let mut r = req(V::HTTP_11, "http://a.example:8080/p", &["b.example"]);
        assert_eq!(check(&mut r), Ok(()));
        assert_eq!(r.headers()[header::HOST], "a.example:8080");
        let mut r = req(V::HTTP_10, "http://a.example/p", &[]);
        assert_eq!(check(&mut r), Ok(()));
        assert_eq!(r.headers()[header::HOST], "a.example");
        // absolute form still needs a Host in HTTP/1.1
        assert!(bad(&mut req(V::HTTP_11, "http://a.example/", &[])));
        assert!(bad(&mut req(
            V::HTTP_11,
            "http://u@a.example/",
            &["a.example"]
        )));
    }

    #[test]
    fn http2_authority_rules() {
        let v = Version::HTTP_2;
        let bad = |r: &mut http::Request<()>| matches!(check(r), Err(Early::BadRequest(_)));
        assert_eq!(check(&mut req(v, "https://a.example/", &[])), Ok(()));
        assert_eq!(check(&mut req(v, "/", &["a.example"])), Ok(()));
        assert!(bad(&mut req(v, "/", &[])));
        assert_eq!(
            check(&mut req(v, "https://a.example/", &["A.EXAMPLE:443"])),
            Ok(())
        );
        assert_eq!(
            check(&mut req(v, "http://a.example:80/", &["a.example"])),
            Ok(())
        );
        assert!(bad(&mut req(v, "https://a.example/", &["b.example"])));
        assert!(bad(&mut req(v, "https://a.example/", &["a.example:8443"])));
        assert!(bad(&mut req(
            v,
            "https://a.example/",
            &["a.example", "a.example"]
        )));
        assert!(bad(&mut req(v, "https://a.example/", &["a b"])));
        assert!(bad(&mut req(v, "https://u@a.example/", &[])));
        assert_eq!(
            check(&mut req(v, "https://[::1]:8443/", &["[::1]:8443"])),
            Ok(())
        );
    }

    #[test]
    fn asterisk_target() {
        let mut r = req(Version::HTTP_11, "*", &["x"]);
        *r.method_mut() = Method::OPTIONS;
        assert_eq!(check(&mut r), Err(Early::OptionsStar));
        let res = Early::OptionsStar.response(Version::HTTP_11);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::ALLOW], ALLOWED_METHODS);
        let mut r = req(Version::HTTP_11, "*", &["x"]);
        assert!(matches!(check(&mut r), Err(Early::BadRequest(_))));
        let res = Early::BadRequest("x").response(Version::HTTP_11);
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[header::CONNECTION], "close");
        let res = Early::BadRequest("x").response(Version::HTTP_2);
        assert!(res.headers().get(header::CONNECTION).is_none());
    }
}
