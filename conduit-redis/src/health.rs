//! [`Health`]: whether Redis is reachable, as an opt-in part of a readiness probe.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use conduit_core::http::StatusCode;
use conduit_core::{Handler, IntoResponse, Request, Response};

/// Whether a Redis-backed part of the app works now
/// ([`RedisStreams::health`](crate::RedisStreams::health): its reader is connected). Cheap to
/// clone.
///
/// [`gate`](Self::gate) wraps a readiness handler (e.g. conduit-server's
/// `server.handle().readiness()`) so it answers `503 redis unavailable` while unhealthy. It is
/// opt-in: an instance whose SSE clients can wait for Redis may rather stay in rotation.
///
/// ```
/// use conduit_core::{Body, Handler, Request};
/// use conduit_redis::Health;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let ready = |_req: Request| async { "ready" };
/// let probe = Health::new(|| false).gate(ready);
/// assert_eq!(probe.call(Request::new(Body::empty())).await.status(), 503);
/// let probe = Health::new(|| true).gate(ready);
/// assert_eq!(probe.call(Request::new(Body::empty())).await.status(), 200);
/// # });
/// ```
#[derive(Clone)]
pub struct Health {
    check: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl Health {
    /// Healthy while `check` says so.
    pub fn new(check: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self {
            check: Arc::new(check),
        }
    }

    /// Healthy while every one of `parts` is.
    pub fn all(parts: impl IntoIterator<Item = Health>) -> Self {
        let parts: Vec<Health> = parts.into_iter().collect();
        Self::new(move || parts.iter().all(Health::is_healthy))
    }

    /// Whether it is healthy now.
    pub fn is_healthy(&self) -> bool {
        (self.check)()
    }

    /// `readiness` answering `503 redis unavailable` while this is unhealthy.
    pub fn gate<H: Handler>(self, readiness: H) -> HealthGate<H> {
        HealthGate {
            health: self,
            inner: Arc::new(readiness),
        }
    }
}

/// A readiness handler that also needs Redis: made by [`Health::gate`].
pub struct HealthGate<H> {
    health: Health,
    inner: Arc<H>,
}

impl<H> fmt::Debug for HealthGate<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthGate")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Handler for HealthGate<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let healthy = self.health.is_healthy();
        let inner = self.inner.clone();
        async move {
            if !healthy {
                tracing::debug!("readiness: Redis unavailable (503)");
                return (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable").into_response();
            }
            inner.call(req).await
        }
    }
}
