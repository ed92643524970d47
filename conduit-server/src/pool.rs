//! A database connection pool on [deadpool] with Go's `database/sql` defaults, a maintenance
//! task, statistics and a shutdown hook (feature `pool`).
//!
//! [`Pool`] wraps a [`deadpool::managed::Pool`] built from **any** [`Manager`] (deadpool-sqlite,
//! deadpool-postgres, deadpool-redis, your own) and adds what Go's `sql.DB` does by itself:
//!
//! | setting ([`PoolConfig`]) | default (Go's) | enforced by |
//! |---|---|---|
//! | `max_open` — connections open at once | 100 | deadpool's `max_size` (callers wait past it) |
//! | `max_idle` — idle connections kept | 10 | the maintenance task closes the extra ones |
//! | `max_lifetime` — age at which a connection is retired | 1 h | checked at checkout and by the maintenance task |
//! | `max_idle_time` — idle time after which it is closed | 10 min | the maintenance task |
//! | `wait_timeout` — how long `get` waits for a free slot | none | deadpool's wait timeout |
//! | `maintenance_interval` — how often the task runs | half the shorter of the two durations, 1 s–60 s | |
//!
//! Idle time is measured from the connection's last checkout (deadpool's
//! [`Metrics::last_used`]): deadpool does not record when a connection was returned.
//!
//! ```
//! use conduit_server::pool::{Pool, PoolConfig};
//! use deadpool_sqlite::{Config, Runtime};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let manager = deadpool_sqlite::Manager::from_config(&Config::new(":memory:"), Runtime::Tokio1);
//! let pool = Pool::new(manager, PoolConfig::default()).unwrap(); // Go's defaults
//! let conn = pool.get().await.unwrap();
//! let two: i64 = conn
//!     .interact(|c| c.query_row("SELECT 1 + 1", [], |row| row.get(0)))
//!     .await
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(two, 2);
//! drop(conn);
//! assert_eq!(pool.stats().idle, 1);
//! pool.close(); // or pool.close_on_shutdown(&server) before serving
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use deadpool;
use deadpool::Runtime;
use deadpool::managed::{BuildError, Hook, HookError};
pub use deadpool::managed::{Manager, Metrics, Object, PoolError, RecycleResult};

use crate::Server;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConnection, SqliteManager};

/// Pool limits; [`Default`] gives Go's `database/sql` defaults (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections open at once (in use + idle). Go: `SetMaxOpenConns`, default here 100.
    pub max_open: usize,
    /// Idle connections kept; the maintenance task closes the rest. Go: `SetMaxIdleConns`, 10.
    pub max_idle: usize,
    /// Retire connections older than this (`None`: never). Go: `SetConnMaxLifetime`, 1 h.
    pub max_lifetime: Option<Duration>,
    /// Close connections idle longer than this (`None`: never). Go: `SetConnMaxIdleTime`, 10 min.
    pub max_idle_time: Option<Duration>,
    /// How long [`Pool::get`] waits for a connection when `max_open` are in use (`None`: forever).
    pub wait_timeout: Option<Duration>,
    /// How often the maintenance task runs (`None`: half the shorter of `max_lifetime` and
    /// `max_idle_time`, clamped to 1 s–60 s).
    pub maintenance_interval: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_open: 100,
            max_idle: 10,
            max_lifetime: Some(Duration::from_secs(3600)),
            max_idle_time: Some(Duration::from_secs(600)),
            wait_timeout: None,
            maintenance_interval: None,
        }
    }
}

impl PoolConfig {
    /// The interval the maintenance task uses.
    pub fn effective_maintenance_interval(&self) -> Duration {
        self.maintenance_interval.unwrap_or_else(|| {
            let shortest = match (self.max_lifetime, self.max_idle_time) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => Duration::from_secs(60),
            };
            (shortest / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
        })
    }
}

/// A snapshot of the pool for metrics and `/debug/stats` (the fields of Go's `sql.DBStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `max_open`.
    pub max_open: usize,
    /// Connections open (in use + idle).
    pub open: usize,
    /// Connections checked out.
    pub in_use: usize,
    /// Connections idle in the pool.
    pub idle: usize,
    /// Callers waiting for a connection right now.
    pub waiting: usize,
    /// `get` calls that found the pool exhausted and had to wait.
    pub wait_count: u64,
    /// Total time spent in those waits.
    pub wait_duration: Duration,
    /// Connections closed because idle ones exceeded `max_idle`.
    pub max_idle_closed: u64,
    /// Connections closed for being idle longer than `max_idle_time`.
    pub max_idle_time_closed: u64,
    /// Connections closed for being older than `max_lifetime`.
    pub max_lifetime_closed: u64,
}

#[derive(Default)]
struct Counters {
    wait_count: AtomicU64,
    wait_nanos: AtomicU64,
    max_idle_closed: AtomicU64,
    max_idle_time_closed: AtomicU64,
    max_lifetime_closed: AtomicU64,
}

/// What one maintenance pass closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Idle connections older than `max_lifetime`.
    pub lifetime: usize,
    /// Connections idle longer than `max_idle_time`.
    pub idle_time: usize,
    /// Idle connections beyond `max_idle`.
    pub excess_idle: usize,
}

/// A connection pool with Go's defaults over any deadpool [`Manager`]. Cheap to clone.
///
/// [`Pool::new`] spawns the maintenance task on the current tokio runtime; the task ends when
/// the pool is closed or every clone is dropped.
pub struct Pool<M: Manager> {
    inner: deadpool::managed::Pool<M>,
    config: Arc<PoolConfig>,
    counters: Arc<Counters>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<M: Manager + 'static> Pool<M> {
    /// Build the pool and start its maintenance task. Must be called inside a tokio runtime.
    pub fn new(manager: M, config: PoolConfig) -> Result<Self, BuildError> {
        let counters = Arc::new(Counters::default());
        let mut builder = deadpool::managed::Pool::builder(manager)
            .max_size(config.max_open)
            .wait_timeout(config.wait_timeout)
            .runtime(Runtime::Tokio1);
        if let Some(lifetime) = config.max_lifetime {
            // Never hand out a connection past its lifetime: deadpool drops it and tries the
            // next idle one (or opens a new one).
            let counters = counters.clone();
            builder = builder.pre_recycle(Hook::sync_fn(move |_conn, metrics| {
                if metrics.age() >= lifetime {
                    counters.max_lifetime_closed.fetch_add(1, Ordering::Relaxed);
                    return Err(HookError::message("connection reached max_lifetime"));
                }
                Ok(())
            }));
        }
        let inner = builder.build()?;
        let pool = Self {
            inner,
            config: Arc::new(config),
            counters,
        };
        pool.spawn_maintenance();
        Ok(pool)
    }

    fn spawn_maintenance(&self) {
        let weak = self.inner.weak();
        let config = self.config.clone();
        let counters = self.counters.clone();
        let interval = config.effective_maintenance_interval();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                if inner.is_closed() {
                    break;
                }
                let done = maintain(&inner, &config, &counters);
                if done != Maintenance::default() {
                    tracing::debug!(?done, "pool maintenance closed connections");
                }
            }
        });
    }
}

impl<M: Manager> Pool<M> {
    /// Check a connection out, waiting up to `wait_timeout` when `max_open` are in use.
    pub async fn get(&self) -> Result<Object<M>, PoolError<M::Error>> {
        let status = self.inner.status();
        if status.available == 0 && status.size >= status.max_size {
            let started = Instant::now();
            let res = self.inner.get().await;
            let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.counters.wait_count.fetch_add(1, Ordering::Relaxed);
            self.counters
                .wait_nanos
                .fetch_add(waited, Ordering::Relaxed);
            return res;
        }
        self.inner.get().await
    }

    /// The deadpool pool underneath, for what this wrapper does not expose.
    pub fn deadpool(&self) -> &deadpool::managed::Pool<M> {
        &self.inner
    }

    /// The limits this pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Run one maintenance pass now (the background task does this every interval).
    pub fn maintain(&self) -> Maintenance {
        maintain(&self.inner, &self.config, &self.counters)
    }

    /// Statistics for metrics and `/debug/stats`.
    pub fn stats(&self) -> PoolStats {
        let s = self.inner.status();
        let c = &self.counters;
        PoolStats {
            max_open: s.max_size,
            open: s.size,
            in_use: s.size.saturating_sub(s.available),
            idle: s.available,
            waiting: s.waiting,
            wait_count: c.wait_count.load(Ordering::Relaxed),
            wait_duration: Duration::from_nanos(c.wait_nanos.load(Ordering::Relaxed)),
            max_idle_closed: c.max_idle_closed.load(Ordering::Relaxed),
            max_idle_time_closed: c.max_idle_time_closed.load(Ordering::Relaxed),
            max_lifetime_closed: c.max_lifetime_closed.load(Ordering::Relaxed),
        }
    }

    /// Close the pool: idle connections close now, checked-out ones when they come back,
    /// waiting and later `get` calls fail with [`PoolError::Closed`]. Idempotent.
    pub fn close(&self) {
        if !self.inner.is_closed() {
            let before = self.stats();
            self.inner.close();
            tracing::info!(
                open = before.open,
                in_use = before.in_use,
                idle = before.idle,
                "database pool closed"
            );
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

impl<M: Manager + 'static> Pool<M> {
    /// Register a shutdown hook on `server` that closes this pool after the connections drained
    /// (so in-flight requests still had their database).
    pub fn close_on_shutdown(&self, server: &Server) {
        let pool = self.clone();
        server.on_shutdown("close database pool", move |_left| async move {
            pool.close();
        });
    }
}

fn maintain<M: Manager>(
    pool: &deadpool::managed::Pool<M>,
    config: &PoolConfig,
    counters: &Counters,
) -> Maintenance {
    let mut done = Maintenance::default();
    let expired = pool.retain(|_, metrics| {
        if config.max_lifetime.is_some_and(|max| metrics.age() >= max) {
            done.lifetime += 1;
            false
        } else if config
            .max_idle_time
            .is_some_and(|max| metrics.last_used() >= max)
        {
            done.idle_time += 1;
            false
        } else {
            true
        }
    });
    // The closed connections drop here, outside the pool's lock.
    let idle = expired.retained;
    drop(expired);
    if idle > config.max_idle {
        // Oldest-idle first: deadpool hands out from the front and returns to the back.
        let mut excess = idle - config.max_idle;
        let trimmed = pool.retain(|_, _| {
            if excess > 0 {
                excess -= 1;
                false
            } else {
                true
            }
        });
        done.excess_idle = trimmed.removed.len();
    }
    counters
        .max_lifetime_closed
        .fetch_add(done.lifetime as u64, Ordering::Relaxed);
    counters
        .max_idle_time_closed
        .fetch_add(done.idle_time as u64, Ordering::Relaxed);
    counters
        .max_idle_closed
        .fetch_add(done.excess_idle as u64, Ordering::Relaxed);
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_defaults() {
        let c = PoolConfig::default();
        assert_eq!(c.max_open, 100);
        assert_eq!(c.max_idle, 10);
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(c.max_idle_time, Some(Duration::from_secs(600)));
        assert_eq!(c.effective_maintenance_interval(), Duration::from_secs(60));
        let short = PoolConfig {
            max_idle_time: Some(Duration::from_secs(4)),
            ..c
        };
        assert_eq!(
            short.effective_maintenance_interval(),
            Duration::from_secs(2)
        );
    }
}
