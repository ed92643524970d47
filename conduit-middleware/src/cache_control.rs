//! [`CacheControl`]: a `Cache-Control` policy per route or per router, never overriding the
//! handler's own header.
//!
//! Pick a policy per kind of data — assets for an hour, profiles five minutes, lists three,
//! private data `no-store` — and attach it where the routes are declared: on a route
//! (`get(handler.with(CacheControl::public(..)))`) or on every route of a router
//! (`router.layer(..)`, so nested routers can carry their own). A response that already has a
//! `Cache-Control` header keeps it: the handler knows best.
//!
//! Freshness policies (`public`, `private`, `immutable`) are added to successful (2xx) and
//! `304 Not Modified` answers only, so an error is never cached for an hour; `no-store` and
//! `no-cache` are added to every answer.
//!
//! ```
//! use std::time::Duration;
//! use conduit_core::{Body, Handler, HandlerExt, Request, Router, get};
//! use conduit_middleware::CacheControl;
//!
//! let app = Router::new()
//!     .route("/users", get(|_req: Request| async { "[]" }))
//!     .route("/me", get((|_req: Request| async { "me" }).with(CacheControl::no_store())))
//!     .layer(CacheControl::public(Duration::from_secs(180)));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/users").body(Body::empty()).unwrap()).await;
//! assert_eq!(res.headers()["cache-control"], "public, max-age=180");
//! // The route's own policy is inside the router's, so it wins.
//! let res = app.call(Request::get("/me").body(Body::empty()).unwrap()).await;
//! assert_eq!(res.headers()["cache-control"], "no-store");
//! // 404s are not cached for three minutes.
//! let res = app.call(Request::get("/nope").body(Body::empty()).unwrap()).await;
//! assert!(res.headers().get("cache-control").is_none());
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use conduit_core::{Handler, Middleware, Request, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, HeaderValue, InvalidHeaderValue};

/// A `Cache-Control` policy, as a middleware. See the [module docs](self).
#[derive(Clone)]
pub struct CacheControl {
    value: HeaderValue,
    always: bool,
}

impl fmt::Debug for CacheControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CacheControl").field(&self.value).finish()
    }
}

impl CacheControl {
    /// `public, max-age=N`: any cache may keep the response for `max_age`.
    pub fn public(max_age: Duration) -> Self {
        Self::freshness(format!("public, max-age={}", max_age.as_secs()))
    }

    /// `private, max-age=N`: only the user's own browser may keep it, for `max_age`.
    pub fn private(max_age: Duration) -> Self {
        Self::freshness(format!("private, max-age={}", max_age.as_secs()))
    }

    /// `public, max-age=N, immutable`: for fingerprinted assets that never change.
    pub fn immutable(max_age: Duration) -> Self {
        Self::freshness(format!("public, max-age={}, immutable", max_age.as_secs()))
    }

    /// `no-store`: never keep it anywhere (private data). Added to every answer.
    pub fn no_store() -> Self {
        Self {
            value: HeaderValue::from_static("no-store"),
            always: true,
        }
    }

    /// `no-cache`: keep it, but revalidate (with its `ETag`) before each use. Added to every
    /// answer.
    pub fn no_cache() -> Self {
        Self {
            value: HeaderValue::from_static("no-cache"),
            always: true,
        }
    }

    /// Any directive list, added to successful and 304 answers (or to every answer when it
    /// contains `no-store` or `no-cache`).
    pub fn custom(directives: &str) -> Result<Self, InvalidHeaderValue> {
        let value = HeaderValue::from_str(directives)?;
        let lower = directives.to_ascii_lowercase();
        Ok(Self {
            value,
            always: lower.contains("no-store") || lower.contains("no-cache"),
        })
    }

    fn freshness(s: String) -> Self {
        Self {
            value: HeaderValue::try_from(s).expect("digits and ASCII words"),
            always: false,
        }
    }

    /// The header value this policy sets.
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }

    fn applies_to(&self, status: StatusCode) -> bool {
        self.always || status.is_success() || status == StatusCode::NOT_MODIFIED
    }
}

/// The handler built by [`CacheControl`].
#[derive(Debug, Clone)]
pub struct CacheControlHandler<H> {
    inner: H,
    policy: CacheControl,
}

impl<H: Handler> Middleware<H> for CacheControl {
    type Output = CacheControlHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        CacheControlHandler {
            inner,
            policy: self.clone(),
        }
    }
}

impl<H: Handler> Handler for CacheControlHandler<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let policy = self.policy.clone();
        crate::future::MapOutput::new(self.inner.call(req), move |mut res: Response| {
            if policy.applies_to(res.status()) && !res.headers().contains_key(CACHE_CONTROL) {
                res.headers_mut().insert(CACHE_CONTROL, policy.value);
            }
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let m = Duration::from_secs(300);
        assert_eq!(CacheControl::public(m).value(), "public, max-age=300");
        assert_eq!(CacheControl::private(m).value(), "private, max-age=300");
        assert_eq!(
            CacheControl::immutable(m).value(),
            "public, max-age=300, immutable"
        );
        assert!(CacheControl::custom("bad\nvalue").is_err());
        let c = CacheControl::custom("private, no-cache").unwrap();
        assert!(c.applies_to(StatusCode::NOT_FOUND));
        let p = CacheControl::public(m);
        assert!(!p.applies_to(StatusCode::NOT_FOUND));
        assert!(p.applies_to(StatusCode::NOT_MODIFIED));
        assert!(p.applies_to(StatusCode::NO_CONTENT));
    }
}
