//! Graceful shutdown: the [`ShutdownHandle`], cleanup [`ShutdownHooks`] and the readiness handler.
//!
//! Shutdown runs in this order, once, however many times and from however many tasks it is
//! triggered (SIGINT, SIGTERM or [`ShutdownHandle::shutdown`]):
//!
//! 1. readiness turns to 503 (see [`ShutdownHandle::readiness`]); if `drain_delay` is set, the
//!    server keeps serving that long so load balancers can take it out of rotation;
//! 2. the listener closes: new connections are refused;
//! 3. idle keep-alive connections close; in-flight HTTP/1 responses carry `Connection: close`,
//!    HTTP/2 connections get a GOAWAY; the server waits for them up to `shutdown_timeout`;
//! 4. whatever is still open at the deadline is force-closed;
//! 5. cleanup hooks run one after another, **in the order they were added**, each given the
//!    time left until the deadline (at least one second), each in its own task so a panic in
//!    one does not stop the others.
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//! use conduit_server::{Config, Server};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let server = Server::bind(Config::new("127.0.0.1:0").handle_signals(false)).await?;
//! let closed = Arc::new(AtomicBool::new(false));
//! let flag = closed.clone();
//! server.on_shutdown("close db pool", move |time_left| async move {
//!     tracing::info!(?time_left, "closing the pool");
//!     flag.store(true, Ordering::SeqCst);
//! });
//! let handle = server.handle();
//! tokio::spawn(async move { handle.shutdown() }); // SIGINT / SIGTERM do the same
//! server.serve(|_req: conduit_core::Request| async { "hi" }).await?;
//! assert!(closed.load(Ordering::SeqCst));
//! # Ok::<(), conduit_server::ServerError>(())
//! # }).unwrap();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conduit_core::http::StatusCode;
use conduit_core::{Handler, IntoResponse, Request, Response, ShutdownSignal};
use tokio::sync::{Notify, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

type HookFn = Box<dyn FnOnce(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The least time a cleanup hook is given, even when the drain used up the deadline.
pub(crate) const MIN_HOOK_TIME: Duration = Duration::from_secs(1);

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;

/// Cleanup hooks run once after the drain, in the order they were added.
#[derive(Default)]
pub struct ShutdownHooks {
    hooks: Mutex<Vec<(String, HookFn)>>,
}

impl fmt::Debug for ShutdownHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.hooks.lock().map(|h| h.len()).unwrap_or(0);
        f.debug_struct("ShutdownHooks").field("len", &n).finish()
    }
}

impl ShutdownHooks {
    /// Add a hook; it is called with the time left until the shutdown deadline.
    pub fn add<F, Fut>(&self, name: impl Into<String>, hook: F)
    where
        F: FnOnce(Duration) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let boxed: HookFn = Box::new(move |left| Box::pin(hook(left)));
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.into(), boxed));
    }

    /// Run every hook once, in order. Later calls find nothing left to run.
    pub(crate) async fn run(&self, deadline: Instant) {
        let hooks = std::mem::take(&mut *self.hooks.lock().unwrap_or_else(|e| e.into_inner()));
        for (name, hook) in hooks {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(MIN_HOOK_TIME);
            tracing::info!(hook = %name, ?left, "running shutdown hook");
            let task = tokio::spawn(hook(left));
            let abort = task.abort_handle();
            match tokio::time::timeout(left, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(hook = %name, error = %e, "shutdown hook panicked"),
                Err(_) => {
                    abort.abort();
                    tracing::warn!(hook = %name, ?left, "shutdown hook ran out of time");
                }
            }
        }
    }
}

/// Triggers and observes graceful shutdown. Cheap to clone; every clone controls the same server.
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(crate) inner: Arc<Shared>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("draining", &self.is_draining())
            .finish()
    }
}

pub(crate) struct Shared {
    state: AtomicU8,
    notify: Notify,
    pub(crate) conns: Connections,
    pub(crate) hooks: ShutdownHooks,
    /// Triggered when the drain begins; long-lived response bodies link to it.
    streams: ShutdownSignal,
}

impl ShutdownHandle {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Shared {
                state: AtomicU8::new(RUNNING),
                notify: Notify::new(),
                conns: Connections::default(),
                hooks: ShutdownHooks::default(),
                streams: ShutdownSignal::new(),
            }),
        }
    }

    /// Start graceful shutdown. Idempotent: calling it again (from any task) does nothing more.
    pub fn shutdown(&self) {
        if self.inner.state.swap(DRAINING, Ordering::AcqRel) == RUNNING {
            tracing::info!("graceful shutdown started");
            self.inner.notify.notify_waiters();
        }
    }

    /// Whether shutdown has started.
    pub fn is_draining(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) != RUNNING
    }

    /// Resolves once shutdown has started.
    pub async fn draining(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_draining() {
                return;
            }
            notified.await;
        }
    }

    /// The signal streaming responses listen to: triggered when the drain begins (after
    /// `drain_delay`), so SSE and other endless bodies end and the drain does not wait for
    /// them. A response opts in by carrying a [`ShutdownSignal`] in its extensions.
    pub fn streams(&self) -> &ShutdownSignal {
        &self.inner.streams
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.inner.conns.len()
    }

    /// A handler for load-balancer readiness probes: `200 ready` while serving,
    /// `503 draining` from the moment shutdown starts.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            handle: self.clone(),
        }
    }
}

/// The readiness handler made by [`ShutdownHandle::readiness`].
#[derive(Clone, Debug)]
pub struct Readiness {
    handle: ShutdownHandle,
}

impl Handler for Readiness {
    fn call(&self, _req: Request) -> impl Future<Output = Response> + Send + use<> {
        let res = if self.handle.is_draining() {
            conduit_core::Problem::with_message(StatusCode::SERVICE_UNAVAILABLE, "draining")
                .into_error_response()
        } else {
            "ready".into_response()
        };
        std::future::ready(res)
    }
}

/// The open connections: a drain signal and an abort handle for each.
#[derive(Default)]
pub(crate) struct Connections {
    map: Mutex<HashMap<u64, ConnEntry>>,
    next_id: AtomicU64,
    empty: Notify,
}

struct ConnEntry {
    drain: Option<oneshot::Sender<()>>,
    abort: Option<AbortHandle>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ConnEntry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a connection; returns its id and the receiver of its drain signal.
    pub(crate) fn register(&self) -> (u64, oneshot::Receiver<()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            id,
            ConnEntry {
                drain: Some(tx),
                abort: None,
            },
        );
        (id, rx)
    }

    pub(crate) fn set_abort(&self, id: u64, abort: AbortHandle) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.abort = Some(abort);
        }
    }

    pub(crate) fn remove(&self, id: u64) {
        let mut map = self.lock();
        map.remove(&id);
        if map.is_empty() {
            self.empty.notify_one();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Tell every connection to finish what it is doing and close.
    pub(crate) fn drain_all(&self) {
        for e in self.lock().values_mut() {
            if let Some(tx) = e.drain.take() {
                let _ = tx.send(());
            }
        }
    }

    /// Close every connection now.
    pub(crate) fn abort_all(&self) -> usize {
        let map = self.lock();
        for e in map.values() {
            if let Some(a) = &e.abort {
                a.abort();
            }
        }
        map.len()
    }

    /// Wait until no connection is left, or until `deadline`. True when all closed.
    pub(crate) async fn wait_empty(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.empty.notified();
            if self.lock().is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.lock().is_empty();
            }
        }
    }
}

/// Removes a connection from [`Connections`] when its task ends (or is aborted).
pub(crate) struct ConnGuard {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.conns.remove(self.id);
    }
}
