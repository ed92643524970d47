//! [`Logging`]: one structured `tracing` event per request, when the response completes.
//!
//! The event (target `conduit_middleware::logging`, message `request`) has these fields:
//!
//! | field | value |
//! | --- | --- |
//! | `method` | `GET`, `POST`, ... |
//! | `path` | the request path as received (no query string: it may hold secrets) |
//! | `route` | the matched route template (`/users/{id}`, from [`MatchedPath`]); absent for 404/405 |
//! | `status` | the response status code |
//! | `latency_us` | microseconds from the request's arrival here to the response's completion |
//! | `bytes` | response body bytes sent (after compression, when [`Compression`](crate::Compression) runs inside) |
//! | `request_id` | from [`RequestId`](crate::RequestId), when it runs outside |
//! | `version` | `HTTP/1.1`, `HTTP/2.0`, ... |
//! | `peer` | the client's address, when the server provides it ([`ConnectInfo`](conduit_core::ConnectInfo)) |
//! | `completed` | `false` when a streamed body ended early (error, client gone) |
//!
//! "Completes" means: for a body held in memory, when the head is ready (its size is known and
//! it leaves in one write); for a streamed body, when its last frame has been sent or it is
//! dropped (aborted).
//!
//! The level follows the status class, configurable: `INFO` for 1xx-4xx and `ERROR` for 5xx by
//! default. A client error is the client's fault (a scanner probing paths, a malformed body), so
//! it is no warning for the operator; [`Logging::client_error_level`] raises (or lowers) it. This
//! event is the request's one line: conduit-core's [`Error`](conduit_core::Error) logs a 4xx it
//! answers at `DEBUG` only (with its reason), and the other middleware log client faults at
//! `DEBUG`. When no configured level is enabled for the target, the middleware
//! does nothing per request (no clock read, no formatting, no allocation); when only some are,
//! a response whose level is disabled is passed through untouched.
//!
//! Wrap the **whole router** (`router.with(Logging::new())`) so 404 and 405 are logged too; the
//! router still records the matched route on the response.
//!
//! ```
//! use conduit_core::{Handler, HandlerExt, Request, Router, get};
//! use conduit_middleware::Logging;
//! use tracing::Level;
//!
//! let app = Router::new()
//!     .route("/users/{id}", get(|_req: Request| async { "hi" }))
//!     .with(Logging::new().client_error_level(Level::DEBUG));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/users/7").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), 200);
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use conduit_core::http::{Method, StatusCode, Uri, Version};
use conduit_core::{
    Body, BoxError, Handler, MatchedPath, Middleware, RecordMatchedPath, Request, RequestExt,
    Response,
};
use http_body::Frame;
use tracing::Level;
use tracing::level_filters::LevelFilter;

use crate::future::MapResponse;
use crate::request_id::RequestIdValue;

/// The middleware: one event per request (see the [module docs](self)).
#[derive(Clone, Copy, Debug)]
pub struct Logging {
    success: Level,
    client_error: Level,
    server_error: Level,
}

impl Default for Logging {
    fn default() -> Self {
        Self::new()
    }
}

impl Logging {
    /// `INFO` for 1xx-4xx, `ERROR` for 5xx.
    pub fn new() -> Self {
        Self {
            success: Level::INFO,
            client_error: Level::INFO,
            server_error: Level::ERROR,
        }
    }

    /// The level of 1xx, 2xx and 3xx responses.
    #[must_use]
    pub fn success_level(mut self, level: Level) -> Self {
        self.success = level;
        self
    }

    /// The level of 4xx responses (default `INFO`; `WARN` to be told of every client error,
    /// `DEBUG` to keep them out of an `INFO` log).
    #[must_use]
    pub fn client_error_level(mut self, level: Level) -> Self {
        self.client_error = level;
        self
    }

    /// The level of 5xx responses.
    #[must_use]
    pub fn server_error_level(mut self, level: Level) -> Self {
        self.server_error = level;
        self
    }

    fn level_for(&self, status: StatusCode) -> Level {
        if status.is_server_error() {
            self.server_error
        } else if status.is_client_error() {
            self.client_error
        } else {
            self.success
        }
    }

    /// The least verbose of the configured levels: when it is disabled, so are the others.
    fn least_verbose(&self) -> Level {
        self.success.min(self.client_error).min(self.server_error)
    }
}

impl<H: Handler> Middleware<H> for Logging {
    type Output = LoggingHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        LoggingHandler {
            inner,
            config: *self,
        }
    }
}

/// The handler built by [`Logging`].
#[derive(Clone)]
pub struct LoggingHandler<H> {
    inner: H,
    config: Logging,
}

impl<H> fmt::Debug for LoggingHandler<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggingHandler")
            .field("config", &self.config)
            .finish()
    }
}

/// Whether events at `level` of this module's target are enabled (one cached callsite check).
#[inline]
fn enabled(level: Level) -> bool {
    if level == Level::ERROR {
        tracing::enabled!(Level::ERROR)
    } else if level == Level::WARN {
        tracing::enabled!(Level::WARN)
    } else if level == Level::INFO {
        tracing::enabled!(Level::INFO)
    } else if level == Level::DEBUG {
        tracing::enabled!(Level::DEBUG)
    } else {
        tracing::enabled!(Level::TRACE)
    }
}

/// What is known when the request arrives.
pub(crate) struct RequestInfo {
    method: Method,
    uri: Uri,
    version: Version,
    request_id: Option<RequestIdValue>,
    peer: Option<SocketAddr>,
    start: Instant,
}

/// What is known when the response head is ready.
struct Event {
    req: RequestInfo,
    level: Level,
    status: StatusCode,
    route: Option<MatchedPath>,
}

impl Event {
    fn emit(&self, bytes: u64, completed: bool) {
        let latency_us = self.req.start.elapsed().as_micros() as u64;
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    method = %self.req.method,
                    path = self.req.uri.path(),
                    route = self.route.as_ref().map(MatchedPath::as_str),
                    status = self.status.as_u16(),
                    latency_us,
                    bytes,
                    request_id = self.req.request_id.as_ref().map(RequestIdValue::as_str),
                    version = ?self.req.version,
                    peer = self.req.peer.map(tracing::field::display),
                    completed,
                    "request"
                )
            };
        }
        let level = self.level;
        if level == Level::ERROR {
            event!(Level::ERROR)
        } else if level == Level::WARN {
            event!(Level::WARN)
        } else if level == Level::INFO {
            event!(Level::INFO)
        } else if level == Level::DEBUG {
            event!(Level::DEBUG)
        } else {
            event!(Level::TRACE)
        }
    }
}

impl<H: Handler> Handler for LoggingHandler<H> {
    fn call(&self, mut req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let config = self.config;
        let info = config.start(&mut req);
        MapResponse::new(self.inner.call(req), move |res: &mut Response| {
            config.finish(info, res)
        })
    }
}

/// What [`Logging::start`] keeps of the request for the event.
pub(crate) type Started = Option<Box<RequestInfo>>;

impl Logging {
    /// Before the handler: note what the event needs (nothing when no configured level is
    /// enabled; when only some are, e.g. `ERROR` alone, every request is noted, since its
    /// status is not known yet).
    /// Inlined: with logging off, a request pays only for the check.
    #[inline]
    pub(crate) fn start(&self, req: &mut Request) -> Started {
        let level = self.least_verbose();
        // The global maximum level first (one relaxed load, what `enabled!` also starts with):
        // when nothing listens, that is all a request pays.
        if level > LevelFilter::current() || !enabled(level) {
            return None;
        }
        Some(Self::record(req))
    }

    fn record(req: &mut Request) -> Box<RequestInfo> {
        // Boxed: the future stays small (it is moved by every layer above) when logging is off.
        let info = Box::new(RequestInfo {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            request_id: req.extensions().get::<RequestIdValue>().cloned(),
            peer: req.connect_info().map(|c| c.peer_addr()),
            start: Instant::now(),
        });
        // Around a router: ask it to hand the matched template back on the response.
        req.extensions_mut().insert(RecordMatchedPath);
        info
    }

    /// On the response head: log now (in-memory body) or when the body ends. Inlined: with
    /// logging off there is nothing to do.
    #[inline]
    pub(crate) fn finish(self, info: Started, res: &mut Response) {
        if let Some(req) = info {
            self.log(req, res);
        }
    }

    fn log(self, req: Box<RequestInfo>, res: &mut Response) {
        let level = self.level_for(res.status());
        if !enabled(level) {
            return;
        }
        let event = Event {
            req: *req,
            level,
            status: res.status(),
            route: res.extensions().get::<MatchedPath>().cloned(),
        };
        if let Some(bytes) = res.body().as_bytes() {
            event.emit(bytes.len() as u64, true);
            return;
        }
        let inner = std::mem::take(res.body_mut());
        *res.body_mut() = inner.observe(LoggedBody {
            event: Some(event),
            bytes: 0,
            completed: false,
        });
    }
}

/// Logs the request once its streamed body has ended (or failed), with the bytes sent.
struct LoggedBody {
    event: Option<Event>,
    bytes: u64,
    completed: bool,
}

impl conduit_core::BodyWrapper for LoggedBody {
    fn poll_frame(
        &mut self,
        mut inner: Pin<&mut Body>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let poll = http_body::Body::poll_frame(inner.as_mut(), cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if http_body::Body::is_end_stream(&*inner) {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        poll
    }
}

impl LoggedBody {
    fn finish(&mut self, completed: bool) {
        self.completed = completed;
        if let Some(event) = self.event.take() {
            event.emit(self.bytes, completed);
        }
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(event) = self.event.take() {
            event.emit(self.bytes, self.completed);
        }
    }
}
