//! Criterion benchmarks of the metrics, ETag and rate-limit middleware without the network: the
//! per-request cost of the metrics middleware (around a router, as `/stack` uses it), of ETag
//! hashing and 304s, and of the rate limiter's key store. Compare the ratios, not the absolute
//! times; the end-to-end figure is `scripts/perf/instr.sh stack` with and without
//! `CONDUIT_STACK_METRICS=0`.
use std::hint::black_box;

use conduit::middleware::{ETag, MemoryStore, Metrics, MetricsRegistry, Quota};
use conduit::{Body, Handler, HandlerExt, Json, Request, Router, get};
use criterion::{Criterion, criterion_group, criterion_main};

fn router() -> Router {
    Router::new()
        .route("/", get(|_req: Request| async { "Hello, World!" }))
        .route(
            "/json",
            get(|_req: Request| async { Json(serde_json::json!({"message": "Hello, World!"})) }),
        )
}

fn req(path: &str) -> Request {
    Request::get(path).body(Body::empty()).unwrap()
}

fn metrics(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let plain = router();
    let registry = MetricsRegistry::new();
    let metered = router().with(Metrics::new(&registry));
    let mut g = c.benchmark_group("metrics");
    g.bench_function("router", |b| {
        b.iter(|| black_box(rt.block_on(plain.call(black_box(req("/"))))))
    });
    g.bench_function("router_with_metrics", |b| {
        b.iter(|| black_box(rt.block_on(metered.call(black_box(req("/"))))))
    });
    g.bench_function("router_with_metrics_404", |b| {
        b.iter(|| black_box(rt.block_on(metered.call(black_box(req("/nope"))))))
    });
    g.bench_function("scrape", |b| b.iter(|| black_box(registry.encode())));
    g.finish();
}

fn etag(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let plain = router();
    let tagged = router().layer(ETag::new());
    let tag = rt.block_on(tagged.call(req("/json"))).headers()["etag"].clone();
    let mut g = c.benchmark_group("etag");
    g.bench_function("json", |b| {
        b.iter(|| black_box(rt.block_on(plain.call(black_box(req("/json"))))))
    });
    g.bench_function("json_with_etag", |b| {
        b.iter(|| black_box(rt.block_on(tagged.call(black_box(req("/json"))))))
    });
    g.bench_function("json_304", |b| {
        b.iter(|| {
            let r = Request::get("/json")
                .header("if-none-match", tag.clone())
                .body(Body::empty())
                .unwrap();
            black_box(rt.block_on(tagged.call(r)))
        })
    });
    let big = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let big_app = (move |_req: Request| {
        let big = big.clone();
        async move { big }
    })
    .with(ETag::new());
    g.bench_function("hash_64k", |b| {
        b.iter(|| black_box(rt.block_on(big_app.call(black_box(req("/"))))))
    });
    g.finish();
}

fn rate_limit(c: &mut Criterion) {
    let store = MemoryStore::<u64>::new(100_000);
    let quota = Quota::per_second(1_000_000).burst(1_000_000);
    let mut g = c.benchmark_group("rate_limit");
    g.bench_function("same_key", |b| {
        b.iter(|| black_box(store.check_now(&7, &quota)))
    });
    let mut k = 0u64;
    g.bench_function("rotating_1000_keys", |b| {
        b.iter(|| {
            k = (k + 1) % 1000;
            black_box(store.check_now(&k, &quota))
        })
    });
    g.finish();
}

criterion_group!(benches, metrics, etag, rate_limit);
criterion_main!(benches);
