//! [`Router`]: path matching (with [`matchit`]), method routing, nesting, fallback, per-router
//! middleware and shared state.
//!
//! A router maps paths like `/users/{id}` or `/static/{*path}` to a [`MethodRouter`], which
//! maps HTTP methods to handlers. It answers:
//!
//! - **404** (through the [fallback](Router::fallback)) when no path matches;
//! - **405 Method Not Allowed** with an `Allow` header when the path matches but the method
//!   does not;
//! - **HEAD** with the GET handler when there is no explicit HEAD handler: the body is dropped
//!   and `Content-Length` is kept (or set from the body's exact size).
//!
//! Path parameters are percent-decoded and available as [`PathParams`] (or through
//! [`RequestExt::param`](crate::RequestExt::param)). [`Router::mount`] and [`Router::nest`] hand
//! everything under a prefix to another handler, with the prefix stripped from the URI.
//!
//! ```
//! use conduit_core::{Handler, Request, RequestExt, Router, get, post};
//! use conduit_core::http::StatusCode;
//!
//! let users = Router::new()
//!     .route("/", get(|_req: Request| async { "all users" }))
//!     .route("/{id}", get(|req: Request| async move {
//!         format!("user {}", req.param("id").unwrap_or_default())
//!     }));
//!
//! let app = Router::new()
//!     .route("/", get(|_req: Request| async { "home" }).post(|_req: Request| async { "posted" }))
//!     .nest("/users", users);
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/users/a%20b").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, "user a b");
//!
//! let res = app.call(Request::put("/").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
//! assert_eq!(res.headers()["allow"], "GET, HEAD, POST");
//!
//! let res = app.call(Request::get("/nowhere").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! # });
//! ```
//!
//! # Cost per request
//!
//! Matching is one hash lookup for a route without parameters (by exact path), else one
//! `matchit` lookup. A route without parameters costs no allocation besides the
//! one box of the handler's future; parameters cost one [`PathParams`] (two buffers) and an
//! extension insert; state costs a clone of the state's extension map. The router itself is
//! never cloned or boxed per request.

mod method;
mod nest;
mod params;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Extensions;

use crate::{
    BoxFuture, BoxHandler, Error, ErrorRenderer, Handler, IntoResponse, Middleware, Rendering,
    Request, Response, head_response,
};

pub use method::{MethodRouter, any, delete, get, head, options, patch, post, put};
pub use params::{MatchedPath, OriginalUri, PathParams, RecordMatchedPath};

use nest::strip_prefix;

/// The name of the catch-all parameter a mount uses for the rest of the path.
const REST: &str = "__conduit_mount_rest";

// ---------------------------------------------------------------------------------------------
// Dispatch: the one future shape shared by Router and MethodRouter
// ---------------------------------------------------------------------------------------------

/// What a router decided, synchronously, for one request. The request itself stays where it
/// is (the decision borrows it mutably) and moves once, into the handler: it is a few hundred
/// bytes, and every move through a decision would copy it.
enum Dispatch<'a> {
    /// Call `handler` with the request, with `matched` as the request's template while it
    /// runs (if there is one), then send its response on as `reply` says.
    Call {
        handler: &'a BoxHandler,
        reply: Reply,
        matched: Option<&'a MatchedPath>,
    },
    /// Answer right away (405, 400 on a bad parameter, ...).
    Respond(Response),
}

impl<'a> Dispatch<'a> {
    /// Call `handler` and send its response as it is, with no template to record.
    #[inline]
    fn call(handler: &'a BoxHandler) -> Self {
        Dispatch::Call {
            handler,
            reply: Reply::AsIs,
            matched: None,
        }
    }
}

/// What becomes of the handler's response.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// Sent as it is.
    AsIs,
    /// A `HEAD` answered by the `GET` handler: the body is dropped, the headers kept.
    WithoutBody,
}

/// The router's response future: the handler's boxed future, then what the decision and the
/// router's error rendering do to its response. Hand-written rather than an `async` block: the
/// response is finished where the handler's future returned it, instead of being moved through
/// a generator's state first (it is a few hundred bytes, and each move copies it). An answer the
/// router gives itself (405, 400) is boxed: it is the rare path, and inline it would make every
/// request's future the size of a `Response`, which the server and hyper move several times per
/// request.
pub(crate) struct Run {
    step: Step,
    /// The router's [`ErrorRenderer`] decision for this request, if it has one.
    rendering: Option<Rendering>,
}

enum Step {
    Pending(BoxFuture, Reply, Route),
    Ready(Option<Box<Response>>),
}

/// The matched route's template, if the request has one from this router: the request's
/// current template while the handler runs (see `context`), then, when the request asked for
/// it with [`RecordMatchedPath`], the response's.
struct Route {
    template: Option<MatchedPath>,
    record: bool,
}

/// Turn a decision about `req` into the response future: no boxing beyond the handler's own.
#[inline]
fn run(dispatch: Dispatch<'_>, req: Request, rendering: Option<Rendering>) -> Run {
    let step = match dispatch {
        Dispatch::Call {
            handler,
            reply,
            matched,
        } => {
            // Logging and metrics around a whole router ask for the template on the response.
            // A request without extensions answers this with a null check.
            let record = matched.is_some() && req.extensions().get::<RecordMatchedPath>().is_some();
            let mut template = matched.cloned();
            let fut = crate::context::with_matched(&mut template, || handler.call_boxed(req));
            Step::Pending(fut, reply, Route { template, record })
        }
        Dispatch::Respond(res) => Step::Ready(Some(Box::new(res))),
    };
    Run { step, rendering }
}

impl Future for Run {
    type Output = Response;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = &mut *self;
        let mut res = match &mut this.step {
            Step::Pending(fut, reply, route) => {
                // No template of its own (a nested router, the fallback, a method router inside
                // a route): the outer one, if any, stays current.
                let mut res = ready!(crate::context::with_matched(&mut route.template, || {
                    fut.as_mut().poll(cx)
                }));
                if *reply == Reply::WithoutBody {
                    res = head_response(res);
                }
                if route.record {
                    // A nested router or mounted handler already recorded a finer template.
                    if res.extensions().get::<MatchedPath>().is_none() {
                        if let Some(matched) = route.template.take() {
                            res.extensions_mut().insert(matched);
                        }
                    }
                }
                res
            }
            Step::Ready(res) => *res.take().expect("Run polled after completion"),
        };
        if let Some(rendering) = this.rendering.take() {
            res = rendering.render(res);
        }
        Poll::Ready(res)
    }
}

// ---------------------------------------------------------------------------------------------
// Router
// ---------------------------------------------------------------------------------------------

/// Routes requests by path, then by method.
///
/// No path matches: the [fallback](Self::fallback) answers (404 Not Found by default). The path
/// matches but the method does not: 405 Method Not Allowed with an `Allow` header (see
/// [`MethodRouter`], which also answers `HEAD` with the `GET` handler).
///
///
/// Build it once with [`route`](Self::route), [`mount`](Self::mount), [`nest`](Self::nest),
/// [`fallback`](Self::fallback), [`layer`](Self::layer) and [`state`](Self::state); then use it
/// as a [`Handler`]. Cloning is cheap (an `Arc`).
///
/// Routes use [`matchit`] syntax: `/users/{id}` for a segment, `/files/{*path}` for the rest
/// of the path (not empty), `{{` and `}}` for literal braces. A static segment wins over a
/// parameter. Paths are matched as sent (percent-encoded); parameter values are decoded.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    matcher: matchit::Router<usize>,
    /// Routes without parameters by exact path, bucketed by length (see [`Statics`]).
    statics: Statics,
    endpoints: Vec<Endpoint>,
    fallback: BoxHandler,
    /// Extensions cloned into every request, if the router has state.
    state: Option<Extensions>,
    /// How this router's errors are answered ([`Router::errors`]); `None` leaves them as
    /// they are, for an outer renderer (or as plain text).
    errors: Option<ErrorRenderer>,
}

// Built once and kept in a Vec: keeping MethodRouter inline saves a pointer chase per request.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Endpoint {
    Route {
        path: String,
        methods: MethodRouter,
        /// The full template (with the prefixes of the routers this one is nested in).
        matched: MatchedPath,
    },
    Mount {
        prefix: String,
        handler: BoxHandler,
        /// The prefix, for a mounted handler; unused for a nested router (its routes record
        /// their own, finer templates).
        matched: MatchedPath,
        /// The router behind `handler`, for [`Router::nest`]: kept so that nesting it again
        /// can prefix its templates and `layer` can wrap its routes.
        nested: Option<Router>,
    },
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut routes = Vec::new();
        let mut mounts = Vec::new();
        for endpoint in &self.inner.endpoints {
            match endpoint {
                Endpoint::Route { path, methods, .. } => {
                    routes.push((path.as_str(), methods.allow.clone()))
                }
                Endpoint::Mount { prefix, .. } => mounts.push(prefix.as_str()),
            }
        }
        f.debug_struct("Router")
            .field("routes", &routes)
            .field("mounts", &mounts)
            .field(
                "state",
                &self.inner.state.as_ref().map_or(0, Extensions::len),
            )
            .finish()
    }
}

async fn not_found(_req: Request) -> Error {
    Error::not_found()
}

fn check_path(what: &str, path: &str) {
    assert!(
        path.starts_with('/'),
        "conduit Router: {what} `{path}` must start with `/`"
    );
}

impl Router {
    /// An empty router: every request goes to the fallback (404 unless set).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                matcher: matchit::Router::new(),
                statics: Statics::default(),
                endpoints: Vec::new(),
                fallback: BoxHandler::new(not_found),
                state: None,
                errors: None,
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    fn insert(&mut self, what: &str, path: &str, index: usize) {
        if let Err(err) = self.inner_mut().matcher.insert(path, index) {
            panic!("conduit Router: cannot add {what} `{path}`: {err}");
        }
    }

    /// Route requests for `path` to `methods`.
    ///
    /// Calling `route` again with the same path adds the new methods to the route.
    ///
    /// # Panics
    ///
    /// If `path` is invalid, conflicts with a route or mount already added (e.g. `/{a}` and
    /// `/{b}`), or registers a method twice: programmer errors, caught when the router is built.
    pub fn route(mut self, path: &str, methods: MethodRouter) -> Self {
        check_path("route", path);
        let inner = self.inner_mut();
        let existing = inner.endpoints.iter_mut().find_map(|e| match e {
            Endpoint::Route {
                path: p, methods, ..
            } if p == path => Some(methods),
            _ => None,
        });
        if let Some(existing) = existing {
            existing.merge(methods, path);
            return self;
        }
        let index = inner.endpoints.len();
        inner.endpoints.push(Endpoint::Route {
            path: path.to_owned(),
            methods,
            matched: MatchedPath::new(path),
        });
        self.insert("route", path, index);
        if !path.contains(['{', '}']) {
            self.inner_mut().statics.insert(path, index);
        }
        self
    }

    /// The handler for requests no route matches (default: 404 Not Found).
    ///
    /// The fallback does not see requests whose path matched but whose method did not (those
    /// get 405).
    pub fn fallback<H: Handler>(mut self, handler: H) -> Self {
        self.inner_mut().fallback = BoxHandler::new(handler);
        self
    }

    /// Wrap every handler registered **so far** — route handlers, mounted handlers and the
    /// fallback — in `middleware`.
    ///
    /// Routes, mounts or a fallback added after this call are not wrapped; call `layer` last
    /// to wrap everything. Each handler is wrapped separately, so the middleware runs after
    /// routing: the 405 answers of the router itself are not wrapped. To wrap the whole router,
    /// wrap the router: `router.with(middleware)` ([`HandlerExt`](crate::HandlerExt)).
    ///
    /// ```
    /// use conduit_core::{Handler, Next, Request, Router, from_fn, get};
    ///
    /// let app = Router::new()
    ///     .route("/", get(|_req: Request| async { "hi" }))
    ///     .layer(from_fn(|req: Request, next: Next| async move {
    ///         let mut res = next.run(req).await;
    ///         res.headers_mut().insert("x-layer", "yes".parse().unwrap());
    ///         res
    ///     }));
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let res = app.call(Request::get("/").body(Default::default()).unwrap()).await;
    /// assert_eq!(res.headers()["x-layer"], "yes");
    /// # });
    /// ```
    pub fn layer<M: Middleware<BoxHandler>>(mut self, middleware: M) -> Self {
        self.layer_by_ref(&middleware);
        self
    }

    /// [`layer`](Self::layer), recursing into nested routers (so their routes keep their
    /// templates and can still be prefixed by an outer `nest`).
    fn layer_by_ref<M: Middleware<BoxHandler>>(&mut self, middleware: &M) {
        let mut wrap = |h: &mut BoxHandler| *h = BoxHandler::new(middleware.wrap(h.clone()));
        let inner = self.inner_mut();
        for endpoint in &mut inner.endpoints {
            match endpoint {
                Endpoint::Route { methods, .. } => methods.for_each_handler(&mut wrap),
                Endpoint::Mount {
                    handler,
                    nested: Some(router),
                    ..
                } => {
                    router.layer_by_ref(middleware);
                    *handler = BoxHandler::new(router.clone());
                }
                Endpoint::Mount { handler, .. } => wrap(handler),
            }
        }
        wrap(&mut inner.fallback);
    }

    /// Prefix every template of this router (and of routers nested in it) with `base`.
    fn prefix_templates(&mut self, base: &str) {
        for endpoint in &mut self.inner_mut().endpoints {
            match endpoint {
                Endpoint::Route { matched, .. } => {
                    *matched = MatchedPath::new(&params::join_template(base, matched.as_str()));
                }
                Endpoint::Mount {
                    handler,
                    matched,
                    nested,
                    ..
                } => {
                    *matched = MatchedPath::new(&params::join_template(base, matched.as_str()));
                    if let Some(router) = nested {
                        router.prefix_templates(base);
                        *handler = BoxHandler::new(router.clone());
                    }
                }
            }
        }
    }

    /// Share `value` with every handler of this router (and of routers nested in it), as a
    /// request extension: read it with [`RequestExt::state`](crate::RequestExt::state).
    ///
    /// Calling `state` again with a value of the same type replaces it. A router without state
    /// pays nothing per request; one with state clones its extension map into each request.
    ///
    /// ```
    /// use conduit_core::{Handler, Request, RequestExt, Router, get};
    ///
    /// #[derive(Clone)]
    /// struct Config { name: &'static str }
    ///
    /// let app = Router::new()
    ///     .route("/", get(|req: Request| async move {
    ///         req.state::<Config>().map(|c| c.name)
    ///     }))
    ///     .state(Config { name: "conduit" });
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let res = app.call(Request::get("/").body(Default::default()).unwrap()).await;
    /// let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    /// assert_eq!(body, "conduit");
    /// # });
    /// ```
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.inner_mut()
            .state
            .get_or_insert_with(Extensions::new)
            .insert(value);
        self
    }

    /// Answer this router's errors — its 404 and 405, its routes' rejections and every other
    /// framework error its handlers return — with `renderer` (see
    /// [`ErrorRenderer`]): plain text, problem+json, negotiated by `Accept`, or the app's own.
    ///
    /// It covers the responses that come out of this router. Errors of middleware around the
    /// router (`router.with(..)`) and of the server are outside it: install the renderer on the
    /// server config to reach those too. Without a renderer, a router leaves its errors as
    /// plain text (for an outer renderer to re-render).
    ///
    /// ```
    /// use conduit_core::{ErrorRenderer, Handler, Request, Router, get};
    ///
    /// let app = Router::new()
    ///     .route("/", get(|_req: Request| async { "hi" }))
    ///     .errors(ErrorRenderer::problem_json());
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let res = app.call(Request::delete("/").body(Default::default()).unwrap()).await;
    /// assert_eq!(res.status(), 405);
    /// assert_eq!(res.headers()["allow"], "GET, HEAD");
    /// assert_eq!(res.headers()["content-type"], "application/problem+json");
    /// # });
    /// ```
    pub fn errors(mut self, renderer: ErrorRenderer) -> Self {
        self.inner_mut().errors = Some(renderer);
        self
    }

    /// Match `req` and decide what answers it (synchronously).
    #[inline]
    fn dispatch(&self, req: &mut Request) -> Dispatch<'_> {
        let inner = &*self.inner;
        // `rest` is where the path left to a mount starts (`None`: the path is the prefix).
        let (index, params, rest) = {
            let path = req.uri().path();
            if let Some(index) = inner.statics.get(path) {
                (index, None, None)
            } else {
                let Ok(matched) = inner.matcher.at(path) else {
                    return Dispatch::call(&inner.fallback);
                };
                let mut rest = None;
                let mut params = None;
                if !matched.params.is_empty() {
                    let mut decoded = PathParams::new();
                    for (name, raw) in matched.params.iter() {
                        if name == REST {
                            rest = Some(path.len().saturating_sub(raw.len() + 1));
                        } else if decoded.push_decoded(name, raw).is_err() {
                            return Dispatch::Respond(bad_param(name));
                        }
                    }
                    if !decoded.is_empty() {
                        params = Some(decoded);
                    }
                }
                (*matched.value, params, rest)
            }
        };
        if let Some(params) = params {
            match req.extensions_mut().get_mut::<PathParams>() {
                Some(outer) => outer.append(params),
                None => {
                    req.extensions_mut().insert(params);
                }
            }
        }
        match &inner.endpoints[index] {
            Endpoint::Route {
                methods, matched, ..
            } => {
                match methods.dispatch(req) {
                    Dispatch::Call { handler, reply, .. } => Dispatch::Call {
                        handler,
                        reply,
                        matched: Some(matched),
                    },
                    respond => respond, // 405: no template
                }
            }
            Endpoint::Mount {
                handler,
                matched,
                nested,
                ..
            } => match strip_prefix(req, rest) {
                Ok(()) if nested.is_some() => Dispatch::call(handler),
                Ok(()) => Dispatch::Call {
                    handler,
                    reply: Reply::AsIs,
                    matched: Some(matched),
                },
                Err(err) => Dispatch::Respond(err.into_response()),
            },
        }
    }
}

/// Routes without parameters by exact path: a few byte comparisons instead of walking the
/// matcher's tree (which costs per byte and per branching node: `/stack` among `/static/..`,
/// `/sse` and `/stream/..` took ~200 instructions). Same answer as the matcher: matchit prefers
/// a static route to a parameter or catch-all too. Buckets by length; a bucket takes at most
/// [`Statics::BUCKET`] routes (more go through the matcher only), so a lookup is bounded.
#[derive(Clone, Default)]
struct Statics {
    by_len: Vec<Vec<(Box<str>, usize)>>,
}

impl Statics {
    const MAX_LEN: usize = 128;
    const BUCKET: usize = 4;

    fn insert(&mut self, path: &str, index: usize) {
        if path.len() > Self::MAX_LEN {
            return;
        }
        if self.by_len.len() <= path.len() {
            self.by_len.resize_with(path.len() + 1, Vec::new);
        }
        let bucket = &mut self.by_len[path.len()];
        if bucket.len() < Self::BUCKET {
            bucket.push((path.into(), index));
        }
    }

    #[inline]
    fn get(&self, path: &str) -> Option<usize> {
        let bucket = self.by_len.get(path.len())?;
        bucket
            .iter()
            .find(|(p, _)| p.as_bytes() == path.as_bytes())
            .map(|&(_, index)| index)
    }
}

#[cold]
fn bad_param(name: &str) -> Response {
    Error::bad_request(format!(
        "Bad Request: path parameter `{name}` is not valid UTF-8 once percent-decoded"
    ))
    .into_response()
}

impl Handler for Router {
    #[inline]
    fn call(&self, mut req: Request) -> impl Future<Output = Response> + Send + use<> {
        if let Some(state) = &self.inner.state {
            req.extensions_mut().extend(state.clone());
        }
        let rendering = self.inner.errors.as_ref().map(|r| r.for_request(&req));
        let dispatch = self.dispatch(&mut req);
        run(dispatch, req, rendering)
    }
}
