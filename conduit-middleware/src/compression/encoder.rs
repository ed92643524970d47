//! The encoders: a body compressed frame by frame as it streams, and a body in memory
//! compressed at once.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::Level;
use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
use bytes::Bytes;
use conduit_core::http::header::HeaderMap;
use conduit_core::{Body, BoxError};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::Encoding;

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

/// `data` compressed at once: a body in memory goes out as one chunk with its
/// `Content-Length`, not chunked. `None` if the encoder fails (it does not, into memory;
/// the caller then sends the body uncompressed).
pub(super) fn encode_in_memory(encoding: Encoding, level: i32, data: &[u8]) -> Option<Bytes> {
    let mut encoder = Encoder::new(encoding, level);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let result = encoder
        .write(&mut cx, data)
        .and_then(|()| encoder.finish(&mut cx));
    match result {
        Ok(()) => Some(encoder.take()),
        Err(err) => {
            tracing::error!(encoding = encoding.as_str(), error = %err, "response compression failed; sending the body as is");
            None
        }
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
pub(super) struct EncodedBody {
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
    pub(super) fn new(inner: Body, encoding: Encoding, level: i32) -> Self {
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
