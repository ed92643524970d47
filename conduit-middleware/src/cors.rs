//! [`Cors`]: Cross-Origin Resource Sharing — preflights answered, simple and actual requests
//! annotated.
//!
//! Build a policy with [`Cors::builder`]: which origins (a list, a predicate, or any), methods
//! and request headers are allowed, which response headers a page may read, whether
//! credentials (cookies) are allowed, and how long a browser may cache a preflight.
//! [`CorsBuilder::build`] refuses the combinations browsers reject — a wildcard (`*` origin,
//! methods, headers or exposed headers) together with credentials — so the mistake shows when
//! the app starts, not as a failed fetch in someone's browser.
//!
//! **Wrap the whole router** (`router.with(cors)`): a preflight is an `OPTIONS` request that
//! most routes have no handler for, so inside the router it would get a 405. Around the router
//! the middleware answers it (`204` with the `Access-Control-Allow-*` headers) without calling
//! the router at all. A preflight from an origin that is not allowed gets a `204` without
//! them, which the browser treats as a refusal.
//!
//! Every answer whose headers depend on the `Origin` carries `Vary: Origin` (added to the
//! handler's own `Vary`, not replacing it), so a shared cache never serves one origin's answer
//! to another. A malformed `Origin` is simply not an allowed one.
//!
//! ```
//! use std::time::Duration;
//! use conduit_core::{Body, Handler, HandlerExt, Request, Router, get, http::Method};
//! use conduit_middleware::Cors;
//!
//! let cors = Cors::builder()
//!     .allow_origins(["https://app.example"])
//!     .allow_methods([Method::GET, Method::POST])
//!     .allow_headers(["content-type"])
//!     .allow_credentials(true)
//!     .max_age(Duration::from_secs(600))
//!     .build()
//!     .unwrap();
//! let app = Router::new().route("/api", get(|_req: Request| async { "data" })).with(cors);
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let preflight = Request::options("/api")
//!     .header("origin", "https://app.example")
//!     .header("access-control-request-method", "POST")
//!     .body(Body::empty())
//!     .unwrap();
//! let res = app.call(preflight).await;
//! assert_eq!(res.status(), 204);
//! assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
//! assert_eq!(res.headers()["access-control-allow-methods"], "GET,POST");
//! assert_eq!(res.headers()["access-control-max-age"], "600");
//!
//! // `*` with credentials is refused when built.
//! assert!(Cors::builder().allow_any_origin().allow_credentials(true).build().is_err());
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use conduit_core::{Body, Handler, Middleware, Request, Response};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

type OriginPredicate = dyn Fn(&HeaderValue) -> bool + Send + Sync;

enum Origins {
    Any,
    List(Vec<HeaderValue>),
    Predicate(Arc<OriginPredicate>),
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origins::Any => f.write_str("Any"),
            Origins::List(l) => f.debug_tuple("List").field(l).finish(),
            Origins::Predicate(_) => f.write_str("Predicate"),
        }
    }
}

#[derive(Debug)]
enum Headers {
    Any,
    List(Vec<HeaderName>),
}

/// A CORS configuration that cannot work, refused by [`CorsBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsError {
    /// Credentials with a wildcard (`*`) origin, methods, headers or exposed headers: browsers
    /// ignore `*` on credentialed requests, so such a policy lets nothing through.
    WildcardWithCredentials(&'static str),
    /// An origin in the list is not a valid `Origin` value (`scheme://host[:port]`).
    InvalidOrigin(String),
    /// A header name in a list is not a valid header name.
    InvalidHeader(String),
}

impl fmt::Display for CorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorsError::WildcardWithCredentials(what) => write!(
                f,
                "CORS: `allow_credentials(true)` cannot be combined with any {what} (`*`); list them instead"
            ),
            CorsError::InvalidOrigin(o) => {
                write!(
                    f,
                    "CORS: invalid origin `{o}` (expected scheme://host[:port])"
                )
            }
            CorsError::InvalidHeader(h) => write!(f, "CORS: invalid header name `{h}`"),
        }
    }
}

impl std::error::Error for CorsError {}

/// Builds a [`Cors`] policy. Nothing is allowed until said so.
#[derive(Debug)]
pub struct CorsBuilder {
    origins: Origins,
    methods: Option<Vec<Method>>, // None = any
    headers: Headers,
    expose: Headers,
    credentials: bool,
    max_age: Option<Duration>,
    bad: Option<CorsError>,
}

impl CorsBuilder {
    /// Allow any origin (`Access-Control-Allow-Origin: *`). Not with credentials.
    pub fn allow_any_origin(mut self) -> Self {
        self.origins = Origins::Any;
        self
    }

    /// Allow exactly these origins (`https://app.example`, compared byte for byte, as browsers
    /// send them: scheme, host and port, no path, no trailing slash).
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for o in origins {
            let o = o.as_ref();
            let valid = (o.starts_with("http://") || o.starts_with("https://") || o == "null")
                && !o.ends_with('/')
                && !o.contains('*');
            match HeaderValue::from_str(o) {
                Ok(v) if valid => list.push(v),
                _ => self.bad = Some(CorsError::InvalidOrigin(o.to_owned())),
            }
        }
        self.origins = Origins::List(list);
        self
    }

    /// Allow the origins for which `predicate` returns true (for example every subdomain).
    pub fn allow_origin_fn<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&HeaderValue) -> bool + Send + Sync + 'static,
    {
        self.origins = Origins::Predicate(Arc::new(predicate));
        self
    }

    /// Allow these methods in preflights (default: `GET`, `HEAD`, `POST`).
    pub fn allow_methods<I: IntoIterator<Item = Method>>(mut self, methods: I) -> Self {
        self.methods = Some(methods.into_iter().collect());
        self
    }

    /// Allow any method (`Access-Control-Allow-Methods: *`). Not with credentials.
    pub fn allow_any_method(mut self) -> Self {
        self.methods = None;
        self
    }

    /// Allow these request headers in preflights (default: none beyond the CORS-safelisted).
    pub fn allow_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.headers = Headers::List(self.names(headers));
        self
    }

    /// Allow any request header (`Access-Control-Allow-Headers: *`). Not with credentials.
    pub fn allow_any_header(mut self) -> Self {
        self.headers = Headers::Any;
        self
    }

    /// Let pages read these response headers (`Access-Control-Expose-Headers`).
    pub fn expose_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.expose = Headers::List(self.names(headers));
        self
    }

    /// Let pages read every response header (`*`). Not with credentials.
    pub fn expose_any_header(mut self) -> Self {
        self.expose = Headers::Any;
        self
    }

    /// Allow credentials (cookies, HTTP auth): `Access-Control-Allow-Credentials: true`.
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// How long a browser may cache a preflight answer (`Access-Control-Max-Age`).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    fn names<I, S>(&mut self, headers: I) -> Vec<HeaderName>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        headers
            .into_iter()
            .filter_map(|h| match HeaderName::from_bytes(h.as_ref().as_bytes()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.bad = Some(CorsError::InvalidHeader(h.as_ref().to_owned()));
                    None
                }
            })
            .collect()
    }

    /// Check the policy and build the middleware.
    pub fn build(self) -> Result<Cors, CorsError> {
        if let Some(e) = self.bad {
            return Err(e);
        }
        if self.credentials {
            if matches!(self.origins, Origins::Any) {
                return Err(CorsError::WildcardWithCredentials("origin"));
            }
            if self.methods.is_none() {
                return Err(CorsError::WildcardWithCredentials("method"));
            }
            if matches!(self.headers, Headers::Any) {
                return Err(CorsError::WildcardWithCredentials("request header"));
            }
            if matches!(self.expose, Headers::Any) {
                return Err(CorsError::WildcardWithCredentials("exposed header"));
            }
        }
        let join = |items: Vec<String>| -> Option<HeaderValue> {
            if items.is_empty() {
                None
            } else {
                HeaderValue::from_str(&items.join(",")).ok()
            }
        };
        let star = || Some(HeaderValue::from_static("*"));
        let allow_methods = match &self.methods {
            None => star(),
            Some(m) => join(m.iter().map(|m| m.as_str().to_owned()).collect()),
        };
        let allow_headers = match &self.headers {
            Headers::Any => star(),
            Headers::List(l) => join(l.iter().map(|h| h.as_str().to_owned()).collect()),
        };
        let expose_headers = match &self.expose {
            Headers::Any => star(),
            Headers::List(l) => join(l.iter().map(|h| h.as_str().to_owned()).collect()),
        };
        Ok(Cors {
            inner: Arc::new(Policy {
                vary_on_origin: !matches!(self.origins, Origins::Any),
                origins: self.origins,
                allow_methods,
                allow_headers,
                expose_headers,
                credentials: self.credentials,
                max_age: self.max_age.map(|d| HeaderValue::from(d.as_secs())),
            }),
        })
    }
}

#[derive(Debug)]
struct Policy {
    origins: Origins,
    vary_on_origin: bool,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

impl Policy {
    /// The `Access-Control-Allow-Origin` value for this request's origin, if it is allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.origins {
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::List(list) => {
                let origin = origin?;
                list.iter().any(|o| o == origin).then(|| origin.clone())
            }
            Origins::Predicate(p) => {
                let origin = origin?;
                // A predicate sees only well-formed origins: visible ASCII, no spaces.
                let ok = origin
                    .to_str()
                    .is_ok_and(|s| !s.is_empty() && !s.contains(' '));
                (ok && p(origin)).then(|| origin.clone())
            }
        }
    }

    fn add_common(&self, headers: &mut HeaderMap, allow_origin: Option<HeaderValue>) {
        if let Some(o) = allow_origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            if self.credentials {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
    }
}

/// The CORS middleware; build it with [`Cors::builder`]. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Cors {
    inner: Arc<Policy>,
}

impl Cors {
    /// A policy that allows nothing yet: no origin, methods `GET, HEAD, POST`, no extra
    /// request header, no exposed header, no credentials.
    pub fn builder() -> CorsBuilder {
        CorsBuilder {
            origins: Origins::List(Vec::new()),
            methods: Some(vec![Method::GET, Method::HEAD, Method::POST]),
            headers: Headers::List(Vec::new()),
            expose: Headers::List(Vec::new()),
            credentials: false,
            max_age: None,
            bad: None,
        }
    }

    /// Allow any origin, method and request header, without credentials: for public APIs.
    pub fn permissive() -> Self {
        Self::builder()
            .allow_any_origin()
            .allow_any_method()
            .allow_any_header()
            .build()
            .expect("no credentials")
    }
}

/// The handler built by [`Cors`].
#[derive(Debug, Clone)]
pub struct CorsHandler<H> {
    inner: H,
    policy: Arc<Policy>,
}

impl<H: Handler> Middleware<H> for Cors {
    type Output = CorsHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        CorsHandler {
            inner,
            policy: self.inner.clone(),
        }
    }
}

fn append_vary(headers: &mut HeaderMap, value: &'static str) {
    let already = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case(value))
        })
    });
    if !already {
        headers.append(header::VARY, HeaderValue::from_static(value));
    }
}

pin_project_lite::pin_project! {
    /// A preflight answered on the spot, or the inner handler's response being annotated.
    #[project = CorsProj]
    enum CorsFuture<M> {
        Preflight { res: Option<Response> },
        Call { #[pin] inner: M },
    }
}

impl<M: Future<Output = Response>> Future for CorsFuture<M> {
    type Output = Response;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.project() {
            CorsProj::Preflight { res } => {
                Poll::Ready(res.take().expect("CorsFuture polled after completion"))
            }
            CorsProj::Call { inner } => inner.poll(cx),
        }
    }
}

impl<H: Handler> Handler for CorsHandler<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let policy = &self.policy;
        let origin = req.headers().get(header::ORIGIN);
        if req.method() == Method::OPTIONS
            && origin.is_some()
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return CorsFuture::Preflight {
                res: Some(preflight(policy, &req)),
            };
        }
        let allow = policy.allow_origin(origin);
        if origin.is_some() && allow.is_none() {
            tracing::debug!(origin = ?origin, "CORS: origin not allowed");
        }
        let policy = self.policy.clone();
        let annotate = move |mut res: Response| {
            let allowed = allow.is_some();
            let headers = res.headers_mut();
            policy.add_common(headers, allow);
            if allowed {
                if let Some(e) = &policy.expose_headers {
                    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
                }
            }
            if policy.vary_on_origin {
                append_vary(headers, "origin");
            }
            res
        };
        CorsFuture::Call {
            inner: crate::future::MapOutput::new(self.inner.call(req), annotate),
        }
    }
}

fn preflight(policy: &Policy, req: &Request) -> Response {
    let origin = req.headers().get(header::ORIGIN);
    let allow = policy.allow_origin(origin);
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let headers = res.headers_mut();
    if allow.is_none() {
        tracing::debug!(origin = ?origin, "CORS preflight from an origin that is not allowed");
    } else {
        if let Some(m) = &policy.allow_methods {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m.clone());
        }
        if let Some(h) = &policy.allow_headers {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        if let Some(a) = &policy.max_age {
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, a.clone());
        }
    }
    policy.add_common(headers, allow);
    if policy.vary_on_origin {
        append_vary(headers, "origin");
    }
    append_vary(headers, "access-control-request-method");
    append_vary(headers, "access-control-request-headers");
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_refuses_wildcards_with_credentials() {
        let b = || Cors::builder().allow_credentials(true);
        assert_eq!(
            b().allow_any_origin().build().unwrap_err(),
            CorsError::WildcardWithCredentials("origin")
        );
        let listed = || b().allow_origins(["https://a.example"]);
        assert!(listed().build().is_ok());
        assert!(listed().allow_any_method().build().is_err());
        assert!(listed().allow_any_header().build().is_err());
        assert!(listed().expose_any_header().build().is_err());
        assert!(
            Cors::builder()
                .allow_origins(["https://a.example/"])
                .build()
                .is_err()
        );
        assert!(Cors::builder().allow_origins(["*"]).build().is_err());
        assert!(
            Cors::builder()
                .allow_headers(["bad header"])
                .build()
                .is_err()
        );
        assert!(b().allow_origin_fn(|_| true).build().is_ok());
    }

    #[test]
    fn vary_is_appended_once() {
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        append_vary(&mut h, "origin");
        append_vary(&mut h, "origin");
        let all: Vec<_> = h.get_all(header::VARY).iter().collect();
        assert_eq!(all, ["Accept-Encoding", "origin"]);
        let mut star = HeaderMap::new();
        star.insert(header::VARY, HeaderValue::from_static("*"));
        append_vary(&mut star, "origin");
        assert_eq!(star.get_all(header::VARY).iter().count(), 1);
    }
}
