//! [`RateLimit`]: a GCRA (token bucket) limit per key — by default per client IP — answering
//! `429 Too Many Requests` with `Retry-After` once a key's burst is spent.
//!
//! A [`Quota`] is a burst and a refill rate: `Quota::per_second(1).burst(5)` lets a client send
//! 5 requests at once, then one more each second. The algorithm is GCRA, the token bucket
//! written as one timestamp per key (the "theoretical arrival time"), so a check is one atomic
//! compare-and-swap. Every answer carries `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (seconds until the bucket is full again); a 429 adds `Retry-After` (seconds
//! until the next request is allowed).
//!
//! Keys live in a [`RateLimitStore`]. The default [`MemoryStore`] is a sharded map of atomic
//! timestamps with a bounded number of keys: when a shard is full it first drops idle keys (a
//! key whose bucket is full again is the same as an absent key, so this forgets nothing), and
//! if every key is active it drops the quarter closest to full — memory stays bounded under a
//! flood of distinct addresses, at the price of forgiving some of them. The store trait is async
//! so a shared store (Redis) can replace it when instances scale out.
//!
//! The default key is [`ClientIp::of`](crate::ClientIp::of): install
//! [`TrustedProxies`](crate::TrustedProxies) outside the limit when behind a proxy. A request
//! without a key (one that did not come through the server) is not limited.
//!
//! ```
//! use conduit_core::{Body, ConnectInfo, Handler, HandlerExt, Request};
//! use conduit_middleware::{Quota, RateLimit};
//!
//! let app = (|_req: Request| async { "ok" }).with(RateLimit::new(Quota::per_minute(1).burst(2)));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let req = || {
//!     let mut req = Request::new(Body::empty());
//!     let peer = "192.0.2.1:5000".parse().unwrap();
//!     req.extensions_mut().insert(ConnectInfo::new(peer, "127.0.0.1:80".parse().unwrap()));
//!     req
//! };
//! assert_eq!(app.call(req()).await.status(), 200);
//! let res = app.call(req()).await;
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.headers()["ratelimit-remaining"], "0");
//! let res = app.call(req()).await;
//! assert_eq!(res.status(), 429);
//! assert_eq!(res.headers()["retry-after"], "60"); // a minute until the next token
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use conduit_core::{Handler, Middleware, Request, Response};
use http::header::{HeaderName, RETRY_AFTER};
use http::{HeaderValue, StatusCode};

/// How many requests a key may make: a burst, refilled at a steady rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time to earn one request back, in nanoseconds (never 0).
    interval_ns: u64,
    /// Requests allowed at once (at least 1).
    burst: u32,
}

impl Quota {
    /// `n` requests per second, with a burst of `n`.
    pub fn per_second(n: u32) -> Self {
        Self::with_period(Duration::from_secs(1) / n.max(1)).burst(n)
    }

    /// `n` requests per minute, with a burst of `n`.
    pub fn per_minute(n: u32) -> Self {
        Self::with_period(Duration::from_secs(60) / n.max(1)).burst(n)
    }

    /// `n` requests per hour, with a burst of `n`.
    pub fn per_hour(n: u32) -> Self {
        Self::with_period(Duration::from_secs(3600) / n.max(1)).burst(n)
    }

    /// One request back every `period` (at least a nanosecond), with a burst of 1.
    pub fn with_period(period: Duration) -> Self {
        Self {
            interval_ns: (period.as_nanos().min(u64::MAX as u128) as u64).max(1),
            burst: 1,
        }
    }

    /// Allow `n` requests at once (at least 1).
    pub fn burst(mut self, n: u32) -> Self {
        self.burst = n.max(1);
        self
    }

    /// The burst size, sent as `RateLimit-Limit`.
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The time to earn one request back.
    pub fn replenish_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// How far ahead of `now` a key's arrival time may run and still admit a request.
    fn tolerance_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.burst - 1))
    }

    /// The GCRA step: given a key's stored arrival time and `now` (nanoseconds on one clock,
    /// 0 for a key never seen), the new arrival time to store (if allowed) and the decision.
    /// Public so a shared store (conduit-redis) answers with the same decisions and headers.
    pub fn step(&self, tat: u64, now: u64) -> (Option<u64>, Decision) {
        let start = tat.max(now);
        let ahead = start - now; // how far the key already is into its burst
        if ahead > self.tolerance_ns() {
            let wait = ahead - self.tolerance_ns();
            return (
                None,
                Decision {
                    allowed: false,
                    limit: self.burst,
                    remaining: 0,
                    retry_after: Duration::from_nanos(wait),
                    reset_after: Duration::from_nanos(ahead),
                },
            );
        }
        let new_tat = start.saturating_add(self.interval_ns);
        let used = new_tat - now; // time until the bucket is full again
        let capacity = self.interval_ns.saturating_mul(u64::from(self.burst));
        let remaining = capacity.saturating_sub(used) / self.interval_ns;
        (
            Some(new_tat),
            Decision {
                allowed: true,
                limit: self.burst,
                remaining: remaining as u32,
                retry_after: Duration::ZERO,
                reset_after: Duration::from_nanos(used),
            },
        )
    }
}

/// The answer of a [`RateLimitStore`] for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The burst size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// When refused, the time until the next request is allowed (`Retry-After`).
    pub retry_after: Duration,
    /// The time until the key's bucket is full again (`RateLimit-Reset`).
    pub reset_after: Duration,
}

/// Where the per-key state lives: in memory ([`MemoryStore`]) or, for several instances
/// behind a load balancer, a shared store. Async so a networked store fits.
pub trait RateLimitStore<K>: Send + Sync + 'static {
    /// Take one request from `key`'s bucket under `quota`.
    fn check(&self, key: &K, quota: &Quota) -> impl Future<Output = Decision> + Send;
}

type Shard<K> = RwLock<std::collections::HashMap<K, AtomicU64, foldhash::fast::FixedState>>;

/// The in-process [`RateLimitStore`]: a sharded map from key to an atomic arrival time, holding
/// at most a fixed number of keys (see the [module docs](self) for how it evicts).
pub struct MemoryStore<K> {
    shards: Box<[Shard<K>]>,
    hasher: foldhash::fast::FixedState,
    per_shard: usize,
    epoch: Instant,
}

impl<K> fmt::Debug for MemoryStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("max_keys", &(self.per_shard * self.shards.len()))
            .finish()
    }
}

/// Keys the [`MemoryStore`] holds by default.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
const SHARDS: usize = 64;

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Default for MemoryStore<K> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_KEYS)
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> MemoryStore<K> {
    /// A store holding at most about `max_keys` keys (rounded up to a multiple of its shard
    /// count).
    pub fn new(max_keys: usize) -> Self {
        let shards = SHARDS.min(max_keys.max(1));
        Self {
            shards: (0..shards).map(|_| RwLock::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
            per_shard: max_keys.max(1).div_ceil(shards),
            epoch: Instant::now(),
        }
    }

    /// How many keys are held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys this store holds.
    pub fn max_keys(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    fn now(&self) -> u64 {
        // +1 so that 0 never is a time: a fresh key's arrival time is "now or earlier".
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// The synchronous check behind [`RateLimitStore::check`].
    pub fn check_now(&self, key: &K, quota: &Quota) -> Decision {
        let now = self.now();
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()];
        {
            let map = shard.read().unwrap_or_else(|e| e.into_inner());
            if let Some(tat) = map.get(key) {
                return cas_step(tat, quota, now);
            }
        }
        let mut map = shard.write().unwrap_or_else(|e| e.into_inner());
        if let Some(tat) = map.get(key) {
            return cas_step(tat, quota, now);
        }
        if map.len() >= self.per_shard {
            // Idle keys (bucket full again) carry no information.
            map.retain(|_, tat| *tat.get_mut() > now);
            if map.len() >= self.per_shard {
                // All keys active: forget the quarter closest to full.
                let mut tats: Vec<u64> = map.values_mut().map(|t| *t.get_mut()).collect();
                let k = tats.len() / 4;
                let (_, cut, _) = tats.select_nth_unstable(k);
                let cut = *cut;
                map.retain(|_, tat| *tat.get_mut() > cut);
                tracing::debug!(
                    kept = map.len(),
                    "rate limit key store full of active keys: evicted the least used"
                );
            }
        }
        let (new_tat, decision) = quota.step(0, now);
        map.insert(key.clone(), AtomicU64::new(new_tat.unwrap_or(0)));
        decision
    }
}

fn cas_step(tat: &AtomicU64, quota: &Quota, now: u64) -> Decision {
    let mut current = tat.load(Ordering::Acquire);
    loop {
        let (new, decision) = quota.step(current, now);
        let Some(new) = new else {
            return decision;
        };
        match tat.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return decision,
            Err(actual) => current = actual,
        }
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> RateLimitStore<K> for MemoryStore<K> {
    fn check(&self, key: &K, quota: &Quota) -> impl Future<Output = Decision> + Send {
        std::future::ready(self.check_now(key, quota))
    }
}

type KeyFn<K> = dyn Fn(&Request) -> Option<K> + Send + Sync;

/// The rate-limit middleware: a [`Quota`] per key in a [`RateLimitStore`].
pub struct RateLimit<K = IpAddr, S = MemoryStore<K>> {
    quota: Quota,
    key: Arc<KeyFn<K>>,
    store: Arc<S>,
}

impl<K, S> Clone for RateLimit<K, S> {
    fn clone(&self) -> Self {
        Self {
            quota: self.quota,
            key: self.key.clone(),
            store: self.store.clone(),
        }
    }
}

impl<K, S: fmt::Debug> fmt::Debug for RateLimit<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("quota", &self.quota)
            .field("store", &self.store)
            .finish()
    }
}

impl RateLimit {
    /// Limit each client IP ([`ClientIp::of`](crate::ClientIp::of)) to `quota`, in a
    /// [`MemoryStore`] of [`DEFAULT_MAX_KEYS`] keys. IPv6 clients are keyed by their /64
    /// network: one subscriber usually holds a whole /64 and could otherwise rotate addresses
    /// to escape the limit.
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            key: Arc::new(|req: &Request| crate::ClientIp::of(req).map(ip_key)),
            store: Arc::new(MemoryStore::default()),
        }
    }
}

impl<K, S> RateLimit<K, S>
where
    K: Send + Sync + 'static,
    S: RateLimitStore<K>,
{
    /// Key requests with `key` instead (an API token, a user id, …); `None` means "not
    /// limited". Keeps the quota; the store is `store`.
    pub fn keyed_by<K2, S2, F>(self, key: F, store: S2) -> RateLimit<K2, S2>
    where
        F: Fn(&Request) -> Option<K2> + Send + Sync + 'static,
        S2: RateLimitStore<K2>,
    {
        RateLimit {
            quota: self.quota,
            key: Arc::new(key),
            store: Arc::new(store),
        }
    }

    /// Keep keys in `store` (for example a [`MemoryStore`] with another size).
    pub fn store<S2: RateLimitStore<K>>(self, store: S2) -> RateLimit<K, S2> {
        RateLimit {
            quota: self.quota,
            key: self.key,
            store: Arc::new(store),
        }
    }

    /// The store, shared by every handler this middleware wraps.
    pub fn shared_store(&self) -> &Arc<S> {
        &self.store
    }
}

/// The default key of an address: IPv4 as is, IPv6 truncated to its /64 network.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// The handler built by [`RateLimit`].
pub struct RateLimitHandler<H, K, S> {
    inner: Arc<H>,
    limit: RateLimit<K, S>,
}

impl<H, K, S: fmt::Debug> fmt::Debug for RateLimitHandler<H, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitHandler")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<H, K, S> Middleware<H> for RateLimit<K, S>
where
    H: Handler,
    K: Send + Sync + 'static,
    S: RateLimitStore<K>,
{
    type Output = RateLimitHandler<H, K, S>;

    fn wrap(&self, inner: H) -> Self::Output {
        RateLimitHandler {
            inner: Arc::new(inner),
            limit: self.clone(),
        }
    }
}

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Whole seconds, rounded up (a client told "0" would retry at once).
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn set_headers(res: &mut Response, d: &Decision) {
    let h = res.headers_mut();
    h.insert(LIMIT, HeaderValue::from(d.limit));
    h.insert(REMAINING, HeaderValue::from(d.remaining));
    h.insert(RESET, HeaderValue::from(ceil_secs(d.reset_after)));
    if !d.allowed {
        h.insert(
            RETRY_AFTER,
            HeaderValue::from(ceil_secs(d.retry_after).max(1)),
        );
    }
}

impl<H, K, S> Handler for RateLimitHandler<H, K, S>
where
    H: Handler,
    K: Send + Sync + 'static,
    S: RateLimitStore<K>,
{
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H, K, S> {
        let key = (self.limit.key)(&req);
        let store = self.limit.store.clone();
        let quota = self.limit.quota;
        let inner = self.inner.clone();
        async move {
            let Some(key) = key else {
                return inner.call(req).await;
            };
            let decision = store.check(&key, &quota).await;
            if !decision.allowed {
                tracing::debug!(
                    path = req.uri().path(),
                    retry_after = ?decision.retry_after,
                    "rate limit exceeded (429)"
                );
                let mut res =
                    conduit_core::Problem::new(StatusCode::TOO_MANY_REQUESTS).into_error_response();
                set_headers(&mut res, &decision);
                return res;
            }
            let mut res = inner.call(req).await;
            set_headers(&mut res, &decision);
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_steps() {
        let q = Quota::per_second(1).burst(3);
        let s = 1_000_000_000u64;
        let (t1, d) = q.step(0, 10 * s);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        let (t2, d) = q.step(t1.unwrap(), 10 * s);
        assert_eq!(d.remaining, 1);
        let (t3, d) = q.step(t2.unwrap(), 10 * s);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_after, Duration::from_secs(3));
        let (t4, d) = q.step(t3.unwrap(), 10 * s);
        assert!(!d.allowed && t4.is_none());
        assert_eq!(d.retry_after, Duration::from_secs(1));
        // Half a second later: still half a second to wait.
        let (_, d) = q.step(t3.unwrap(), 10 * s + s / 2);
        assert_eq!(d.retry_after, Duration::from_millis(500));
        // A second later one more is allowed.
        let (_, d) = q.step(t3.unwrap(), 11 * s);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        // Long idle: full burst again.
        let (_, d) = q.step(t3.unwrap(), 100 * s);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn burst_then_refusals_per_key() {
        let store = MemoryStore::<u32>::new(1000);
        let q = Quota::per_hour(1).burst(5);
        let allowed = (0..20).filter(|_| store.check_now(&1, &q).allowed).count();
        assert_eq!(allowed, 5);
        assert!(store.check_now(&2, &q).allowed, "keys are independent");
    }

    #[test]
    fn bounded_under_100k_distinct_keys() {
        let store = MemoryStore::<u64>::new(10_000);
        let q = Quota::per_hour(1).burst(5); // nobody goes idle: forces eviction of active keys
        for key in 0..100_000u64 {
            assert!(store.check_now(&key, &q).allowed);
        }
        assert!(store.len() <= store.max_keys(), "{} keys", store.len());
        assert!(store.max_keys() <= 10_000 + SHARDS);
        assert!(
            store.len() >= store.max_keys() / 2,
            "eviction is not wholesale"
        );
    }

    #[test]
    fn ipv6_keys_are_64_bit_networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(ip_key(ip("2001:db8:1:2:ffff::9")), ip("2001:db8:1:2::"));
        assert_ne!(ip_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(ip_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn ceil_secs_rounds_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }
}
