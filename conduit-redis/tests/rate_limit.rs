//! The Redis rate-limit store over real sockets: two conduit servers share one quota.
//!
//! Every test captures its thread's logs (see tests/hub.rs for why).

mod common;

use std::time::Instant;

use common::*;
use conduit_core::{HandlerExt, Request};
use conduit_middleware::metrics::MetricsRegistry;
use conduit_middleware::rate_limit::MemoryStore;
use conduit_middleware::{Quota, RateLimit};
use conduit_redis::OnError;

const HEADERS: [&str; 4] = [
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "retry-after",
];

fn headers(r: &Reply) -> Vec<(u16, Vec<Option<String>>)> {
    vec![(
        r.status.as_u16(),
        HEADERS
            .iter()
            .map(|h| r.header(h).map(str::to_owned))
            .collect(),
    )]
}

#[tokio::test]
async fn two_instances_share_one_quota_with_the_memory_stores_headers() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "t").await;
    let b = Instance::start(&redis, "t").await;
    // The same quota in one process's MemoryStore: the reference answers.
    let reference = start(
        config(),
        (|_req: Request| async { "ok" }).with(RateLimit::new(Quota::per_hour(1).burst(5))),
    )
    .await;

    let mut shared = Vec::new();
    let mut local = Vec::new();
    for i in 0..10 {
        let on = if i % 2 == 0 { a.addr() } else { b.addr() };
        shared.extend(headers(&get(on, "/limited").await));
        local.extend(headers(&get(reference.addr, "/").await));
    }
    let statuses: Vec<u16> = shared.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
    assert_eq!(shared, local, "Redis and memory stores answer alike");
    assert_eq!(
        shared[5].1[3].as_deref(),
        Some("3600"),
        "Retry-After: an hour for the next token"
    );
    // The key carries a TTL: Redis keeps no dead keys.
    let ttl: i64 = redis_server
        .cli(&["PTTL", "conduit:rl:{127.0.0.1}"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 3_600_001 * 5, "{ttl}");
    // A's fourth request was refused by Redis, its fifth by that refusal remembered locally.
    assert_eq!(a.store.stats().checks, 4);
    assert_eq!(a.store.stats().local_denials, 1);
    assert_eq!(a.store.stats().errors, 0);
}

#[tokio::test]
async fn the_script_is_loaded_again_after_script_flush() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "t").await;
    assert_eq!(get(a.addr(), "/limited").await.status, 200);
    assert_eq!(redis_server.cli(&["SCRIPT", "FLUSH"]).trim(), "OK");
    let r = get(a.addr(), "/limited").await;
    assert_eq!(
        (r.status.as_u16(), r.header("ratelimit-remaining")),
        (200, Some("3"))
    );
    assert_eq!(a.store.stats().errors, 0);
}

#[tokio::test]
async fn with_redis_stopped_the_store_fails_open_or_closed_within_the_timeout() {
    let (logs, _guard) = Logs::capture();
    let mut redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let open = Instance::start_with(&redis, "t", store(&redis, OnError::Open)).await;
    let closed = Instance::start_with(&redis, "t", store(&redis, OnError::Closed)).await;
    let fallback = Instance::start_with(
        &redis,
        "t",
        store(&redis, OnError::Closed).fallback(MemoryStore::new(100)),
    )
    .await;
    let registry = MetricsRegistry::new();
    open.store.register_metrics(&registry);
    assert_eq!(get(open.addr(), "/limited").await.status, 200);
    let health = open.store.health();
    assert!(health.is_healthy());
    redis_server.kill();

    for _ in 0..8 {
        let t = Instant::now();
        assert_eq!(get(open.addr(), "/limited").await.status, 200);
        let r = get(closed.addr(), "/limited").await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(t.elapsed() < TIMEOUT * 4, "took {:?}", t.elapsed());
    }
    // The fallback keeps a per-instance limit: a fresh burst of 5, then 429.
    let statuses: Vec<u16> = futures_statuses(fallback.addr(), 7).await;
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert_eq!(open.store.stats().errors, 8);
    assert!(!health.is_healthy());
    assert_eq!(fallback.store.stats().fallback, 7);
    let text = logs.text();
    assert!(text.contains("Redis unreachable"), "{text}");
    let exposition = get_metrics(&registry);
    assert!(
        exposition.contains("conduit_redis_ratelimit_errors_total 8"),
        "{exposition}"
    );

    // Back: Redis answers again (with no memory of the old budget: it restarted empty).
    redis_server.restart();
    let r = get(closed.addr(), "/limited").await;
    assert_eq!(
        (r.status.as_u16(), r.header("ratelimit-remaining")),
        (200, Some("4"))
    );
    assert!(logs.text().contains("Redis answers again"));
    assert_eq!(get(open.addr(), "/limited").await.status, 200);
    assert!(health.is_healthy());
}

async fn futures_statuses(addr: std::net::SocketAddr, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(addr, "/limited").await.status.as_u16());
    }
    out
}

fn get_metrics(registry: &MetricsRegistry) -> String {
    registry.encode()
}

#[tokio::test]
async fn a_refusal_remembered_locally_refuses_exactly_what_redis_would() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    // One token every 400 ms, a burst of 2: A remembers refusals, B asks Redis every time.
    let quota = Quota::with_period(std::time::Duration::from_millis(400)).burst(2);
    let limit_a = RateLimit::new(quota).store(conduit_redis::RedisStore::new(&redis));
    let store_a = limit_a.shared_store().clone();
    let limit_b =
        RateLimit::new(quota).store(conduit_redis::RedisStore::new(&redis).local_denials(false));
    let store_b = limit_b.shared_store().clone();
    let a = start(config(), (|_req: Request| async { "ok" }).with(limit_a)).await;
    let b = start(config(), (|_req: Request| async { "ok" }).with(limit_b)).await;

    let t = Instant::now();
    assert_eq!(futures_statuses(a.addr, 3).await, [200, 200, 429]);
    // Refused by A's memory of Redis's refusal, and by Redis for B: the same answer.
    let local = get(a.addr, "/").await;
    let remote = get(b.addr, "/").await;
    assert_eq!((local.status.as_u16(), remote.status.as_u16()), (429, 429));
    assert_eq!(local.header("retry-after"), remote.header("retry-after"));
    assert_eq!(store_a.stats().local_denials, 1);
    assert_eq!(store_a.stats().checks, 3);
    assert_eq!(store_b.stats().local_denials, 0);
    // Once Redis has a token again, A asks it (its memory never refuses longer than Redis).
    assert!(
        t.elapsed() < std::time::Duration::from_millis(300),
        "slow machine: {:?}",
        t.elapsed()
    );
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert_eq!(futures_statuses(a.addr, 2).await, [200, 429]);
    assert_eq!(store_a.stats().checks, 5);
    assert_eq!(get(b.addr, "/").await.status, 429);
}

#[tokio::test]
async fn concurrent_first_checks_share_the_pooled_connections_without_waiting_for_them() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "t").await;
    // Many requests at once on a fresh instance: every one is answered by Redis (none waits
    // for a pooled connection until the command timeout and fails open), so the quota holds.
    let t = Instant::now();
    let tasks: Vec<_> = (0..48)
        .map(|_| {
            let addr = a.addr();
            tokio::spawn(async move { get(addr, "/limited").await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(a.store.stats().errors, 0, "took {:?}", t.elapsed());
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 43);
}
