//! [`MapOutput`]: a future that applies a function to its inner future's output.
//!
//! Every middleware here post-processes the inner handler's response. Written as
//! `async move { let res = fut.await; f(res) }`, each layer's future would hold the inner future
//! twice over (once as a captured variable, once as the awaited local) and copy it on the first
//! poll; a stack of five layers multiplies that. `MapOutput` keeps the inner future in place: a
//! layer costs only its own few fields.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// `inner`, then `f(output)`.
    pub(crate) struct MapOutput<F, C> {
        #[pin]
        inner: F,
        f: Option<C>,
    }
}

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
