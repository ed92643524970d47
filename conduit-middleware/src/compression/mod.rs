//! [`Compression`]: compress response bodies with gzip, br, zstd or deflate, as the client's
//! `Accept-Encoding` allows.
//!
//! - **Negotiation**: [`conduit_core::headers::AcceptEncoding`], the rules the static file
//!   server uses too (RFC 9110 §12.5.3): q-values, `*`, `identity;q=0` / `*;q=0` (the client
//!   refuses uncompressed bodies, so even a small one is compressed). Among equal q-values the
//!   server's preference wins (zstd, br, gzip, deflate by default). When the client accepts
//!   none of the enabled codings, the body goes out as it is (RFC 9110 asks for that rather
//!   than a 406). A malformed entry is ignored (logged at `debug`), never an error.
//! - **What is compressed**: responses whose `Content-Type` passes the predicate (text, JSON,
//!   JavaScript, XML, SVG, wasm ... yes; images, audio, video, woff2 fonts, archives no) and whose
//!   size is at least [`min_size`](Compression::min_size) (1 KiB by default, decided from the
//!   body's size hint when known; streams of unknown size are compressed). A body in memory is
//!   compressed at once and sent with its `Content-Length`; a stream is compressed frame by
//!   frame.
//! - **What is left alone**: responses already encoded (`Content-Encoding`) or marked
//!   `Cache-Control: no-transform` (no `Vary` either: every client gets them as they are), 1xx
//!   and 204; partial ones (206, `Content-Range`) and `304 Not Modified` get only `Vary`, as
//!   their 200 does.
//! - **HEAD** gets the headers its GET would get (`Content-Encoding`, `Vary`, the variant's
//!   `ETag`, no `Content-Length`), decided from the `Content-Length` the GET handler gave it.
//! - **Headers**: `Vary: Accept-Encoding` on every response it could have compressed (also when
//!   it chose not to: the answer depends on the header either way); `Content-Length` (unless
//!   known after compressing) and `Accept-Ranges` dropped on compressed responses; an `ETag`
//!   `"x"` becomes `"x-gzip"` (`-br`, `-zstd`, `-deflate`; `W/"x"` becomes `W/"x-gzip"`, see
//!   [`etag_with_coding`]), so the encoded variant never shares the identity variant's
//!   validator — the same tag `ServeDir` gives a precompressed `.gz` sibling.
//! - **Revalidation**: a request whose `If-None-Match` names the encoded variant (`"x-gzip"`)
//!   reaches the handler with the unencoded tag (`"x"`) added to the list, so the handler, the
//!   [`ETag`](crate::ETag) middleware or `ServeDir` can answer `304`; the 304 then names the
//!   variant the client holds.
//! - **Streaming**: every frame of the body is flushed through the encoder as it comes, so an
//!   SSE event or an NDJSON line reaches the client at once rather than when a buffer fills
//!   (costs a few bytes per frame).
//!   An encoder error mid-stream ends the response (HTTP/1: connection closed; HTTP/2: stream
//!   reset) and is logged.
//!
//! Levels default to throughput, like nginx's `gzip_comp_level 1`: gzip 1, deflate 1, br 4,
//! zstd 1; each is configurable, and each coding can be turned off.
//!
//! ```
//! use conduit_core::{Handler, HandlerExt, Request};
//! use conduit_middleware::Compression;
//!
//! let app = (|_req: Request| async { "a".repeat(4096) }).with(Compression::new());
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let req = Request::get("/").header("accept-encoding", "gzip, br;q=0.5").body(Default::default()).unwrap();
//! let res = app.call(req).await;
//! assert_eq!(res.headers()["content-encoding"], "gzip");
//! assert_eq!(res.headers()["vary"], "accept-encoding");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use conduit_core::headers::{self, AcceptEncoding, EntityTag, EntityTagList, etag_with_coding};
use conduit_core::http::header::{self, HeaderMap, HeaderValue};
use conduit_core::http::{Method, StatusCode};
use conduit_core::{Body, Handler, Middleware, Request, Response};

use crate::future::MapResponse;

mod content_type;
mod encoder;

pub use conduit_core::headers::{ContentCoding as Encoding, Negotiated};

/// The coding the request's `Accept-Encoding` allows among `enabled` (in order of preference).
#[deprecated(
    since = "0.1.0",
    note = "use `conduit_core::headers::AcceptEncoding::from_headers(headers).negotiate(enabled)`"
)]
pub fn negotiate(headers: &HeaderMap, enabled: &[Encoding]) -> Negotiated {
    AcceptEncoding::from_headers(headers).negotiate(enabled)
}
pub use content_type::is_compressible;
use encoder::{EncodedBody, encode_in_memory};
/// The compression middleware (see the [module docs](self)).
#[derive(Clone)]
pub struct Compression {
    /// Level per coding, indexed by `Encoding as usize`; `None` = disabled.
    levels: [Option<i32>; 4],
    /// Enabled codings in order of preference.
    pub(crate) order: Vec<Encoding>,
    min_size: u64,
    predicate: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl fmt::Debug for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compression")
            .field("order", &self.order)
            .field("levels", &self.levels)
            .field("min_size", &self.min_size)
            .finish()
    }
}

impl Default for Compression {
    fn default() -> Self {
        Self::new()
    }
}

impl Compression {
    /// zstd (level 1), br (4), gzip (1), deflate (1), in that order of preference; 1 KiB
    /// minimum; the [`is_compressible`] predicate.
    pub fn new() -> Self {
        Self {
            levels: [Some(1), Some(1), Some(4), Some(1)],
            order: Encoding::PREFERENCE.to_vec(),
            min_size: 1024,
            predicate: Arc::new(is_compressible),
        }
    }

    fn set(mut self, enc: Encoding, level: Option<i32>) -> Self {
        self.levels[enc as usize] = level;
        self.order.retain(|&e| e != enc);
        if level.is_some() {
            // Keep the default relative order.
            self.order = Encoding::PREFERENCE
                .into_iter()
                .filter(|&e| e == enc || self.order.contains(&e))
                .collect();
        }
        self
    }

    /// The gzip level (0-9; default 1), or `None` to disable gzip.
    #[must_use]
    pub fn gzip(self, level: Option<i32>) -> Self {
        self.set(Encoding::Gzip, level)
    }

    /// The deflate level (0-9; default 1), or `None` to disable deflate.
    #[must_use]
    pub fn deflate(self, level: Option<i32>) -> Self {
        self.set(Encoding::Deflate, level)
    }

    /// The Brotli quality (0-11; default 4), or `None` to disable br.
    #[must_use]
    pub fn br(self, level: Option<i32>) -> Self {
        self.set(Encoding::Brotli, level)
    }

    /// The zstd level (1-22; default 1), or `None` to disable zstd.
    #[must_use]
    pub fn zstd(self, level: Option<i32>) -> Self {
        self.set(Encoding::Zstd, level)
    }

    /// The server's preference among codings of equal q-value (codings left out are disabled).
    #[must_use]
    pub fn preference(mut self, order: &[Encoding]) -> Self {
        self.order = order
            .iter()
            .copied()
            .filter(|&e| self.levels[e as usize].is_some())
            .collect();
        self.order.dedup();
        self
    }

    /// Do not compress bodies known to be smaller than `bytes` (default 1024).
    #[must_use]
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }

    /// Decide by `Content-Type` which responses are compressed (default [`is_compressible`]).
    #[must_use]
    pub fn content_type_predicate(
        mut self,
        predicate: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Arc::new(predicate);
        self
    }
}

impl<H: Handler> Middleware<H> for Compression {
    type Output = CompressionHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        CompressionHandler {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}

/// The handler built by [`Compression`].
#[derive(Clone)]
pub struct CompressionHandler<H> {
    inner: H,
    config: Arc<Compression>,
}

impl<H> fmt::Debug for CompressionHandler<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompressionHandler")
            .field("config", &self.config)
            .finish()
    }
}

impl<H: Handler> Handler for CompressionHandler<H> {
    fn call(&self, mut req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let decision = Decision::new(&self.config.order, &mut req, true);
        // Most requests negotiate identity: they only need `Vary`, not the config.
        let config = decision.coding().is_some().then(|| self.config.clone());
        MapResponse::new(self.inner.call(req), move |res: &mut Response| {
            compress_response(config.as_deref(), decision, res)
        })
    }
}

/// What the request side decided, carried to the response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decision {
    negotiated: Negotiated,
    head: bool,
    /// The request's `If-None-Match` named the negotiated coding's variant (`"x-gzip"`), and
    /// the unencoded tags (`"x"`) were added for the handler to compare with.
    revalidates_variant: bool,
}

impl Decision {
    /// Negotiate from the request's `Accept-Encoding` (`has_accept_encoding`: whether the
    /// header is there at all, when the caller already knows; without it the answer is
    /// identity). When a coding is chosen and `If-None-Match` names that coding's variant of
    /// a tag (`"x-gzip"`, the tag this middleware gave the compressed response), the
    /// unencoded tag (`"x"`) is added to the request's list: the handler (or `ServeDir`, or
    /// the `ETag` middleware) only knows the tag of what it produces, and answers 304 for it.
    pub(crate) fn new(order: &[Encoding], req: &mut Request, has_accept_encoding: bool) -> Self {
        let negotiated = if has_accept_encoding {
            AcceptEncoding::from_headers(req.headers()).negotiate(order)
        } else {
            Negotiated::Identity
        };
        let mut decision = Self {
            negotiated,
            head: req.method() == Method::HEAD,
            revalidates_variant: false,
        };
        if let Some(coding) = negotiated.coding() {
            decision.revalidates_variant = add_unencoded_tags(req.headers_mut(), coding);
        }
        decision
    }

    pub(crate) fn coding(&self) -> Option<Encoding> {
        self.negotiated.coding()
    }

    pub(crate) fn head(&self) -> bool {
        self.head
    }
}

/// Append to `If-None-Match` the unencoded tag of every `coding` variant it names; whether
/// there was one.
fn add_unencoded_tags(headers: &mut HeaderMap, coding: Encoding) -> bool {
    if !headers.contains_key(header::IF_NONE_MATCH) {
        return false;
    }
    let mut added = Vec::new();
    let parsed = EntityTagList::new(headers.get_all(header::IF_NONE_MATCH)).for_each(|tag| {
        if let Some(base) = tag.and_then(|t| t.without_coding(coding)) {
            if !added.is_empty() {
                added.extend_from_slice(b", ");
            }
            if base.is_weak() {
                added.extend_from_slice(b"W/");
            }
            added.push(b'"');
            added.extend_from_slice(base.opaque());
            added.push(b'"');
        }
    });
    if parsed.is_err() || added.is_empty() {
        return false; // a malformed list is left for the handler to ignore
    }
    match HeaderValue::from_bytes(&added) {
        Ok(v) => {
            headers.append(header::IF_NONE_MATCH, v);
            true
        }
        Err(_) => false,
    }
}

/// Built at compile time (`from_static` in a hot path validates the bytes on every call).
const VARY_ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");

/// What [`compress_response`] reads of a response before deciding.
struct Seen<'a> {
    /// The body's length: its exact size hint, or for a HEAD answer, its `Content-Length`.
    len: Option<u64>,
    content_type: Option<&'a HeaderValue>,
    has_vary: bool,
    /// A 206, a 304 or a `Content-Range`: only `Vary` is added.
    keep_as_is: bool,
}

/// `None` for responses whose form never depends on `Accept-Encoding` (1xx, 204, empty 2xx
/// bodies, bodies the handler encoded itself or marked `no-transform`); otherwise what the decision needs, in one pass over the (few) headers instead of
/// a hash lookup per name.
#[inline]
fn inspect(head: bool, res: &Response) -> Option<Seen<'_>> {
    let status = res.status().as_u16();
    if matches!(status, 100..=199 | 204) {
        return None;
    }
    let hint = http_body::Body::size_hint(res.body()).exact();
    if hint == Some(0) && !head && !matches!(status, 206 | 304) {
        return None;
    }
    let mut seen = Seen {
        len: if head { None } else { hint },
        content_type: None,
        has_vary: false,
        keep_as_is: matches!(status, 206 | 304),
    };
    for (name, value) in res.headers() {
        if *name == header::CONTENT_TYPE {
            seen.content_type = Some(value);
        } else if *name == header::VARY {
            seen.has_vary = true;
        } else if *name == header::CONTENT_LENGTH && head {
            seen.len = value.to_str().ok().and_then(|v| v.parse().ok());
        } else if *name == header::CONTENT_RANGE {
            seen.keep_as_is = true;
        } else if (*name == header::CONTENT_ENCODING
            && !value.as_bytes().eq_ignore_ascii_case(b"identity"))
            || (*name == header::CACHE_CONTROL && headers::value_has_token(value, "no-transform"))
        {
            // Encoded by the handler, or not to be transformed: what the handler sent is what
            // every client gets, whatever its Accept-Encoding.
            return None;
        }
    }
    if head && seen.len == Some(0) {
        return None;
    }
    Some(seen)
}

/// `Vary: Accept-Encoding`, added to those already there (or set when there are none).
#[inline]
fn vary(headers: &mut HeaderMap, has_vary: bool) {
    if has_vary {
        headers::add_vary(headers, VARY_ACCEPT_ENCODING);
    } else {
        headers.insert(header::VARY, VARY_ACCEPT_ENCODING);
    }
}

/// [`compress_response`] for a request that negotiated identity (most requests): the body
/// stays as it is, only `Vary` says it depended on the header. Inlined into the caller.
#[inline]
pub(crate) fn identity_response(head: bool, res: &mut Response) {
    if let Some(seen) = inspect(head, res) {
        let has_vary = seen.has_vary;
        vary(res.headers_mut(), has_vary);
    }
}

/// Rewrite the response for the decision: `Vary` on every response whose form depends on
/// `Accept-Encoding` (200, HEAD, 206 and 304 alike, so a cache stores them under the same
/// key), then the coding where one was negotiated and the response is worth it. `config` is
/// `None` exactly when no coding was negotiated.
pub(crate) fn compress_response(
    config: Option<&Compression>,
    decision: Decision,
    res: &mut Response,
) {
    let (Some(config), Some(coding)) = (config, decision.coding()) else {
        identity_response(decision.head, res);
        return;
    };
    let Some(seen) = inspect(decision.head, res) else {
        return;
    };
    let has_vary = seen.has_vary;
    if seen.keep_as_is {
        vary(res.headers_mut(), has_vary);
        if res.status() == StatusCode::NOT_MODIFIED && decision.revalidates_variant {
            // The client holds the encoded variant: the 304 names it.
            tag_variant(res.headers_mut(), coding);
        }
        return;
    }
    // Worth compressing? Asked only when the client merely accepts a coding.
    let wanted = matches!(decision.negotiated, Negotiated::Required(_))
        || (seen.len.is_none_or(|len| len >= config.min_size)
            && seen
                .content_type
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| (config.predicate)(ct)));
    vary(res.headers_mut(), has_vary);
    if !wanted {
        return;
    }
    let level = config.levels[coding as usize].unwrap_or(1);
    let headers = res.headers_mut();
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(header::CONTENT_ENCODING, coding.header_value());
    tag_variant(headers, coding);
    if decision.head {
        // The headers a GET would get; its length is not known without compressing.
        res.headers_mut().remove(header::CONTENT_LENGTH);
        return;
    }
    if let Some(encoded) = res
        .body()
        .as_bytes()
        .and_then(|data| encode_in_memory(coding, level, data))
    {
        // A body in memory: compressed now, sent with its length.
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(encoded.len()));
        *res.body_mut() = Body::from(encoded);
        return;
    }
    res.headers_mut().remove(header::CONTENT_LENGTH);
    let body = std::mem::take(res.body_mut());
    *res.body_mut() = Body::new(EncodedBody::new(body, coding, level));
}

/// `ETag: "x"` becomes `"x-gzip"` (`W/"x"`: `W/"x-gzip"`): the encoded variant never shares
/// the unencoded one's validator. A tag that already names the coding is left alone, and a
/// malformed one is dropped (it could not be revalidated).
fn tag_variant(headers: &mut HeaderMap, coding: Encoding) {
    let Some(etag) = headers.get(header::ETAG) else {
        return;
    };
    if EntityTag::parse(etag.as_bytes()).is_some_and(|t| t.without_coding(coding).is_some()) {
        return;
    }
    match etag_with_coding(etag, coding) {
        Some(v) => {
            headers.insert(header::ETAG, v);
        }
        None => {
            headers.remove(header::ETAG);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deprecated name answers what the shared negotiation answers.
    #[test]
    #[allow(deprecated)]
    fn deprecated_negotiate_is_the_shared_one() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0.5, br"),
        );
        let order = Encoding::PREFERENCE;
        assert_eq!(negotiate(&h, &order), Negotiated::Encode(Encoding::Brotli));
        assert_eq!(
            negotiate(&h, &order),
            AcceptEncoding::from_headers(&h).negotiate(&order)
        );
    }
}
