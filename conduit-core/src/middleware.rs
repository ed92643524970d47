//! [`Middleware`]: static composition of handlers, and [`from_fn`] for one-offs.
//!
//! A middleware is a config value that wraps a handler in another handler:
//! `handler.with(Timeout::new(..))`. The wrapped type is concrete, so a stack of middleware
//! compiles to one nested future with no boxing. [`from_fn`] trades one box per call for
//! the convenience of writing a middleware as an async closure.
//!
//! ```
//! use conduit_core::{Body, Handler, HandlerExt, Next, Request, from_fn};
//!
//! let app = (|_req: Request| async { "hi" }).with(from_fn(|req: Request, next: Next| async move {
//!     let mut res = next.run(req).await;
//!     res.headers_mut().insert("x-powered-by", "conduit".parse().unwrap());
//!     res
//! }));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::new(Body::empty())).await;
//! assert_eq!(res.headers()["x-powered-by"], "conduit");
//! # });
//! ```

use std::fmt;
use std::future::Future;

use crate::{BoxHandler, Handler, IntoResponse, Request, Response};

/// Wraps a handler `H` into another handler.
pub trait Middleware<H: Handler> {
    /// The wrapped handler.
    type Output: Handler;
    /// Wrap `inner`.
    fn wrap(&self, inner: H) -> Self::Output;
}

/// `.with(middleware)` on every handler.
pub trait HandlerExt: Handler + Sized {
    /// Wrap this handler in `middleware`.
    fn with<M: Middleware<Self>>(self, middleware: M) -> M::Output {
        middleware.wrap(self)
    }

    /// Erase this handler's type.
    fn boxed(self) -> BoxHandler {
        BoxHandler::new(self)
    }
}

impl<H: Handler> HandlerExt for H {}

/// The rest of the chain, as seen from a [`from_fn`] middleware.
#[derive(Clone, Debug)]
pub struct Next(BoxHandler);

impl Next {
    /// Call the inner handler.
    pub fn run(&self, req: Request) -> impl Future<Output = Response> + Send + use<> {
        self.0.call(req)
    }
}

/// A middleware made of an async function `(Request, Next) -> impl IntoResponse`.
pub fn from_fn<F>(f: F) -> FromFn<F> {
    FromFn { f }
}

/// The middleware built by [`from_fn`].
#[derive(Clone)]
pub struct FromFn<F> {
    f: F,
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn")
    }
}

impl<H, F, Fut> Middleware<H> for FromFn<F>
where
    H: Handler,
    F: Fn(Request, Next) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoResponse,
{
    type Output = FromFnHandler<F>;

    fn wrap(&self, inner: H) -> Self::Output {
        FromFnHandler {
            f: self.f.clone(),
            next: Next(BoxHandler::new(inner)),
        }
    }
}

/// The handler built by a [`from_fn`] middleware.
pub struct FromFnHandler<F> {
    f: F,
    next: Next,
}

impl<F> fmt::Debug for FromFnHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFnHandler")
    }
}

impl<F, Fut> Handler for FromFnHandler<F>
where
    F: Fn(Request, Next) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoResponse,
{
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<F, Fut> {
        let fut = (self.f)(req, self.next.clone());
        async move { fut.await.into_response() }
    }
}
