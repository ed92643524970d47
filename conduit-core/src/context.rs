//! The request's context: the connection it arrived on ([`ConnectInfo`]) and the route that
//! matched it ([`MatchedPath`]), kept beside the request rather than in its extensions.
//!
//! A request extension costs its map (a box and a hash table, allocated by the first insert), a
//! box for its value and a hash insert, with their frees: about 650 user-space instructions on
//! a request that carries no other extension, paid whether or not anything reads it (figures:
//! docs/perf.md, "What a request pays for what the app may not use"). So the server and the
//! router do not put these values on the request. Each sets its value as the current one of
//! its thread while it runs the request's code: the server while it calls the handler and
//! whenever it polls the handler's future, the [`Router`](crate::Router) likewise for the
//! route's handler. The same discipline as a `tracing` span entered around each poll: the value
//! is visible to whatever runs on behalf of the request, in the task that serves it, and to
//! nothing else, and an inner scope (a nested router) restores the outer one when it leaves.
//!
//! [`RequestExt::connect_info`](crate::RequestExt::connect_info) and
//! [`RequestExt::matched_path`](crate::RequestExt::matched_path) read them (an owned copy: a
//! few words and an `Arc` count). Code that hands a request to another task and reads them
//! there inserts the copies it read as extensions first. The tower adapter back into conduit
//! ([`HandlerService`](crate::tower::HandlerService)) calls its handler when its future is
//! first polled, where a layer such as `Buffer`, which calls the inner service on a worker
//! task, polls it: on the request's task.

use std::cell::Cell;
use std::sync::Arc;
use std::thread::LocalKey;

use crate::{ConnectInfo, MatchedPath, Request};

thread_local! {
    static CONNECTION: Cell<Option<Arc<ConnectInfo>>> = const { Cell::new(None) };
    static MATCHED: Cell<Option<MatchedPath>> = const { Cell::new(None) };
}

/// One of the thread's current values.
trait Slot {
    type Value: 'static;
    fn key() -> &'static LocalKey<Cell<Option<Self::Value>>>;
}

struct Connection;

impl Slot for Connection {
    type Value = Arc<ConnectInfo>;
    #[inline]
    fn key() -> &'static LocalKey<Cell<Option<Arc<ConnectInfo>>>> {
        &CONNECTION
    }
}

struct Matched;

impl Slot for Matched {
    type Value = MatchedPath;
    #[inline]
    fn key() -> &'static LocalKey<Cell<Option<MatchedPath>>> {
        &MATCHED
    }
}

/// Puts the outer value back, and the scope's own back into its holder, when the scope ends,
/// by return or by unwind.
struct Restore<'a, S: Slot> {
    holder: &'a mut Option<S::Value>,
    outer: Option<S::Value>,
}

impl<S: Slot> Drop for Restore<'_, S> {
    #[inline]
    fn drop(&mut self) {
        *self.holder = S::key().replace(self.outer.take());
    }
}

/// Run `f` with `holder`'s value as the current one; the value goes back into `holder`
/// afterwards, so the next poll can set it again without a clone. An empty `holder` leaves the
/// current value as it is (a router without a template of its own keeps the outer one; an
/// HTTP/1 request keeps its connection's). Only the server and the router call it, around a
/// request's code: never from a thread-local destructor, where the thread's locals are gone.
#[inline]
fn enter<S: Slot, R>(holder: &mut Option<S::Value>, f: impl FnOnce() -> R) -> R {
    if holder.is_none() {
        return f();
    }
    let outer = S::key().replace(holder.take());
    let _restore = Restore::<S> { holder, outer };
    f()
}

/// A copy of the current value (none on a thread whose locals are being torn down).
#[inline]
fn current<S: Slot>() -> Option<S::Value>
where
    S::Value: Clone,
{
    S::key()
        .try_with(|cell| {
            let value = cell.take();
            let copy = value.clone();
            cell.set(value);
            copy
        })
        .ok()
        .flatten()
}

/// Run `f` with `conn` as the current connection (with `None`, the current one stays). The
/// server runs each wake-up of a connection's task in it, and each poll of an HTTP/2 stream's.
#[doc(hidden)]
#[inline]
pub fn with_connection<R>(conn: &mut Option<Arc<ConnectInfo>>, f: impl FnOnce() -> R) -> R {
    enter::<Connection, R>(conn, f)
}

/// Run `f` with `matched` as the current route template (with `None`, the current one stays):
/// the router, around the route's handler.
#[inline]
pub(crate) fn with_matched<R>(matched: &mut Option<MatchedPath>, f: impl FnOnce() -> R) -> R {
    enter::<Matched, R>(matched, f)
}

/// The request's `ConnectInfo`: a plain extension if it carries one (a request built by hand,
/// one carried to another task, or a middleware's correction such as a PROXY-protocol peer),
/// else the connection the current request arrived on.
#[inline]
pub(crate) fn connect_info(req: &Request) -> Option<ConnectInfo> {
    match req.extensions().get::<ConnectInfo>() {
        Some(info) => Some(info.clone()),
        None => current::<Connection>().map(|conn| ConnectInfo::clone(&conn)),
    }
}

/// The request's `MatchedPath`: the template of the innermost router running the current
/// request, else a plain extension (a request built by hand, or carried to another task).
#[inline]
pub(crate) fn matched_path(req: &Request) -> Option<MatchedPath> {
    current::<Matched>().or_else(|| req.extensions().get::<MatchedPath>().cloned())
}
