//! [`Body`]: the one body type for requests and responses.
//!
//! A `Body` is empty, a single buffer, or a stream of chunks. It implements
//! [`http_body::Body`] with exact size hints, so the server can send `Content-Length`
//! and middleware (compression, HEAD, ETag) can skip work when the size is known.
//!
//! ```
//! use conduit_core::Body;
//! use http_body::Body as _;
//!
//! let body = Body::from("hello");
//! assert_eq!(body.size_hint().exact(), Some(5));
//! assert!(Body::empty().is_end_stream());
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Frame, SizeHint};

use crate::BoxError;
use crate::sendfile::SendfileGrant;

type DynBody = Pin<Box<dyn ErasedBody>>;

/// The boxed body of a [`Kind::Stream`]: any body, plus whether it is a file body whose grant
/// the server may fill (see [`crate::sendfile`]). Only [`FileStream`] says it is.
trait ErasedBody: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static {
    fn sendfile_grant(&self) -> Option<&SendfileGrant> {
        None
    }

    /// The whole body, when it is also held in memory and not yet polled.
    fn held(&self) -> Option<&Bytes> {
        None
    }
}

impl<W, B> ErasedBody for WrappedBody<W, B> where
    WrappedBody<W, B>: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static
{
}

/// A [file body](Body::file): `read` produces its bytes, and may hand spans of the file to the
/// connection once the server fills `grant`.
struct FileStream {
    read: DynBody,
    grant: SendfileGrant,
    /// The file's bytes, when the body holds them in memory too ([`Body::file_held`]); gone
    /// once the body is polled.
    held: Option<Bytes>,
}

impl http_body::Body for FileStream {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.held = None;
        self.read.as_mut().poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.read.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.read.size_hint()
    }
}

impl ErasedBody for FileStream {
    fn sendfile_grant(&self) -> Option<&SendfileGrant> {
        Some(&self.grant)
    }

    fn held(&self) -> Option<&Bytes> {
        self.held.as_ref()
    }
}

/// A request or response body.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Bytes),
    /// Any other body; a [file body](Body::file) is a [`FileStream`].
    Stream(DynBody),
}

impl Body {
    /// A body with no bytes.
    pub const fn empty() -> Self {
        Self { kind: Kind::Empty }
    }

    /// A body of one buffer (sent with an exact `Content-Length`).
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::empty()
        } else {
            Self {
                kind: Kind::Full(bytes),
            }
        }
    }

    /// Wrap any [`http_body::Body`] whose chunks are [`Bytes`].
    ///
    /// A `Body` passed here is returned as it is (no second box): generic code, such as the
    /// tower adapters, can call `Body::new` on whatever body type it holds and pay nothing when
    /// that type is already a conduit `Body`.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // The type check is on constants once monomorphized: no cost for either branch.
        let mut slot = Some(body);
        if let Some(b) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
            return b.take().expect("just set");
        }
        Self {
            kind: Kind::Stream(Box::pin(WrappedBody::new(
                slot.take().expect("just set"),
                MapErr,
            ))),
        }
    }

    /// A streaming body from a [`Stream`] of chunks (sent chunked, or as HTTP/2 DATA frames).
    pub fn from_stream<S, T, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        T: Into<Bytes>,
        E: Into<BoxError>,
    {
        Self {
            kind: Kind::Stream(Box::pin(StreamBody { stream })),
        }
    }

    /// A body read from a file by `read`, which may send spans of the file with `sendfile`
    /// through `grant` once the server gives it (see [`crate::sendfile`]).
    ///
    /// It stays a file body when only [observers](Self::observe) wrap it. Any other wrapping
    /// (`Body::new` of a wrapper, a body that transforms it) makes it an ordinary stream, whose
    /// grant the server never sees: such a body is always read, never sent by reference.
    pub fn file<B>(read: B, grant: SendfileGrant) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::file_stream(read, grant, None)
    }

    /// A [file body](Self::file) whose bytes are held in memory too: `data`, what `read`
    /// produces (from memory, or from the file with `sendfile` once granted). [`as_bytes`]
    /// returns `data` until the body is polled, so middleware that work on bodies in memory
    /// (compression, ETag) treat it as such.
    ///
    /// [`as_bytes`]: Self::as_bytes
    pub fn file_held<B>(data: Bytes, read: B, grant: SendfileGrant) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::file_stream(read, grant, Some(data))
    }

    fn file_stream<B>(read: B, grant: SendfileGrant, held: Option<Bytes>) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let read = match Self::new(read).kind {
            Kind::Empty => return Self::empty(),
            Kind::Full(b) => Box::pin(WrappedBody::new(Self::full(b), MapErr)),
            Kind::Stream(s) => s,
        };
        Self {
            kind: Kind::Stream(Box::pin(FileStream { read, grant, held })),
        }
    }

    /// The grant of a [file body](Self::file) that reached here unchanged, or seen only
    /// through [observers](Self::observe); `None` for every other body.
    pub fn sendfile_grant(&self) -> Option<&SendfileGrant> {
        match &self.kind {
            Kind::Stream(s) => s.sendfile_grant(),
            _ => None,
        }
    }

    /// This body seen through `wrapper`, a [`BodyWrapper`] that only *observes* the body:
    /// each data frame it returns is the very frame it got from the inner body, unchanged
    /// (it may count, log, time or end the body early with an error). A
    /// [file body](Self::file) stays one, so the server can still send it with `sendfile`
    /// (whose data frames stand for spans of the file: their bytes are not the file's and must
    /// not be read). For a wrapper that changes the data, use `Body::new(WrappedBody::new(..))`.
    pub fn observe<W>(self, wrapper: W) -> Self
    where
        W: BodyWrapper + Send + 'static,
    {
        let held = match &self.kind {
            Kind::Stream(s) => s.held().cloned(),
            _ => None,
        };
        match self.sendfile_grant().cloned() {
            Some(grant) => {
                let read = Box::pin(WrappedBody::new(self, wrapper));
                Self {
                    kind: Kind::Stream(Box::pin(FileStream { read, grant, held })),
                }
            }
            None => Self::new(WrappedBody::new(self, wrapper)),
        }
    }

    /// The bytes of a body held in memory, without consuming it; `None` for streams.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Empty => Some(&[]),
            Kind::Full(b) => Some(b),
            Kind::Stream(s) => s.held().map(|b| &b[..]),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("Body::Empty"),
            Kind::Full(b) => f.debug_tuple("Body::Full").field(&b.len()).finish(),
            Kind::Stream(s) => match s.sendfile_grant() {
                None => f.write_str("Body::Stream"),
                Some(grant) => f.debug_tuple("Body::File").field(grant).finish(),
            },
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(_) => match std::mem::replace(&mut self.kind, Kind::Empty) {
                Kind::Full(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                _ => unreachable!("checked above"),
            },
            Kind::Stream(s) => s.as_mut().poll_frame(cx),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(_) => false,
            Kind::Stream(s) => s.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.len() as u64),
            Kind::Stream(s) => s.size_hint(),
        }
    }
}

macro_rules! body_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Body {
            fn from(v: $t) -> Self { Self::full(v) }
        }
    )*};
}
body_from!(Bytes, Vec<u8>, String, &'static str, &'static [u8]);

impl From<std::borrow::Cow<'static, str>> for Body {
    fn from(v: std::borrow::Cow<'static, str>) -> Self {
        match v {
            std::borrow::Cow::Borrowed(s) => Self::full(s),
            std::borrow::Cow::Owned(s) => Self::full(s),
        }
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Self {
        Self::empty()
    }
}

/// Forwards everything: [`Body::new`]'s wrapper for a body whose error is not yet a
/// [`BoxError`].
struct MapErr;

impl<B> BodyWrapper<B> for MapErr
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
}

impl<S, T, E> ErasedBody for StreamBody<S>
where
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: Into<Bytes>,
    E: Into<BoxError>,
{
}

pin_project_lite::pin_project! {
    struct StreamBody<S> {
        #[pin]
        stream: S,
    }
}

impl<S, T, E> http_body::Body for StreamBody<S>
where
    S: Stream<Item = Result<T, E>>,
    T: Into<Bytes>,
    E: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut stream = self.project().stream;
        loop {
            return match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let chunk: Bytes = chunk.into();
                    if chunk.is_empty() {
                        continue; // an empty chunk would end a chunked HTTP/1 body early
                    }
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

/// What a body wrapper adds to the body it wraps; [`WrappedBody`] forwards everything else.
///
/// Middleware that watches or limits a response body (count its bytes, log when it ends, end
/// it on a deadline or a panic) implements only the methods it changes: by default
/// `poll_frame`, `is_end_stream` and `size_hint` are the inner body's, with errors boxed.
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use conduit_core::{Body, BodyWrapper, BoxError, WrappedBody};
/// use conduit_core::bytes::Bytes;
/// use http_body::{Body as _, Frame};
///
/// /// Counts the bytes sent.
/// struct Count(u64);
///
/// impl BodyWrapper for Count {
///     fn poll_frame(
///         &mut self,
///         inner: Pin<&mut Body>,
///         cx: &mut Context<'_>,
///     ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
///         let polled = inner.poll_frame(cx);
///         if let Poll::Ready(Some(Ok(frame))) = &polled {
///             self.0 += frame.data_ref().map_or(0, |d| d.len() as u64);
///         }
///         polled
///     }
/// }
///
/// let body = WrappedBody::new(Body::from("hello"), Count(0));
/// assert_eq!(body.size_hint().exact(), Some(5)); // forwarded
/// let body = Body::new(body);
/// ```
pub trait BodyWrapper<B = Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// The next frame; by default the inner body's.
    #[inline]
    fn poll_frame(
        &mut self,
        inner: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        inner
            .poll_frame(cx)
            .map(|o| o.map(|r| r.map_err(Into::into)))
    }

    /// Whether the body has ended; by default the inner body's answer.
    #[inline]
    fn is_end_stream(&self, inner: &B) -> bool {
        inner.is_end_stream()
    }

    /// The size of what is left; by default the inner body's.
    #[inline]
    fn size_hint(&self, inner: &B) -> SizeHint {
        inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A body `B` (a [`Body`] unless named) seen through a [`BodyWrapper`] `W`.
    pub struct WrappedBody<W, B = Body> {
        #[pin]
        inner: B,
        wrapper: W,
    }
}

impl<W, B> WrappedBody<W, B> {
    /// `inner`, seen through `wrapper`.
    #[inline]
    pub fn new(inner: B, wrapper: W) -> Self {
        Self { inner, wrapper }
    }

    /// The wrapper.
    pub fn wrapper(&self) -> &W {
        &self.wrapper
    }

    /// The wrapped body.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<W, B> fmt::Debug for WrappedBody<W, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedBody")
            .field("wrapper", &std::any::type_name::<W>())
            .finish_non_exhaustive()
    }
}

impl<W, B> http_body::Body for WrappedBody<W, B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    W: BodyWrapper<B>,
{
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        this.wrapper.poll_frame(this.inner, cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.wrapper.is_end_stream(&self.inner)
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.wrapper.size_hint(&self.inner)
    }
}

/// Read a whole body into memory, failing with 413 once it exceeds `limit` bytes.
///
/// A body whose declared size (`Content-Length`) is already over the limit is refused
/// before any byte is read. Errors carried by the body (a conduit [`Error`](crate::Error),
/// e.g. the server's 408 on a read timeout) keep their status; others become 400.
pub async fn to_bytes(body: Body, limit: usize) -> Result<Bytes, crate::Error> {
    use http_body::Body as _;
    let too_large = || {
        crate::Error::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    if let Kind::Full(b) = &body.kind {
        return Ok(b.clone());
    }
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(crate::Error::from_boxed)?;
        let Ok(data) = frame.into_data() else {
            continue;
        }; // trailers are ignored
        len += data.len();
        if len > limit {
            return Err(too_large());
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            Some(f) => {
                buf.reserve(f.len() + data.len());
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
            None => buf.extend_from_slice(&data),
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(buf)))
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::pin::pin;

    use super::*;
    use http_body::Body as _;

    /// Ends the body after `left` more data frames, whatever the inner body has left.
    struct Take {
        left: usize,
    }

    impl BodyWrapper for Take {
        fn poll_frame(
            &mut self,
            inner: Pin<&mut Body>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            inner.poll_frame(cx)
        }

        fn is_end_stream(&self, inner: &Body) -> bool {
            self.left == 0 || inner.is_end_stream()
        }

        fn size_hint(&self, _inner: &Body) -> SizeHint {
            SizeHint::default()
        }
    }

    /// Changes nothing.
    struct Same;

    impl BodyWrapper for Same {}

    fn chunks(n: usize) -> Body {
        let items = (0..n).map(|i| Ok::<_, BoxError>(Bytes::from(i.to_string())));
        Body::from_stream(StreamOf(items.collect()))
    }

    struct StreamOf(std::collections::VecDeque<Result<Bytes, BoxError>>);

    impl Stream for StreamOf {
        type Item = Result<Bytes, BoxError>;
        fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    async fn collect(body: impl http_body::Body<Data = Bytes, Error = BoxError>) -> Vec<Bytes> {
        let mut body = pin!(body);
        let mut out = Vec::new();
        while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            out.push(frame.unwrap().into_data().unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_wrapper_that_changes_nothing_forwards_everything() {
        let body = WrappedBody::new(Body::from("hello"), Same);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        assert_eq!(collect(body).await, vec![Bytes::from("hello")]);
        assert!(WrappedBody::new(Body::empty(), Same).is_end_stream());
    }

    #[tokio::test]
    async fn a_wrapper_overrides_only_what_it_implements() {
        let body = WrappedBody::new(chunks(5), Take { left: 2 });
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(
            collect(body).await,
            vec![Bytes::from("0"), Bytes::from("1")]
        );
        assert!(WrappedBody::new(chunks(5), Take { left: 0 }).is_end_stream());
    }

    #[test]
    fn body_new_keeps_the_size_of_a_foreign_body() {
        let body = Body::new(http_body_util::Full::new(Bytes::from_static(b"abc")));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(body.as_bytes().is_none());
    }
}
