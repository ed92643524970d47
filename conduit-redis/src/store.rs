//! [`RedisStore`]: the rate limiter's GCRA in one Lua script, so several instances share
//! every key's budget.
//!
//! The script reads the server's clock (`TIME`), so instance clocks do not matter; it stores
//! each key's "theoretical arrival time" in microseconds with a TTL of the time until its
//! bucket is full again (`PX`), so Redis holds no idle keys. It runs by `EVALSHA` (by `EVAL`
//! once when Redis answers `NOSCRIPT`, which loads it again): one round trip, atomic. Its
//! reply is one integer, how far the key is into its burst (negative when refused). The
//! decision and the `RateLimit-*` / `Retry-After` headers come from the same [`Quota::step`]
//! as [`MemoryStore`]'s.
//!
//! A refusal from Redis is remembered locally until the key's next token (by this instance's
//! monotonic clock, counted from before the command was sent): until then the key's requests
//! are refused without a round trip. A refusal changes nothing in Redis and the key's arrival
//! time only grows, so Redis would refuse them too: the shared limit stays exact
//! ([`RedisStore::local_denials`] turns this off).
//!
//! When Redis does not answer within the command timeout the store fails open (the default:
//! the request goes through), fails closed (429), or asks a local [`MemoryStore`] (a limit per
//! instance); each failure is counted ([`RedisStore::stats`]) and the first of an outage is
//! logged at `warn`, the recovery at `info`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conduit_middleware::rate_limit::{Decision, MemoryStore, Quota, RateLimitStore};
use redis::{ErrorKind, Script};

use crate::conn::Redis;

/// The GCRA step on `KEYS[1]` (ARGV: interval and tolerance in µs). The reply is how far the
/// key was into its burst before this request, `ahead` µs, when admitted, `-1 - ahead` when
/// refused. Lua numbers hold the µs clock exactly (below 2^53), and `redis.call` writes them
/// as integers.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local ahead = (tonumber(redis.call('GET', KEYS[1])) or 0) - now
if ahead < 0 then ahead = 0 end
if ahead > tonumber(ARGV[2]) then return -1 - ahead end
local used = ahead + ARGV[1]
redis.call('SET', KEYS[1], now + used, 'PX', math.ceil(used / 1000) + 1)
return ahead
"#;

/// Keys whose refusal is remembered locally, at most (beyond it a refusal is not remembered).
const DENIAL_KEYS: usize = 16_384;
const DENIAL_SHARDS: usize = 16;

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
    /// Checks refused without asking Redis, by a refusal Redis gave the key before and that
    /// still holds (not counted in `checks`).
    pub local_denials: u64,
}

#[derive(Debug, Default)]
struct Counters {
    checks: AtomicU64,
    errors: AtomicU64,
    fallback: AtomicU64,
    local_denials: AtomicU64,
    down: AtomicBool,
}

type DenialShard<K> = Mutex<HashMap<K, u64, foldhash::fast::FixedState>>;

/// The refusals Redis gave, by key: the key's arrival time as this instance's clock sees it
/// (ns since `epoch`), never later than the one Redis holds (it is counted from before the
/// command was sent, and Redis only moves it forward).
struct Denials<K> {
    shards: Box<[DenialShard<K>]>,
    hasher: foldhash::fast::FixedState,
    epoch: Instant,
}

impl<K: Hash + Eq + Clone> Denials<K> {
    fn new() -> Self {
        Self {
            shards: (0..DENIAL_SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn shard(
        &self,
        key: &K,
    ) -> std::sync::MutexGuard<'_, HashMap<K, u64, foldhash::fast::FixedState>> {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The refusal Redis would give `key` now, if a remembered one still holds (`quota` in
    /// whole µs, as the script counts).
    fn check(&self, key: &K, quota: &Quota) -> Option<Decision> {
        let tat = *self.shard(key).get(key)?;
        let (_, decision) = quota.step(tat, self.now());
        (!decision.allowed).then_some(decision)
    }

    /// Remember that Redis refused `key` when it was `ahead` µs into its burst, the command
    /// sent at `sent` (ns since `epoch`).
    fn remember(&self, key: &K, sent: u64, ahead: u64) {
        let tat = sent.saturating_add(ahead.saturating_mul(1000));
        let mut shard = self.shard(key);
        if let Some(t) = shard.get_mut(key) {
            *t = (*t).max(tat);
            return;
        }
        if shard.len() >= DENIAL_KEYS / DENIAL_SHARDS {
            let now = self.now();
            shard.retain(|_, t| *t > now);
            if shard.len() >= DENIAL_KEYS / DENIAL_SHARDS {
                return;
            }
        }
        shard.insert(key.clone(), tat);
    }
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
    /// The script's SHA1 (hex), for `EVALSHA`.
    sha: String,
    on_error: OnError,
    fallback: Option<MemoryStore<K>>,
    denials: Option<Denials<K>>,
    counters: Arc<Counters>,
}

impl<K> fmt::Debug for RedisStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.redis)
            .field("on_error", &self.on_error)
            .field("fallback", &self.fallback.is_some())
            .field("local_denials", &self.denials.is_some())
            .finish()
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> RedisStore<K> {
    /// A store on `redis`, failing open.
    pub fn new(redis: &Redis) -> Self {
        Self {
            redis: redis.clone(),
            sha: Script::new(GCRA).get_hash().to_owned(),
            on_error: OnError::default(),
            fallback: None,
            denials: Some(Denials::new()),
            counters: Arc::default(),
        }
    }

    /// Whether a refusal from Redis is remembered until the key's next token, refusing the
    /// key's requests meanwhile without a round trip (default on). Exact: Redis would refuse
    /// them too, since a refusal changes nothing there and other instances can only bring the
    /// key's next token later. (A Redis that lost its data meanwhile would admit them; the
    /// refusal still lasts until the time Redis gave.)
    pub fn local_denials(mut self, on: bool) -> Self {
        self.denials = on.then(Denials::new);
        self
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
            local_denials: self.counters.local_denials.load(Relaxed),
        }
    }

    /// Export [`stats`](Self::stats) as `conduit_redis_ratelimit_checks`,
    /// `conduit_redis_ratelimit_errors`, `conduit_redis_ratelimit_fallback` and
    /// `conduit_redis_ratelimit_local_denials` counters.
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
        let c = self.counters.clone();
        registry.counter_fn(
            "conduit_redis_ratelimit_local_denials",
            "Rate-limit checks refused locally, by a refusal from Redis that still holds",
            move || c.local_denials.load(Relaxed),
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
    /// The script's answer for `key`, under `quota` in whole µs (`micro_quota`).
    async fn ask(
        &self,
        key: &K,
        (interval, tolerance, q): (u64, u64, Quota),
    ) -> redis::RedisResult<Decision> {
        let key_name = self.redis.key_of("rl", key);
        let sent = self.denials.as_ref().map(Denials::now);
        // Sized for the whole command: growing its buffers cost ~2,000 instructions a check.
        let mut cmd = redis::Cmd::with_capacity(6, 96 + key_name.len());
        cmd.arg("EVALSHA")
            .arg(&self.sha)
            .arg(1)
            .arg(&key_name)
            .arg(interval)
            .arg(tolerance);
        let reply: i64 = self
            .redis
            .run(async |conn| match cmd.query_async(conn).await {
                Err(e) if e.kind() == ErrorKind::NoScriptError => {
                    // Redis lost its script cache (restart, SCRIPT FLUSH): EVAL loads it again.
                    redis::cmd("EVAL")
                        .arg(GCRA)
                        .arg(1)
                        .arg(&key_name)
                        .arg(interval)
                        .arg(tolerance)
                        .query_async(conn)
                        .await
                }
                r => r,
            })
            .await?;
        let (allowed, ahead) = match u64::try_from(reply) {
            Ok(ahead) => (true, ahead),
            Err(_) => (false, (-1 - reply) as u64),
        };
        let (_, mut decision) = q.step(ahead.saturating_mul(1000), 0);
        // The script decided; the step only says how (they agree: same arithmetic).
        decision.allowed = allowed;
        if let (false, Some(denials), Some(sent)) = (allowed, &self.denials, sent) {
            denials.remember(key, sent, ahead);
        }
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
        let micro = micro_quota(quota);
        if let Some(d) = self.denials.as_ref().and_then(|d| d.check(key, &micro.2)) {
            self.counters.local_denials.fetch_add(1, Relaxed);
            return d;
        }
        match self.ask(key, micro).await {
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
