//! [`RedisStore`]: the rate limiter's GCRA in one Lua script, so several instances share
//! every key's budget.
//!
//! The script reads the server's clock (`TIME`), so instance clocks do not matter; it stores
//! each key's "theoretical arrival time" in microseconds with a TTL of the time until its
//! bucket is full again (`PX`), so Redis holds no idle keys. It runs by `EVALSHA` (redis-rs
//! loads it and retries once on `NOSCRIPT`): one round trip, atomic. The decision and the
//! `RateLimit-*` / `Retry-After` headers come from the same [`Quota::step`] as
//! [`MemoryStore`]'s.
//!
//! When Redis does not answer within the command timeout the store fails open (the default:
//! the request goes through), fails closed (429), or asks a local [`MemoryStore`] (a limit per
//! instance); each failure is counted ([`RedisStore::stats`]) and the first of an outage is
//! logged at `warn`, the recovery at `info`.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use conduit_middleware::rate_limit::{Decision, MemoryStore, Quota, RateLimitStore};
use redis::Script;

use crate::conn::Redis;

const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local start = math.max(tat, now)
if start - now > tolerance then
  return {0, tat, now}
end
local new = start + interval
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil((new - now) / 1000) + 1)
return {1, tat, now}
"#;

/// What to answer when Redis cannot be asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    /// Let the request through (the default): an outage of Redis is not an outage of the app.
    #[default]
    Open,
    /// Refuse the request with a 429 (`Retry-After: 1`).
    Closed,
}

/// What a [`RedisStore`] has done since it was made; counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Checks answered by Redis.
    pub checks: u64,
    /// Checks Redis did not answer (unreachable, timed out, an error reply).
    pub errors: u64,
    /// Of those, answered by the local fallback [`MemoryStore`].
    pub fallback: u64,
}

#[derive(Debug, Default)]
struct Counters {
    checks: AtomicU64,
    errors: AtomicU64,
    fallback: AtomicU64,
    down: AtomicBool,
}

/// A [`RateLimitStore`] in Redis, shared by every instance that uses the same Redis and key
/// prefix: `RateLimit::new(quota).store(RedisStore::new(&redis))`.
///
/// Keys are `{prefix}rl:{<key>}` (the key's `Display`, as a Cluster hash tag).
///
/// ```no_run
/// // no_run: it needs a Redis server on 127.0.0.1:6379.
/// use conduit_core::{HandlerExt, Request};
/// use conduit_middleware::{Quota, RateLimit};
/// use conduit_redis::{OnError, Redis, RedisStore};
///
/// let redis = Redis::open("redis://127.0.0.1:6379").unwrap();
/// let store = RedisStore::new(&redis).on_error(OnError::Closed);
/// let app = (|_req: Request| async { "ok" })
///     .with(RateLimit::new(Quota::per_second(1).burst(5)).store(store));
/// # let _ = app;
/// ```
pub struct RedisStore<K = std::net::IpAddr> {
    redis: Redis,
    script: Arc<Script>,
    on_error: OnError,
    fallback: Option<MemoryStore<K>>,
    counters: Arc<Counters>,
}

impl<K> fmt::Debug for RedisStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.redis)
            .field("on_error", &self.on_error)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> RedisStore<K> {
    /// A store on `redis`, failing open.
    pub fn new(redis: &Redis) -> Self {
        Self {
            redis: redis.clone(),
            script: Arc::new(Script::new(GCRA)),
            on_error: OnError::default(),
            fallback: None,
            counters: Arc::default(),
        }
    }

    /// What to answer when Redis cannot be asked (default [`OnError::Open`]); a
    /// [`fallback`](Self::fallback) takes precedence.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// When Redis cannot be asked, limit in this local store instead (a limit per instance
    /// rather than a shared one).
    pub fn fallback(mut self, store: MemoryStore<K>) -> Self {
        self.fallback = Some(store);
        self
    }

    /// Healthy unless the last check found Redis unreachable (for a readiness probe, e.g.
    /// `Health::all([hub.backend().health(), store.health()])`).
    pub fn health(&self) -> crate::Health {
        let c = self.counters.clone();
        crate::Health::new(move || !c.down.load(Relaxed))
    }

    /// What the store has done so far (for metrics).
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            checks: self.counters.checks.load(Relaxed),
            errors: self.counters.errors.load(Relaxed),
            fallback: self.counters.fallback.load(Relaxed),
        }
    }

    /// Export [`stats`](Self::stats) as `conduit_redis_ratelimit_checks`,
    /// `conduit_redis_ratelimit_errors` and `conduit_redis_ratelimit_fallback` counters.
    #[cfg(feature = "metrics")]
    pub fn register_metrics(&self, registry: &conduit_middleware::metrics::MetricsRegistry) {
        let c = self.counters.clone();
        registry.counter_fn(
            "conduit_redis_ratelimit_checks",
            "Rate-limit checks answered by Redis",
            move || c.checks.load(Relaxed),
        );
        let c = self.counters.clone();
        registry.counter_fn(
            "conduit_redis_ratelimit_errors",
            "Rate-limit checks Redis did not answer (failed open, closed or to the fallback)",
            move || c.errors.load(Relaxed),
        );
        let c = self.counters.clone();
        registry.counter_fn(
            "conduit_redis_ratelimit_fallback",
            "Rate-limit checks answered by the local fallback store",
            move || c.fallback.load(Relaxed),
        );
    }
}

/// The quota in whole microseconds, as the script counts (at least 1 µs a request).
fn micro_quota(quota: &Quota) -> (u64, u64, Quota) {
    let interval = quota.replenish_interval().as_nanos().div_ceil(1000).max(1) as u64;
    let burst = quota.burst_size();
    let tolerance = interval.saturating_mul(u64::from(burst - 1));
    let q = Quota::with_period(Duration::from_micros(interval)).burst(burst);
    (interval, tolerance, q)
}

impl<K> RedisStore<K>
where
    K: fmt::Display + Hash + Eq + Clone + Send + Sync + 'static,
{
    async fn ask(&self, key: &K, quota: &Quota) -> redis::RedisResult<Decision> {
        let (interval, tolerance, q) = micro_quota(quota);
        let key = self.redis.key("rl", &key.to_string());
        let script = &self.script;
        let (allowed, tat, now): (u8, u64, u64) = self
            .redis
            .run(async |conn| {
                script
                    .key(&key)
                    .arg(interval)
                    .arg(tolerance)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        let (_, mut decision) = q.step(tat.saturating_mul(1000), now.saturating_mul(1000));
        // The script decided; the step only says how (they agree: same arithmetic).
        decision.allowed = allowed == 1;
        Ok(decision)
    }

    fn failed(&self, key: &K, quota: &Quota, err: &redis::RedisError) -> Decision {
        self.counters.errors.fetch_add(1, Relaxed);
        if !self.counters.down.swap(true, Relaxed) {
            tracing::warn!(error = %err, on_error = ?self.on_error, fallback = self.fallback.is_some(),
                "rate limit: Redis unreachable; answering without it");
        }
        if let Some(local) = &self.fallback {
            self.counters.fallback.fetch_add(1, Relaxed);
            return local.check_now(key, quota);
        }
        let limit = quota.burst_size();
        match self.on_error {
            OnError::Open => Decision {
                allowed: true,
                limit,
                remaining: limit - 1,
                retry_after: Duration::ZERO,
                reset_after: quota.replenish_interval(),
            },
            OnError::Closed => Decision {
                allowed: false,
                limit,
                remaining: 0,
                retry_after: Duration::from_secs(1),
                reset_after: Duration::from_secs(1),
            },
        }
    }
}

impl<K> RateLimitStore<K> for RedisStore<K>
where
    K: fmt::Display + Hash + Eq + Clone + Send + Sync + 'static,
{
    async fn check(&self, key: &K, quota: &Quota) -> Decision {
        match self.ask(key, quota).await {
            Ok(d) => {
                self.counters.checks.fetch_add(1, Relaxed);
                if self.counters.down.swap(false, Relaxed) {
                    tracing::info!("rate limit: Redis answers again");
                }
                d
            }
            Err(e) => self.failed(key, quota, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_in_microseconds_keeps_burst_and_rounds_the_interval_up() {
        let (i, t, q) = micro_quota(&Quota::per_second(1).burst(5));
        assert_eq!((i, t), (1_000_000, 4_000_000));
        assert_eq!(q, Quota::per_second(1).burst(5));
        let (i, _, _) = micro_quota(&Quota::with_period(Duration::from_nanos(1500)));
        assert_eq!(i, 2);
        let (i, _, _) = micro_quota(&Quota::with_period(Duration::from_nanos(1)));
        assert_eq!(i, 1);
    }
}
