//! [`Decompression`]: decode request bodies sent with `Content-Encoding: gzip` (or `x-gzip`,
//! `deflate`, `br`, `zstd`), so handlers read plain bytes.
//!
//! The body limit applies to the **decoded** size: the request's
//! [`BodyLimit`] (the server's `max_body_bytes`), else
//! [`DEFAULT_BODY_LIMIT`], so a small compressed bomb gets
//! `413 Payload Too Large` rather than filling memory (input is fed to the decoder in small
//! slices, so no more than about a megabyte is decoded past the limit before it stops).
//! `Content-Encoding` and `Content-Length` are removed from the request the handler sees.
//!
//! Bad input: an unsupported or stacked coding (`compress`, `gzip, br`) gets
//! `415 Unsupported Media Type` with an `Accept-Encoding` header listing what is accepted
//! (RFC 9110 section 15.5.16); a corrupt or truncated stream makes the body fail with 400 (the
//! body helpers answer it); each is logged.
//!
//! ```
//! use std::io::Write;
//! use conduit_core::{Handler, HandlerExt, Request, RequestExt};
//! use conduit_middleware::Decompression;
//!
//! let app = (|req: Request| async move { req.text().await }).with(Decompression::new());
//! let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
//! gz.write_all(b"hello").unwrap();
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let req = Request::post("/")
//!     .header("content-encoding", "gzip")
//!     .body(gz.finish().unwrap().into())
//!     .unwrap();
//! let res = app.call(req).await;
//! let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, "hello");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::write::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
use bytes::Bytes;
use conduit_core::http::StatusCode;
use conduit_core::http::header::{self, HeaderValue};
use conduit_core::{
    Body, BodyLimit, BoxError, DEFAULT_BODY_LIMIT, Error, Handler, IntoResponse, Middleware,
    Request, Response,
};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWrite;

use crate::compression::Encoding;

/// How many compressed bytes are fed to the decoder at a time (bounds the output of one step
/// to about a megabyte even at deflate's maximum ratio).
const SLICE: usize = 1024;

/// The middleware: decode compressed request bodies (see the [module docs](self)).
#[derive(Clone, Debug, Default)]
pub struct Decompression {
    _private: (),
}

impl Decompression {
    /// Decode gzip, deflate, br and zstd request bodies.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<H: Handler> Middleware<H> for Decompression {
    type Output = DecompressionHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        DecompressionHandler { inner }
    }
}

/// The handler built by [`Decompression`].
#[derive(Clone)]
pub struct DecompressionHandler<H> {
    inner: H,
}

impl<H> fmt::Debug for DecompressionHandler<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecompressionHandler")
    }
}

const ACCEPTED: &str = "gzip, deflate, br, zstd";

fn unsupported(value: &HeaderValue) -> Response {
    let shown = String::from_utf8_lossy(value.as_bytes())
        .chars()
        .take(64)
        .collect::<String>();
    let mut res = Error::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Unsupported Media Type: request Content-Encoding `{shown}` (accepted: {ACCEPTED}, one at a time)"),
    )
    .into_response(); // logged by Error
    res.headers_mut()
        .insert(header::ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
    res
}

enum Decision {
    Pass(Request),
    Decode(Request),
    Reject(Response),
}

fn decide(mut req: Request) -> Decision {
    let Some(value) = req.headers().get(header::CONTENT_ENCODING) else {
        return Decision::Pass(req);
    };
    let Some(token) = value.to_str().ok().map(str::trim) else {
        return Decision::Reject(unsupported(value));
    };
    if token.eq_ignore_ascii_case("identity") || token.is_empty() {
        req.headers_mut().remove(header::CONTENT_ENCODING);
        return Decision::Pass(req);
    }
    let Some(encoding) = Encoding::from_token(token) else {
        return Decision::Reject(unsupported(value));
    };
    if req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .count()
        > 1
    {
        return Decision::Reject(unsupported(value));
    }
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let headers = req.headers_mut();
    headers.remove(header::CONTENT_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    let req = req.map(|body| {
        Body::new(DecodedBody {
            inner: body,
            decoder: Decoder::new(encoding),
            encoding,
            limit,
            decoded: 0,
            pending: Bytes::new(),
            done: false,
        })
    });
    Decision::Decode(req)
}

impl<H: Handler> Handler for DecompressionHandler<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let fut = match decide(req) {
            Decision::Pass(req) | Decision::Decode(req) => Ok(self.inner.call(req)),
            Decision::Reject(res) => Err(res),
        };
        async move {
            match fut {
                Ok(fut) => fut.await,
                Err(res) => res,
            }
        }
    }
}

enum Decoder {
    Gzip(GzipDecoder<Vec<u8>>),
    Deflate(ZlibDecoder<Vec<u8>>),
    Brotli(BrotliDecoder<Vec<u8>>),
    Zstd(ZstdDecoder<Vec<u8>>),
}

macro_rules! each {
    ($self:expr, $d:ident => $body:expr) => {
        match $self {
            Decoder::Gzip($d) => $body,
            Decoder::Deflate($d) => $body,
            Decoder::Brotli($d) => $body,
            Decoder::Zstd($d) => $body,
        }
    };
}

fn ready<T>(poll: Poll<std::io::Result<T>>) -> std::io::Result<T> {
    match poll {
        Poll::Ready(r) => r,
        Poll::Pending => Err(std::io::Error::other(
            "decoder into memory returned Pending",
        )),
    }
}

impl Decoder {
    fn new(encoding: Encoding) -> Self {
        match encoding {
            Encoding::Gzip => Self::Gzip(GzipDecoder::new(Vec::new())),
            Encoding::Deflate => Self::Deflate(ZlibDecoder::new(Vec::new())),
            Encoding::Brotli => Self::Brotli(BrotliDecoder::new(Vec::new())),
            Encoding::Zstd => Self::Zstd(ZstdDecoder::new(Vec::new())),
        }
    }

    /// Feed some of `data`; returns how much was consumed.
    fn write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> std::io::Result<usize> {
        let n = each!(self, d => ready(Pin::new(d).poll_write(cx, data)))?;
        each!(self, d => ready(Pin::new(d).poll_flush(cx)))?;
        Ok(n)
    }

    fn finish(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        each!(self, d => ready(Pin::new(d).poll_shutdown(cx)))
    }

    fn output_len(&mut self) -> usize {
        each!(self, d => d.get_mut().len())
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(each!(self, d => d.get_mut())))
    }
}

type PollFrame = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// The decoded request body, failing with 413 past the limit and 400 on corrupt data.
struct DecodedBody {
    inner: Body,
    decoder: Decoder,
    encoding: Encoding,
    limit: usize,
    decoded: usize,
    /// Compressed bytes not yet fed to the decoder.
    pending: Bytes,
    done: bool,
}

impl DecodedBody {
    fn fail(&mut self, err: Error) -> PollFrame {
        self.done = true;
        tracing::debug!(
            encoding = self.encoding.as_str(),
            status = err.status().as_u16(),
            error = %err,
            "rejected a compressed request body"
        );
        Poll::Ready(Some(Err(Box::new(err))))
    }

    fn too_large(&mut self) -> PollFrame {
        let limit = self.limit;
        self.fail(Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes once decoded"),
        ))
    }

    fn corrupt(&mut self, e: std::io::Error) -> PollFrame {
        let encoding = self.encoding.as_str();
        self.fail(
            Error::bad_request(format!(
                "Bad Request: the {encoding} request body is corrupt"
            ))
            .with_source(e),
        )
    }

    /// Take the decoder's output, checking the limit.
    fn emit(&mut self) -> Option<PollFrame> {
        let out = self.decoder.take();
        if out.is_empty() {
            return None;
        }
        self.decoded += out.len();
        if self.decoded > self.limit {
            return Some(self.too_large());
        }
        Some(Poll::Ready(Some(Ok(Frame::data(out)))))
    }
}

impl http_body::Body for DecodedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            // Feed what is pending, a slice at a time, and hand out what it decodes to.
            while !this.pending.is_empty() {
                let n = this.pending.len().min(SLICE);
                let chunk = this.pending.slice(..n);
                match this.decoder.write(cx, &chunk) {
                    Ok(0) => {
                        // The stream ended before the input did: trailing garbage.
                        let e =
                            std::io::Error::other("data after the end of the compressed stream");
                        return this.corrupt(e);
                    }
                    Ok(used) => {
                        let _ = this.pending.split_to(used);
                    }
                    Err(e) => return this.corrupt(e),
                }
                if this.decoded + this.decoder.output_len() > this.limit {
                    return this.too_large();
                }
                if this.decoder.output_len() >= 64 * 1024 {
                    if let Some(poll) = this.emit() {
                        return poll;
                    }
                }
            }
            if let Some(poll) = this.emit() {
                return poll;
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.pending = data;
                    } // request trailers are dropped
                }
                Poll::Ready(None) => {
                    if let Err(e) = this.decoder.finish(cx) {
                        return this.corrupt(e);
                    }
                    let last = this.emit();
                    this.done = true;
                    if let Some(poll) = last {
                        return poll;
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
