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
//! Matching is one `matchit` lookup. A route without parameters costs no allocation besides the
//! one box of the handler's future; parameters cost one [`PathParams`] (two buffers) and an
//! extension insert; state costs a clone of the state's extension map. The router itself is
//! never cloned or boxed per request.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Extensions, Method, StatusCode, Uri};
use percent_encoding::percent_decode_str;

use crate::{
    BoxHandler, Error, Handler, IntoResponse, Middleware, Request, Response, head_response,
};

/// The name of the catch-all parameter a mount uses for the rest of the path.
const REST: &str = "__conduit_mount_rest";

// ---------------------------------------------------------------------------------------------
// PathParams
// ---------------------------------------------------------------------------------------------

/// The path parameters of the matched route, as ordered `(name, value)` pairs.
///
/// Values are percent-decoded (`%20` becomes a space; `+` is left alone). The router inserts
/// `PathParams` into the request's extensions only when the route has parameters. A request
/// routed through nested routers carries the outer parameters first, then the inner ones.
///
/// ```
/// use conduit_core::PathParams;
///
/// let mut params = PathParams::new();
/// params.push("id", "42");
/// assert_eq!(params.get("id"), Some("42"));
/// assert_eq!(params.iter().collect::<Vec<_>>(), [("id", "42")]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PathParams {
    /// Every name and value, back to back.
    buf: String,
    /// `(name start, name end = value start, value end)` in `buf`.
    spans: Vec<(usize, usize, usize)>,
}

impl PathParams {
    /// No parameters.
    pub const fn new() -> Self {
        Self {
            buf: String::new(),
            spans: Vec::new(),
        }
    }

    /// The value of the parameter `name`; if several have that name (nested routers), the
    /// last (innermost) one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The `(name, value)` pairs, in route order (outer routers first).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator + '_ {
        self.spans
            .iter()
            .map(|&(s, m, e)| (&self.buf[s..m], &self.buf[m..e]))
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Append a parameter (the value is taken as is, not percent-decoded).
    pub fn push(&mut self, name: &str, value: &str) {
        let start = self.buf.len();
        self.buf.push_str(name);
        let mid = self.buf.len();
        self.buf.push_str(value);
        self.spans.push((start, mid, self.buf.len()));
    }

    /// Append a parameter, percent-decoding `raw`; `Err` if the decoded bytes are not UTF-8.
    fn push_decoded(&mut self, name: &str, raw: &str) -> Result<(), ()> {
        if !raw.contains('%') {
            self.push(name, raw);
            return Ok(());
        }
        match percent_decode_str(raw).decode_utf8() {
            Ok(value) => {
                self.push(name, &value);
                Ok(())
            }
            Err(_) => Err(()),
        }
    }

    /// Append all of `other`'s parameters after ours.
    fn append(&mut self, other: PathParams) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let offset = self.buf.len();
        self.buf.push_str(&other.buf);
        self.spans.extend(
            other
                .spans
                .iter()
                .map(|&(s, m, e)| (s + offset, m + offset, e + offset)),
        );
    }
}

impl fmt::Debug for PathParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The request URI as it was before a [`Router::mount`] or [`Router::nest`] stripped its
/// prefix (a request extension; the outermost mount sets it, inner ones keep it).
///
/// ```
/// use conduit_core::{Handler, OriginalUri, Request, Router};
///
/// let app = Router::new().mount("/api", |req: Request| async move {
///     let original = req.extensions().get::<OriginalUri>().unwrap();
///     format!("{} (was {})", req.uri(), original.0)
/// });
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let res = app.call(Request::get("/api/users?page=2").body(Default::default()).unwrap()).await;
/// let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
/// assert_eq!(body, "/users?page=2 (was /api/users?page=2)");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalUri(pub Uri);

// ---------------------------------------------------------------------------------------------
// Dispatch: the one future shape shared by Router and MethodRouter
// ---------------------------------------------------------------------------------------------

/// What a router decided, synchronously, for one request.
enum Dispatch<'a> {
    /// Call this handler; `true` = a HEAD answered by GET (drop the body afterwards).
    Call(&'a BoxHandler, Request, bool),
    /// Answer right away (405, 400 on a bad parameter, ...).
    Respond(Response),
}

enum Step<F> {
    Pending(F, bool),
    Ready(Response),
}

/// Turn a decision into the response future: no boxing beyond the handler's own.
#[inline]
fn run(dispatch: Dispatch<'_>) -> impl Future<Output = Response> + Send + use<> {
    let step = match dispatch {
        Dispatch::Call(handler, req, head) => Step::Pending(handler.call(req), head),
        Dispatch::Respond(res) => Step::Ready(res),
    };
    async move {
        match step {
            Step::Ready(res) => res,
            Step::Pending(fut, false) => fut.await,
            Step::Pending(fut, true) => head_response(fut.await),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MethodRouter
// ---------------------------------------------------------------------------------------------

/// The standard methods, in the order they are listed in `Allow`.
const STANDARD: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
const GET: usize = 0;

#[inline]
fn standard_slot(method: &Method) -> Option<usize> {
    // Most frequent first; `Method` equality is a cheap enum comparison.
    if *method == Method::GET {
        Some(0)
    } else if *method == Method::POST {
        Some(2)
    } else if *method == Method::HEAD {
        Some(1)
    } else {
        STANDARD.iter().position(|m| m == method)
    }
}

/// Routes requests to a handler by HTTP method.
///
/// Built with [`get`], [`post`], ..., [`any`] and chained with the methods of the same names:
/// `get(list).post(create)`. Dispatch, in order:
///
/// 1. the handler registered for the request's method;
/// 2. for `HEAD`, the `GET` handler, with the response body dropped (its exact size is kept as
///    `Content-Length`);
/// 3. the [`any`] handler;
/// 4. otherwise **405 Method Not Allowed** with an `Allow` header listing the registered methods
///    (`HEAD` is listed whenever `GET` is). `OPTIONS` gets no automatic answer: without an
///    `OPTIONS` (or `any`) handler it is a 405 too, whose `Allow` header tells the client the
///    same thing.
///
/// A `MethodRouter` is itself a [`Handler`].
///
/// ```
/// use conduit_core::{Handler, Request, get};
///
/// let users = get(|_req: Request| async { "list" }).post(|_req: Request| async { "created" });
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let res = users.call(Request::delete("/").body(Default::default()).unwrap()).await;
/// assert_eq!(res.status(), 405);
/// assert_eq!(res.headers()["allow"], "GET, HEAD, POST");
/// # });
/// ```
#[derive(Clone)]
pub struct MethodRouter {
    standard: [Option<BoxHandler>; 9],
    other: Vec<(Method, BoxHandler)>,
    any: Option<BoxHandler>,
    /// The `Allow` header of a 405, computed when building.
    allow: HeaderValue,
}

impl Default for MethodRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MethodRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodRouter")
            .field("allow", &self.allow)
            .field("any", &self.any.is_some())
            .finish()
    }
}

macro_rules! method_fns {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            #[doc = concat!("Route `", stringify!($method), "` requests to `handler`.")]
            pub fn $name<H: Handler>(handler: H) -> MethodRouter {
                MethodRouter::new().on(Method::$method, handler)
            }
        )*

        impl MethodRouter {
            $(
                #[doc = concat!("Route `", stringify!($method), "` requests to `handler`.")]
                ///
                /// # Panics
                ///
                /// If a handler for this method is already registered.
                pub fn $name<H: Handler>(self, handler: H) -> Self {
                    self.on(Method::$method, handler)
                }
            )*
        }
    };
}

method_fns! {
    get => GET,
    post => POST,
    put => PUT,
    delete => DELETE,
    patch => PATCH,
    head => HEAD,
    options => OPTIONS,
}

/// Route requests of every method (not otherwise routed) to `handler`.
pub fn any<H: Handler>(handler: H) -> MethodRouter {
    MethodRouter::new().any(handler)
}

impl MethodRouter {
    /// A method router with no handler: every request gets 405.
    pub fn new() -> Self {
        Self {
            standard: Default::default(),
            other: Vec::new(),
            any: None,
            allow: HeaderValue::from_static(""),
        }
    }

    /// Route requests of `method` to `handler`.
    ///
    /// # Panics
    ///
    /// If a handler for `method` is already registered (a programmer error, caught when the
    /// router is built).
    pub fn on<H: Handler>(mut self, method: Method, handler: H) -> Self {
        self.insert(method, BoxHandler::new(handler));
        self
    }

    /// Route requests of every method that has no handler of its own to `handler`.
    ///
    /// # Panics
    ///
    /// If an `any` handler is already registered.
    pub fn any<H: Handler>(mut self, handler: H) -> Self {
        assert!(
            self.any.is_none(),
            "conduit MethodRouter: an `any` handler is already registered"
        );
        self.any = Some(BoxHandler::new(handler));
        self
    }

    fn insert(&mut self, method: Method, handler: BoxHandler) {
        let slot = match standard_slot(&method) {
            Some(i) => &mut self.standard[i],
            None => match self.other.iter().position(|(m, _)| *m == method) {
                Some(_) => {
                    panic!("conduit MethodRouter: a handler for {method} is already registered")
                }
                None => {
                    self.other.push((method, handler));
                    self.update_allow();
                    return;
                }
            },
        };
        assert!(
            slot.is_none(),
            "conduit MethodRouter: a handler for {method} is already registered"
        );
        *slot = Some(handler);
        self.update_allow();
    }

    /// Move every handler of `other` into `self`, panicking on a method registered in both.
    fn merge(&mut self, other: MethodRouter, path: &str) {
        for (method, handler) in STANDARD.iter().zip(other.standard) {
            if let Some(handler) = handler {
                assert!(
                    self.standard[standard_slot(method).expect("standard")].is_none(),
                    "conduit Router: route `{path}` already has a handler for {method}"
                );
                self.insert(method.clone(), handler);
            }
        }
        for (method, handler) in other.other {
            assert!(
                !self.other.iter().any(|(m, _)| *m == method),
                "conduit Router: route `{path}` already has a handler for {method}"
            );
            self.insert(method, handler);
        }
        if let Some(handler) = other.any {
            assert!(
                self.any.is_none(),
                "conduit Router: route `{path}` already has an `any` handler"
            );
            self.any = Some(handler);
        }
    }

    fn update_allow(&mut self) {
        let has_get = self.standard[GET].is_some();
        let mut allow = String::new();
        let listed = STANDARD
            .iter()
            .zip(&self.standard)
            .filter(|(m, h)| h.is_some() || (**m == Method::HEAD && has_get))
            .map(|(m, _)| m)
            .chain(self.other.iter().map(|(m, _)| m));
        for method in listed {
            if !allow.is_empty() {
                allow.push_str(", ");
            }
            allow.push_str(method.as_str());
        }
        // Method names are tokens, always valid in a header value.
        self.allow = HeaderValue::from_str(&allow).unwrap_or_else(|_| HeaderValue::from_static(""));
    }

    fn for_each_handler(&mut self, mut f: impl FnMut(&mut BoxHandler)) {
        self.standard.iter_mut().flatten().for_each(&mut f);
        self.other.iter_mut().map(|(_, h)| h).for_each(&mut f);
        self.any.iter_mut().for_each(&mut f);
    }

    #[inline]
    fn dispatch(&self, req: Request) -> Dispatch<'_> {
        let method = req.method();
        let handler = match standard_slot(method) {
            Some(i) => self.standard[i].as_ref(),
            None => self.other.iter().find(|(m, _)| m == method).map(|(_, h)| h),
        };
        if let Some(handler) = handler {
            return Dispatch::Call(handler, req, false);
        }
        if *method == Method::HEAD {
            if let Some(get) = &self.standard[GET] {
                return Dispatch::Call(get, req, true);
            }
        }
        if let Some(any) = &self.any {
            return Dispatch::Call(any, req, false);
        }
        Dispatch::Respond(self.method_not_allowed(method))
    }

    #[cold]
    fn method_not_allowed(&self, method: &Method) -> Response {
        let allow = self.allow.to_str().unwrap_or_default();
        let message = format!("Method Not Allowed: {method} (allowed: {allow})");
        let mut res = Error::new(StatusCode::METHOD_NOT_ALLOWED, message).into_response();
        res.headers_mut().insert(header::ALLOW, self.allow.clone());
        res
    }
}

impl Handler for MethodRouter {
    #[inline]
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<> {
        run(self.dispatch(req))
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
    endpoints: Vec<Endpoint>,
    fallback: BoxHandler,
    /// Extensions cloned into every request, if the router has state.
    state: Option<Extensions>,
}

// Built once and kept in a Vec: keeping MethodRouter inline saves a pointer chase per request.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Endpoint {
    Route { path: String, methods: MethodRouter },
    Mount { prefix: String, handler: BoxHandler },
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
                Endpoint::Route { path, methods } => {
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
                endpoints: Vec::new(),
                fallback: BoxHandler::new(not_found),
                state: None,
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
            Endpoint::Route { path: p, methods } if p == path => Some(methods),
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
        });
        self.insert("route", path, index);
        self
    }

    /// Send every request for `prefix` or anything under `prefix/` to `handler`, with the
    /// prefix stripped from the URI path.
    ///
    /// The handler sees a path that always starts with `/` (`/api` and `/api/` both become
    /// `/`, `/api/users` becomes `/users`) and the query unchanged. The URI before stripping is
    /// in the [`OriginalUri`] extension (set by the outermost mount only). `prefix` may have
    /// parameters (`/users/{id}`); they are added to the [`PathParams`]. A trailing `/` on
    /// `prefix` is ignored; `/` mounts at the root (nothing is stripped).
    ///
    /// # Panics
    ///
    /// If `prefix` is invalid or conflicts with a route or mount already added.
    pub fn mount<H: Handler>(mut self, prefix: &str, handler: H) -> Self {
        check_path("mount prefix", prefix);
        let base = prefix.trim_end_matches('/');
        let inner = self.inner_mut();
        let index = inner.endpoints.len();
        inner.endpoints.push(Endpoint::Mount {
            prefix: prefix.to_owned(),
            handler: BoxHandler::new(handler),
        });
        if !base.is_empty() {
            self.insert("mount", base, index);
        }
        self.insert("mount", &format!("{base}/"), index);
        self.insert("mount", &format!("{base}/{{*{REST}}}"), index);
        self
    }

    /// Mount another router under `prefix`: [`mount`](Self::mount) for a [`Router`].
    ///
    /// The nested router keeps its own fallback, middleware and state; the outer router's
    /// state is visible to it too (extensions accumulate; the inner value wins for a type both
    /// have).
    ///
    /// # Panics
    ///
    /// As [`mount`](Self::mount).
    pub fn nest(self, prefix: &str, router: Router) -> Self {
        self.mount(prefix, router)
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
        let mut wrap = |h: &mut BoxHandler| *h = BoxHandler::new(middleware.wrap(h.clone()));
        let inner = self.inner_mut();
        for endpoint in &mut inner.endpoints {
            match endpoint {
                Endpoint::Route { methods, .. } => methods.for_each_handler(&mut wrap),
                Endpoint::Mount { handler, .. } => wrap(handler),
            }
        }
        wrap(&mut inner.fallback);
        self
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

    /// Match `req` and decide what answers it (synchronously).
    #[inline]
    fn dispatch(&self, mut req: Request) -> Dispatch<'_> {
        let inner = &*self.inner;
        // `rest` is where the path left to a mount starts (`None`: the path is the prefix).
        let (index, params, rest) = {
            let path = req.uri().path();
            let Ok(matched) = inner.matcher.at(path) else {
                return Dispatch::Call(&inner.fallback, req, false);
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
            Endpoint::Route { methods, .. } => methods.dispatch(req),
            Endpoint::Mount { handler, .. } => match strip_prefix(&mut req, rest) {
                Ok(()) => Dispatch::Call(handler, req, false),
                Err(err) => Dispatch::Respond(err.into_response()),
            },
        }
    }
}

#[cold]
fn bad_param(name: &str) -> Response {
    Error::bad_request(format!(
        "Bad Request: path parameter `{name}` is not valid UTF-8 once percent-decoded"
    ))
    .into_response()
}

/// Rewrite the URI for a mount: keep `path[rest..]` (or `/`), the query, scheme and authority;
/// remember the original in [`OriginalUri`].
fn strip_prefix(req: &mut Request, rest: Option<usize>) -> Result<(), Error> {
    let uri = req.uri();
    let path = uri.path();
    let new_path = match rest {
        Some(0) => path,
        Some(start) => path.get(start..).unwrap_or("/"),
        None => "/",
    };
    let new_uri = if new_path.len() == path.len() {
        None // mounted at the root: nothing to strip
    } else {
        let query = uri.query();
        let mut pq = String::with_capacity(new_path.len() + query.map_or(0, |q| q.len() + 1));
        pq.push_str(new_path);
        if let Some(query) = query {
            pq.push('?');
            pq.push_str(query);
        }
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(
            http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)).map_err(|e| {
                Error::bad_request("Bad Request: invalid request target").with_source(e)
            })?,
        );
        Some(Uri::from_parts(parts).map_err(|e| {
            Error::bad_request("Bad Request: invalid request target").with_source(e)
        })?)
    };
    let original = match new_uri {
        Some(new_uri) => std::mem::replace(req.uri_mut(), new_uri),
        None => req.uri().clone(),
    };
    if req.extensions().get::<OriginalUri>().is_none() {
        req.extensions_mut().insert(OriginalUri(original));
    }
    Ok(())
}

impl Handler for Router {
    #[inline]
    fn call(&self, mut req: Request) -> impl Future<Output = Response> + Send + use<> {
        if let Some(state) = &self.inner.state {
            req.extensions_mut().extend(state.clone());
        }
        run(self.dispatch(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Body;
    use crate::{HandlerExt, Next, RequestExt, from_fn};
    use http_body::Body as _;

    fn req(method: Method, uri: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap()
    }

    async fn body(res: Response) -> String {
        let bytes = crate::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn get_text(app: &impl Handler, uri: &str) -> (StatusCode, String) {
        let res = app.call(req(Method::GET, uri)).await;
        (res.status(), body(res).await)
    }

    /// A handler that echoes the path, query and params it sees.
    async fn echo(req: Request) -> String {
        let params: Vec<String> = req
            .params()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} [{}]", req.uri(), params.join(","))
    }

    #[tokio::test]
    async fn static_routes_and_404() {
        let app = Router::new()
            .route("/", get(|_r: Request| async { "root" }))
            .route("/about", get(|_r: Request| async { "about" }));
        assert_eq!(get_text(&app, "/").await, (StatusCode::OK, "root".into()));
        assert_eq!(
            get_text(&app, "/about").await,
            (StatusCode::OK, "about".into())
        );
        let (status, _) = get_text(&app, "/missing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = get_text(&app, "/about/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // No params, no extension.
        let app =
            Router::new().route(
                "/x",
                get(|r: Request| async move {
                    format!("{}", r.extensions().get::<PathParams>().is_none())
                }),
            );
        assert_eq!(get_text(&app, "/x").await.1, "true");
    }

    #[tokio::test]
    async fn params_are_percent_decoded() {
        let app = Router::new().route("/users/{id}/posts/{post}", get(echo));
        let (status, text) = get_text(&app, "/users/a%20b/posts/%E2%9C%93+x").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "/users/a%20b/posts/%E2%9C%93+x [id=a b,post=✓+x]");
        let app = Router::new().route(
            "/u/{id}",
            get(|r: Request| async move { r.param("id").unwrap_or("none").to_owned() }),
        );
        assert_eq!(get_text(&app, "/u/42").await.1, "42");
    }

    #[tokio::test]
    async fn invalid_utf8_param_is_400() {
        let app = Router::new().route("/u/{id}", get(echo));
        let (status, _) = get_text(&app, "/u/%FF%FE").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // A lone `%` is kept as is.
        assert_eq!(
            get_text(&app, "/u/100%").await,
            (StatusCode::OK, "/u/100% [id=100%]".into())
        );
    }

    #[tokio::test]
    async fn catch_all() {
        let app = Router::new()
            .route("/files/{*path}", get(echo))
            .route("/files/special", get(|_r: Request| async { "special" }));
        assert_eq!(
            get_text(&app, "/files/a/b%2Fc.txt").await.1,
            "/files/a/b%2Fc.txt [path=a/b/c.txt]"
        );
        assert_eq!(get_text(&app, "/files/special").await.1, "special");
        assert_eq!(get_text(&app, "/files/").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn method_not_allowed_lists_methods() {
        let app = Router::new().route(
            "/",
            post(|_r: Request| async { "p" })
                .get(|_r: Request| async { "g" })
                .on(Method::from_bytes(b"PURGE").unwrap(), |_r: Request| async {
                    "purge"
                }),
        );
        let res = app.call(req(Method::DELETE, "/")).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD, POST, PURGE");
        let res = app.call(req(Method::OPTIONS, "/")).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        let res = app
            .call(req(Method::from_bytes(b"PURGE").unwrap(), "/"))
            .await;
        assert_eq!(body(res).await, "purge");

        let only_post = post(|_r: Request| async { "p" });
        let res = only_post.call(req(Method::HEAD, "/")).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "POST");
    }

    #[tokio::test]
    async fn any_catches_other_methods() {
        let app = Router::new().route(
            "/",
            get(|_r: Request| async { "get" }).any(|_r: Request| async { "any" }),
        );
        assert_eq!(body(app.call(req(Method::GET, "/")).await).await, "get");
        assert_eq!(body(app.call(req(Method::PUT, "/")).await).await, "any");
        let app = Router::new().route("/", any(|r: Request| async move { r.method().to_string() }));
        assert_eq!(
            body(app.call(req(Method::DELETE, "/")).await).await,
            "DELETE"
        );
    }

    #[tokio::test]
    async fn head_uses_get_without_body() {
        let app = Router::new()
            .route("/", get(|_r: Request| async { "hello" }))
            .route(
                "/explicit",
                get(|_r: Request| async { "get" })
                    .head(|_r: Request| async { (StatusCode::ACCEPTED, "") }),
            )
            .route(
                "/declared",
                get(|_r: Request| async {
                    let mut h = http::HeaderMap::new();
                    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
                    (h, Body::from_stream(futures_stream()))
                }),
            );
        let res = app.call(req(Method::HEAD, "/")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "5");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(res.body().size_hint().exact(), Some(0));
        assert_eq!(body(res).await, "");

        let res = app.call(req(Method::HEAD, "/explicit")).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);

        let res = app.call(req(Method::HEAD, "/declared")).await;
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "99");
        assert_eq!(body(res).await, "");
    }

    fn futures_stream() -> impl futures_core::Stream<Item = Result<&'static str, std::io::Error>> {
        struct Once(Option<&'static str>);
        impl futures_core::Stream for Once {
            type Item = Result<&'static str, std::io::Error>;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                std::task::Poll::Ready(self.0.take().map(Ok))
            }
        }
        Once(Some("streamed"))
    }

    #[tokio::test]
    async fn route_twice_merges_methods() {
        let app = Router::new()
            .route("/", get(|_r: Request| async { "g" }))
            .route("/", post(|_r: Request| async { "p" }));
        assert_eq!(body(app.call(req(Method::POST, "/")).await).await, "p");
        assert_eq!(body(app.call(req(Method::GET, "/")).await).await, "g");
    }

    #[test]
    #[should_panic(expected = "already has a handler for GET")]
    fn duplicate_method_panics() {
        let _ = Router::new().route("/", get(echo)).route("/", get(echo));
    }

    #[test]
    #[should_panic(expected = "conflict")]
    fn conflicting_route_panics() {
        let _ = Router::new()
            .route("/{a}", get(echo))
            .route("/{b}", get(echo));
    }

    #[test]
    #[should_panic(expected = "must start with `/`")]
    fn route_without_slash_panics() {
        let _ = Router::new().route("users", get(echo));
    }

    #[tokio::test]
    async fn mount_strips_prefix() {
        let app = Router::new().mount("/api", echo).route("/api2", get(echo));
        assert_eq!(get_text(&app, "/api").await.1, "/ []");
        assert_eq!(get_text(&app, "/api/").await.1, "/ []");
        assert_eq!(
            get_text(&app, "/api/users/7?page=2").await.1,
            "/users/7?page=2 []"
        );
        assert_eq!(get_text(&app, "/api?x=1").await.1, "/?x=1 []");
        assert_eq!(get_text(&app, "/api2").await.1, "/api2 []");
        assert_eq!(get_text(&app, "/apix").await.0, StatusCode::NOT_FOUND);
        // Mount answers every method.
        assert_eq!(
            body(app.call(req(Method::DELETE, "/api/x")).await).await,
            "/x []"
        );
    }

    #[tokio::test]
    async fn mount_at_root_and_trailing_slash_prefix() {
        let app = Router::new()
            .route("/health", get(|_r: Request| async { "ok" }))
            .mount("/", echo);
        assert_eq!(get_text(&app, "/health").await.1, "ok");
        assert_eq!(get_text(&app, "/").await.1, "/ []");
        assert_eq!(get_text(&app, "/a/b?c").await.1, "/a/b?c []");
        let app = Router::new().mount("/v1/", echo);
        assert_eq!(get_text(&app, "/v1/x").await.1, "/x []");
        assert_eq!(get_text(&app, "/v1").await.1, "/ []");
    }

    #[tokio::test]
    async fn original_uri_is_the_outermost() {
        let show = |r: Request| async move {
            let original = r.extensions().get::<OriginalUri>().map(|o| o.0.to_string());
            format!("{} {}", r.uri(), original.unwrap_or_default())
        };
        let inner = Router::new().mount("/b", show);
        let app = Router::new().nest("/a", inner);
        assert_eq!(get_text(&app, "/a/b/c?q=1").await.1, "/c?q=1 /a/b/c?q=1");
        // Absolute-form URIs (HTTP/2) keep scheme and authority.
        assert_eq!(
            get_text(&app, "http://example.com/a/b/c").await.1,
            "http://example.com/c http://example.com/a/b/c"
        );
    }

    #[tokio::test]
    async fn nest_keeps_outer_params_and_appends_inner() {
        let inner = Router::new()
            .route("/posts/{id}", get(echo))
            .route("/", get(echo))
            .fallback(|_r: Request| async { (StatusCode::IM_A_TEAPOT, "inner fallback") });
        let app = Router::new().nest("/users/{id}", inner);
        assert_eq!(
            get_text(&app, "/users/7/posts/9").await.1,
            "/posts/9 [id=7,id=9]"
        );
        assert_eq!(get_text(&app, "/users/7").await.1, "/ [id=7]");
        assert_eq!(get_text(&app, "/users/7/").await.1, "/ [id=7]");
        assert_eq!(
            get_text(&app, "/users/7/nothing").await,
            (StatusCode::IM_A_TEAPOT, "inner fallback".into())
        );
        // `get` returns the innermost value of a repeated name.
        let inner = Router::new().route(
            "/{id}",
            get(|r: Request| async move { r.param("id").unwrap().to_owned() }),
        );
        let app = Router::new().nest("/u/{id}", inner);
        assert_eq!(get_text(&app, "/u/1/2").await.1, "2");
    }

    #[tokio::test]
    async fn custom_fallback() {
        let app = Router::new()
            .route("/", get(echo))
            .fallback(|r: Request| async move {
                (StatusCode::NOT_FOUND, format!("no {}", r.uri().path()))
            });
        assert_eq!(
            get_text(&app, "/x/y").await,
            (StatusCode::NOT_FOUND, "no /x/y".into())
        );
    }

    #[tokio::test]
    async fn layer_wraps_routes_mounts_and_fallback_registered_before() {
        let mark = from_fn(|req: Request, next: Next| async move {
            let mut res = next.run(req).await;
            res.headers_mut()
                .insert("x-layer", HeaderValue::from_static("1"));
            res
        });
        let app = Router::new()
            .route("/a", get(echo))
            .mount("/m", echo)
            .layer(mark)
            .route("/b", get(echo));
        let res = app.call(req(Method::GET, "/a")).await;
        assert_eq!(res.headers()["x-layer"], "1");
        let res = app.call(req(Method::GET, "/m/x")).await;
        assert_eq!(res.headers()["x-layer"], "1");
        let res = app.call(req(Method::GET, "/nothing")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["x-layer"], "1");
        let res = app.call(req(Method::GET, "/b")).await;
        assert!(res.headers().get("x-layer").is_none());
        // HEAD via GET goes through the wrapped GET handler.
        let res = app.call(req(Method::HEAD, "/a")).await;
        assert_eq!(res.headers()["x-layer"], "1");
    }

    #[tokio::test]
    async fn state_present_missing_and_nested() {
        #[derive(Clone)]
        struct Name(&'static str);
        #[derive(Clone)]
        struct Inner(u32);
        let show = |r: Request| async move {
            let name = r.state::<Name>().map(|n| n.0).unwrap_or("-");
            let inner = r.state::<Inner>().map(|i| i.0).unwrap_or(0);
            format!("{name} {inner}")
        };
        let nested = Router::new().route("/", get(show)).state(Inner(3));
        let app = Router::new()
            .route("/", get(show))
            .route(
                "/missing",
                get(|r: Request| async move { r.state::<Inner>().map(|i| i.0.to_string()) }),
            )
            .nest("/n", nested)
            .state(Name("outer"));
        assert_eq!(get_text(&app, "/").await.1, "outer 0");
        assert_eq!(get_text(&app, "/n").await.1, "outer 3");
        let (status, text) = get_text(&app, "/missing").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !text.contains("Inner"),
            "type names are logged, not sent: {text}"
        );
        // Without state the handler sees no extension map at all.
        let app = Router::new().route(
            "/",
            get(|r: Request| async move { r.extensions().len().to_string() }),
        );
        assert_eq!(get_text(&app, "/").await.1, "0");
    }

    #[tokio::test]
    async fn router_is_a_cheap_clone_and_a_handler() {
        let app = Router::new().route("/", get(echo));
        let clone = app.clone();
        assert!(Arc::ptr_eq(&app.inner, &clone.inner));
        let boxed = app.boxed();
        assert_eq!(
            boxed.call(req(Method::GET, "/")).await.status(),
            StatusCode::OK
        );
        assert!(format!("{clone:?}").contains("GET, HEAD"));
    }

    #[tokio::test]
    async fn weird_targets_do_not_panic() {
        let app = Router::new().route("/{a}", get(echo)).mount("/m", echo);
        for uri in [
            "*",
            "/%",
            "/%%",
            "/m/%FF",
            "//",
            "/m//x",
            "http://h",
            "http://h?x=1",
        ] {
            let res = app.call(req(Method::OPTIONS, uri)).await;
            assert!(
                res.status().is_client_error() || res.status().is_success(),
                "{uri}: {}",
                res.status()
            );
        }
        let connect = Request::builder()
            .method(Method::CONNECT)
            .uri("example.com:443")
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.call(connect).await.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn path_params_api() {
        let mut p = PathParams::new();
        assert!(p.is_empty());
        p.push("a", "1");
        let mut q = PathParams::new();
        q.push("b", "2");
        q.push("a", "3");
        p.append(q);
        assert_eq!(p.len(), 3);
        assert_eq!(p.get("a"), Some("3"));
        assert_eq!(p.get("b"), Some("2"));
        assert_eq!(p.get("c"), None);
        assert_eq!(format!("{p:?}"), r#"{"a": "1", "b": "2", "a": "3"}"#);
        assert!(p.push_decoded("x", "%C3%A9").is_ok());
        assert_eq!(p.get("x"), Some("é"));
        assert!(p.push_decoded("y", "%C3").is_err());
        assert_eq!(p.len(), 4);
    }
}
