//! One connection: version detection (HTTP/1.1 or h2c / ALPN h2), the service that feeds
//! requests to the handler, the watchdog, and reaction to the drain signal.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use conduit_core::http::{self, Version};
use conduit_core::sendfile::SendfileGrant;
use conduit_core::{
    Body, BodyLimit, BodyWrapper, BoxError, ConnectInfo, ErrorRenderer, Handler, Problem,
    Rendering, ShutdownSignal, StreamHold, WrappedBody,
};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncRead;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::Config;
use crate::body::request_body;
use crate::conformance::{self, Early};
use crate::io::{Socket, TimedIo};
#[cfg(feature = "tls")]
use crate::preface::{Preface, expect_preface};
use crate::preface::{Replay, sniff_preface};
use crate::shutdown::ShutdownHandle;
use crate::watchdog::{Activity, Expired, FinishGuard, Limits, Watchdog};

/// What every connection of one server shares.
pub(crate) struct ConnContext<H> {
    pub(crate) handler: H,
    shutdown: ShutdownHandle,
    /// HTTP/1.1: plain text (unless it opens with the HTTP/2 preface), TLS without ALPN `h2`.
    /// hyper's own HTTP/1 connection rather than hyper-util's `auto` one, whose enum is sized
    /// for its HTTP/2 state: 632 bytes instead of 1.5 KB in every connection's task.
    http1: http1::Builder,
    /// Plain text: sniff for the HTTP/2 prior-knowledge preface (off: HTTP/1.1 only).
    h2c: bool,
    /// TLS with ALPN `h2`, and h2c: HTTP/2 only.
    http2: auto::Builder<TokioExecutor>,
    limits: Limits,
    max_body: u64,
    read_timeout: Duration,
    /// `Config::errors`: how framework errors are answered (`None`: as they are).
    errors: Option<ErrorRenderer>,
}

impl<H: Handler> ConnContext<H> {
    pub(crate) fn new(handler: H, config: &Config, shutdown: ShutdownHandle) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.http2_max_concurrent_streams)
            .max_header_list_size(config.max_header_bytes as u32)
            .keep_alive_interval(config.http2_keep_alive_interval)
            .keep_alive_timeout(config.http2_keep_alive_timeout)
            // RFC 8441: `CONNECT` with `:protocol` (a WebSocket over an HTTP/2 stream).
            .enable_connect_protocol();
        // HTTP/1 gets no hyper timer: the watchdog enforces header and idle timeouts without
        // arming a timer per request.
        let mut http1 = http1::Builder::new();
        http1
            .keep_alive(true)
            // `max_header_size` makes the limit exact (the parsed head is measured, and a head
            // still incomplete at the limit is refused); `max_buf_size` alone is checked only
            // when a parse comes up short, after reads that can overshoot it.
            .max_header_size(config.max_header_bytes)
            .max_buf_size(config.max_header_bytes)
            .max_headers(config.max_headers)
            // Body chunks are written by reference, never copied into hyper's own buffer: a
            // file placeholder must reach `TimedIo` as it is (see `conduit_core::sendfile`).
            .writev(true);
        Self {
            handler,
            shutdown,
            http1,
            h2c: config.http2,
            http2: builder.http2_only(),
            limits: Limits {
                header: config.header_read_timeout,
                idle: config.idle_timeout,
                write: config.write_timeout,
            },
            max_body: config.max_body_bytes,
            read_timeout: config.read_timeout,
            errors: config.errors.clone(),
        }
    }
}

/// The protocol a connection is served with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.1 (plain text without the HTTP/2 preface, TLS without ALPN `h2`).
    Http1,
    /// HTTP/2 (plain text opening with the prior-knowledge preface, TLS with ALPN `h2`).
    Http2,
}

/// Serve a TLS connection with the protocol ALPN chose until it ends, expires, or is drained.
/// With `h2` the client must open with the HTTP/2 preface: anything else is answered with
/// GOAWAY(PROTOCOL_ERROR) (see [`expect_preface`]).
#[cfg(feature = "tls")]
pub(crate) async fn serve_tls<H, I>(
    ctx: Arc<ConnContext<H>>,
    mut io: I,
    info: ConnectInfo,
    alpn: Protocol,
    mut drain: oneshot::Receiver<()>,
) where
    H: Handler,
    I: AsyncRead + Socket + Send + Unpin + 'static,
{
    let accepted = Instant::now();
    if alpn == Protocol::Http1 {
        let io = Replay::with_prefix(io, [0; 24], 0);
        return serve_http(ctx, io, info, Protocol::Http1, drain, accepted).await;
    }
    let peer = info.peer_addr();
    let header_timeout = ctx.limits.header;
    let preface = tokio::select! {
        r = tokio::time::timeout(header_timeout, expect_preface(&mut io)) => r,
        _ = &mut drain => return,
    };
    match preface {
        Ok(Ok(Preface::Valid)) => {
            serve_http(ctx, Replay::new(io), info, Protocol::Http2, drain, accepted).await;
        }
        Ok(Ok(Preface::Invalid)) => tracing::info!(
            %peer,
            "rejected connection: ALPN h2 but no HTTP/2 preface (GOAWAY PROTOCOL_ERROR)"
        ),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection closed before the HTTP/2 preface")
        }
        Err(_) => {
            tracing::info!(%peer, reason = "header read timeout", "closing connection: no HTTP/2 preface in time")
        }
    }
}

/// Serve a plain-text connection until it ends, expires, or is drained: HTTP/2 if it opens
/// with the prior-knowledge preface (and HTTP/2 is on), else HTTP/1.1. It reads up to the 24
/// bytes of the preface first (as hyper-util's `auto` connection does) and replays them.
///
/// The accept loop's plain-text task is this future: every idle keep-alive connection carries
/// it, so it has no room for the TLS path's HTTP/2 preface check, and the HTTP/2 connection
/// is boxed (see [`serve_http`]), leaving room for HTTP/1 only.
pub(crate) async fn serve_plain<H, I>(
    ctx: Arc<ConnContext<H>>,
    mut io: I,
    info: ConnectInfo,
    mut drain: oneshot::Receiver<()>,
    accepted: Instant,
) where
    H: Handler,
    I: AsyncRead + Socket + Send + Unpin + 'static,
{
    let mut prefix = [0u8; 24];
    let mut protocol = Protocol::Http1;
    let mut sniffed = 0;
    if ctx.h2c {
        let peer = info.peer_addr();
        let header_timeout =
            (accepted + ctx.limits.header).saturating_duration_since(Instant::now());
        let sniff = tokio::select! {
            r = tokio::time::timeout(header_timeout, sniff_preface(&mut io, &mut prefix)) => r,
            _ = &mut drain => return,
        };
        match sniff {
            Ok(Ok((n, is_h2))) => {
                sniffed = n;
                if is_h2 {
                    protocol = Protocol::Http2;
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection closed early");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, reason = "header read timeout", "closing connection: header read timeout");
                return;
            }
        }
    }
    let io = Replay::with_prefix(io, prefix, sniffed);
    serve_http(ctx, io, info, protocol, drain, accepted).await;
}

/// Serve a connection whose protocol is known (and whose preface bytes, if any were read,
/// `io` replays) until it ends, expires, or is drained.
async fn serve_http<H, I>(
    ctx: Arc<ConnContext<H>>,
    io: I,
    info: ConnectInfo,
    protocol: Protocol,
    drain: oneshot::Receiver<()>,
    accepted: Instant,
) where
    H: Handler,
    I: AsyncRead + Socket + Send + Unpin + 'static,
{
    let peer = info.peer_addr();
    // File bodies go out with `sendfile` on plain-text HTTP/1.1 only.
    let sendfile = I::SENDFILE && protocol == Protocol::Http1;
    let activity = Arc::new(Activity::new(ctx.shutdown.streams().clone(), sendfile));
    let io = TokioIo::new(TimedIo::new(io, activity.clone()));

    // The connection's info, current while the connection's task runs (which is where hyper
    // calls the service, and where HTTP/1 polls the response future), and while each HTTP/2
    // stream's task runs (see `conduit_core::with_connection`).
    let conn = Arc::new(info);
    let service = {
        let ctx = ctx.clone();
        let activity = activity.clone();
        let conn = conn.clone();
        service_fn(move |mut req: http::Request<Incoming>| {
            let version = req.version();
            activity.request_started(version == Version::HTTP_2);
            let head = req.method() == http::Method::HEAD;
            let guard = FinishGuard(activity.clone());
            let rendering = ctx.errors.as_ref().map(|r| r.for_request(&req));
            match conformance::check(&mut req) {
                Ok(()) => {
                    let read_timeout = ctx.read_timeout;
                    let deadline = || Instant::now() + read_timeout;
                    let mut req = req.map(|b| request_body(b, ctx.max_body, deadline, peer));
                    if !http_body::Body::is_end_stream(req.body()) {
                        // Only requests with a body pay for the extension.
                        let limit = usize::try_from(ctx.max_body).unwrap_or(usize::MAX);
                        req.extensions_mut().insert(BodyLimit(limit));
                    }
                    // The method first: a plain request pays one comparison, not a map lookup.
                    if req.method() == http::Method::CONNECT
                        && req.extensions().get::<hyper::ext::Protocol>().is_some()
                    {
                        // An extended CONNECT (RFC 8441): the stream outlives its response, so
                        // it counts as one more open request until whoever takes it over drops
                        // the hold (see `StreamHold`).
                        activity.request_started(true);
                        let hold = StreamHold::new(FinishGuard(activity.clone()));
                        req.extensions_mut().insert(hold);
                    }
                    let handler = CatchPanic {
                        inner: ctx.handler.call(req),
                        // An HTTP/2 stream's future runs as a task of its own.
                        conn: (version == Version::HTTP_2).then(|| conn.clone()),
                    };
                    Respond::new(Some(handler), None, version, head, guard, rendering)
                }
                Err(early) => {
                    log_early(peer, &req, early);
                    Respond::new(None, Some(early), version, head, guard, rendering)
                }
            }
        })
    };

    let watchdog = Watchdog::new(activity, ctx.limits, accepted);
    let outcome = if protocol == Protocol::Http2 {
        // Boxed: the HTTP/2 connection state is 1.5 KB, and every HTTP/1 connection's task
        // would otherwise have room for it.
        Box::pin(async {
            let http = pin!(ctx.http2.serve_connection(io, service));
            let driven = drive(&ctx, http, |c| c.graceful_shutdown(), watchdog, drain);
            OnConnection::new(conn, driven).await
        })
        .await
    } else {
        // With upgrades: a handler's 101 response (a WebSocket) hands the connection over to
        // the request's `hyper::upgrade::OnUpgrade` extension, and this task ends.
        let http = pin!(ctx.http1.serve_connection(io, service).with_upgrades());
        let driven = drive(&ctx, http, |c| c.graceful_shutdown(), watchdog, drain);
        OnConnection::new(conn, driven).await
    };
    if let Some(err) = outcome {
        log_conn_error(peer, &*err);
    }
}

/// Poll the connection, its watchdog and the drain signal; the error that ended it, if any.
async fn drive<H, C, E>(
    ctx: &ConnContext<H>,
    mut conn: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    mut watchdog: Watchdog,
    mut drain: oneshot::Receiver<()>,
) -> Option<BoxError>
where
    C: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    let mut draining = false;
    let mut drain_armed = false;
    poll_fn(|cx: &mut Context<'_>| {
        // The first poll registers this task's waker with the drain signal; after that the
        // receiver is only polled once shutdown has begun, keeping the hot path to one load.
        if !draining && (!drain_armed || ctx.shutdown.is_draining()) {
            drain_armed = true;
            if Pin::new(&mut drain).poll(cx).is_ready() {
                draining = true;
                graceful_shutdown(conn.as_mut());
            }
        }
        if let Poll::Ready(res) = conn.as_mut().poll(cx) {
            return Poll::Ready(res.err().map(Into::into));
        }
        if let Poll::Ready(why) = watchdog.poll_expired(cx) {
            return Poll::Ready(Some(Box::new(Timeout(why)) as BoxError));
        }
        Poll::Pending
    })
    .await
}

/// Log a request the server answers itself, with the peer address and the reason.
#[cold]
fn log_early<B>(peer: SocketAddr, req: &http::Request<B>, early: Early) {
    match early {
        Early::OptionsStar => {
            tracing::debug!(%peer, "answered OPTIONS * (200)");
        }
        Early::BadRequest(reason) => tracing::info!(
            %peer,
            status = 400,
            method = %req.method(),
            version = ?req.version(),
            reason,
            "rejected request: {reason} (400)"
        ),
    }
}

#[derive(Debug)]
struct Timeout(Expired);

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl std::error::Error for Timeout {}

fn log_conn_error(peer: SocketAddr, err: &(dyn std::error::Error + 'static)) {
    if let Some(t) = err.downcast_ref::<Timeout>() {
        match t.0 {
            Expired::Idle => tracing::debug!(%peer, "closing idle connection"),
            _ => tracing::info!(%peer, reason = %t, "closing connection: {t}"),
        }
        return;
    }
    if let Some(h) = err.downcast_ref::<hyper::Error>() {
        // hyper answered these itself (HTTP/1); say which status it sent.
        if h.is_parse_too_large() {
            // Parse::UriTooLong and Parse::TooLarge share `is_parse_too_large`; only the
            // message tells them apart.
            if h.to_string().starts_with("URI too long") {
                tracing::info!(%peer, status = 414, error = %h, "rejected request: URI too long (414)");
            } else {
                tracing::info!(%peer, status = 431, error = %h, "rejected request: headers too large (431)");
            }
        } else if h.is_parse_version_h2() {
            tracing::info!(%peer, error = %h, "rejected connection: HTTP/2 preface on an HTTP/1.1-only connection (closed)");
        } else if h.is_parse() || h.is_parse_status() {
            tracing::info!(%peer, status = 400, error = %h, "rejected malformed request (400)");
        } else if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            tracing::debug!(%peer, error = %h, "connection closed early");
        } else {
            tracing::info!(%peer, error = %h, "connection error");
        }
        return;
    }
    tracing::info!(%peer, error = %err, "connection error");
}

/// The response body, telling the watchdog when the response is done (when it is dropped).
pub(crate) type TrackedBody = WrappedBody<FinishGuard>;

impl BodyWrapper for FinishGuard {}

pin_project_lite::pin_project! {
    /// The service's future: the handler's response, or the server's own [`Early`] answer;
    /// then the body of a HEAD response dropped and the body wrapped in [`TrackedBody`]. A
    /// hand-written future rather than an `async` block, so the handler's future is polled
    /// where it was built instead of being moved into a generator first.
    struct Respond<F> {
        #[pin]
        handler: Option<CatchPanic<F>>,
        early: Option<Early>,
        version: Version,
        head: bool,
        // Also the way to the connection's link for a response's `ShutdownSignal` (SSE), so
        // endless bodies end on shutdown (`Activity::streams`).
        guard: Option<FinishGuard>,
        // `Config::errors` applied to this request's response.
        rendering: Option<Rendering>,
    }
}

impl<F> Respond<F> {
    #[inline]
    /// `handler` when the request reached it, else `early`, the server's own answer.
    fn new(
        handler: Option<CatchPanic<F>>,
        early: Option<Early>,
        version: Version,
        head: bool,
        guard: FinishGuard,
        rendering: Option<Rendering>,
    ) -> Self {
        Self {
            handler,
            early,
            version,
            head,
            guard: Some(guard),
            rendering,
        }
    }
}

impl<F: Future<Output = conduit_core::Response>> Future for Respond<F> {
    type Output = Result<http::Response<TrackedBody>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match (this.handler.as_pin_mut(), this.early.take()) {
            (Some(handler), _) => std::task::ready!(handler.poll(cx)),
            (None, Some(early)) => early.response(*this.version),
            (None, None) => panic!("Respond polled after completion"),
        };
        let guard = this.guard.take().expect("Respond polled after completion");
        if let Some(signal) = res.extensions().get::<ShutdownSignal>() {
            // A long-lived body (SSE) asked to hear about shutdown; see `ShutdownSignal`.
            guard.0.streams().link(signal);
        }
        if let Some(rendering) = this.rendering.take() {
            res = rendering.render(res);
        }
        if *this.head {
            res = conduit_core::head_response(res);
        }
        if let Some(grant) = res.body().sendfile_grant() {
            grant_sendfile(grant, &guard.0);
        }
        Poll::Ready(Ok(res.map(|body| WrappedBody::new(body, guard))))
    }
}

/// A file body that reached the connection as it left the handler (or seen only through
/// observers) may send its cached spans with `sendfile`, if the connection does. Out of line:
/// every other response pays one comparison.
#[inline(never)]
fn grant_sendfile(grant: &SendfileGrant, activity: &Activity) {
    if let Some(queue) = activity.sendfile_queue() {
        grant.give(queue);
    }
}

pin_project_lite::pin_project! {
    /// A connection's task: each poll runs with the connection's info as the current one, so
    /// a request's code finds it without the request carrying it (one scope per wake-up of the
    /// connection, not per request).
    struct OnConnection<F> {
        #[pin]
        inner: F,
        conn: Option<Arc<ConnectInfo>>,
    }
}

impl<F> OnConnection<F> {
    fn new(conn: Arc<ConnectInfo>, inner: F) -> Self {
        Self {
            inner,
            conn: Some(conn),
        }
    }
}

impl<F: Future> Future for OnConnection<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        conduit_core::with_connection(this.conn, || inner.poll(cx))
    }
}

pin_project_lite::pin_project! {
    /// Turns a panic in the handler into a 500 for that request only. In the common path this
    /// costs nothing but an unwinding landing pad. An HTTP/2 stream's polls run with its
    /// connection as the current one (`conn`; an HTTP/1 request's run inside its connection's
    /// [`OnConnection`]).
    struct CatchPanic<F> {
        #[pin]
        inner: F,
        conn: Option<Arc<ConnectInfo>>,
    }
}

impl<F: Future<Output = conduit_core::Response>> Future for CatchPanic<F> {
    type Output = conduit_core::Response;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let poll = || conduit_core::with_connection(this.conn, || inner.poll(cx));
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(poll)) {
            Ok(p) => p,
            Err(panic) => {
                let msg = conduit_core::panic_message(&*panic);
                tracing::error!(panic = %msg, "handler panicked; answering 500");
                let mut res = conduit_core::Response::new(Body::from("Internal Server Error"));
                *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                conduit_core::attach_problem(
                    &mut res,
                    Problem::new(http::StatusCode::INTERNAL_SERVER_ERROR),
                );
                Poll::Ready(res)
            }
        }
    }
}
