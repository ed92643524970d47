//! [`MethodRouter`]: routing by HTTP method, with HEAD answered by GET and 405 with `Allow`.

use std::fmt;
use std::future::Future;

use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::{Dispatch, Reply, run};
use crate::{BoxHandler, Error, Handler, IntoResponse, Request, Response};

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
    pub(super) allow: HeaderValue,
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
    pub(super) fn merge(&mut self, other: MethodRouter, path: &str) {
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

    pub(super) fn for_each_handler(&mut self, mut f: impl FnMut(&mut BoxHandler)) {
        self.standard.iter_mut().flatten().for_each(&mut f);
        self.other.iter_mut().map(|(_, h)| h).for_each(&mut f);
        self.any.iter_mut().for_each(&mut f);
    }

    #[inline]
    pub(super) fn dispatch(&self, req: &Request) -> Dispatch<'_> {
        let method = req.method();
        let handler = match standard_slot(method) {
            Some(i) => self.standard[i].as_ref(),
            None => self.other.iter().find(|(m, _)| m == method).map(|(_, h)| h),
        };
        if let Some(handler) = handler {
            return Dispatch::call(handler);
        }
        if *method == Method::HEAD {
            if let Some(get) = &self.standard[GET] {
                return Dispatch::Call {
                    handler: get,
                    reply: Reply::WithoutBody,
                    matched: None,
                };
            }
        }
        if let Some(any) = &self.any {
            return Dispatch::call(any);
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
        let dispatch = self.dispatch(&req);
        run(dispatch, req, None)
    }
}
