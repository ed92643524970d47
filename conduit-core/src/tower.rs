//! Tower interop (feature `tower`): conduit handlers as tower services, tower services as
//! conduit handlers, and tower layers as conduit middleware.
//!
//! Code written against [`tower::Service`](tower_service::Service) and
//! [`tower::Layer`](tower_layer::Layer) — tower-http's layers, an `axum::Router`, in-house
//! middleware — works with conduit through three adapters. The feature adds two small
//! dependencies, `tower-service` and `tower-layer` (the trait crates), and nothing else.
//!
//! | from | to | adapter | cost per request |
//! |---|---|---|---|
//! | conduit [`Handler`] (a [`Router`](crate::Router) too) | `Service<http::Request<B>>` | [`HandlerService`] | one box for the handler's future; one for the request body unless it is a conduit [`Body`] or already ended |
//! | `Service<http::Request<Body>>` | conduit [`Handler`] | [`ServiceHandler`] | one clone of the service; one box for the response body unless it is a conduit [`Body`] |
//! | `Layer<HandlerService>` | conduit [`Middleware`] | [`TowerLayer`] | both of the above: a clone of the layered service and a box for the inner handler's future |
//!
//! # A conduit handler in a tower stack
//!
//! [`HandlerService`] is always ready and never fails (`Error = Infallible`): errors are
//! responses in conduit. It accepts any request body with [`Bytes`] chunks, so it drops into
//! `axum::Router::nest_service`, `tower::ServiceBuilder` or hyper-util's `TowerToHyperService`.
//!
//! ```
//! use conduit_core::tower::HandlerService;
//! use conduit_core::{Body, Request, RequestExt, Router, get};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_http::set_header::SetResponseHeaderLayer;
//! use http::{HeaderValue, header::SERVER};
//!
//! let app = Router::new().route("/users/{id}", get(|req: Request| async move {
//!     format!("user {}", req.param("id").unwrap_or_default())
//! }));
//! let service = ServiceBuilder::new()
//!     .layer(SetResponseHeaderLayer::overriding(SERVER, HeaderValue::from_static("conduit")))
//!     .service(HandlerService::new(app));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Any `http_body::Body<Data = Bytes>` is accepted as the request body.
//! let req = http::Request::get("/users/7").body(http_body_util::Empty::<bytes::Bytes>::new());
//! let res = service.oneshot(req.unwrap()).await.unwrap();
//! assert_eq!(res.headers()["server"], "conduit");
//! assert_eq!(conduit_core::to_bytes(res.into_body(), 64).await.unwrap(), "user 7");
//! # });
//! ```
//!
//! # A tower service as a conduit handler
//!
//! [`ServiceHandler`] takes any `Service<http::Request<Body>>` whose response body is an
//! `http_body::Body` with [`Bytes`] chunks — an `axum::Router`, a `tower::service_fn`, a tonic
//! server — and makes it a [`Handler`] to [`mount`](crate::Router::mount) or route to.
//!
//! ```
//! use std::convert::Infallible;
//! use conduit_core::tower::ServiceHandler;
//! use conduit_core::{Body, Handler, Request, Response, Router};
//!
//! let legacy = tower::service_fn(|req: Request| async move {
//!     let text = format!("legacy saw {}", req.uri().path());
//!     Ok::<_, Infallible>(Response::new(Body::from(text)))
//! });
//! let app = Router::new().mount("/legacy", ServiceHandler::new(legacy));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/legacy/orders").body(Body::empty()).unwrap()).await;
//! assert_eq!(res.status(), 200);
//! assert_eq!(conduit_core::to_bytes(res.into_body(), 64).await.unwrap(), "legacy saw /orders");
//! # });
//! ```
//!
//! A tower `call` takes `&mut self` while a conduit handler is shared (`&self`), so each request
//! **clones the service** and awaits `poll_ready` on its clone, then calls it (what
//! `tower::ServiceExt::oneshot` does, and what axum does for its routes). The clone is the cost:
//! one reference count for an `axum::Router`, every layer's fields for a layered service.
//! Readiness is awaited per request, so back-pressure that is shared between clones works
//! (`ConcurrencyLimit`'s semaphore, `Buffer`'s channel: a request waits for its permit), and
//! state kept *in* the service value does not: tower's `RateLimit` counts per clone, so it
//! never limits here — use conduit's own `RateLimit` middleware instead.
//!
//! A service error (`poll_ready` or the call) becomes a `500 Internal Server Error` and a log
//! line at `error` level; the connection stays open for the next request. A response body
//! error ends that response as any streamed body error does.
//!
//! # A tower layer as conduit middleware
//!
//! [`TowerLayer`] wraps a conduit handler with any `Layer<HandlerService>` whose service fits
//! [`ServiceHandler`]: `handler.with(TowerLayer(CorsLayer::permissive()))`, or on every route
//! of a router with [`Router::layer`](crate::Router::layer). tower-http's CORS, trace,
//! set-header, sensitive-headers, propagate-header and request-body-limit layers keep their
//! own semantics.
//!
//! ```
//! use conduit_core::tower::TowerLayer;
//! use conduit_core::{Body, Handler, HandlerExt, Request};
//! use http::{HeaderValue, header::CACHE_CONTROL};
//! use tower_http::set_header::SetResponseHeaderLayer;
//!
//! let no_store = SetResponseHeaderLayer::if_not_present(
//!     CACHE_CONTROL,
//!     HeaderValue::from_static("no-store"),
//! );
//! let handler = (|_req: Request| async { "secret" }).with(TowerLayer(no_store));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = handler.call(Request::new(Body::empty())).await;
//! assert_eq!(res.headers()["cache-control"], "no-store");
//! # });
//! ```
//!
//! # When conduit's own middleware is the better pick
//!
//! The adapters are for bringing existing tower code along. On a hot path conduit's own
//! middleware costs less: it composes statically with no clone and no box per request. The
//! bench server's `/tower` route, tower-http's `SetResponseHeaderLayer` through [`TowerLayer`],
//! measures about 320 user-space instructions per request more than conduit's `CacheControl`
//! setting the same header (10.8 k against 10.5 k, callgrind; ARCHITECTURE.md has the
//! breakdown): small next to a request's total, but paid on every request of every route it
//! wraps. conduit's middleware also knows conduit's facts: `Logging` and `Metrics`
//! label by the router's `MatchedPath` (404 and 405 included), `Compression` and `ETag` see
//! conduit bodies' exact sizes, `RateLimit` shares its store across the whole router. Prefer
//! them where they exist (CORS, compression, timeouts, request ids, rate limits); use tower
//! layers for what conduit does not have, or while moving.
//!
//! A body-limit detail: tower-http's `RequestBodyLimitLayer` answers 413 itself when the
//! declared `Content-Length` is over the limit; a chunked body that goes over it fails while
//! the handler reads it, and conduit's body readers (`RequestExt::bytes`, `json`, ...) answer
//! such a read error with 400, where axum's extractors answer 413. Set conduit's own limit
//! (the server's `max_body_bytes`) to get 413 in both cases.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    Body, BoxError, BoxFuture, BoxHandler, Error, Handler, IntoResponse, Middleware, Request,
    Response,
};

// ---------------------------------------------------------------------------------------------
// conduit Handler -> tower Service
// ---------------------------------------------------------------------------------------------

/// A conduit [`Handler`] (a [`Router`](crate::Router) included) as a
/// `tower::Service<http::Request<B>>`. See the [module docs](self).
///
/// Always ready, `Error = Infallible`, cheap to clone (one reference count). The request body
/// `B` may be any `http_body::Body<Data = Bytes>` whose error converts into [`BoxError`]
/// (hyper's `Incoming`, axum's `Body`, `http_body_util::Full`, ...); the handler sees it as a
/// conduit [`Body`].
///
/// Cost per request: one box for the handler's future (a tower service must name its future's
/// type, and a conduit handler's future is an `impl Future`), plus one for the request body
/// unless it is already a conduit [`Body`] or has already ended (a body-less GET through
/// hyper or axum costs no box).
///
/// Served by something other than conduit's server (axum, hyper), a request carries no
/// [`BodyLimit`](crate::BodyLimit), so conduit's body helpers (`req.bytes()`, `req.json()`)
/// read up to [`DEFAULT_BODY_LIMIT`](crate::DEFAULT_BODY_LIMIT) and answer 413 past it;
/// insert a `BodyLimit` extension in front (a tower layer, a conduit middleware) to change
/// that. Streaming the body (`req.into_body()`) has no limit but the host's.
#[derive(Clone, Debug)]
pub struct HandlerService {
    handler: BoxHandler,
}

impl HandlerService {
    /// Wrap `handler`. A [`BoxHandler`] is used as it is (no second box).
    pub fn new<H: Handler>(handler: H) -> Self {
        Self {
            handler: BoxHandler::new(handler),
        }
    }

    /// The wrapped handler.
    pub fn handler(&self) -> &BoxHandler {
        &self.handler
    }
}

impl<B> Service<http::Request<B>> for HandlerService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HandlerFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: http::Request<B>) -> HandlerFuture {
        HandlerFuture {
            step: Step::Call(self.handler.clone(), req.map(request_body)),
        }
    }
}

/// A request body as a conduit [`Body`]: unchanged if it is one, [`Body::empty`] if it has
/// already ended (no box), else boxed.
#[inline]
fn request_body<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if body.is_end_stream() {
        // Ended: poll_frame would only ever return None (no data, no trailers).
        Body::empty()
    } else {
        Body::new(body)
    }
}

/// The response future of [`HandlerService`]: the handler's boxed future, never failing.
///
/// The handler is called when this future is first polled, not in `Service::call`: a tower
/// layer may call its inner service on a task of its own (`Buffer`'s worker does) and hand the
/// future back to the request's task, and there the handler runs with what the request's task
/// has current, its connection and route template (see
/// [`RequestExt::connect_info`](crate::RequestExt::connect_info)).
pub struct HandlerFuture {
    step: Step,
}

// The request inline: boxing it would cost an allocation per request to save moves of it.
#[allow(clippy::large_enum_variant)]
enum Step {
    Call(BoxHandler, Request),
    Polling(BoxFuture),
    Done,
}

impl fmt::Debug for HandlerFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerFuture")
    }
}

impl Future for HandlerFuture {
    type Output = Result<Response, Infallible>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let step = &mut self.step;
        if let Step::Call(..) = step {
            let Step::Call(handler, req) = std::mem::replace(step, Step::Done) else {
                unreachable!()
            };
            *step = Step::Polling(handler.call_boxed(req));
        }
        let Step::Polling(fut) = step else {
            panic!("HandlerFuture polled after completion")
        };
        let res = ready!(fut.as_mut().poll(cx));
        *step = Step::Done;
        Poll::Ready(Ok(res))
    }
}

// ---------------------------------------------------------------------------------------------
// tower Service -> conduit Handler
// ---------------------------------------------------------------------------------------------

/// A `tower::Service<http::Request<Body>>` as a conduit [`Handler`]. See the
/// [module docs](self).
///
/// The response body may be any `http_body::Body<Data = Bytes>` whose error converts into
/// [`BoxError`]; a conduit [`Body`] is passed through, anything else is boxed once. Each request
/// clones the service, awaits its readiness and calls the clone; an error from either becomes a
/// 500 and a log line.
///
/// Readiness is asked for first inside [`Handler::call`] (with a no-op waker), and a ready
/// service is called right there, so the request is handed over before the returned future is
/// polled; a service that is not ready is asked again, with the task's waker, when the future
/// is polled. Call the handler where the service expects to be called (inside the tokio runtime
/// for services that spawn tasks), as conduit's server does.
#[derive(Clone, Debug)]
pub struct ServiceHandler<S> {
    service: S,
}

impl<S> ServiceHandler<S> {
    /// Wrap `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }

    /// The wrapped service.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Take the wrapped service back.
    pub fn into_inner(self) -> S {
        self.service
    }
}

impl<S, ResB> Handler for ServiceHandler<S>
where
    S: Service<Request, Response = http::Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    #[inline]
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<S, ResB> {
        Oneshot::start(self.service.clone(), req)
    }
}

pin_project_lite::pin_project! {
    /// Readiness, then the call, then the response, as a hand-written state machine (an `async`
    /// block would move the service's future into its state on the first poll).
    #[project = OneshotProj]
    enum Oneshot<S, F> {
        Called { #[pin] fut: F },
        // Boxed: the rare path (a service applying back-pressure) should not make every
        // request's future as large as a service plus a request.
        NotReady { pending: Option<Box<(S, Request)>> },
        Failed { err: Option<BoxError> },
    }
}

impl<S, ResB> Oneshot<S, S::Future>
where
    S: Service<Request, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
{
    /// Ask for readiness at once, with a no-op waker: nearly every service is ready, and then
    /// it is called here, inside [`Handler::call`], so the request is handed over (and its
    /// buffers released) before the response future is first polled. hyper's HTTP/1 connection
    /// reads ahead while a response is pending; a request still alive then pins hyper's read
    /// buffer and makes it allocate a new one (callgrind: ~450 instructions a request). A
    /// service that is not ready is asked again from `poll`, with the task's waker.
    #[inline]
    fn start(mut service: S, req: Request) -> Self {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => Oneshot::Called {
                fut: service.call(req),
            },
            Poll::Ready(Err(err)) => Oneshot::Failed {
                err: Some(err.into()),
            },
            Poll::Pending => Oneshot::NotReady {
                pending: Some(Box::new((service, req))),
            },
        }
    }
}

impl<S, ResB> Future for Oneshot<S, S::Future>
where
    S: Service<Request, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Response;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        loop {
            match self.as_mut().project() {
                OneshotProj::Called { fut } => {
                    return Poll::Ready(match ready!(fut.poll(cx)) {
                        Ok(res) => res.map(Body::new),
                        Err(err) => service_failed(err.into()),
                    });
                }
                OneshotProj::NotReady { pending } => {
                    let (service, _) = &mut **pending.as_mut().expect("polled after completion");
                    if let Err(err) = ready!(service.poll_ready(cx)) {
                        pending.take();
                        return Poll::Ready(service_failed(err.into()));
                    }
                    let (mut service, req) = *pending.take().expect("checked above");
                    let fut = service.call(req);
                    self.set(Oneshot::Called { fut });
                }
                OneshotProj::Failed { err } => {
                    let err = err.take().expect("polled after completion");
                    return Poll::Ready(service_failed(err));
                }
            }
        }
    }
}

/// A service's error, as logged: says where it came from.
#[derive(Debug)]
struct ServiceError(BoxError);

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tower service failed: {}", self.0)
    }
}

impl std::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// 500, and the error logged at `error` level (by [`Error`]'s `IntoResponse`).
#[cold]
fn service_failed(err: BoxError) -> Response {
    Error::internal(ServiceError(err)).into_response()
}

// ---------------------------------------------------------------------------------------------
// tower Layer -> conduit Middleware
// ---------------------------------------------------------------------------------------------

/// A `tower::Layer` as a conduit [`Middleware`]: `handler.with(TowerLayer(layer))`. See the
/// [module docs](self).
///
/// The layer wraps the handler as a [`HandlerService`], and the layered service is run as a
/// [`ServiceHandler`]: per request, a clone of the layered service and a box for the inner
/// handler's future.
#[derive(Clone, Copy, Debug, Default)]
pub struct TowerLayer<L>(pub L);

impl<H, L, S, ResB> Middleware<H> for TowerLayer<L>
where
    H: Handler,
    L: Layer<HandlerService, Service = S>,
    S: Service<Request, Response = http::Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = ServiceHandler<S>;

    fn wrap(&self, inner: H) -> ServiceHandler<S> {
        ServiceHandler::new(self.0.layer(HandlerService::new(inner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HandlerExt, RequestExt};

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn body_passes_through_without_rewrapping() {
        let body = Body::from("hello");
        let same = Body::new(body);
        assert_eq!(same.as_bytes(), Some(&b"hello"[..]));
        let ended = request_body(http_body_util::Empty::<Bytes>::new());
        assert_eq!(ended.as_bytes(), Some(&b""[..]));
        let full = request_body(http_body_util::Full::new(Bytes::from_static(b"x")));
        assert_eq!(full.as_bytes(), None, "a foreign body is wrapped, not read");
    }

    #[test]
    fn handler_service_echoes_a_foreign_body() {
        let echo = |req: Request| async move { req.bytes().await };
        let mut svc = HandlerService::new(echo);
        let req = http::Request::post("/")
            .body(http_body_util::Full::new(Bytes::from_static(b"ping")))
            .unwrap();
        let res = block_on(Service::call(&mut svc, req)).unwrap();
        let body = block_on(crate::to_bytes(res.into_body(), 16)).unwrap();
        assert_eq!(body, "ping");
    }

    #[derive(Clone)]
    struct Failing {
        ready: bool,
    }

    impl Service<Request> for Failing {
        type Response = Response;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Response, std::io::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
            if self.ready {
                Poll::Ready(Ok(()))
            } else {
                Poll::Ready(Err(std::io::Error::other("not ready")))
            }
        }

        fn call(&mut self, _req: Request) -> Self::Future {
            std::future::ready(Err(std::io::Error::other("boom")))
        }
    }

    #[test]
    fn service_errors_become_500() {
        for ready in [true, false] {
            let h = ServiceHandler::new(Failing { ready });
            let res = block_on(h.call(Request::new(Body::empty())));
            assert_eq!(res.status(), 500);
        }
    }

    /// Not ready for its first two `poll_ready`s (the no-op-waker one in `call`, then the
    /// first from `poll`), waking the task each time.
    #[derive(Clone)]
    struct Slow {
        polls: u8,
    }

    impl Service<Request> for Slow {
        type Response = Response;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response, Infallible>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            if self.polls < 2 {
                self.polls += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request) -> Self::Future {
            std::future::ready(Ok(Response::new(Body::from(format!(
                "polls {}",
                self.polls
            )))))
        }
    }

    #[test]
    fn readiness_is_awaited_with_the_tasks_waker() {
        let h = ServiceHandler::new(Slow { polls: 0 });
        let res = block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                h.call(Request::new(Body::empty())),
            )
            .await
            .expect("woken and completed")
        });
        assert_eq!(res.body().as_bytes(), Some(&b"polls 2"[..]));
    }

    #[derive(Clone)]
    struct AddHeader<S>(S);

    impl<S: Service<Request<B>, Response = Response>, B> Service<Request<B>> for AddHeader<S>
    where
        S::Future: Send + 'static,
    {
        type Response = Response;
        type Error = S::Error;
        type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, req: Request<B>) -> Self::Future {
            let fut = self.0.call(req);
            Box::pin(async move {
                let mut res = fut.await?;
                res.headers_mut()
                    .insert("x-layer", http::HeaderValue::from_static("1"));
                Ok(res)
            })
        }
    }

    struct AddHeaderLayer;

    impl<S> Layer<S> for AddHeaderLayer {
        type Service = AddHeader<S>;
        fn layer(&self, inner: S) -> AddHeader<S> {
            AddHeader(inner)
        }
    }

    #[test]
    fn layer_wraps_a_handler_and_a_router() {
        let h = (|_req: Request| async { "hi" }).with(TowerLayer(AddHeaderLayer));
        let res = block_on(h.call(Request::new(Body::empty())));
        assert_eq!(res.headers()["x-layer"], "1");

        let router = crate::Router::new()
            .route("/a", crate::get(|_req: Request| async { "a" }))
            .layer(TowerLayer(AddHeaderLayer));
        let res = block_on(router.call(Request::get("/a").body(Body::empty()).unwrap()));
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-layer"], "1");
    }
}
