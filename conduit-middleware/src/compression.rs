//! [`Compression`]: compress response bodies with gzip, br, zstd or deflate, as the client's
//! `Accept-Encoding` allows.
//!
//! - **Negotiation** (RFC 9110 section 12.5.3): q-values, `*` (any coding not listed),
//!   `identity;q=0` / `*;q=0` (the client refuses uncompressed bodies). The coding with the
//!   highest q-value wins; among equal q-values the server's preference (zstd, br, gzip,
//!   deflate by default). A malformed entry is ignored (and logged at `debug`), never an error.
//!   `406 Not Acceptable` only when the client refuses identity and accepts none of the enabled
//!   codings.
//! - **What is compressed**: responses whose `Content-Type` passes the predicate (text, JSON,
//!   JavaScript, XML, SVG, wasm ... yes; images, audio, video, woff2 fonts, archives no) and whose
//!   size is at least [`min_size`](Compression::min_size) (1 KiB by default, decided from the
//!   body's size hint when known; streams of unknown size are compressed).
//! - **What is left alone**: responses already encoded (`Content-Encoding`), partial ones (206,
//!   `Content-Range`), marked `Cache-Control: no-transform`, or without a body (HEAD, 1xx, 204,
//!   304).
//! - **Headers**: `Vary: Accept-Encoding` on every response it could have compressed (also when
//!   it chose not to: the answer depends on the header either way); `Content-Length` and
//!   `Accept-Ranges` dropped on compressed responses; an `ETag` `"x"` becomes `"x-gzip"`
//!   (`-br`, `-zstd`, `-deflate`; `W/"x"` becomes `W/"x-gzip"`), so the encoded variant never
//!   shares the identity variant's validator.
//! - **Streaming**: every frame of the body is flushed through the encoder as it comes, so an
//!   SSE event or an NDJSON line reaches the client at once rather than when a buffer fills
//!   (costs a few bytes per frame; a body in memory is one frame and pays nothing extra).
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
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_compression::Level;
use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
use bytes::Bytes;
use conduit_core::http::header::{self, HeaderMap, HeaderValue};
use conduit_core::http::{Method, StatusCode};
use conduit_core::{Body, BoxError, Handler, Middleware, Request, Response};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWrite;

use crate::future::MapResponse;

/// A content coding conduit can produce (and decode, see [`Decompression`](crate::Decompression)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `gzip` (also accepted as `x-gzip`).
    Gzip,
    /// `deflate`: the zlib format (RFC 9110 section 8.4.1.2).
    Deflate,
    /// `br`: Brotli.
    Brotli,
    /// `zstd`: Zstandard.
    Zstd,
}

impl Encoding {
    /// The token in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// Parse a coding token (case-insensitive; `x-gzip` is `gzip`).
    pub fn from_token(token: &str) -> Option<Self> {
        let t = token.trim();
        if t.eq_ignore_ascii_case("gzip") || t.eq_ignore_ascii_case("x-gzip") {
            Some(Self::Gzip)
        } else if t.eq_ignore_ascii_case("deflate") {
            Some(Self::Deflate)
        } else if t.eq_ignore_ascii_case("br") {
            Some(Self::Brotli)
        } else if t.eq_ignore_ascii_case("zstd") {
            Some(Self::Zstd)
        } else {
            None
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Zstd => 0,
            Self::Brotli => 1,
            Self::Gzip => 2,
            Self::Deflate => 3,
        }
    }

    const ALL: [Encoding; 4] = [Self::Zstd, Self::Brotli, Self::Gzip, Self::Deflate];
}

/// What the client's `Accept-Encoding` allows, for a given set of enabled codings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiated {
    /// Send this coding (identity would be acceptable too).
    Encode(Encoding),
    /// Send this coding: the client refuses identity (`identity;q=0` or `*;q=0`), so even a
    /// response that would not be worth compressing is compressed.
    Required(Encoding),
    /// Send the body as is.
    Identity,
    /// Nothing acceptable: the client refuses identity and every enabled coding (406).
    NotAcceptable,
}

/// A q-value in thousandths (RFC 9110 section 12.4.2: `0`, `1`, `0.xyz`, `1.000`).
fn parse_q(s: &str) -> Option<u16> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for b in frac.bytes().chain(std::iter::repeat(b'0')).take(3) {
        thousandths = thousandths * 10 + u16::from(b - b'0');
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Negotiate a coding from the `Accept-Encoding` field values, among `enabled` codings in
/// order of server preference.
///
/// No `Accept-Encoding` at all means identity (RFC 9110 allows any coding, but compressing for
/// a client that did not ask would break the ones that cannot decode).
///
/// ```
/// use conduit_core::http::{HeaderMap, HeaderValue};
/// use conduit_middleware::compression::{Encoding, Negotiated, negotiate};
///
/// let mut h = HeaderMap::new();
/// h.insert("accept-encoding", HeaderValue::from_static("gzip;q=0.5, br"));
/// let prefs = [Encoding::Zstd, Encoding::Brotli, Encoding::Gzip];
/// assert_eq!(negotiate(&h, &prefs), Negotiated::Encode(Encoding::Brotli));
/// ```
pub fn negotiate(headers: &HeaderMap, enabled: &[Encoding]) -> Negotiated {
    let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return Negotiated::Identity;
    }
    // q in thousandths per coding (None = not listed), for `*` and for identity.
    let mut listed: [Option<u16>; 4] = [None; 4];
    let mut star: Option<u16> = None;
    let mut identity: Option<u16> = None;
    for value in values {
        let Ok(value) = value.to_str() else {
            tracing::debug!("Accept-Encoding is not visible ASCII; ignored");
            continue;
        };
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue; // RFC 9110 list syntax allows empty elements
            }
            let mut q = Some(1000);
            for param in parts {
                let Some((name, v)) = param.split_once('=') else {
                    q = None;
                    break;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    q = parse_q(v);
                }
            }
            let Some(q) = q else {
                tracing::debug!(entry, "malformed Accept-Encoding entry; ignored");
                continue;
            };
            if coding == "*" {
                star = Some(q);
            } else if coding.eq_ignore_ascii_case("identity") {
                identity = Some(q);
            } else if let Some(enc) = Encoding::from_token(coding) {
                let slot = &mut listed[enc.index()];
                // A coding listed twice: keep the higher weight (lenient).
                *slot = Some(slot.map_or(q, |old| old.max(q)));
            }
        }
    }
    let mut best: Option<(Encoding, u16)> = None;
    for &enc in enabled {
        let q = listed[enc.index()].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((enc, q));
        }
    }
    let identity_q = identity.or(star.filter(|&q| q == 0)).unwrap_or(1);
    match best {
        // Identity wins only when the client prefers it strictly (`identity;q=1, gzip;q=0.5`).
        Some((_, q)) if identity_q > q && identity.is_some() => Negotiated::Identity,
        Some((enc, _)) if identity_q == 0 => Negotiated::Required(enc),
        Some((enc, _)) => Negotiated::Encode(enc),
        None if identity_q > 0 => Negotiated::Identity,
        None => Negotiated::NotAcceptable,
    }
}

/// The default content-type predicate: text, JSON, JavaScript, XML, SVG, wasm, and a few other
/// textual types yes; images, audio, video, fonts in woff/woff2, archives and anything unknown
/// no. A response without `Content-Type` is not compressed.
pub fn is_compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    let ty = ty.trim().to_ascii_lowercase();
    let sub = sub.trim().to_ascii_lowercase();
    if ty == "text" {
        return true;
    }
    if sub.ends_with("+json") || sub.ends_with("+xml") {
        return true;
    }
    match ty.as_str() {
        "application" => matches!(
            sub.as_str(),
            "json"
                | "javascript"
                | "x-javascript"
                | "ecmascript"
                | "xml"
                | "wasm"
                | "x-ndjson"
                | "ndjson"
                | "manifest+json"
                | "x-www-form-urlencoded"
                | "graphql"
                | "yaml"
                | "x-yaml"
                | "toml"
                | "csv"
                | "rtf"
                | "x-sh"
                | "vnd.ms-fontobject"
                | "x-font-ttf"
                | "x-font-opentype"
        ),
        "image" => matches!(
            sub.as_str(),
            "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"
        ),
        "font" => matches!(sub.as_str(), "ttf" | "otf" | "collection"),
        _ => false,
    }
}

/// The compression middleware (see the [module docs](self)).
#[derive(Clone)]
pub struct Compression {
    /// Level per coding, in [`Encoding::index`] order; `None` = disabled.
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
            levels: [Some(1), Some(4), Some(1), Some(1)],
            order: Encoding::ALL.to_vec(),
            min_size: 1024,
            predicate: Arc::new(is_compressible),
        }
    }

    fn set(mut self, enc: Encoding, level: Option<i32>) -> Self {
        self.levels[enc.index()] = level;
        self.order.retain(|&e| e != enc);
        if level.is_some() {
            // Keep the default relative order.
            self.order = Encoding::ALL
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
            .filter(|e| self.levels[e.index()].is_some())
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
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let negotiated = negotiate(req.headers(), &self.config.order);
        let head = req.method() == Method::HEAD;
        // Most requests negotiate identity: they only need `Vary`, not the config.
        let config = (negotiated != Negotiated::Identity).then(|| self.config.clone());
        MapResponse::new(self.inner.call(req), move |res: &mut Response| {
            compress_response(config.as_deref(), negotiated, head, res)
        })
    }
}

/// Built at compile time (`from_static` in a hot path validates the bytes on every call).
const VARY_ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");

fn has_token_in(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| has_token_in(v, token))
}

fn add_vary(headers: &mut HeaderMap) {
    if has_token(headers, header::VARY, "accept-encoding") || has_token(headers, header::VARY, "*")
    {
        return;
    }
    headers.append(header::VARY, VARY_ACCEPT_ENCODING);
}

/// What [`compress_response`] reads of a response before deciding.
struct Seen<'a> {
    size: SizeHint,
    content_type: Option<&'a HeaderValue>,
    has_vary: bool,
}

/// `None` for the responses compression must not touch, `Vary` included (their form does not
/// depend on `Accept-Encoding`): HEAD, 1xx, 204 No Content, 206 Partial Content, 304 Not
/// Modified, empty bodies, and those already encoded, ranged or marked `no-transform`.
#[inline]
fn inspect(head: bool, res: &Response) -> Option<Seen<'_>> {
    if head || matches!(res.status().as_u16(), 100..=199 | 204 | 206 | 304) {
        return None;
    }
    let size = http_body::Body::size_hint(res.body());
    if size.exact() == Some(0) {
        return None;
    }
    // One pass over the (few) response headers instead of a hash lookup per name.
    let mut content_type = None;
    let mut has_vary = false;
    for (name, value) in res.headers() {
        if *name == header::CONTENT_TYPE {
            content_type = Some(value);
        } else if *name == header::VARY {
            has_vary = true;
        } else if *name == header::CONTENT_RANGE
            || (*name == header::CONTENT_ENCODING
                && !value.as_bytes().eq_ignore_ascii_case(b"identity"))
            || (*name == header::CACHE_CONTROL && has_token_in(value, "no-transform"))
        {
            return None;
        }
    }
    Some(Seen {
        size,
        content_type,
        has_vary,
    })
}

/// `Vary: Accept-Encoding`, added to those already there (or set when there are none).
#[inline]
fn vary(headers: &mut HeaderMap, has_vary: bool) {
    if has_vary {
        add_vary(headers);
    } else {
        headers.insert(header::VARY, VARY_ACCEPT_ENCODING);
    }
}

/// [`compress_response`] for [`Negotiated::Identity`] (most requests): the body stays as it
/// is, only `Vary` says it depended on the header. Inlined into the caller.
#[inline]
pub(crate) fn identity_response(head: bool, res: &mut Response) {
    if let Some(seen) = inspect(head, res) {
        let has_vary = seen.has_vary;
        vary(res.headers_mut(), has_vary);
    }
}

/// `config` is `None` exactly when `negotiated` is `Identity`.
pub(crate) fn compress_response(
    config: Option<&Compression>,
    negotiated: Negotiated,
    head: bool,
    res: &mut Response,
) {
    let Some(config) = config else {
        identity_response(head, res);
        return;
    };
    let Some(seen) = inspect(head, res) else {
        return;
    };
    // Worth compressing? Asked only when the client merely accepts a coding.
    let wanted = matches!(negotiated, Negotiated::Encode(_))
        && seen
            .size
            .upper()
            .is_none_or(|upper| upper >= config.min_size)
        && seen
            .content_type
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| (config.predicate)(ct));
    let has_vary = seen.has_vary;
    vary(res.headers_mut(), has_vary);
    let encoding = match negotiated {
        Negotiated::Encode(_) if !wanted => return,
        Negotiated::Encode(enc) | Negotiated::Required(enc) => enc,
        Negotiated::Identity => return,
        Negotiated::NotAcceptable => {
            tracing::info!(
                "Accept-Encoding refuses identity and every enabled coding; answering 406"
            );
            *res = not_acceptable(config);
            return;
        }
    };
    let level = config.levels[encoding.index()].unwrap_or(1);
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.as_str()),
    );
    if let Some(etag) = headers.get(header::ETAG) {
        // `"tag"` and `W/"tag"` both get the coding appended inside the quotes.
        let bytes = etag.as_bytes();
        let opaque = bytes.strip_prefix(b"W/").unwrap_or(bytes);
        if opaque.len() >= 2 && opaque[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
            let mut tagged = Vec::with_capacity(bytes.len() + 8);
            tagged.extend_from_slice(&bytes[..bytes.len() - 1]);
            tagged.push(b'-');
            tagged.extend_from_slice(encoding.as_str().as_bytes());
            tagged.push(b'"');
            match HeaderValue::from_bytes(&tagged) {
                Ok(v) => {
                    headers.insert(header::ETAG, v);
                }
                Err(_) => {
                    headers.remove(header::ETAG);
                }
            }
        }
    }
    let body = std::mem::take(res.body_mut());
    *res.body_mut() = Body::new(EncodedBody::new(body, encoding, level));
}

fn not_acceptable(config: &Compression) -> Response {
    let list: Vec<&str> = config.order.iter().map(|e| e.as_str()).collect();
    let mut res = Response::new(Body::from(format!(
        "Not Acceptable: this server can send the identity, {} codings",
        list.join(", ")
    )));
    *res.status_mut() = StatusCode::NOT_ACCEPTABLE;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    add_vary(res.headers_mut());
    res
}

/// One of the async-compression write-side encoders, writing into a `Vec` we drain per frame.
enum Encoder {
    Gzip(GzipEncoder<Vec<u8>>),
    Deflate(ZlibEncoder<Vec<u8>>),
    Brotli(Box<BrotliEncoder<Vec<u8>>>),
    Zstd(ZstdEncoder<Vec<u8>>),
}

macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            Encoder::Gzip($e) => $body,
            Encoder::Deflate($e) => $body,
            Encoder::Brotli($e) => $body,
            Encoder::Zstd($e) => $body,
        }
    };
}

impl Encoder {
    fn new(encoding: Encoding, level: i32) -> Self {
        let level = Level::Precise(level);
        let out = Vec::new();
        match encoding {
            Encoding::Gzip => Self::Gzip(GzipEncoder::with_quality(out, level)),
            Encoding::Deflate => Self::Deflate(ZlibEncoder::with_quality(out, level)),
            Encoding::Brotli => Self::Brotli(Box::new(BrotliEncoder::with_quality(out, level))),
            Encoding::Zstd => Self::Zstd(ZstdEncoder::with_quality(out, level)),
        }
    }

    /// Write all of `data` (the output is a `Vec`: never pending).
    fn write(&mut self, cx: &mut Context<'_>, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = each!(self, e => ready_or_err(Pin::new(e).poll_write(cx, data)))?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    fn flush(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        each!(self, e => ready_or_err(Pin::new(e).poll_flush(cx)))
    }

    fn finish(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        each!(self, e => ready_or_err(Pin::new(e).poll_shutdown(cx)))
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(each!(self, e => e.get_mut())))
    }
}

fn ready_or_err<T>(poll: Poll<std::io::Result<T>>) -> std::io::Result<T> {
    match poll {
        Poll::Ready(r) => r,
        Poll::Pending => Err(std::io::Error::other(
            "encoder into memory returned Pending",
        )),
    }
}

/// The compressed body: each inner frame is written and flushed through the encoder.
struct EncodedBody {
    inner: Body,
    encoder: Encoder,
    encoding: Encoding,
    state: State,
}

enum State {
    Streaming,
    /// The encoder is finished; these trailers (if any) are still to be sent.
    Trailers(Option<HeaderMap>),
    Done,
}

impl EncodedBody {
    fn new(inner: Body, encoding: Encoding, level: i32) -> Self {
        Self {
            inner,
            encoder: Encoder::new(encoding, level),
            encoding,
            state: State::Streaming,
        }
    }

    fn fail(&mut self, err: std::io::Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        tracing::error!(
            encoding = self.encoding.as_str(),
            error = %err,
            "response compression failed mid-stream; ending the response"
        );
        Poll::Ready(Some(Err(err.into())))
    }
}

impl http_body::Body for EncodedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Trailers(trailers) => {
                    let trailers = trailers.take();
                    this.state = State::Done;
                    return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                }
                State::Streaming => {}
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(None) => {
                    if let Err(e) = this.encoder.finish(cx) {
                        return this.fail(e);
                    }
                    this.state = State::Trailers(None);
                    let out = this.encoder.take();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    continue;
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    if let Err(e) = this.encoder.write(cx, &data) {
                        return this.fail(e);
                    }
                    // The last frame of a body (e.g. the only one of a body in memory): finish
                    // instead of flushing, so the output is one chunk.
                    let result = if this.inner.is_end_stream() {
                        this.state = State::Trailers(None);
                        this.encoder.finish(cx)
                    } else {
                        this.encoder.flush(cx)
                    };
                    if let Err(e) = result {
                        return this.fail(e);
                    }
                    let out = this.encoder.take();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Err(frame) => {
                    // Trailers end the body: finish the encoder first.
                    let trailers = frame.into_trailers().ok();
                    if let Err(e) = this.encoder.finish(cx) {
                        return this.fail(e);
                    }
                    this.state = State::Trailers(trailers);
                    let out = this.encoder.take();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(value: &str, enabled: &[Encoding]) -> Negotiated {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        negotiate(&h, enabled)
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.001"), None);
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.123"), Some(123));
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("2"), None);
        assert_eq!(parse_q("-1"), None);
        assert_eq!(parse_q("abc"), None);
        assert_eq!(parse_q(""), None);
    }

    /// RFC 9110 section 12.5.3 cases, as a table.
    #[test]
    fn negotiation_table() {
        use Encoding::*;
        use Negotiated::*;
        let all = &Encoding::ALL[..];
        let cases: &[(&str, &[Encoding], Negotiated)] = &[
            ("gzip", all, Encode(Gzip)),
            ("GZIP", all, Encode(Gzip)),
            ("x-gzip", all, Encode(Gzip)),
            ("gzip, deflate, br, zstd", all, Encode(Zstd)),
            ("gzip, deflate, br", all, Encode(Brotli)),
            ("gzip;q=1.0, br;q=0.5", all, Encode(Gzip)),
            ("br;q=0.9, gzip;q=0.91", all, Encode(Gzip)),
            ("*", all, Encode(Zstd)),
            ("*;q=0.5, gzip", all, Encode(Gzip)),
            ("br;q=0, *", all, Encode(Zstd)),
            ("zstd;q=0, br;q=0, *", all, Encode(Gzip)),
            ("gzip;q=0", all, Identity),
            ("identity", all, Identity),
            ("", all, Identity),
            ("compress", all, Identity),
            ("compress, identity;q=0", all, NotAcceptable),
            ("gzip;q=0, identity;q=0", all, NotAcceptable),
            ("*;q=0", all, NotAcceptable),
            ("*;q=0, identity", all, Identity),
            ("gzip, *;q=0", all, Required(Gzip)),
            ("gzip, identity;q=0", all, Required(Gzip)),
            ("gzip, identity;q=0", &[Brotli], NotAcceptable),
            ("identity;q=1, gzip;q=0.5", all, Identity),
            ("identity;q=0.1, gzip;q=0.5", all, Encode(Gzip)),
            // Malformed entries are ignored, never an error.
            ("gzip;q=2", all, Identity),
            ("gzip;q=abc, br", all, Encode(Brotli)),
            ("gzip;;, ,br", all, Encode(Brotli)),
            (";q=1", all, Identity),
            ("gzip;q", all, Identity),
            (",,,", all, Identity),
            ("gzip;Q=0.5;foo=bar, br;q=0.4", all, Encode(Gzip)),
            ("gzip, deflate", &[Deflate, Gzip], Encode(Deflate)),
        ];
        for (value, enabled, expected) in cases {
            assert_eq!(neg(value, enabled), *expected, "Accept-Encoding: {value:?}");
        }
        assert_eq!(negotiate(&HeaderMap::new(), all), Identity);
        // Several fields are one list.
        let mut h = HeaderMap::new();
        h.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0.5"),
        );
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(negotiate(&h, all), Encode(Brotli));
        // Non-ASCII bytes: ignored.
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_bytes(b"gz\xffip").unwrap(),
        );
        assert_eq!(negotiate(&h, all), Identity);
    }

    #[test]
    fn content_types() {
        for yes in [
            "text/html; charset=utf-8",
            "text/plain",
            "text/event-stream",
            "application/json",
            "application/problem+json",
            "application/javascript",
            "application/xml",
            "application/atom+xml",
            "image/svg+xml",
            "application/wasm",
            "application/x-ndjson",
            "TEXT/CSS",
        ] {
            assert!(is_compressible(yes), "{yes}");
        }
        for no in [
            "image/png",
            "image/jpeg",
            "image/webp",
            "video/mp4",
            "audio/ogg",
            "font/woff2",
            "font/woff",
            "application/zip",
            "application/gzip",
            "application/x-tar",
            "application/octet-stream",
            "application/pdf",
            "",
            "garbage",
        ] {
            assert!(!is_compressible(no), "{no}");
        }
    }

    /// The in-memory encoders fail only when misused; a write after `finish` is such a
    /// failure, from the real encoder. The body ends with the error (so hyper aborts the
    /// response) and logs it.
    #[test]
    fn an_encoder_error_ends_the_body_and_is_logged() {
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Log {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let log = log.clone();
                move || log.clone()
            })
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        for encoding in [
            Encoding::Gzip,
            Encoding::Deflate,
            Encoding::Brotli,
            Encoding::Zstd,
        ] {
            let chunks: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"b"))];
            let inner = Body::from_stream(tokio_stream::iter(chunks));
            let mut body = EncodedBody::new(inner, encoding, 1);
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            body.encoder.finish(&mut cx).unwrap();
            let mut body = std::pin::pin!(body);
            let Poll::Ready(Some(Err(e))) = http_body::Body::poll_frame(body.as_mut(), &mut cx)
            else {
                panic!("{encoding:?}: the encoder's error did not end the body")
            };
            assert!(e.to_string().contains("after close"), "{e}");
            assert!(matches!(
                http_body::Body::poll_frame(body.as_mut(), &mut cx),
                Poll::Ready(None)
            ));
        }
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        for name in ["gzip", "deflate", "br", "zstd"] {
            assert!(
                log.contains("response compression failed mid-stream")
                    && log.contains(&format!("encoding=\"{name}\"")),
                "{name} not logged: {log}"
            );
        }
    }
}
