//! MiddlewareChain: the cost of wrapping a handler in middleware, in-process (no network), for
//! a chain of `from_fn` middlewares, each reading a header and setting one on the response.
use std::hint::black_box;

use conduit::http::HeaderValue;
use conduit::{Body, Handler, HandlerExt, Next, Request, from_fn};
use criterion::{Criterion, criterion_group, criterion_main};

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
    g.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
