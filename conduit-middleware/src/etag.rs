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
//! Tags are compared by [`conduit_core::headers`], the rules `ServeDir` uses too. With
//! [`Compression`](crate::Compression) outside this middleware, clients hold the tag the
//! compression gave the encoded variant (`"x-gzip"`): the compression middleware adds the
//! unencoded tag to the request's `If-None-Match`, so this middleware answers 304, and renames
//! the 304's tag back to the variant the client holds.
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

use conduit_core::headers::{self, Comparison, EntityTag, EntityTagList, MalformedTagList};
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
            match none_match(&conditions, res.headers().get(header::ETAG)) {
                Ok(true) => not_modified(res),
                Ok(false) => res,
                Err(MalformedTagList) => {
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

fn not_modified(res: Response) -> Response {
    let (mut parts, _body) = res.into_parts();
    parts.status = StatusCode::NOT_MODIFIED;
    headers::strip_for_not_modified(&mut parts.headers);
    Response::from_parts(parts, Body::empty())
}

/// Whether `If-None-Match` (all its lines) matches the response's tag under the weak
/// comparison; a tag the handler set that is not well-formed matches nothing.
fn none_match(
    conditions: &[HeaderValue],
    etag: Option<&HeaderValue>,
) -> Result<bool, MalformedTagList> {
    let list = EntityTagList::new(conditions);
    match etag.and_then(|t| EntityTag::parse(t.as_bytes())) {
        Some(current) => list.matches(&current, Comparison::Weak),
        None => list.for_each(|_| ()).map(|()| false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list syntax and the comparison are `conduit_core::headers`' (tested there);
    /// this is how the middleware applies them.
    #[test]
    fn if_none_match_against_the_response_tag() {
        let inm = |lines: &[&'static str], tag: &'static str| {
            let lines: Vec<HeaderValue> =
                lines.iter().map(|l| HeaderValue::from_static(l)).collect();
            none_match(&lines, Some(&HeaderValue::from_static(tag)))
        };
        assert_eq!(inm(&[r#""a""#], r#""a""#), Ok(true));
        assert_eq!(inm(&[r#"W/"a""#], r#""a""#), Ok(true));
        assert_eq!(inm(&[r#""x""#, r#""a""#], r#""a""#), Ok(true));
        assert_eq!(inm(&["*"], r#""a""#), Ok(true));
        assert_eq!(inm(&[r#""b""#], r#""a""#), Ok(false));
        // One comparison everywhere: a coded variant is another tag (the compression
        // middleware adds the unencoded tag to the request when the client holds its variant).
        assert_eq!(inm(&[r#""a-gzip""#], r#""a""#), Ok(false));
        assert_eq!(inm(&["a"], r#""a""#), Err(MalformedTagList));
        assert_eq!(inm(&[r#""a""#], "not-a-tag"), Ok(false));
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
