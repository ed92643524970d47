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
//! in it, and [`MetricsRegistry::endpoint`] serves everything in the Prometheus text format
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
//!     .route("/metrics", get(registry.endpoint()))
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

mod callback;
mod collector;
mod endpoint;
mod handler;
mod registry;
mod series;

pub use endpoint::MetricsEndpoint;
pub use handler::{DEFAULT_BUCKETS, Metrics, MetricsBuilder, MetricsHandler};
pub use registry::MetricsRegistry;
pub use series::UNMATCHED;
