//! MiddlewareChain and Compression.
//!
//! MiddlewareChain: the cost of wrapping a handler in middleware, in-process (no network): a
//! chain of `from_fn` middlewares (each reads a header and sets one on the response), and the
//! standard stack of conduit-middleware (request id, logging, recovery, timeout, compression).
//! Compression: end to end over loopback, a 9 KB JSON response with and without
//! `Accept-Encoding` (bytes per operation = the uncompressed size).
use std::hint::black_box;

use std::time::Duration;

use conduit::http::HeaderValue;
use conduit::middleware::{Compression, Logging, Recovery, RequestId, Stack, Timeout};
use conduit::{Body, Handler, HandlerExt, Next, Request, Router, from_fn, get};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod support;
use support::{LoopbackServer, client_runtime, h1, send1};

async fn hello(_req: Request) -> &'static str {
    "Hello, World!"
}

async fn tag(req: Request, next: Next) -> conduit::Response {
    let traced = req.headers().contains_key("x-trace");
    let mut res = next.run(req).await;
    if traced {
        res.headers_mut()
            .insert("x-traced", HeaderValue::from_static("1"));
    }
    res
}

fn run<H: Handler>(rt: &tokio::runtime::Runtime, h: &H) -> conduit::Response {
    let req = Request::get("/")
        .header("x-trace", "1")
        .body(Body::empty())
        .unwrap();
    rt.block_on(h.call(black_box(req)))
}

fn chain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("middleware_chain");
    let bare = hello;
    g.bench_function("none", |b| b.iter(|| black_box(run(&rt, &bare))));
    let one = hello.with(from_fn(tag));
    g.bench_function("from_fn_x1", |b| b.iter(|| black_box(run(&rt, &one))));
    let five = hello
        .with(from_fn(tag))
        .with(from_fn(tag))
        .with(from_fn(tag))
        .with(from_fn(tag))
        .with(from_fn(tag));
    g.bench_function("from_fn_x5", |b| b.iter(|| black_box(run(&rt, &five))));
    let stack = hello
        .with(Compression::new())
        .with(Timeout::new(Duration::from_secs(30)))
        .with(Recovery::new())
        .with(Logging::new())
        .with(RequestId::new());
    g.bench_function("standard_stack", |b| b.iter(|| black_box(run(&rt, &stack))));
    // The same five layers fused into one future.
    let fused = hello.with(Stack::new());
    g.bench_function("fused_stack", |b| b.iter(|| black_box(run(&rt, &fused))));
    g.finish();
}

fn compression(c: &mut Criterion) {
    let items: Vec<serde_json::Value> = (0..200)
        .map(|i| serde_json::json!({"id": i, "name": format!("item {i}"), "tags": ["a", "b"]}))
        .collect();
    let body = bytes::Bytes::from(serde_json::to_vec(&items).unwrap());
    let app = Router::new()
        .route(
            "/json",
            get(move |_req: Request| {
                let res = conduit::Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(body.clone()))
                    .unwrap();
                async move { res }
            }),
        )
        .with(Compression::new());
    let server = LoopbackServer::start(app);
    let rt = client_runtime();
    let mut conn = rt.block_on(h1(server.addr));
    let size = rt.block_on(send1(&mut conn, support::get("/json"))).len();
    let gz = rt.block_on(async {
        let req = http::Request::get("/json")
            .header("host", "bench")
            .header("accept-encoding", "gzip")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let res = conn.send_request(req).await.unwrap();
        let enc = res.headers().get("content-encoding").cloned();
        http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap();
        enc
    });
    assert_eq!(gz.as_ref().map(|v| v.as_bytes()), Some(&b"gzip"[..]));
    let mut g = c.benchmark_group("compression");
    g.throughput(Throughput::Bytes(size as u64));
    for encoding in ["identity", "gzip", "br", "zstd"] {
        g.bench_function(format!("json_{size}b_{encoding}"), |b| {
            b.iter(|| {
                let req = http::Request::get("/json")
                    .header("host", "bench")
                    .header("accept-encoding", encoding)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                black_box(rt.block_on(send1(&mut conn, req)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, chain, compression);
criterion_main!(benches);
