//! [`Timeout`]: answer `503 Service Unavailable` when the handler has not produced its
//! response head by a deadline, and cancel the handler.
//!
//! Like Go's `http.TimeoutHandler`: when the deadline passes, the handler's future is
//! **dropped** (its work stops at its current await point; nothing is left running) and the
//! client gets the configured status (503 by default; 408 or 504 for those who prefer them)
//! with a short text body. A response whose head was produced in time is not cut by this
//! deadline; [`body_timeout`](Timeout::body_timeout) separately limits how long its body may
//! stream (when it passes, the body ends with an error: the server closes the HTTP/1
//! connection or resets the HTTP/2 stream, and a line is logged).
//!
//! Per router: `router.with(Timeout::new(..))` (or [`Router::layer`](conduit_core::Router::layer)
//! to time route handlers only); per route: `get(handler.with(Timeout::new(..)))`.
//!
//! ```
//! use std::time::Duration;
//! use conduit_core::{Handler, HandlerExt, Request};
//! use conduit_middleware::Timeout;
//!
//! let app = (|_req: Request| async {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     "too late"
//! })
//! .with(Timeout::new(Duration::from_millis(10)));
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), 503);
//! # });
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use conduit_core::http::StatusCode;
use conduit_core::{Body, BoxError, Handler, Middleware, Request, Response};
use http_body::Frame;

use crate::request_id::{self, RequestIdValue};

/// The middleware: a deadline for the response head, and optionally for the body.
#[derive(Clone, Debug)]
pub struct Timeout {
    pub(crate) duration: Duration,
    status: StatusCode,
    message: Cow<'static, str>,
    body_timeout: Option<Duration>,
}

impl Timeout {
    /// Answer 503 when the handler has not answered within `duration`.
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: Cow::Borrowed("Service Unavailable: the request timed out"),
            body_timeout: None,
        }
    }

    /// Answer with `status` instead of 503 (e.g. 408 Request Timeout, 504 Gateway Timeout).
    #[must_use]
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The body of the timeout response (`text/plain`), and the `detail` of its problem when
    /// the app renders errors as problem+json (see `conduit_core::ErrorRenderer`).
    #[must_use]
    pub fn message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    /// Also limit how long a response body may stream, counted from when its head is ready.
    #[must_use]
    pub fn body_timeout(mut self, limit: Duration) -> Self {
        self.body_timeout = Some(limit);
        self
    }
}

impl<H: Handler> Middleware<H> for Timeout {
    type Output = TimeoutHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        TimeoutHandler {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}

/// The handler built by [`Timeout`].
#[derive(Clone)]
pub struct TimeoutHandler<H> {
    inner: H,
    config: Arc<Timeout>,
}

impl<H> fmt::Debug for TimeoutHandler<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutHandler")
            .field("config", &self.config)
            .finish()
    }
}

impl<H: Handler> Handler for TimeoutHandler<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        Deadline {
            inner: Some(self.inner.call(req)),
            start: tokio::time::Instant::now(),
            sleep: None,
            config: self.config.clone(),
        }
    }
}

/// `start + duration`, saturating: `Timeout::new(Duration::MAX)` means "never", not a panic
/// (`Instant + Duration` panics on overflow). Computed only when the timer is armed: the
/// futures keep the time the request arrived (`start`), most handlers answer before that.
pub(crate) fn deadline(start: tokio::time::Instant, duration: Duration) -> tokio::time::Instant {
    start
        .checked_add(duration)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 86_400))
}

impl Timeout {
    /// The handler answered in time: limit its body's duration when configured. (Inlined: most
    /// configurations have no body timeout.)
    #[inline]
    pub(crate) fn answered(&self, res: &mut Response) {
        if let Some(limit) = self.body_timeout
            && res.body().as_bytes().is_none()
        {
            limit_body(limit, res);
        }
    }

    /// The deadline passed (the handler's future is already dropped).
    #[cold]
    pub(crate) fn timed_out(&self) -> Response {
        let id = request_id::current();
        tracing::warn!(
            request_id = id.as_ref().map(RequestIdValue::as_str),
            timeout_ms = self.duration.as_millis() as u64,
            status = self.status.as_u16(),
            "handler did not answer in time; cancelled it"
        );
        conduit_core::Problem::with_message(self.status, self.message.clone()).into_error_response()
    }
}

/// Wrap a streamed body in a [`DeadlineBody`] of `limit`.
fn limit_body(limit: Duration, res: &mut Response) {
    let inner = std::mem::take(res.body_mut());
    *res.body_mut() = inner.observe(DeadlineBody {
        sleep: Box::pin(tokio::time::sleep(limit)),
        limit,
        // Polled after the request id's scope (see `request_id::current`): keep a copy.
        id: request_id::current(),
        expired: false,
    });
}

pin_project_lite::pin_project! {
    /// The handler's future, or the timeout response once `deadline` passes. Unlike
    /// `tokio::time::timeout`, the timer is only created (boxed, off the future's inline size)
    /// if `inner` is still pending after its first poll, so a handler that answers at once never
    /// touches the timer wheel. It builds the response itself (no `Result` to map afterwards:
    /// one layer of response moves less per request).
    struct Deadline<F> {
        #[pin]
        inner: Option<F>,
        // When the request arrived: the deadline is `start + duration`.
        start: tokio::time::Instant,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        config: Arc<Timeout>,
    }
}

impl<F: Future<Output = Response>> Future for Deadline<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(this.config.timed_out());
        };
        let mut out = inner.poll(cx);
        if let Poll::Ready(res) = &mut out {
            // Edited in place (see `MapResponse`).
            this.config.answered(res);
            return out;
        }
        let deadline = deadline(*this.start, this.config.duration);
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.inner.set(None); // cancel the handler now
                Poll::Ready(this.config.timed_out())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Ends a body with an error once its deadline passes.
struct DeadlineBody {
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    id: Option<RequestIdValue>,
    expired: bool,
}

impl conduit_core::BodyWrapper for DeadlineBody {
    fn poll_frame(
        &mut self,
        inner: Pin<&mut Body>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = http_body::Body::poll_frame(inner, cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            tracing::warn!(
                request_id = self.id.as_ref().map(RequestIdValue::as_str),
                body_timeout_ms = self.limit.as_millis() as u64,
                "response body streamed past its deadline; ending the response"
            );
            return Poll::Ready(Some(Err("response body timed out".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self, inner: &Body) -> bool {
        self.expired || http_body::Body::is_end_stream(inner)
    }
}
