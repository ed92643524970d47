//! [`JsonArray`] and [`Ndjson`]: a `Stream` of serializable items written as one JSON array
//! (`[a,b,...]`) or as newline-delimited JSON, incrementally.
//!
//! Small items are coalesced into frames of about [`DEFAULT_FRAME_SIZE`] bytes, but an item is
//! never held back while the producer is pending: whatever is buffered goes out as soon as the
//! stream has nothing ready, so a slow producer's items reach the client one by one. The body
//! is polled only when the connection can take more (hyper's backpressure), so a slow client
//! makes the producer wait instead of the server buffering the stream.
//!
//! An error from the stream (or an item that fails to serialize) is logged and **aborts** the
//! response: HTTP/1 closes the connection without the final chunk, HTTP/2 resets the stream,
//! so a client can never take a truncated array for a complete one.
//!
//! ```
//! use conduit_core::{IntoResponse, Request};
//! use conduit_stream::JsonArray;
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct Item { id: u32 }
//!
//! async fn items(_req: Request) -> impl IntoResponse {
//!     let items = (0..3).map(|id| Ok::<_, std::convert::Infallible>(Item { id }));
//!     JsonArray::new(tokio_stream::iter(items)) // [{"id":0},{"id":1},{"id":2}]
//! }
//! # let _ = items;
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use conduit_core::{Body, BoxError, IntoResponse, Response};
use futures_core::Stream;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body::{Frame, SizeHint};
use serde::Serialize;

/// The size a frame is allowed to reach before it is sent even though more items are ready.
pub const DEFAULT_FRAME_SIZE: usize = 8 * 1024;

/// A JSON array response from a `Stream` of `Result<T: Serialize, E>`.
///
/// Content type `application/json`. See the [module docs](self) for coalescing and errors.
#[derive(Debug)]
pub struct JsonArray<S> {
    stream: S,
    frame_size: usize,
}

/// A newline-delimited JSON response (`application/x-ndjson`): one item per line.
///
/// Same coalescing and error handling as [`JsonArray`].
#[derive(Debug)]
pub struct Ndjson<S> {
    stream: S,
    frame_size: usize,
}

macro_rules! json_stream {
    ($ty:ident, $format:expr, $mime:expr) => {
        impl<S> $ty<S> {
            /// Stream the items of `stream`.
            pub fn new(stream: S) -> Self {
                Self {
                    stream,
                    frame_size: DEFAULT_FRAME_SIZE,
                }
            }

            /// Send a frame once it reaches `bytes` even if more items are ready
            /// (default [`DEFAULT_FRAME_SIZE`]; at least 1).
            pub fn frame_size(mut self, bytes: usize) -> Self {
                self.frame_size = bytes.max(1);
                self
            }

            /// The body alone, for callers that build their own response.
            pub fn into_body<T, E>(self) -> Body
            where
                S: Stream<Item = Result<T, E>> + Send + 'static,
                T: Serialize,
                E: Into<BoxError>,
            {
                Body::new(Coalesce::new(self.stream, $format, self.frame_size))
            }
        }

        impl<I: Iterator> $ty<Items<I>> {
            /// Stream the items of an iterator (a producer that is never pending: frames are
            /// cut at the frame size only).
            pub fn from_items<T: IntoIterator<IntoIter = I>>(items: T) -> Self {
                Self::new(Items(items.into_iter()))
            }
        }

        impl<S, T, E> IntoResponse for $ty<S>
        where
            S: Stream<Item = Result<T, E>> + Send + 'static,
            T: Serialize,
            E: Into<BoxError>,
        {
            fn into_response(self) -> Response {
                let mut res = Response::new(self.into_body());
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static($mime));
                res
            }
        }
    };
}

json_stream!(JsonArray, Format::Array, "application/json");
json_stream!(Ndjson, Format::Lines, "application/x-ndjson");

/// A `Stream` over an iterator that is always ready, made by `from_items`.
///
/// Unlike `tokio_stream::iter` it never yields to the scheduler by itself: the coalescing
/// body already returns after each frame.
#[derive(Debug)]
pub struct Items<I>(I);

impl<I: Iterator + Unpin> Stream for Items<I> {
    type Item = Result<I::Item, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next().map(Ok))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Array,
    Lines,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing written yet (the `[` is still to come).
    Start,
    /// At least the opening written; `items` say whether a comma is due.
    Items,
    /// The stream ended and the closing is in the buffer (or sent).
    Done,
}

pin_project_lite::pin_project! {
    /// The coalescing body behind [`JsonArray`] and [`Ndjson`].
    struct Coalesce<S> {
        #[pin]
        stream: S,
        buf: BytesMut,
        format: Format,
        state: State,
        items: u64,
        frame_size: usize,
    }
}

impl<S> Coalesce<S> {
    fn new(stream: S, format: Format, frame_size: usize) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            format,
            state: State::Start,
            items: 0,
            frame_size,
        }
    }
}

/// Take the buffered bytes as one frame.
fn take_frame(buf: &mut BytesMut) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    Poll::Ready(Some(Ok(Frame::data(buf.split().freeze()))))
}

impl<S, T, E> http_body::Body for Coalesce<S>
where
    S: Stream<Item = Result<T, E>>,
    T: Serialize,
    E: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.state == State::Start {
            *this.state = State::Items;
            if *this.format == Format::Array {
                this.buf.reserve(*this.frame_size + 64);
                this.buf.put_u8(b'[');
            }
        }
        loop {
            if *this.state == State::Done {
                return if this.buf.is_empty() {
                    Poll::Ready(None)
                } else {
                    take_frame(this.buf)
                };
            }
            if this.buf.len() >= *this.frame_size {
                return take_frame(this.buf);
            }
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(item))) => {
                    if this.buf.capacity() == this.buf.len() {
                        this.buf.reserve(*this.frame_size + 64);
                    }
                    let mark = this.buf.len();
                    if *this.format == Format::Array && *this.items > 0 {
                        this.buf.put_u8(b',');
                    }
                    if let Err(e) = serde_json::to_writer(this.buf.writer(), &item) {
                        this.buf.truncate(mark);
                        *this.state = State::Done;
                        this.buf.clear();
                        tracing::error!(error = %e, item = *this.items, "stream item failed to serialize; aborting the response");
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    if *this.format == Format::Lines {
                        this.buf.put_u8(b'\n');
                    }
                    *this.items += 1;
                }
                Poll::Ready(Some(Err(e))) => {
                    let e: BoxError = e.into();
                    tracing::error!(error = %e, items = *this.items, "stream failed; aborting the response");
                    *this.state = State::Done;
                    this.buf.clear();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    *this.state = State::Done;
                    if *this.format == Format::Array {
                        this.buf.put_u8(b']');
                    }
                }
                Poll::Pending => {
                    // Never hold an item back while the producer is pending.
                    return if this.buf.is_empty() {
                        Poll::Pending
                    } else {
                        take_frame(this.buf)
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done && self.buf.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::convert::Infallible;

    async fn collect(body: Body) -> Result<String, BoxError> {
        let bytes = body.collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn items(n: u32) -> impl Stream<Item = Result<u32, Infallible>> + Send {
        tokio_stream::iter((0..n).map(Ok))
    }

    #[tokio::test]
    async fn arrays_and_lines() {
        assert_eq!(
            collect(JsonArray::new(items(0)).into_body()).await.unwrap(),
            "[]"
        );
        assert_eq!(
            collect(JsonArray::new(items(3)).into_body()).await.unwrap(),
            "[0,1,2]"
        );
        assert_eq!(
            collect(Ndjson::new(items(0)).into_body()).await.unwrap(),
            ""
        );
        assert_eq!(
            collect(Ndjson::new(items(2)).into_body()).await.unwrap(),
            "0\n1\n"
        );
    }

    #[tokio::test]
    async fn frames_are_coalesced_up_to_the_frame_size() {
        let mut body = JsonArray::from_items(0..10_000u32)
            .frame_size(1024)
            .into_body();
        let mut frames = 0;
        let mut text = Vec::new();
        while let Some(f) = body.frame().await {
            let data = f.unwrap().into_data().unwrap();
            assert!(data.len() < 1024 + 16, "frame of {} bytes", data.len());
            text.extend_from_slice(&data);
            frames += 1;
        }
        let parsed: Vec<u32> = serde_json::from_slice(&text).unwrap();
        assert_eq!(parsed.len(), 10_000);
        assert!(frames < 100, "{frames} frames for ~50 KiB");
    }

    #[tokio::test]
    async fn an_error_ends_the_body_with_an_error() {
        let s = tokio_stream::iter(vec![Ok(1), Err("boom"), Ok(3)]);
        let mut body = JsonArray::new(s).into_body();
        // what was buffered is dropped with the error: the response is aborted anyway
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());
    }
}
