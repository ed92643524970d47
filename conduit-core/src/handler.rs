//! [`Handler`]: anything that turns a [`Request`] into a [`Response`].
//!
//! Handlers cannot fail: errors are responses ([`Error`](crate::Error) implements
//! [`IntoResponse`]). An async closure `Fn(Request) -> impl Future<Output = impl IntoResponse>`
//! is a handler; so are routers and middleware-wrapped handlers. [`BoxHandler`] erases the type,
//! once, where handlers of different types must live together (the router, the server).
//!
//! The future a handler returns is `'static` (it owns what it needs), so the server can drive it
//! without boxing it again, exactly like a `tower::Service` future.
//!
//! ```
//! use conduit_core::{Handler, Request, Body};
//!
//! let hello = |_req: Request| async { "Hello, World!" };
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = hello.call(Request::new(Body::empty())).await;
//! assert_eq!(res.status(), 200);
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{IntoResponse, Request, Response};

/// A boxed response future, the one allocation [`BoxHandler`] pays per call.
pub type BoxFuture = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// Turns a request into a response.
pub trait Handler: Send + Sync + 'static {
    /// Handle one request.
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<Self>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoResponse,
{
    #[inline]
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<F, Fut> {
        let fut = self(req);
        async move { fut.await.into_response() }
    }
}

trait ErasedHandler: Send + Sync + 'static {
    fn call_boxed(&self, req: Request) -> BoxFuture;
}

impl<H: Handler> ErasedHandler for H {
    #[inline]
    fn call_boxed(&self, req: Request) -> BoxFuture {
        Box::pin(self.call(req))
    }
}

/// A type-erased, cheaply clonable [`Handler`].
#[derive(Clone)]
pub struct BoxHandler(Arc<dyn ErasedHandler>);

impl BoxHandler {
    /// Erase the type of `handler`. Boxing a `BoxHandler` again returns it unchanged.
    pub fn new<H: Handler>(handler: H) -> Self {
        // Avoid double boxing when a BoxHandler is passed where a Handler is expected.
        let mut slot = Some(handler);
        if let Some(b) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<BoxHandler>>()
        {
            return b.take().expect("just set");
        }
        Self(Arc::new(slot.take().expect("just set")))
    }
}

impl BoxHandler {
    /// [`Handler::call`], with the future's type named (the router's and the tower adapter's
    /// futures hold it).
    #[inline]
    pub(crate) fn call_boxed(&self, req: Request) -> BoxFuture {
        self.0.call_boxed(req)
    }
}

impl fmt::Debug for BoxHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxHandler")
    }
}

impl Handler for BoxHandler {
    #[inline]
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<> {
        self.0.call_boxed(req)
    }
}
