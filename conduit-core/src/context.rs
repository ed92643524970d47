//! [`ServerContext`]: the one request extension the server puts on every request it reads,
//! holding the connection's [`ConnectInfo`] and the slot the [`Router`](crate::Router) fills
//! with the [`MatchedPath`].
//!
//! A request extension costs its map (a box and a hash table, allocated by the first insert)
//! and a box for its value; each further one costs another box and hash insert. Keeping both
//! values in one extension, and filling the template in place (`get_mut`, no insert), leaves a
//! served request with three allocations for the two values instead of four, and the router
//! with a lookup instead of an insert (figures: docs/perf.md, "What a request pays for what the
//! app may not use").
//!
//! The values are read through [`RequestExt::connect_info`](crate::RequestExt::connect_info)
//! and [`RequestExt::matched_path`](crate::RequestExt::matched_path) (or
//! [`MatchedPath::of`]), which fall back to a plain `ConnectInfo` / `MatchedPath` extension,
//! so a request built by hand in a test (no server) can carry either as before.

use http::Extensions;

use crate::{ConnectInfo, MatchedPath, Request};

/// What the server attaches to each request (conduit-internal: the server builds it, the
/// router and the request accessors read it; apps use the accessors).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct ServerContext {
    info: ConnectInfo,
    matched: Option<MatchedPath>,
}

impl ServerContext {
    /// The context of a request that arrived on the connection `info` describes.
    #[inline]
    pub fn new(info: ConnectInfo) -> Self {
        Self {
            info,
            matched: None,
        }
    }
}

/// The request's `ConnectInfo`: the server's context, else a plain extension.
#[inline]
pub(crate) fn connect_info(req: &Request) -> Option<&ConnectInfo> {
    let ext = req.extensions();
    match ext.get::<ServerContext>() {
        Some(ctx) => Some(&ctx.info),
        None => ext.get::<ConnectInfo>(),
    }
}

/// The request's `MatchedPath`: the one the router recorded in the server's context, else a
/// plain extension.
#[inline]
pub(crate) fn matched_path(req: &Request) -> Option<&MatchedPath> {
    let ext = req.extensions();
    match ext.get::<ServerContext>() {
        Some(ServerContext {
            matched: Some(m), ..
        }) => Some(m),
        _ => ext.get::<MatchedPath>(),
    }
}

/// Record `matched` on the request: in the server's context when it has one (no insert), else
/// as a plain extension. A later call (a nested router's finer template) replaces it. Whether
/// it went into the server's context.
#[inline]
pub(crate) fn set_matched_path(ext: &mut Extensions, matched: &MatchedPath) -> bool {
    match ext.get_mut::<ServerContext>() {
        Some(ctx) => {
            ctx.matched = Some(matched.clone());
            true
        }
        None => {
            ext.insert(matched.clone());
            false
        }
    }
}
