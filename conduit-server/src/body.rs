//! The request body as handlers see it: hyper's `Incoming`, held to the server's
//! `max_body_bytes` (413) and `read_timeout` (408).
//!
//! Both limits surface as a [`conduit_core::Error`] inside the body stream, so
//! `req.bytes().await` and friends answer with the right status, and a handler streaming the
//! body by hand sees the same error. The deadline timer is created only if the body is
//! actually polled and not ready, so requests without a body pay nothing.

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use conduit_core::http::StatusCode;
use conduit_core::{Body, BodyWrapper, BoxError, Error, WrappedBody};
use http_body::{Body as _, Frame};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// Wrap a request body; bodies known to be empty become [`Body::empty`] without allocating.
pub(crate) fn request_body(
    incoming: Incoming,
    limit: u64,
    deadline: impl FnOnce() -> Instant,
    peer: SocketAddr,
) -> Body {
    if incoming.is_end_stream() {
        return Body::empty();
    }
    Body::new(WrappedBody::new(
        incoming,
        Limited {
            limit,
            read: 0,
            deadline: deadline(),
            sleep: None,
            peer,
        },
    ))
}

/// What [`request_body`] adds to hyper's `Incoming`: the size limit and the deadline.
struct Limited {
    limit: u64,
    read: u64,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    /// For the log line of a rejection.
    peer: SocketAddr,
}

impl Limited {
    #[cold]
    fn too_large(&self) -> BoxError {
        tracing::info!(
            peer = %self.peer,
            status = 413,
            limit = self.limit,
            "rejected request body: larger than max_body_bytes (413)"
        );
        Box::new(Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is larger than the limit of {} bytes",
                self.limit
            ),
        ))
    }
}

impl BodyWrapper<Incoming> for Limited {
    fn poll_frame(
        &mut self,
        mut inner: Pin<&mut Incoming>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if inner.size_hint().lower() > self.limit {
            return Poll::Ready(Some(Err(self.too_large())));
        }
        match inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.read += data.len() as u64;
                    if self.read > self.limit {
                        return Poll::Ready(Some(Err(self.too_large())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(
                Error::bad_request("could not read the request body").with_source(e),
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = self.deadline;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(sleep.as_mut().poll(cx));
                tracing::info!(
                    peer = %self.peer,
                    status = 408,
                    "rejected request body: not received within read_timeout (408)"
                );
                Poll::Ready(Some(Err(Box::new(Error::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive within the read timeout",
                )))))
            }
        }
    }
}
