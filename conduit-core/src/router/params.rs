//! [`PathParams`] and [`OriginalUri`]: what routing leaves in a request's extensions.

use std::fmt;

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

/// The request URI as it was before a [`Router::mount`] or [`Router::nest`] stripped its
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
