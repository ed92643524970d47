//! [`Metrics`]: Prometheus metrics per request, and the [`MetricsRegistry`] that serves them at
//! `/metrics`.
//!
//! The middleware records, labelled by `method`, `route` and `status`:
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `http_requests_total` | counter | responses sent |
//! | `http_request_duration_seconds` | histogram | time to the response head ([buckets](MetricsBuilder::buckets) configurable) |
//! | `http_response_body_bytes_total` | counter | body bytes (streamed bodies counted as they are sent) |
//! | `http_requests_in_flight` | gauge (no labels) | requests being handled now |
//!
//! `route` is the route **template** the router matched (`/users/{id}`), never the raw path,
//! so the number of series stays bounded whatever clients send; requests no route matched
//! (404, 405) share `route="unmatched"`. Unknown methods share `method="OTHER"`. Wrap the whole
//! router (`router.with(metrics)`) so 404s and 405s are counted too: the router records the
//! matched template in the response's extensions, which is where the label comes from.
//!
//! The request path takes no lock: each worker thread keeps a cache from label set to that
//! series' atomic counters, so a request costs a thread-local lookup, two clock reads and a
//! few atomic adds. Only the first request of a new label set on a thread, and each scrape,
//! take the registry's lock. Measured on `bench_server`'s `/stack` (callgrind, user-space
//! instructions per request, `CONDUIT_STACK_METRICS=0` for the baseline): about 545
//! instructions, +3.8% of the stack, +5.2% of a bare "Hello, World!"; in-process, the criterion
//! bench `benches/metrics_etag_rate_limit.rs` puts it at roughly 140 ns on a router call.
//!
//! The [`MetricsRegistry`] wraps a [`prometheus_client`] registry shared by the whole app:
//! other parts (server connections, file caches, SSE hubs, pools) register their own metrics
//! in it, and [`MetricsRegistry::handler`] serves everything in the Prometheus text format
//! (version 0.0.4; OpenMetrics 1.0 when the scraper asks for it in `Accept`).
//!
//! ```
//! use conduit_core::{Body, Handler, HandlerExt, Request, Router, get};
//! use conduit_middleware::{Metrics, MetricsRegistry};
//! use conduit_middleware::prometheus_client::metrics::counter::Counter;
//!
//! let registry = MetricsRegistry::new();
//! let jobs: Counter = Counter::default();
//! registry.register("jobs_done", "Background jobs finished", jobs.clone());
//!
//! let app = Router::new()
//!     .route("/users/{id}", get(|_req: Request| async { "ana" }))
//!     .route("/metrics", get(registry.handler()))
//!     .with(Metrics::new(&registry));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! app.call(Request::get("/users/7").body(Body::empty()).unwrap()).await;
//! jobs.inc();
//! let text = registry.encode();
//! assert!(text.contains("# TYPE http_requests_total counter"));
//! assert!(text.contains("jobs_done_total 1"));
//! # });
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use conduit_core::{
    Body, BoxError, Handler, MatchedPath, Middleware, RecordMatchedPath, Request, Response,
};
use http::header::{self, HeaderValue};
use http::{Extensions, Method};
use http_body::{Body as _, Frame, SizeHint};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

/// The `route` label of requests no route matched (404, 405).
pub const UNMATCHED: &str = "unmatched";

/// The Prometheus default buckets, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A shared Prometheus registry: the middleware's metrics and any others, served by
/// [`handler`](Self::handler). Cloning shares it.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry whose metric names all start with `prefix_`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Registry::with_prefix(prefix))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a metric (a counter, gauge, histogram or family from [`prometheus_client`]).
    /// Counters get the `_total` suffix in the exposition.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock().register(name, help, metric);
    }

    /// Register a collector, asked for its metrics at each scrape (for values that live
    /// elsewhere, such as a pool's statistics).
    pub fn register_collector(&self, collector: impl Collector) {
        self.lock().register_collector(Box::new(collector));
    }

    /// Anything else [`Registry`] offers (sub-registries with a prefix or constant labels),
    /// under the registry's lock.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.lock())
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    ///
    /// [`prometheus_client`] writes OpenMetrics, where a counter family `x` has samples
    /// `x_total`; in 0.0.4 the `# HELP`/`# TYPE` lines name the samples themselves, so they are
    /// renamed to `x_total` here (as Prometheus' Go client does), and `# UNIT` lines (not part
    /// of 0.0.4) are left out. Strict 0.0.4 parsers then see typed counters.
    pub fn encode(&self) -> String {
        to_prometheus_text(&self.encode_openmetrics_body())
    }

    /// Every metric in the OpenMetrics 1.0 text format (ends with `# EOF`).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = self.encode_openmetrics_body();
        prometheus_client::encoding::text::encode_eof(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn encode_openmetrics_body(&self) -> String {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode_registry(&mut out, &self.lock())
            .expect("writing to a String cannot fail");
        out
    }

    /// A handler serving the exposition: mount it with `.route("/metrics", get(registry.handler()))`.
    pub fn handler(&self) -> MetricsEndpoint {
        MetricsEndpoint {
            registry: self.clone(),
        }
    }
}

/// Rename counter families' `# HELP`/`# TYPE` lines to their `_total` samples and drop
/// `# UNIT` lines: OpenMetrics text as Prometheus 0.0.4 text.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The handler serving a [`MetricsRegistry`]; see [`MetricsRegistry::handler`].
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    registry: MetricsRegistry,
}

const PROMETHEUS_TEXT: HeaderValue =
    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
const OPENMETRICS_TEXT: HeaderValue =
    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");

impl Handler for MetricsEndpoint {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<> {
        let openmetrics = req.headers().get_all(header::ACCEPT).iter().any(|v| {
            v.as_bytes()
                .windows(19)
                .any(|w| w == b"application/openmet")
        });
        let (body, content_type) = if openmetrics {
            (self.registry.encode_openmetrics(), OPENMETRICS_TEXT)
        } else {
            (self.registry.encode(), PROMETHEUS_TEXT)
        };
        let mut res = Response::new(Body::from(body));
        res.headers_mut().insert(header::CONTENT_TYPE, content_type);
        std::future::ready(res)
    }
}

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

/// The request-metrics middleware. See the [module docs](self).
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

/// One label set's numbers.
struct Series {
    id: u64,
    method: &'static str,
    status: u16,
    route: Box<str>,
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
    body_bytes: AtomicU64,
}

impl Series {
    fn is(&self, id: u64, method: &str, status: u16, route: &str) -> bool {
        // Method labels come from one static table, so the pointers usually settle it.
        self.id == id
            && self.status == status
            && (std::ptr::eq(self.method, method) || self.method == method)
            && &*self.route == route
    }
}

type SeriesMap = HashMap<u64, Vec<Arc<Series>>, foldhash::fast::FixedState>;

struct Shared {
    id: u64,
    buckets: Box<[f64]>,
    series: RwLock<SeriesMap>,
    in_flight: Gauge,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Per worker thread: label-set hash → series, so the hot path takes no lock.
    static CACHE: RefCell<SeriesMap> = RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::default()));
}

fn key_hash(id: u64, method: &str, status: u16, route: &str) -> u64 {
    let mut h = foldhash::fast::FixedState::default().build_hasher();
    id.hash(&mut h);
    method.hash(&mut h);
    status.hash(&mut h);
    route.hash(&mut h);
    h.finish()
}

impl Shared {
    /// Record one response: latency since `start`, and `body_bytes` when known. Returns the
    /// series only when the caller needs it (a streamed body, `body_bytes` = `None`), so the
    /// common case touches no reference count.
    fn record(
        &self,
        method: &'static str,
        status: u16,
        route: &str,
        start: Instant,
        body_bytes: Option<u64>,
    ) -> Option<Arc<Series>> {
        let hash = key_hash(self.id, method, status, route);
        let hit = CACHE.with(|c| {
            let cache = c.borrow();
            let series = cache
                .get(&hash)?
                .iter()
                .find(|s| s.is(self.id, method, status, route))?;
            Some(self.observe(series, start, body_bytes))
        });
        if let Some(needed) = hit {
            return needed;
        }
        let series = self.series_slow(hash, method, status, route);
        CACHE.with(|c| c.borrow_mut().entry(hash).or_default().push(series.clone()));
        self.observe(&series, start, body_bytes)
    }

    #[cold]
    fn series_slow(
        &self,
        hash: u64,
        method: &'static str,
        status: u16,
        route: &str,
    ) -> Arc<Series> {
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(hash).or_default();
        if let Some(s) = list.iter().find(|s| s.is(self.id, method, status, route)) {
            return s.clone();
        }
        let series = Arc::new(Series {
            id: self.id,
            method,
            status,
            route: route.into(),
            buckets: (0..=self.buckets.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_nanos: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
        });
        list.push(series.clone());
        series
    }

    fn observe(
        &self,
        series: &Arc<Series>,
        start: Instant,
        body_bytes: Option<u64>,
    ) -> Option<Arc<Series>> {
        let elapsed = start.elapsed();
        let secs = elapsed.as_secs_f64();
        let i = self
            .buckets
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.buckets.len());
        series.buckets[i].fetch_add(1, Ordering::Relaxed);
        series
            .sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        match body_bytes {
            Some(n) => {
                series.body_bytes.fetch_add(n, Ordering::Relaxed);
                None
            }
            None => Some(series.clone()),
        }
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The route template the router recorded, if any.
fn matched_route(ext: &Extensions) -> Option<&str> {
    ext.get::<MatchedPath>().map(|m| m.as_str())
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
        let route_in = req.extensions().get::<MatchedPath>().cloned();
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
            Some(series) => res.map(|body| {
                Body::new(CountingBody {
                    inner: body,
                    series,
                })
            }),
        })
    }
}

pin_project_lite::pin_project! {
    /// A streamed body that adds its bytes to a series as they are sent.
    struct CountingBody {
        #[pin]
        inner: Body,
        series: Arc<Series>,
    }
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.series
                    .body_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Encodes the request series at scrape time.
#[derive(Clone)]
struct RequestCollector(&'static Shared);

impl fmt::Debug for RequestCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestCollector")
    }
}

impl Collector for RequestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let shared = &self.0;
        let mut all: Vec<Arc<Series>> = shared
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flatten()
            .cloned()
            .collect();
        all.sort_by(|a, b| (&a.route, a.method, a.status).cmp(&(&b.route, b.method, b.status)));
        struct Snapshot {
            labels: [(&'static str, String); 3],
            counts: Vec<(f64, u64)>,
            count: u64,
            sum: f64,
            bytes: u64,
        }
        let snaps: Vec<Snapshot> = all
            .iter()
            .map(|s| {
                let counts: Vec<(f64, u64)> = shared
                    .buckets
                    .iter()
                    .copied()
                    .chain(std::iter::once(f64::INFINITY))
                    .zip(s.buckets.iter().map(|c| c.load(Ordering::Relaxed)))
                    .collect();
                Snapshot {
                    labels: [
                        ("method", s.method.to_owned()),
                        ("route", s.route.to_string()),
                        ("status", s.status.to_string()),
                    ],
                    count: counts.iter().map(|c| c.1).sum(),
                    counts,
                    sum: s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
                    bytes: s.body_bytes.load(Ordering::Relaxed),
                }
            })
            .collect();

        let mut family = encoder.encode_descriptor(
            "http_requests",
            "HTTP responses sent, by method, route template and status.",
            None,
            MetricType::Counter,
        )?;
        for s in &snaps {
            ConstCounter::new(s.count).encode(family.encode_family(&s.labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "Time from the request to the response head, by method, route template and status.",
            None,
            MetricType::Histogram,
        )?;
        for s in &snaps {
            family
                .encode_family(&s.labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    s.sum, s.count, &s.counts, None,
                )?;
        }
        let mut family = encoder.encode_descriptor(
            "http_response_body_bytes",
            "Response body bytes sent, by method, route template and status.",
            None,
            MetricType::Counter,
        )?;
        for s in &snaps {
            ConstCounter::new(s.bytes).encode(family.encode_family(&s.labels)?)?;
        }
        Ok(())
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

    #[test]
    fn counters_are_renamed_for_prometheus_text() {
        let om = "# HELP a_seconds Help.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
                  a_seconds_sum 1\n# HELP jobs Jobs done.\n# TYPE jobs counter\njobs_total 3\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_seconds Help.\n# TYPE a_seconds histogram\na_seconds_sum 1\n\
             # HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3\n"
        );
    }

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
