//! [`Chunked`]: text or binary responses streamed from a `Stream` of chunks or an `AsyncRead`.
//!
//! Each chunk is sent as it is produced (chunked transfer encoding on HTTP/1.1, DATA frames on
//! HTTP/2); the producer is polled only as fast as the client reads. An error from the stream
//! or the reader is logged and aborts the response (see [`crate::json`] for what that means on
//! the wire).
//!
//! ```
//! use conduit_core::{IntoResponse, Request};
//! use conduit_stream::Chunked;
//!
//! async fn lines(_req: Request) -> impl IntoResponse {
//!     let lines = ["one\n", "two\n"].map(Ok::<_, std::convert::Infallible>);
//!     Chunked::text(tokio_stream::iter(lines))
//! }
//!
//! async fn file(_req: Request) -> impl IntoResponse {
//!     let file = tokio::io::empty(); // e.g. a tokio::fs::File or a child's stdout
//!     Chunked::reader(file).content_type("application/octet-stream")
//! }
//! # let _ = (lines, file);
//! ```

use bytes::Bytes;
use conduit_core::{Body, BoxError, IntoResponse, Response};
use futures_core::Stream;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use tokio::io::AsyncRead;
use tokio_util::io::ReaderStream;

/// The buffer size used to read an [`AsyncRead`] into chunks.
pub const READ_CHUNK_SIZE: usize = 8 * 1024;

/// A streamed response body with a content type.
#[derive(Debug)]
pub struct Chunked {
    body: Body,
    content_type: HeaderValue,
}

impl Chunked {
    /// Text chunks (`text/plain; charset=utf-8`) from a stream of `String`s / `&'static str`s.
    pub fn text<S, T, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        T: Into<String>,
        E: Into<BoxError>,
    {
        use tokio_stream::StreamExt as _;
        Self::with_type(
            stream.map(|r| r.map(|t| Bytes::from(t.into())).map_err(log_error)),
            "text/plain; charset=utf-8",
        )
    }

    /// Binary chunks (`application/octet-stream`) from a stream of anything that becomes [`Bytes`].
    pub fn bytes<S, T, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        T: Into<Bytes>,
        E: Into<BoxError>,
    {
        use tokio_stream::StreamExt as _;
        Self::with_type(
            stream.map(|r| r.map(Into::into).map_err(log_error)),
            "application/octet-stream",
        )
    }

    /// Binary chunks (`application/octet-stream`) read from `reader`, up to
    /// [`READ_CHUNK_SIZE`] bytes at a time.
    pub fn reader<R>(reader: R) -> Self
    where
        R: AsyncRead + Send + 'static,
    {
        Self::bytes(ReaderStream::with_capacity(reader, READ_CHUNK_SIZE))
    }

    fn with_type<S>(stream: S, content_type: &'static str) -> Self
    where
        S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
    {
        Self {
            body: Body::from_stream(stream),
            content_type: HeaderValue::from_static(content_type),
        }
    }

    /// Replace the content type. An invalid header value keeps the previous one (and is logged).
    pub fn content_type(mut self, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(v) => self.content_type = v,
            Err(_) => tracing::warn!(value, "invalid content type ignored"),
        }
        self
    }

    /// The body alone.
    pub fn into_body(self) -> Body {
        self.body
    }
}

fn log_error<E: Into<BoxError>>(e: E) -> BoxError {
    let e = e.into();
    tracing::error!(error = %e, "stream failed; aborting the response");
    e
}

impl IntoResponse for Chunked {
    fn into_response(self) -> Response {
        let mut res = Response::new(self.body);
        res.headers_mut().insert(CONTENT_TYPE, self.content_type);
        res
    }
}
