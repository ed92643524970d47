//! [`ETag`]: strong entity tags for dynamic responses, and `304 Not Modified` for
//! `If-None-Match`.
//!
//! For `GET` and `HEAD` requests answered with a 2xx whose body is in memory and at most
//! [`max_body_bytes`](ETag::max_body_bytes) long (1 MiB by default), the middleware hashes the
//! body with XXH3 (a fast non-cryptographic hash, the same on every machine, so identical
//! instances behind a load balancer agree) into a strong `ETag: "<16 hex digits>"`. Streamed
//! bodies are left alone. A handler that sets its own `ETag` keeps it, and conditional requests
//! are still answered from it.
//!
//! When the request's `If-None-Match` (a list of tags, or `*`) matches the response's tag under
//! the weak comparison of RFC 9110 §13.1.2 (`W/"x"` matches `"x"`), the answer is a `304` with
//! no body that keeps the validators and caching headers (`ETag`, `Cache-Control`, `Expires`,
//! `Vary`, `Content-Location`, `Last-Modified`, `Date`) and drops the body's own headers. A
//! malformed `If-None-Match` is ignored (logged): the client gets the full response.
//! With [`Compression`](crate::Compression) outside this middleware, clients hold the tag the
//! compression gave the encoded variant (`"x-gzip"`); that counts as a match too, and the 304
//! names the variant the client has.
//!
//! The handler still runs: this saves bandwidth and the client's work, not the server's.
//! Wrap a route (`get(handler.with(ETag::new()))`) or a router's routes
//! (`router.layer(ETag::new())`); wrapped around a whole router it still works for `GET`, but
//! a `HEAD` answered by a `GET` handler arrives with its body already dropped, so only a tag
//! the handler set itself is used for it.
//!
//! ```
//! use conduit_core::{Body, Handler, HandlerExt, Request};
//! use conduit_middleware::ETag;
//!
//! let app = (|_req: Request| async { "hello" }).with(ETag::new());
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/").body(Body::empty()).unwrap()).await;
//! let tag = res.headers()["etag"].clone();
//!
//! let req = Request::get("/").header("if-none-match", &tag).body(Body::empty()).unwrap();
//! let res = app.call(req).await;
//! assert_eq!(res.status(), 304);
//! assert_eq!(res.headers()["etag"], tag);
//! # });
//! ```

use std::future::Future;

use conduit_core::{Body, Handler, Middleware, Request, Response};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

/// The default largest body that is hashed: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The conditional-response middleware. See the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct ETag {
    max_body_bytes: usize,
}

impl Default for ETag {
    fn default() -> Self {
        Self::new()
    }
}

impl ETag {
    /// Hash bodies up to [`DEFAULT_MAX_BODY_BYTES`].
    pub fn new() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Hash bodies up to `limit` bytes; larger ones get no generated `ETag`.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
}

/// The handler built by [`ETag`].
#[derive(Debug, Clone)]
pub struct ETagHandler<H> {
    inner: H,
    config: ETag,
}

impl<H: Handler> Middleware<H> for ETag {
    type Output = ETagHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        ETagHandler {
            inner,
            config: *self,
        }
    }
}

impl<H: Handler> Handler for ETagHandler<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let is_head = req.method() == Method::HEAD;
        let applies = is_head || req.method() == Method::GET;
        let if_none_match = if applies {
            req.headers().get(header::IF_NONE_MATCH).is_some().then(|| {
                req.headers()
                    .get_all(header::IF_NONE_MATCH)
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
            })
        } else {
            None
        };
        let max = self.config.max_body_bytes;
        crate::future::MapOutput::new(self.inner.call(req), move |mut res: Response| {
            if !applies || !res.status().is_success() {
                return res;
            }
            if !res.headers().contains_key(header::ETAG) {
                match res.body().as_bytes() {
                    // A HEAD answer whose body was already dropped (the router answers HEAD
                    // with GET's response, emptied): the empty body is not the representation.
                    Some([]) if is_head => return res,
                    Some(bytes) if bytes.len() <= max => {
                        let tag = strong_tag(bytes);
                        res.headers_mut().insert(header::ETAG, tag);
                    }
                    _ => return res, // streamed or too large: no tag, nothing to compare
                }
            }
            let Some(conditions) = if_none_match else {
                return res;
            };
            let Some(tag) = res.headers().get(header::ETAG).cloned() else {
                return res;
            };
            match none_match_coded(&conditions, tag.as_bytes()) {
                Ok(Some(None)) => not_modified(res),
                Ok(Some(Some(coding))) => {
                    // The client holds the compressed variant: the 304 names that one.
                    if let Some(coded) = with_coding(&tag, coding) {
                        res.headers_mut().insert(header::ETAG, coded);
                    }
                    not_modified(res)
                }
                Ok(None) => res,
                Err(()) => {
                    tracing::info!("malformed If-None-Match header ignored");
                    res
                }
            }
        })
    }
}

/// `"` + 16 lowercase hex digits of XXH3-64 + `"`.
fn strong_tag(bytes: &[u8]) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = xxhash_rust::xxh3::xxh3_64(bytes);
    let mut out = [b'"'; 18];
    for i in 0..16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&out).expect("hex digits and quotes are a valid header value")
}

/// The headers a 304 keeps (RFC 9110 §15.4.5): validators and caching metadata; the
/// representation's own headers (type, length, encoding…) describe a body that is not sent.
const DROP_ON_304: [header::HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
];

fn not_modified(res: Response) -> Response {
    let (mut parts, _body) = res.into_parts();
    parts.status = StatusCode::NOT_MODIFIED;
    for name in DROP_ON_304 {
        parts.headers.remove(name);
    }
    Response::from_parts(parts, Body::empty())
}

/// Whether `If-None-Match` (all its header lines) matches `tag` with the weak comparison:
/// `Ok(true)` to answer 304, `Err(())` if a line is malformed.
#[cfg(test)]
fn none_match(lines: &[HeaderValue], tag: &[u8]) -> Result<bool, ()> {
    Ok(none_match_coded(lines, tag)?.is_some())
}

/// The content codings the compression middleware appends to a tag (`"x"` → `"x-gzip"`).
const CODINGS: [&str; 4] = ["gzip", "br", "zstd", "deflate"];

/// Like [`none_match`], telling also how it matched: `Some(None)` for the tag itself (or `*`),
/// `Some(Some(coding))` for the tag with a content-coding suffix — the tag a client got from a
/// compressed response, when the compression middleware sits outside this one.
fn none_match_coded(lines: &[HeaderValue], tag: &[u8]) -> Result<Option<Option<&'static str>>, ()> {
    let ours = opaque(tag).ok_or(())?;
    let mut matched = None;
    for line in lines {
        let mut rest = trim(line.as_bytes());
        if rest == b"*" {
            matched = Some(None);
            continue;
        }
        if rest.is_empty() {
            return Err(());
        }
        loop {
            let (theirs, after) = next_tag(rest).ok_or(())?;
            if theirs == ours {
                matched = Some(None);
            } else if matched.is_none() {
                let coded = CODINGS.into_iter().find(|c| {
                    theirs.len() == ours.len() + 1 + c.len()
                        && theirs.starts_with(ours)
                        && theirs[ours.len()] == b'-'
                        && theirs.ends_with(c.as_bytes())
                });
                if let Some(c) = coded {
                    matched = Some(Some(c));
                }
            }
            rest = trim(after);
            if rest.is_empty() {
                break;
            }
            rest = trim(rest.strip_prefix(b",").ok_or(())?);
            if rest.is_empty() {
                break; // a trailing comma: tolerated (list syntax allows empty elements)
            }
        }
    }
    Ok(matched)
}

/// `tag` (`"x"` or `W/"x"`) with `-coding` appended inside the quotes.
fn with_coding(tag: &HeaderValue, coding: &str) -> Option<HeaderValue> {
    let bytes = tag.as_bytes();
    let head = bytes.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(bytes.len() + 1 + coding.len());
    out.extend_from_slice(head);
    out.push(b'-');
    out.extend_from_slice(coding.as_bytes());
    out.push(b'"');
    HeaderValue::from_bytes(&out).ok()
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// The quoted part of an entity tag (`"x"` out of `W/"x"` or `"x"`), if it is one.
fn opaque(tag: &[u8]) -> Option<&[u8]> {
    let (t, rest) = next_tag(trim(tag))?;
    rest.is_empty().then_some(t)
}

/// Parse one `[W/]"etagc*"` at the start of `s`: the quoted part and what follows.
fn next_tag(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = s.strip_prefix(b"W/").unwrap_or(s);
    let s = s.strip_prefix(b"\"")?;
    let end = s.iter().position(|&b| b == b'"')?;
    let inner = &s[..end];
    // etagc = %x21 / %x23-7E / obs-text
    if inner.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return None;
    }
    Some((inner, &s[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(lines: &[&str], tag: &str) -> Result<bool, ()> {
        let lines: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_str(l).unwrap())
            .collect();
        none_match(&lines, tag.as_bytes())
    }

    #[test]
    fn if_none_match_table() {
        #[rustfmt::skip]
        let cases: &[(&[&str], &str, Result<bool, ()>)] = &[
            (&[r#""a""#], r#""a""#, Ok(true)),
            (&[r#""b""#], r#""a""#, Ok(false)),
            (&[r#"W/"a""#], r#""a""#, Ok(true)),           // weak comparison
            (&[r#""a""#], r#"W/"a""#, Ok(true)),
            (&[r#""x", "y" ,W/"a""#], r#""a""#, Ok(true)), // lists
            (&[r#""x""#, r#""a""#], r#""a""#, Ok(true)),   // repeated header lines
            (&["*"], r#""a""#, Ok(true)),
            (&[r#""a","#], r#""a""#, Ok(true)),
            (&[r#""""#], r#""""#, Ok(true)),
            (&["a"], r#""a""#, Err(())),                   // unquoted
            (&[r#""a"#], r#""a""#, Err(())),               // unterminated
            (&[r#""a" "b""#], r#""a""#, Err(())),          // missing comma
            (&[r#"w/"a""#], r#""a""#, Err(())),            // lowercase w
            (&[""], r#""a""#, Err(())),
            (&[r#""a", *"#], r#""a""#, Err(())),           // * is alone or not at all
            (&[r#""a-gzip""#], r#""a""#, Ok(true)),        // compressed variants of our tag
            (&[r#"W/"a-br""#], r#""a""#, Ok(true)),
            (&[r#""a-lzma""#], r#""a""#, Ok(false)),
            (&[r#""ab-gzip""#], r#""a""#, Ok(false)),
        ];
        for (i, (lines, tag, want)) in cases.iter().enumerate() {
            assert_eq!(inm(lines, tag), *want, "case {i}: {lines:?} vs {tag}");
        }
    }

    #[test]
    fn coded_matches_name_the_coding() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            none_match_coded(&[v(r#""a-zstd""#)], b"\"a\""),
            Ok(Some(Some("zstd")))
        );
        assert_eq!(
            none_match_coded(&[v(r#""a-zstd", "a""#)], b"\"a\""),
            Ok(Some(None))
        );
        assert_eq!(with_coding(&v(r#"W/"a""#), "br"), Some(v(r#"W/"a-br""#)));
    }

    #[test]
    fn tags_are_stable_and_quoted() {
        let t = strong_tag(b"hello");
        assert_eq!(t.len(), 18);
        assert_eq!(t, strong_tag(b"hello"));
        assert_ne!(t, strong_tag(b"hellp"));
        assert_eq!(
            t.to_str().unwrap(),
            format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(b"hello"))
        );
    }
}
