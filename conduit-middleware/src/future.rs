//! [`MapOutput`]: a future that applies a function to its inner future's output.
//!
//! Every middleware here post-processes the inner handler's response. Written as
//! `async move { let res = fut.await; f(res) }`, each layer's future would hold the inner future
//! twice over (once as a captured variable, once as the awaited local) and copy it on the first
//! poll; a stack of five layers multiplies that. `MapOutput` keeps the inner future in place: a
//! layer costs only its own few fields.
//!
//! [`MapResponse`] goes one step further for layers that only edit the response: the closure
//! gets `&mut Response`, so the response (a couple hundred bytes) is not moved into the closure
//! and back out of it at every layer, which under callgrind is two `memcpy` calls per layer per
//! request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use conduit_core::Response;

pin_project_lite::pin_project! {
    /// `inner`, then `f(output)`.
    pub(crate) struct MapOutput<F, C> {
        #[pin]
        inner: F,
        f: Option<C>,
    }
}

// For layers that replace or wrap the output (ETag, CORS, cache-control); the stack's own
// layers use `MapResponse`.
impl<F, C> MapOutput<F, C> {
    pub(crate) fn new(inner: F, f: C) -> Self {
        Self { inner, f: Some(f) }
    }
}

impl<F, C, T> Future for MapOutput<F, C>
where
    F: Future,
    C: FnOnce(F::Output) -> T,
{
    type Output = T;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        let f = this.f.take().expect("MapOutput polled after completion");
        Poll::Ready(f(out))
    }
}

pin_project_lite::pin_project! {
    /// `inner`, then `f(&mut response)`.
    pub(crate) struct MapResponse<F, C> {
        #[pin]
        inner: F,
        f: Option<C>,
    }
}

impl<F, C> MapResponse<F, C> {
    pub(crate) fn new(inner: F, f: C) -> Self {
        Self { inner, f: Some(f) }
    }
}

impl<F, C> Future for MapResponse<F, C>
where
    F: Future<Output = Response>,
    C: FnOnce(&mut Response),
{
    type Output = Response;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        // Edit the response inside the `Poll` the inner future returned, and return that same
        // `Poll`: the response stays in the caller's return slot instead of being moved out
        // and back in.
        let mut out = this.inner.poll(cx);
        if let Poll::Ready(res) = &mut out {
            let f = this.f.take().expect("MapResponse polled after completion");
            f(res);
        }
        out
    }
}
