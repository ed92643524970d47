//! [`MetricsEndpoint`]: the handler that serves a [`MetricsRegistry`] at `/metrics`, in the
//! format the scraper asks for.

use std::future::Future;

use conduit_core::{Body, Handler, Request, Response};
use http::header::{self, HeaderValue};

use crate::metrics::registry::MetricsRegistry;

impl MetricsRegistry {
    /// The `/metrics` endpoint serving this registry: mount it with
    /// `.route("/metrics", get(registry.endpoint()))`.
    pub fn endpoint(&self) -> MetricsEndpoint {
        MetricsEndpoint {
            registry: self.clone(),
        }
    }

    /// The `/metrics` endpoint serving this registry.
    #[deprecated(
        since = "0.1.0",
        note = "use `endpoint()`: it returns the endpoint, not the middleware's `MetricsHandler`"
    )]
    pub fn handler(&self) -> MetricsEndpoint {
        self.endpoint()
    }
}

/// The `/metrics` endpoint: a handler serving a [`MetricsRegistry`] in the Prometheus text
/// format (OpenMetrics when the scraper's `Accept` asks for it); see
/// [`MetricsRegistry::endpoint`]. Not to be confused with [`MetricsHandler`](crate::MetricsHandler),
/// the handler the [`Metrics`](crate::Metrics) middleware wraps around an app.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_endpoint_and_its_deprecated_name_serve_the_registry() {
        let registry = MetricsRegistry::new();
        let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        registry.register("queue_depth", "Jobs waiting", gauge.clone());
        gauge.set(3);
        let req = || Request::get("/metrics").body(Body::empty()).unwrap();
        let res = registry.endpoint().call(req()).await;
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROMETHEUS_TEXT);
        let body = conduit_core::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("queue_depth 3"));
        #[allow(deprecated)]
        let deprecated = registry.handler();
        let res = deprecated.call(req()).await;
        let same = conduit_core::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(body, same);
    }
}
