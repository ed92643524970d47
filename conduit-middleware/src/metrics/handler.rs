//! [`Metrics`], the middleware, and [`MetricsHandler`], the handler it wraps around an app:
//! each response recorded in its label set's series, streamed bodies counted as they are sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use conduit_core::{
    Body, BodyWrapper, BoxError, Handler, MatchedPath, Middleware, RecordMatchedPath, Request,
    Response,
};
use http_body::{Body as _, Frame};
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::collector::RequestCollector;
use crate::metrics::registry::MetricsRegistry;
use crate::metrics::series::{Series, Shared, UNMATCHED, matched_route, method_label};

/// The Prometheus default buckets, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Builds a [`Metrics`] middleware.
#[derive(Debug, Clone)]
pub struct MetricsBuilder {
    buckets: Vec<f64>,
}

impl MetricsBuilder {
    /// The latency histogram's upper bounds in seconds (default [`DEFAULT_BUCKETS`]); sorted,
    /// duplicates and non-finite values dropped (`+Inf` is always there).
    pub fn buckets(mut self, buckets: impl IntoIterator<Item = f64>) -> Self {
        let mut b: Vec<f64> = buckets.into_iter().filter(|v| v.is_finite()).collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        self.buckets = b;
        self
    }

    /// Register the metrics in `registry` and build the middleware. Register one per registry
    /// (names must be unique); clone the returned middleware to use it in several places.
    ///
    /// The metrics live for the rest of the process (a few hundred bytes plus one entry per
    /// label set, which the registry exposes for as long as it lives anyway): requests then
    /// reach them through a plain `&'static` reference instead of counting references.
    pub fn register(self, registry: &MetricsRegistry) -> Metrics {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            buckets: self.buckets.into(),
            series: RwLock::default(),
            in_flight: Gauge::default(),
        }));
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled",
            shared.in_flight.clone(),
        );
        registry.register_collector(RequestCollector(shared));
        Metrics { shared }
    }
}

/// The request-metrics middleware. See the [module docs](crate::metrics).
#[derive(Debug, Clone)]
pub struct Metrics {
    shared: &'static Shared,
}

impl Metrics {
    /// Default buckets, registered in `registry`.
    pub fn new(registry: &MetricsRegistry) -> Self {
        Self::builder().register(registry)
    }

    /// Configure before registering.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder {
            buckets: DEFAULT_BUCKETS.to_vec(),
        }
    }
}

/// Decrements the in-flight gauge when the request ends, even if its future is dropped.
struct InFlight(&'static Shared);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// The handler built by [`Metrics`].
#[derive(Debug, Clone)]
pub struct MetricsHandler<H> {
    inner: H,
    shared: &'static Shared,
}

impl<H: Handler> Middleware<H> for Metrics {
    type Output = MetricsHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        MetricsHandler {
            inner,
            shared: self.shared,
        }
    }
}

impl<H: Handler> Handler for MetricsHandler<H> {
    #[inline]
    fn call(&self, mut req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let start = Instant::now();
        let method = method_label(req.method());
        // Inside a router (a route's layer) the template is on the request; around the
        // router it comes back on the response, which the router does when asked.
        let route_in = MatchedPath::of(&req);
        if route_in.is_none() {
            req.extensions_mut().insert(RecordMatchedPath);
        }
        self.shared.in_flight.inc();
        let pending = Pending {
            start,
            method,
            route_in,
            guard: InFlight(self.shared),
        };
        MetricsFuture {
            inner: self.inner.call(req),
            pending: Some(pending),
        }
    }
}

/// What a request's measurement needs once its response is ready.
struct Pending {
    start: Instant,
    method: &'static str,
    route_in: Option<MatchedPath>,
    guard: InFlight,
}

pin_project_lite::pin_project! {
    /// The future of [`MetricsHandler`]. Written by hand rather than as an `async` block: an
    /// `async` block copies the (large) inner future into its state when first polled, which
    /// showed up as the biggest part of this middleware's cost under callgrind.
    struct MetricsFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F: Future<Output = Response>> Future for MetricsFuture<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        let Some(p) = this.pending.take() else {
            return Poll::Ready(res); // polled again after completion: nothing more to record
        };
        let route = matched_route(res.extensions())
            .or(p.route_in.as_ref().map(MatchedPath::as_str))
            .unwrap_or(UNMATCHED);
        let exact = res.body().size_hint().exact();
        let streamed = p
            .guard
            .0
            .record(p.method, res.status().as_u16(), route, p.start, exact);
        drop(p); // the request is no longer in flight
        Poll::Ready(match streamed {
            None => res,
            Some(series) => res.map(|body| body.observe(CountBytes(series))),
        })
    }
}

/// What a streamed body adds its bytes to as they are sent.
struct CountBytes(Arc<Series>);

impl BodyWrapper for CountBytes {
    fn poll_frame(
        &mut self,
        inner: Pin<&mut Body>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.0
                    .body_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cleaned() {
        let b = Metrics::builder().buckets([1.0, f64::NAN, 0.5, 1.0, f64::INFINITY]);
        assert_eq!(b.buckets, [0.5, 1.0]);
    }
}
