//! [`Recovery`]: a panicking handler becomes a 500 and a log line; the server keeps serving.
//!
//! - A panic **before the response head** (while the handler's future runs) is caught: the
//!   client gets `500 Internal Server Error` with a short body (never the panic message), and
//!   an `error` event is logged with the panic message and the request id (when a
//!   [`RequestId`](crate::RequestId) runs outside).
//! - A panic **while the body streams** cannot change the status any more: the body ends with
//!   an error, so the server ends that response cleanly (HTTP/1: the connection is closed;
//!   HTTP/2: the stream is reset) and the panic is logged. Bodies already in memory cannot
//!   panic and are passed through untouched (no extra allocation).
//!
//! ```
//! use conduit_core::{Handler, HandlerExt, Request};
//! use conduit_middleware::Recovery;
//!
//! let app = (|req: Request| async move {
//!     if req.uri().path() == "/boom" {
//!         panic!("something broke");
//!     }
//!     "fine"
//! })
//! .with(Recovery::new());
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/boom").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), 500);
//! let res = app.call(Request::get("/").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), 200);
//! # });
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use conduit_core::http::{Method, StatusCode};
use conduit_core::{Body, BoxError, Handler, Middleware, Request, Response};
use http_body::Frame;

use crate::request_id::{self, RequestIdValue};

/// The middleware: catch panics (see the [module docs](self)).
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    _private: (),
}

impl Recovery {
    /// Catch panics of the wrapped handler and of the bodies it streams.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<H: Handler> Middleware<H> for Recovery {
    type Output = RecoveryHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        RecoveryHandler { inner }
    }
}

/// The handler built by [`Recovery`].
#[derive(Clone)]
pub struct RecoveryHandler<H> {
    inner: H,
}

impl<H> fmt::Debug for RecoveryHandler<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryHandler")
    }
}

pub use conduit_core::panic_message;

/// The 500 a panic becomes: a generic message (never the panic's), carrying its
/// [`Problem`](conduit_core::Problem) for the app's error renderer.
fn internal_error() -> Response {
    conduit_core::Problem::new(StatusCode::INTERNAL_SERVER_ERROR).into_error_response()
}

impl<H: Handler> Handler for RecoveryHandler<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let method = req.method().clone();
        let (inner, early) = call_guarded(&self.inner, req);
        CatchUnwind {
            inner,
            early,
            method,
        }
    }
}

/// `inner.call(req)`, or the panic of building the future (a handler that panics before its
/// first await point usually panics in `poll`, but a hand-written `call` can panic here).
pub(crate) type Guarded<F> = (Option<F>, Option<Box<dyn Any + Send>>);

#[inline]
pub(crate) fn call_guarded<H: Handler>(
    inner: &H,
    req: Request,
) -> Guarded<impl Future<Output = Response> + Send + use<H>> {
    match catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
        Ok(fut) => (Some(fut), None),
        Err(payload) => (None, Some(payload)),
    }
}

/// The handler panicked before its response head: log it (with the id of an outer
/// [`RequestId`](crate::RequestId), lent to the thread while it polls us), answer 500.
#[cold]
pub(crate) fn panicked(payload: &(dyn Any + Send), method: &Method) -> Response {
    let id = request_id::current();
    tracing::error!(
        request_id = id.as_ref().map(RequestIdValue::as_str),
        %method,
        panic = panic_message(payload),
        "handler panicked before its response head; answering 500"
    );
    internal_error()
}

/// Wrap a streaming body so a panic while it is polled ends the response instead of the
/// connection task. (Inlined: most bodies are in memory.)
#[inline]
pub(crate) fn guard_body(res: &mut Response) {
    if res.body().as_bytes().is_none() {
        guard_stream(res);
    } // in memory: polling it cannot panic
}

fn guard_stream(res: &mut Response) {
    let inner = std::mem::take(res.body_mut());
    *res.body_mut() = inner.observe(GuardedBody {
        // The body is polled after the request id's scope: keep a copy for the log line.
        id: request_id::current(),
        failed: false,
    });
}

pin_project_lite::pin_project! {
    /// The handler's future, with panics caught; `early` is a panic of `call` itself. It builds
    /// the 500 itself (no `Result` to map afterwards: one layer of response moves less).
    struct CatchUnwind<F> {
        #[pin]
        inner: Option<F>,
        early: Option<Box<dyn Any + Send>>,
        method: Method,
    }
}

impl<F: Future<Output = Response>> Future for CatchUnwind<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut this = self.project();
        if let Some(payload) = this.early.take() {
            return Poll::Ready(panicked(&*payload, this.method));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(panicked(&"polled after completion", this.method));
        };
        // The inner future writes its `Poll` straight into `out`, which is edited in place and
        // returned (see `MapResponse`): the response is not moved out of a `Result` and back.
        let mut out = Poll::Pending;
        match catch_unwind(AssertUnwindSafe(|| out = inner.poll(cx))) {
            Ok(()) => {
                if let Poll::Ready(res) = &mut out {
                    guard_body(res);
                }
                out
            }
            Err(payload) => {
                this.inner.set(None); // drop what is left of the handler now
                Poll::Ready(panicked(&*payload, this.method))
            }
        }
    }
}

/// Ends a streamed body with an error, instead of the connection task, if polling it panics.
struct GuardedBody {
    id: Option<RequestIdValue>,
    failed: bool,
}

impl conduit_core::BodyWrapper for GuardedBody {
    fn poll_frame(
        &mut self,
        inner: Pin<&mut Body>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match catch_unwind(AssertUnwindSafe(|| http_body::Body::poll_frame(inner, cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                self.failed = true;
                tracing::error!(
                    request_id = self.id.as_ref().map(RequestIdValue::as_str),
                    panic = panic_message(&*payload),
                    "response body panicked while streaming; ending the response"
                );
                Poll::Ready(Some(Err("response body panicked".into())))
            }
        }
    }

    fn is_end_stream(&self, inner: &Body) -> bool {
        self.failed || http_body::Body::is_end_stream(inner)
    }
}
