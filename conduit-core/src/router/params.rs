//! [`PathParams`] and [`OriginalUri`]: what routing leaves in a request's extensions.

use std::fmt;
use std::sync::Arc;

use http::Uri;
use percent_encoding::percent_decode_str;

/// The path parameters of the matched route, as ordered `(name, value)` pairs.
///
/// Values are percent-decoded (`%20` becomes a space; `+` is left alone). The router inserts
/// `PathParams` into the request's extensions only when the route has parameters. A request
/// routed through nested routers carries the outer parameters first, then the inner ones.
///
/// ```
/// use conduit_core::PathParams;
///
/// let mut params = PathParams::new();
/// params.push("id", "42");
/// assert_eq!(params.get("id"), Some("42"));
/// assert_eq!(params.iter().collect::<Vec<_>>(), [("id", "42")]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PathParams {
    /// Every name and value, back to back.
    buf: String,
    /// `(name start, name end = value start, value end)` in `buf`.
    spans: Vec<(usize, usize, usize)>,
}

impl PathParams {
    /// No parameters.
    pub const fn new() -> Self {
        Self {
            buf: String::new(),
            spans: Vec::new(),
        }
    }

    /// The value of the parameter `name`; if several have that name (nested routers), the
    /// last (innermost) one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The `(name, value)` pairs, in route order (outer routers first).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator + '_ {
        self.spans
            .iter()
            .map(|&(s, m, e)| (&self.buf[s..m], &self.buf[m..e]))
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Append a parameter (the value is taken as is, not percent-decoded).
    pub fn push(&mut self, name: &str, value: &str) {
        let start = self.buf.len();
        self.buf.push_str(name);
        let mid = self.buf.len();
        self.buf.push_str(value);
        self.spans.push((start, mid, self.buf.len()));
    }

    /// Append a parameter, percent-decoding `raw`; `Err` if the decoded bytes are not UTF-8.
    pub(super) fn push_decoded(&mut self, name: &str, raw: &str) -> Result<(), ()> {
        if !raw.contains('%') {
            self.push(name, raw);
            return Ok(());
        }
        match percent_decode_str(raw).decode_utf8() {
            Ok(value) => {
                self.push(name, &value);
                Ok(())
            }
            Err(_) => Err(()),
        }
    }

    /// Append all of `other`'s parameters after ours.
    pub(super) fn append(&mut self, other: PathParams) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let offset = self.buf.len();
        self.buf.push_str(&other.buf);
        self.spans.extend(
            other
                .spans
                .iter()
                .map(|&(s, m, e)| (s + offset, m + offset, e + offset)),
        );
    }
}

impl fmt::Debug for PathParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The request URI as it was before a [`Router::mount`](crate::Router::mount) or [`Router::nest`](crate::Router::nest) stripped its
/// prefix (a request extension; the outermost mount sets it, inner ones keep it).
///
/// ```
/// use conduit_core::{Handler, OriginalUri, Request, Router};
///
/// let app = Router::new().mount("/api", |req: Request| async move {
///     let original = req.extensions().get::<OriginalUri>().unwrap();
///     format!("{} (was {})", req.uri(), original.0)
/// });
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let res = app.call(Request::get("/api/users?page=2").body(Default::default()).unwrap()).await;
/// let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
/// assert_eq!(body, "/users?page=2 (was /api/users?page=2)");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalUri(pub Uri);

/// The route template that matched the request, e.g. `/users/{id}`: on the request, read it
/// with [`RequestExt::matched_path`](crate::RequestExt::matched_path) or [`MatchedPath::of`];
/// on the response, it is a plain extension.
///
/// The router makes it the request's template while the route's handler runs (beside the
/// request, not in its extensions: see [`RequestExt::matched_path`](crate::RequestExt::matched_path)),
/// and, when the request carries [`RecordMatchedPath`], puts it into the response's extensions
/// afterwards, so middleware wrapping the whole router (logging, metrics) can label every
/// routed response by its template rather than by its raw path. Under [`Router::nest`](crate::Router::nest) it is the full template (`/api/users/{id}`);
/// for a [`Router::mount`](crate::Router::mount) it is the mount's prefix. Responses of the
/// router itself (404 from the fallback, 405) carry none.
///
/// Built once per route when the router is built: a request pays one `Arc` clone for each
/// copy.
///
/// ```
/// use conduit_core::{Handler, MatchedPath, RecordMatchedPath, Request, RequestExt, Router, get};
///
/// let users = Router::new().route("/{id}", get(|req: Request| async move {
///     req.matched_path().as_deref().unwrap_or_default().to_owned()
/// }));
/// let app = Router::new().nest("/api/users", users);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut req = Request::get("/api/users/7").body(Default::default()).unwrap();
/// req.extensions_mut().insert(RecordMatchedPath); // as logging and metrics do
/// let res = app.call(req).await;
/// assert_eq!(res.extensions().get::<MatchedPath>().unwrap().as_str(), "/api/users/{id}");
/// let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
/// assert_eq!(body, "/api/users/{id}");
/// # });
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MatchedPath(Arc<str>);

impl MatchedPath {
    pub(super) fn new(template: &str) -> Self {
        Self(Arc::from(template))
    }

    /// The route template, as registered (with the prefixes of the routers it is nested in).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The template recorded on `req`, as [`RequestExt::matched_path`](crate::RequestExt::matched_path)
    /// finds it, for a caller that keeps it past the request (a clone is an `Arc` count).
    #[inline]
    pub fn of(req: &crate::Request) -> Option<MatchedPath> {
        crate::context::matched_path(req)
    }
}

impl std::ops::Deref for MatchedPath {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for MatchedPath {
    #[inline]
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MatchedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for MatchedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `base` + `path`, where `path` `/` under a non-empty base is the base itself.
pub(super) fn join_template(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if path == "/" && !base.is_empty() {
        base.to_owned()
    } else {
        format!("{base}{path}")
    }
}

/// Put in a request's extensions by middleware that wraps a whole [`Router`](crate::Router) and
/// reads the route template from the *response* ([`MatchedPath`] there), as logging and metrics
/// do: the router then copies the template onto the response. Without it the router records the
/// template on the request only, so a plain route pays for no response extension.
///
/// ```
/// use conduit_core::{Body, Handler, MatchedPath, RecordMatchedPath, Request, Router, get};
///
/// let app = Router::new().route("/users/{id}", get(|_req: Request| async { "ana" }));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut req = Request::get("/users/7").body(Body::empty()).unwrap();
/// req.extensions_mut().insert(RecordMatchedPath);
/// let res = app.call(req).await;
/// assert_eq!(res.extensions().get::<MatchedPath>().unwrap().as_str(), "/users/{id}");
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordMatchedPath;
