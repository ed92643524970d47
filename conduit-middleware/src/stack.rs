//! [`Stack`]: the recommended stack — [`RequestId`], [`Logging`], [`Recovery`](crate::Recovery), [`Timeout`],
//! [`Compression`], in that order — as one middleware with one future.
//!
//! It behaves exactly like the five layers composed in the recommended order (see the crate
//! docs for why that order): the same id handling, log event, panic and timeout answers,
//! compression and `Vary`. It is built from the same functions as those layers, so the two
//! cannot drift apart. What it saves is the glue: five nested futures become one (one move of
//! the request and of the response instead of five, one shared config instead of a copy per
//! layer): about 0.65k of the 2.65k user-space instructions the composed stack adds to a request.
//! Compose the layers yourself when you want a different order, to leave one out, or to put
//! other middleware between them.
//!
//! ```
//! use std::time::Duration;
//! use conduit_core::{Handler, HandlerExt, Request, Router, get};
//! use conduit_middleware::{Compression, Logging, RequestId, Stack, Timeout};
//! use tracing::Level;
//!
//! let app = Router::new()
//!     .route("/", get(|_req: Request| async { "Hello, World!" }))
//!     .with(
//!         Stack::new()
//!             .timeout(Timeout::new(Duration::from_secs(10)))
//!             .logging(Logging::new().client_error_level(Level::DEBUG)),
//!     );
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), 200);
//! assert!(res.headers().contains_key("x-request-id"));
//! assert_eq!(res.headers()["vary"], "accept-encoding");
//! # });
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use conduit_core::http::Method;
use conduit_core::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use conduit_core::{Handler, Middleware, Request, Response};

use crate::compression::{Decision, compress_response, identity_response};
use crate::logging::Started;
use crate::recovery::{call_guarded, guard_body, panicked};
use crate::request_id::{Lent, RequestIdValue, assign_incoming, echo};
use crate::timeout::deadline;
use crate::{Compression, Logging, RequestId, Timeout};

/// The recommended middleware stack as one layer; see the [module docs](self).
///
/// Defaults: [`RequestId::new`], [`Logging::new`], [`Timeout::new`] of 30 seconds and
/// [`Compression::new`]; [`Recovery`](crate::Recovery) has nothing to configure.
#[derive(Clone, Debug)]
pub struct Stack {
    request_id: RequestId,
    logging: Logging,
    timeout: Timeout,
    compression: Compression,
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

impl Stack {
    /// The stack with every layer's defaults and a 30-second handler timeout.
    pub fn new() -> Self {
        Self {
            request_id: RequestId::new(),
            logging: Logging::new(),
            timeout: Timeout::new(Duration::from_secs(30)),
            compression: Compression::new(),
        }
    }

    /// Configure the request id layer (e.g. its header name).
    #[must_use]
    pub fn request_id(mut self, request_id: RequestId) -> Self {
        self.request_id = request_id;
        self
    }

    /// Configure the logging layer (levels per status class).
    #[must_use]
    pub fn logging(mut self, logging: Logging) -> Self {
        self.logging = logging;
        self
    }

    /// Configure the timeout layer (deadline, status, message, body timeout).
    #[must_use]
    pub fn timeout(mut self, timeout: Timeout) -> Self {
        self.timeout = timeout;
        self
    }

    /// Configure the compression layer (codings, levels, minimum size, content types).
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
}

impl<H: Handler> Middleware<H> for Stack {
    type Output = StackHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        StackHandler {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}

/// A handler behind [`Stack`].
#[derive(Clone)]
pub struct StackHandler<H> {
    inner: H,
    config: Arc<Stack>,
}

impl<H> fmt::Debug for StackHandler<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackHandler")
            .field("config", &self.config)
            .finish()
    }
}

impl<H: Handler> Handler for StackHandler<H> {
    fn call(&self, mut req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let config = &*self.config;
        // 1. request id, 2. logging (it reads the id), then what the inner layers note.
        let (incoming, accept_encoding) = scan(req.headers(), &config.request_id.header);
        let id = assign_incoming(&config.request_id.header, incoming, &mut req);
        let log = config.logging.start(&mut req);
        let method = req.method().clone();
        let compression = Decision::new(&config.compression.order, &mut req, accept_encoding);
        let start = tokio::time::Instant::now(); // the timeout counts from here
        // 3. recovery: building the handler's future may panic too.
        let (inner, early) = call_guarded(&self.inner, req);
        StackFuture {
            inner,
            early,
            sleep: None,
            start,
            id: Some(id),
            log,
            method,
            compression,
            config: self.config.clone(),
        }
    }
}

/// One pass over the request's header names for what the layers look up: the first value under
/// the request id's header (what `HeaderMap::get` returns; looked up only when the name is
/// there) and whether `Accept-Encoding` is there. A request has a handful of headers, and each
/// `HeaderMap` lookup hashes the name (the id's is a custom name: its bytes), so comparing names
/// is cheaper than two lookups.
#[inline]
fn scan(headers: &HeaderMap, id_header: &HeaderName) -> (Option<HeaderValue>, bool) {
    let mut has_id = false;
    let mut accept_encoding = false;
    for name in headers.keys() {
        has_id |= name == id_header;
        accept_encoding |= name == header::ACCEPT_ENCODING;
    }
    let id = if has_id {
        headers.get(id_header).cloned()
    } else {
        None
    };
    (id, accept_encoding)
}

pin_project_lite::pin_project! {
    /// The one future of [`StackHandler`]: the five layers' per-request state side by side.
    struct StackFuture<F> {
        #[pin]
        inner: Option<F>,
        // Recovery: a panic of `call` itself.
        early: Option<Box<dyn Any + Send>>,
        // Timeout: armed on the first `Pending`.
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        // When the request arrived: the deadline is `start + duration`.
        start: tokio::time::Instant,
        id: Option<RequestIdValue>,
        log: Started,
        method: Method,
        compression: Decision,
        config: Arc<Stack>,
    }
}

impl<F: Future<Output = Response>> Future for StackFuture<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut this = self.project();
        let config = &**this.config;
        // One `Poll<Response>` for every path, edited in place and returned: the response is
        // written once by the handler and not moved between the layers' steps.
        let mut out = Poll::Pending;
        {
            // 1. The id is lent to the thread while the layers below run (`request_id::current`).
            let _lent = Lent::new(this.id);
            // 3. Recovery around 4. timeout and 5. compression, as in the composed stack.
            if let Some(payload) = this.early.take() {
                out = Poll::Ready(panicked(&*payload, this.method));
            } else if this.inner.is_none() {
                out = Poll::Ready(panicked(&"polled after completion", this.method));
            } else {
                let caught = catch_unwind(AssertUnwindSafe(|| {
                    let inner = this.inner.as_mut().as_pin_mut().expect("checked above");
                    out = inner.poll(cx);
                    if let Poll::Ready(res) = &mut out {
                        // 5. then 4., inner to outer.
                        let decision = *this.compression;
                        if decision.coding().is_none() {
                            identity_response(decision.head(), res);
                        } else {
                            compress_response(Some(&config.compression), decision, res);
                        }
                        config.timeout.answered(res);
                        return;
                    }
                    let deadline = deadline(*this.start, config.timeout.duration);
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        this.inner.set(None); // cancel the handler now
                        out = Poll::Ready(config.timeout.timed_out());
                    }
                }));
                match caught {
                    Ok(()) => {
                        if let Poll::Ready(res) = &mut out {
                            guard_body(res);
                        }
                    }
                    Err(payload) => {
                        this.inner.set(None); // drop what is left of the handler now
                        out = Poll::Ready(panicked(&*payload, this.method));
                    }
                }
            }
        }
        if let Poll::Ready(res) = &mut out {
            // 2. then 1.
            config.logging.finish(this.log.take(), res);
            if let Some(id) = this.id.take() {
                echo(&config.request_id.header, id, res);
            }
        }
        out
    }
}
