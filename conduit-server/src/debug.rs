//! Opt-in profiling and runtime statistics (feature `profiling`): Go's `/debug/pprof/` and
//! a `/debug/stats` JSON page, on a separate localhost listener or behind a token.
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /debug/pprof/` | an index of what is offered |
//! | `GET /debug/pprof/profile?seconds=N` | a CPU profile of the whole process (pprof-rs, 99 Hz), in pprof's protobuf format: `pprof -http=: profile.pb`, `go tool pprof profile.pb` |
//! | `GET /debug/pprof/flamegraph?seconds=N` | the same profile as a flamegraph SVG |
//! | `GET /debug/pprof/heap` | `501`: see below |
//! | `GET /debug/stats` | JSON: tokio workers, alive tasks, global queue depth, resident memory, threads, open connections, in-flight requests, uptime, and any [`Debug::stat`] you add (e.g. the database pool) |
//!
//! Samples taken while a thread runs inside libc, libgcc, libpthread or the vDSO are dropped
//! (unwinding there from a signal handler can deadlock), so time in `malloc`, `memcpy` and
//! syscall wrappers is under-counted; `CONDUIT_PPROF_BLOCKLIST=libgcc,vdso` (comma-separated)
//! keeps libc samples at that risk.
//!
//! `seconds` defaults to 30 and must be 1–300 (`400` otherwise); one profile runs at a time
//! (`409` while one is running). Sampling uses `SIGPROF` and costs little, but it is a
//! profiler: leave it off in production unless you need it.
//!
//! **Go profiles without a direct Rust equivalent.** `goroutine` (a stack per goroutine): tokio
//! tasks are state machines without stacks; `/debug/stats` gives the alive task count, and
//! `tokio-console` (built with `--cfg tokio_unstable`) shows each task. `block` and `mutex`
//! (time blocked on channels and locks): neither tokio nor `std` records contention; look for
//! it in the CPU profile (`parking_lot`/`futex` frames) or with `tracing` spans. `threadcreate`:
//! `/debug/stats` reports workers and threads. `heap` / `allocs`: Rust has no built-in heap
//! profiler; it takes an instrumented allocator (jemalloc through `tikv-jemallocator` with
//! `prof` on, dumped by `jemalloc_pprof`). conduit uses the system allocator, so `/debug/pprof/heap`
//! answers `501` and `/debug/stats` reports resident memory instead.
//!
//! ```
//! use conduit_core::{HandlerExt, Request, Router, get};
//! use conduit_server::debug::Debug;
//! use conduit_server::{Config, Server};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let server = Server::bind(Config::new("127.0.0.1:0").handle_signals(false)).await?;
//! let debug = Debug::new().server(server.handle());
//! // Count in-flight requests of the app, and serve the debug endpoints on their own port.
//! let app = Router::new()
//!     .route("/", get(|_req: Request| async { "hi" }))
//!     .with(debug.in_flight());
//! let profiling = debug.spawn("127.0.0.1:0", &server.handle()).await?;
//! println!("pprof on http://{}/debug/pprof/", profiling.local_addr());
//! # server.handle().shutdown();
//! server.serve(app).await?; // the debug listener stops with the server
//! # Ok::<(), conduit_server::ServerError>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use conduit_core::http::{StatusCode, header};
use conduit_core::{
    Handler, Html, IntoResponse, Json, Middleware, Request, Response, Router, from_fn, get,
};
use serde_json::{Map, Value, json};

use crate::{Config, Server, ServerError, ShutdownHandle};

/// Default and limits of `?seconds=` for CPU profiles.
const DEFAULT_SECONDS: u64 = 30;
const MAX_SECONDS: u64 = 300;
/// Samples per second, as Go's default (`runtime.SetCPUProfileRate(100)`, less one to avoid
/// lock-step with timers).
const FREQUENCY: i32 = 99;

/// Shared objects whose samples are dropped, so the unwinder never runs inside them (unwinding
/// from a signal in the loader or libgcc can deadlock). `CONDUIT_PPROF_BLOCKLIST` overrides.
const BLOCKLIST: [&str; 4] = ["libc", "libgcc", "pthread", "vdso"];

type StatFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// The debug endpoints: build with [`Debug::new`], then [`spawn`](Debug::spawn) them on their
/// own listener or [`router`](Debug::router) them behind a [`token`](Debug::token).
#[derive(Clone)]
pub struct Debug {
    server: Option<ShutdownHandle>,
    in_flight: Arc<AtomicUsize>,
    token: Option<Arc<str>>,
    stats: Vec<(String, StatFn)>,
    started: Instant,
}

impl fmt::Debug for Debug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Debug")
            .field("server", &self.server.is_some())
            .field("token", &self.token.is_some())
            .field(
                "stats",
                &self.stats.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Debug {
    fn default() -> Self {
        Self::new()
    }
}

impl Debug {
    /// Endpoints with nothing attached yet.
    pub fn new() -> Self {
        Self {
            server: None,
            in_flight: Arc::default(),
            token: None,
            stats: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Report the open connections of the server this handle belongs to.
    pub fn server(mut self, handle: ShutdownHandle) -> Self {
        self.server = Some(handle);
        self
    }

    /// Require `Authorization: Bearer <token>` (or `?token=<token>`) on every endpoint;
    /// needed to [`spawn`](Self::spawn) them on a non-loopback address.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Arc::from(token.into()));
        self
    }

    /// Add a section to `/debug/stats`, computed on each request (e.g. the pool's statistics).
    pub fn stat<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Value + Send + Sync + 'static,
    {
        self.stats.push((name.into(), Arc::new(f)));
        self
    }

    /// A middleware counting the requests whose handler is running (`in_flight_requests`):
    /// wrap the app with it.
    pub fn in_flight(&self) -> InFlight {
        InFlight {
            count: self.in_flight.clone(),
        }
    }

    /// The current `/debug/stats` document.
    pub fn stats(&self) -> Value {
        let mut doc = Map::new();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let m = rt.metrics();
            doc.insert(
                "tokio".into(),
                json!({
                    "workers": m.num_workers(),
                    "alive_tasks": m.num_alive_tasks(),
                    "global_queue_depth": m.global_queue_depth(),
                }),
            );
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        doc.insert(
            "process".into(),
            json!({
                "rss_bytes": field("VmRSS:").map(|kib| kib * 1024),
                "threads": field("Threads:"),
                "uptime_seconds": self.started.elapsed().as_secs_f64(),
            }),
        );
        let mut server = Map::new();
        if let Some(h) = &self.server {
            server.insert("open_connections".into(), h.connections().into());
            server.insert("draining".into(), h.is_draining().into());
        }
        server.insert(
            "in_flight_requests".into(),
            self.in_flight.load(Ordering::Relaxed).into(),
        );
        doc.insert("server".into(), Value::Object(server));
        for (name, f) in &self.stats {
            doc.insert(name.clone(), f());
        }
        Value::Object(doc)
    }

    /// The endpoints as a router (paths start with `/debug/`), checking the token if one is
    /// set. Mount it on a listener only you can reach.
    pub fn router(&self) -> Router {
        let busy = Arc::new(AtomicBool::new(false));
        let this = self.clone();
        let router = Router::new()
            .route("/debug/pprof", get(index))
            .route("/debug/pprof/", get(index))
            .route(
                "/debug/pprof/profile",
                get(Profile {
                    busy: busy.clone(),
                    svg: false,
                }),
            )
            .route("/debug/pprof/flamegraph", get(Profile { busy, svg: true }))
            .route("/debug/pprof/heap", get(heap))
            .route("/debug/pprof/allocs", get(heap))
            .route(
                "/debug/pprof/{name}",
                get(|_req: Request| async {
                    conduit_core::Error::new(
                        StatusCode::NOT_FOUND,
                        "no such profile; see /debug/pprof/ for what is offered and why",
                    )
                }),
            )
            .route(
                "/debug/stats",
                get(move |_req: Request| {
                    let doc = this.stats();
                    async move { Json(doc) }
                }),
            );
        match &self.token {
            None => router,
            Some(token) => {
                let token = token.clone();
                router.layer(from_fn(move |req: Request, next: conduit_core::Next| {
                    let ok = authorized(&req, &token);
                    async move {
                        if ok {
                            return next.run(req).await;
                        }
                        tracing::info!(path = %req.uri().path(), "debug endpoint: missing or wrong token (401)");
                        let mut res = conduit_core::Error::new(
                            StatusCode::UNAUTHORIZED,
                            "debug endpoints need the token",
                        )
                        .into_response();
                        res.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            header::HeaderValue::from_static("Bearer"),
                        );
                        res
                    }
                }))
            }
        }
    }

    /// Bind `addr` and serve the endpoints there from a task of their own, until `main` (the
    /// app server's handle) starts shutting down; returns once the listener is bound. `addr`
    /// must be a loopback address unless a [`token`](Self::token) is set.
    pub async fn spawn(
        &self,
        addr: &str,
        main: &ShutdownHandle,
    ) -> Result<DebugServer, ServerError> {
        let server = Server::bind(Config::new(addr).handle_signals(false)).await?;
        let local_addr = server.local_addr();
        if !local_addr.ip().is_loopback() && self.token.is_none() {
            // Dropping `server` closes the listener before anyone is served.
            return Err(ServerError::Config(format!(
                "debug endpoints on non-loopback address {local_addr} need a token (Debug::token)"
            )));
        }
        let own = server.handle();
        let main = main.clone();
        tokio::spawn(async move {
            main.draining().await;
            own.shutdown();
        });
        let router = self.router();
        let task = tokio::spawn(async move {
            if let Err(e) = server.serve(router).await {
                tracing::error!(error = %e, "debug server failed");
            }
        });
        tracing::info!(addr = %local_addr, "debug endpoints listening (/debug/pprof/, /debug/stats)");
        Ok(DebugServer { local_addr, task })
    }

    /// The same as [`spawn`](Self::spawn), which says what it does: it returns once the
    /// listener is bound, while [`Server::serve`] runs until shutdown.
    #[deprecated(since = "0.1.0", note = "renamed to `Debug::spawn`")]
    pub async fn serve(
        &self,
        addr: &str,
        main: &ShutdownHandle,
    ) -> Result<DebugServer, ServerError> {
        self.spawn(addr, main).await
    }
}

/// The running debug listener started by [`Debug::spawn`].
#[derive(Debug)]
pub struct DebugServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DebugServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Wait until it has stopped (after the app server began shutting down).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

fn authorized(req: &Request, token: &str) -> bool {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == token);
    bearer
        || req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("token=").is_some_and(|t| t == token))
        })
}

async fn index(_req: Request) -> Html<&'static str> {
    Html(INDEX)
}

const INDEX: &str = r#"<!doctype html>
<title>/debug/pprof/</title>
<h1>/debug/pprof/</h1>
<ul>
<li><a href="profile?seconds=30">profile?seconds=N</a> — CPU profile (pprof protobuf; open with <code>pprof</code> or <code>go tool pprof</code>)</li>
<li><a href="flamegraph?seconds=30">flamegraph?seconds=N</a> — the same CPU profile as a flamegraph SVG</li>
<li><a href="heap">heap</a> — not available: the system allocator has no heap profiler (use jemalloc + jemalloc_pprof); see RSS in /debug/stats</li>
<li><a href="/debug/stats">/debug/stats</a> — tokio workers, alive tasks, queue depth, RSS, threads, open connections, in-flight requests</li>
</ul>
<p>No Rust equivalent: <b>goroutine</b> (tokio tasks have no stacks: alive_tasks in /debug/stats, or tokio-console),
<b>block</b> and <b>mutex</b> (no contention recording: look for futex/park frames in the CPU profile),
<b>threadcreate</b> (threads in /debug/stats).</p>
"#;

async fn heap(_req: Request) -> conduit_core::Error {
    conduit_core::Error::new(
        StatusCode::NOT_IMPLEMENTED,
        "heap profiling needs an instrumented allocator (jemalloc with prof, via jemalloc_pprof); \
         this server uses the system allocator. Resident memory is in /debug/stats.",
    )
}

/// `/debug/pprof/profile` and `/debug/pprof/flamegraph`.
#[derive(Clone)]
struct Profile {
    busy: Arc<AtomicBool>,
    svg: bool,
}

impl Handler for Profile {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<> {
        let busy = self.busy.clone();
        let svg = self.svg;
        async move {
            let seconds = match profile_seconds(req.uri().query()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(query = ?req.uri().query(), "bad profile request: {}", e.message());
                    return e.into_response();
                }
            };
            if busy.swap(true, Ordering::AcqRel) {
                tracing::info!("profile requested while another runs (409)");
                return conduit_core::Error::new(
                    StatusCode::CONFLICT,
                    "a CPU profile is already running; try again when it ends",
                )
                .into_response();
            }
            let _release = Release(busy);
            tracing::info!(seconds, svg, "CPU profile started");
            // Sampling and symbolizing block; keep them off the async workers.
            let out = tokio::task::spawn_blocking(move || cpu_profile(seconds, svg)).await;
            match out {
                Ok(Ok(bytes)) => {
                    let (ctype, disposition) = if svg {
                        ("image/svg+xml", "inline; filename=\"flamegraph.svg\"")
                    } else {
                        (
                            "application/octet-stream",
                            "attachment; filename=\"profile.pb\"",
                        )
                    };
                    let mut res = Response::new(conduit_core::Body::from(bytes));
                    let h = res.headers_mut();
                    h.insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(ctype),
                    );
                    h.insert(
                        header::CONTENT_DISPOSITION,
                        header::HeaderValue::from_static(disposition),
                    );
                    res
                }
                Ok(Err(e)) => conduit_core::Error::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "CPU profile failed",
                )
                .with_source(e)
                .into_response(),
                Err(e) => conduit_core::Error::internal(e).into_response(),
            }
        }
    }
}

struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn profile_seconds(query: Option<&str>) -> Result<u64, conduit_core::Error> {
    let Some(raw) = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("seconds="))
    else {
        return Ok(DEFAULT_SECONDS);
    };
    match raw.parse::<u64>() {
        Ok(s) if (1..=MAX_SECONDS).contains(&s) => Ok(s),
        _ => Err(conduit_core::Error::bad_request(format!(
            "seconds must be a whole number from 1 to {MAX_SECONDS}"
        ))),
    }
}

fn cpu_profile(seconds: u64, svg: bool) -> Result<Vec<u8>, conduit_core::BoxError> {
    use pprof::protos::Message;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&blocklist())
        .build()?;
    std::thread::sleep(Duration::from_secs(seconds));
    let report = guard
        .report()
        .frames_post_processor(trim_unwinder_frames)
        .build()?;
    drop(guard);
    let mut out = Vec::new();
    if svg && report.data.is_empty() {
        // inferno refuses an empty profile; answer a readable SVG instead of an error.
        out.extend_from_slice(EMPTY_SVG.as_bytes());
    } else if svg {
        report.flamegraph(&mut out)?;
    } else {
        report.pprof()?.write_to_vec(&mut out)?;
    }
    Ok(out)
}

const EMPTY_SVG: &str = r#"<?xml version="1.0" standalone="no"?>
<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40"><text x="10" y="25">no samples: the process used no CPU outside the blocklisted libraries while profiling</text></svg>
"#;

fn blocklist() -> Vec<String> {
    match std::env::var("CONDUIT_PPROF_BLOCKLIST") {
        Ok(v) => v
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Err(_) => BLOCKLIST.map(String::from).to_vec(),
    }
}

/// pprof-rs drops its signal handler frame but, without inlining (debug builds), the unwinder's
/// own frames stay on top of every stack and would take 100 % "flat" time. Drop them.
fn trim_unwinder_frames(frames: &mut pprof::Frames) {
    let is_unwinder = |syms: &Vec<pprof::Symbol>| {
        syms.iter().any(|s| {
            let name = s.name();
            name.starts_with("backtrace::") || name.contains("pprof::backtrace::")
        })
    };
    let skip = frames.frames.iter().take_while(|f| is_unwinder(f)).count();
    if skip < frames.frames.len() {
        frames.frames.drain(..skip);
    }
}

/// Middleware made by [`Debug::in_flight`]: counts requests whose handler is running.
#[derive(Clone, Debug)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
}

impl<H: Handler> Middleware<H> for InFlight {
    type Output = InFlightHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        InFlightHandler {
            inner,
            count: self.count.clone(),
        }
    }
}

/// The handler made by the [`InFlight`] middleware.
#[derive(Clone, Debug)]
pub struct InFlightHandler<H> {
    inner: H,
    count: Arc<AtomicUsize>,
}

struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<H: Handler> Handler for InFlightHandler<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let guard = InFlightGuard(self.count.clone());
        let fut = self.inner.call(req);
        async move {
            let _guard = guard;
            fut.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_checked() {
        assert_eq!(profile_seconds(None).unwrap(), DEFAULT_SECONDS);
        assert_eq!(profile_seconds(Some("seconds=5")).unwrap(), 5);
        assert_eq!(profile_seconds(Some("debug=1&seconds=300")).unwrap(), 300);
        for bad in [
            "seconds=0",
            "seconds=301",
            "seconds=x",
            "seconds=-1",
            "seconds=",
        ] {
            let e = profile_seconds(Some(bad)).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
