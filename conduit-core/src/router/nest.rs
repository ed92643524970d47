//! Mounting and nesting: handing everything under a prefix to another handler.

use http::Uri;

use super::{Endpoint, MatchedPath, OriginalUri, REST, Router, check_path};
use crate::{BoxHandler, Error, Handler, Request};

impl Router {
    /// Send every request for `prefix` or anything under `prefix/` to `handler`, with the
    /// prefix stripped from the URI path.
    ///
    /// The handler sees a path that always starts with `/` (`/api` and `/api/` both become
    /// `/`, `/api/users` becomes `/users`) and the query unchanged. The URI before stripping is
    /// in the [`OriginalUri`] extension (set by the outermost mount only). `prefix` may have
    /// parameters (`/users/{id}`); they are added to the [`PathParams`](crate::PathParams). A trailing `/` on
    /// `prefix` is ignored; `/` mounts at the root (nothing is stripped). The [`MatchedPath`]
    /// of a mounted handler is the prefix (without a trailing `/`).
    ///
    /// # Panics
    ///
    /// If `prefix` is invalid or conflicts with a route or mount already added.
    pub fn mount<H: Handler>(self, prefix: &str, handler: H) -> Self {
        self.mount_endpoint(prefix, BoxHandler::new(handler), None)
    }

    fn mount_endpoint(mut self, prefix: &str, handler: BoxHandler, nested: Option<Router>) -> Self {
        check_path("mount prefix", prefix);
        let base = prefix.trim_end_matches('/');
        let inner = self.inner_mut();
        let index = inner.endpoints.len();
        inner.endpoints.push(Endpoint::Mount {
            prefix: prefix.to_owned(),
            handler,
            matched: MatchedPath::new(if base.is_empty() { "/" } else { base }),
            nested,
        });
        if !base.is_empty() {
            self.insert("mount", base, index);
        }
        self.insert("mount", &format!("{base}/"), index);
        self.insert("mount", &format!("{base}/{{*{REST}}}"), index);
        self
    }

    /// Mount another router under `prefix`: [`mount`](Self::mount) for a [`Router`].
    ///
    /// The nested router keeps its own fallback, middleware and state; the outer router's
    /// state is visible to it too (extensions accumulate; the inner value wins for a type both
    /// have). Its routes' [`MatchedPath`]s get the prefix (`/api` + `/users/{id}` is
    /// `/api/users/{id}`; its `/` route is `/api`), and a [`layer`](Router::layer) of the
    /// outer router added afterwards wraps the nested router's handlers one by one, as it
    /// wraps its own.
    ///
    /// # Panics
    ///
    /// As [`mount`](Self::mount).
    pub fn nest(self, prefix: &str, mut router: Router) -> Self {
        router.prefix_templates(prefix);
        let handler = BoxHandler::new(router.clone());
        self.mount_endpoint(prefix, handler, Some(router))
    }
}

/// Rewrite the URI for a mount: keep `path[rest..]` (or `/`), the query, scheme and authority;
/// remember the original in [`OriginalUri`].
pub(super) fn strip_prefix(req: &mut Request, rest: Option<usize>) -> Result<(), Error> {
    let uri = req.uri();
    let path = uri.path();
    let new_path = match rest {
        Some(0) => path,
        Some(start) => path.get(start..).unwrap_or("/"),
        None => "/",
    };
    let new_uri = if new_path.len() == path.len() {
        None // mounted at the root: nothing to strip
    } else {
        let query = uri.query();
        let mut pq = String::with_capacity(new_path.len() + query.map_or(0, |q| q.len() + 1));
        pq.push_str(new_path);
        if let Some(query) = query {
            pq.push('?');
            pq.push_str(query);
        }
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(
            http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)).map_err(|e| {
                Error::bad_request("Bad Request: invalid request target").with_source(e)
            })?,
        );
        Some(Uri::from_parts(parts).map_err(|e| {
            Error::bad_request("Bad Request: invalid request target").with_source(e)
        })?)
    };
    let original = match new_uri {
        Some(new_uri) => std::mem::replace(req.uri_mut(), new_uri),
        None => req.uri().clone(),
    };
    if req.extensions().get::<OriginalUri>().is_none() {
        req.extensions_mut().insert(OriginalUri(original));
    }
    Ok(())
}
