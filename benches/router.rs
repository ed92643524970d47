//! Criterion benchmarks of the request path without the network: router dispatch (static,
//! params, 404, HEAD) and body helpers, and the error renderer's cost (a success through a
//! router with a renderer: the same as without; a 404 as problem+json). Compare the ratios,
//! not the absolute times.
use std::hint::black_box;

use conduit::{Body, ErrorRenderer, Handler, Json, Request, RequestExt, Router, get, post};
use criterion::{Criterion, criterion_group, criterion_main};

fn app() -> Router {
    let mut r = Router::new()
        .route("/", get(|_req: Request| async { "Hello, World!" }))
        .route(
            "/users/{id}",
            get(
                |req: Request| async move { req.param("id").unwrap_or_default().len().to_string() },
            ),
        )
        .route(
            "/echo",
            post(|req: Request| async move { req.bytes().await }),
        )
        .route(
            "/json",
            get(|_req: Request| async { Json(serde_json::json!({"message": "Hello, World!"})) }),
        );
    for i in 0..50 {
        r = r.route(
            &format!("/api/v1/resource{i}/{{id}}"),
            get(|_req: Request| async { "x" }),
        );
    }
    r
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let app = app();
    let mut g = c.benchmark_group("router");
    for (name, method, path) in [
        ("static", "GET", "/"),
        ("param", "GET", "/users/42"),
        ("param_among_50", "GET", "/api/v1/resource37/9"),
        ("not_found", "GET", "/nope"),
        ("head_via_get", "HEAD", "/"),
        ("json", "GET", "/json"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let req = Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap();
                black_box(rt.block_on(app.call(black_box(req))))
            })
        });
    }
    // The error renderer: a success pays one look into the response's empty extensions; an
    // error is re-rendered (negotiated from `Accept`).
    let rendered = app.clone().errors(ErrorRenderer::negotiate());
    for (name, path, accept) in [
        ("static_with_renderer", "/", "application/json"),
        ("not_found_text_negotiated", "/nope", "text/html"),
        ("not_found_problem_json", "/nope", "application/json"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let req = Request::get(path)
                    .header("accept", accept)
                    .body(Body::empty())
                    .unwrap();
                black_box(rt.block_on(rendered.call(black_box(req))))
            })
        });
    }
    g.bench_function("echo_1k_body", |b| {
        let payload = bytes::Bytes::from(vec![b'x'; 1024]);
        b.iter(|| {
            let req = Request::post("/echo")
                .body(Body::from(payload.clone()))
                .unwrap();
            black_box(rt.block_on(app.call(req)))
        })
    });
    g.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
