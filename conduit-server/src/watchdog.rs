//! Per-connection timeouts without a timer per request.
//!
//! The hot path only bumps relaxed atomics in [`Activity`]: the I/O wrapper
//! ([`TimedIo`](crate::io::TimedIo)) notes reads and stalled writes, the service notes requests starting and responses
//! finishing. A [`Watchdog`], polled by the connection task, samples that state on a coarse
//! tick and closes the connection when one phase has lasted too long:
//!
//! | phase | limit |
//! |---|---|
//! | first request's headers, from accept | `header_read_timeout` |
//! | a later request's headers, from its first byte (HTTP/1) | `header_read_timeout` |
//! | idle between requests (no stream open, for HTTP/2) | `idle_timeout` |
//! | a write that makes no progress | `write_timeout` |
//! | a handler running | none here (the `Timeout` middleware's job) |
//!
//! The request body's own deadline (`read_timeout`) lives in [`crate::body`].
//!
//! After a response, HTTP/1 counts as idle until a byte of the next request arrives. Bytes of
//! a next request that came in *with* the previous one (pipelined, then stalled) are already
//! read, so that connection is held to the idle limit rather than the header limit: it can
//! stay no longer than any idle keep-alive connection.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use conduit_core::ShutdownSignal;
use conduit_core::sendfile::Sendfile;
use tokio::time::{Instant, Sleep};

/// What the connection is doing, updated from the I/O and service paths. It also holds the
/// connection's link to the server's [`ShutdownSignal`] for streaming bodies, so that a
/// response reaches it through the [`FinishGuard`] it carries anyway, without a reference
/// count of its own per request.
#[derive(Debug)]
pub(crate) struct Activity {
    started: AtomicU32,
    finished: AtomicU32,
    read_seen: AtomicBool,
    write_blocked: AtomicBool,
    written: AtomicU64,
    http2: AtomicBool,
    streams: ShutdownSignal,
    /// The queue of file spans for `sendfile`, on a connection that sends them (plain-text
    /// HTTP/1.1 on Linux; see [`conduit_core::sendfile`]).
    sendfile: Option<Arc<Sendfile>>,
}

impl Activity {
    /// A new connection's activity; `streams` is the server's signal for streaming bodies;
    /// `sendfile`: whether file bodies may be sent with `sendfile` on it.
    pub(crate) fn new(streams: ShutdownSignal, sendfile: bool) -> Self {
        Self {
            started: AtomicU32::new(0),
            finished: AtomicU32::new(0),
            read_seen: AtomicBool::new(false),
            write_blocked: AtomicBool::new(false),
            written: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            streams,
            sendfile: sendfile.then(Default::default),
        }
    }

    /// The queue for a file body's `sendfile` spans, if this connection sends them.
    pub(crate) fn sendfile_queue(&self) -> Option<Arc<Sendfile>> {
        self.sendfile.clone()
    }

    /// The queue, while it holds spans the writer has not sent.
    #[inline]
    pub(crate) fn sendfile_pending(&self) -> Option<&Sendfile> {
        self.sendfile.as_deref().filter(|q| q.is_pending())
    }

    /// The server's signal for streaming bodies (SSE): a response carrying a
    /// [`ShutdownSignal`] is linked to it.
    #[inline]
    pub(crate) fn streams(&self) -> &ShutdownSignal {
        &self.streams
    }

    #[inline]
    pub(crate) fn request_started(&self, http2: bool) {
        self.started.fetch_add(1, Relaxed);
        if http2 && !self.http2.load(Relaxed) {
            self.http2.store(true, Relaxed);
        }
    }

    /// Bytes arrived from the client.
    #[inline]
    pub(crate) fn on_read(&self) {
        if !self.read_seen.load(Relaxed) {
            self.read_seen.store(true, Relaxed);
        }
    }

    /// A write to the client returned: pending (stalled) or done.
    #[inline]
    pub(crate) fn on_write(&self, res: &Poll<io::Result<usize>>) {
        match res {
            Poll::Pending => self.write_blocked.store(true, Relaxed),
            Poll::Ready(Ok(n)) => {
                if self.write_blocked.load(Relaxed) {
                    self.write_blocked.store(false, Relaxed);
                }
                self.written.fetch_add(*n as u64, Relaxed);
            }
            Poll::Ready(Err(_)) => {}
        }
    }

    /// Whether a request on this connection arrived over HTTP/2.
    #[inline]
    pub(crate) fn is_http2(&self) -> bool {
        self.http2.load(Relaxed)
    }

    #[inline]
    pub(crate) fn response_finished(&self) {
        self.read_seen.store(false, Relaxed);
        self.finished.fetch_add(1, Relaxed);
    }
}

/// Marks a response finished when the response body is dropped (fully written or abandoned).
#[derive(Debug)]
pub(crate) struct FinishGuard(pub(crate) Arc<Activity>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.response_finished();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    FirstHeaders,
    Headers(u32),
    Idle(u32),
    Busy,
    WriteStall(u64),
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// Headers did not arrive in time.
    Headers,
    /// Idle keep-alive connection.
    Idle,
    /// The client stopped reading.
    Write,
}

impl Expired {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Expired::Headers => "header read timeout",
            Expired::Idle => "idle timeout",
            Expired::Write => "write timeout (client stopped reading)",
        }
    }
}

/// Limits the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
    pub(crate) write: Duration,
}

impl Limits {
    /// The sampling period: a quarter of the shortest limit, between 5 ms and 1 s.
    fn tick(&self) -> Duration {
        (self.header.min(self.idle).min(self.write) / 4)
            .clamp(Duration::from_millis(5), Duration::from_secs(1))
    }
}

/// Samples [`Activity`] and reports the first phase that outlived its limit.
pub(crate) struct Watchdog {
    activity: Arc<Activity>,
    limits: Limits,
    tick: Duration,
    phase: Phase,
    since: Instant,
    sleep: Pin<Box<Sleep>>,
    /// The sleep has been polled since it was last reset, so the task's waker is registered
    /// with the timer and the sleep need not be polled again until it has elapsed.
    armed: bool,
    /// An HTTP/1 response is in progress and no write is stalled: no limit applies, so the
    /// timer is left unarmed (a long-lived stream's connection is not woken every tick) and
    /// each poll checks instead whether that is still so.
    parked: bool,
}

impl Watchdog {
    pub(crate) fn new(activity: Arc<Activity>, limits: Limits, accepted: Instant) -> Self {
        let tick = limits.tick();
        let first = (accepted + limits.header).min(accepted + tick);
        Self {
            activity,
            limits,
            tick,
            phase: Phase::FirstHeaders,
            since: accepted,
            sleep: Box::pin(tokio::time::sleep_until(first)),
            armed: false,
            parked: false,
        }
    }

    /// Still busy with a response and not stalled (what a parked watchdog waits to end).
    #[inline]
    fn still_busy(&self) -> bool {
        let a = &self.activity;
        !a.write_blocked.load(Relaxed) && a.started.load(Relaxed) != a.finished.load(Relaxed)
    }

    fn phase(&self) -> Phase {
        let a = &self.activity;
        if a.write_blocked.load(Relaxed) {
            return Phase::WriteStall(a.written.load(Relaxed));
        }
        let started = a.started.load(Relaxed);
        let finished = a.finished.load(Relaxed);
        if started != finished {
            Phase::Busy
        } else if started == 0 {
            Phase::FirstHeaders
        } else if !a.http2.load(Relaxed) && a.read_seen.load(Relaxed) {
            Phase::Headers(started)
        } else {
            Phase::Idle(finished)
        }
    }

    fn limit(&self) -> Option<(Duration, Expired)> {
        match self.phase {
            Phase::FirstHeaders | Phase::Headers(_) => Some((self.limits.header, Expired::Headers)),
            Phase::Idle(_) => Some((self.limits.idle, Expired::Idle)),
            Phase::WriteStall(_) => Some((self.limits.write, Expired::Write)),
            Phase::Busy => None,
        }
    }

    /// Resolves when a limit is exceeded. Between ticks this is one relaxed load: the timer
    /// wakes the task when it fires, and only then is the sleep polled again.
    #[inline]
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        if self.parked {
            // Every change that ends an HTTP/1 response or stalls its write happens while
            // this task polls the connection, so checking here misses none: sampling resumes
            // one tick after it, as if the tick had kept running.
            if self.still_busy() {
                return Poll::Pending;
            }
            self.parked = false;
            self.sleep.as_mut().reset(Instant::now() + self.tick);
        } else if self.armed && !self.sleep.is_elapsed() {
            return Poll::Pending;
        }
        self.armed = false;
        while self.sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let phase = self.phase();
            if phase != self.phase {
                self.phase = phase;
                self.since = now;
            }
            // HTTP/2 streams finish in tasks of their own, so an HTTP/2 connection keeps
            // sampling.
            if phase == Phase::Busy && !self.activity.is_http2() {
                self.parked = true;
                return Poll::Pending;
            }
            let mut next = now + self.tick;
            if let Some((limit, why)) = self.limit() {
                let deadline = self.since + limit;
                if now >= deadline {
                    return Poll::Ready(why);
                }
                next = next.min(deadline);
            }
            self.sleep.as_mut().reset(next);
        }
        self.armed = true;
        Poll::Pending
    }
}
