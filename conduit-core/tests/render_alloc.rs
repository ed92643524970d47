//! The error renderer costs a successful response no allocation, counted by dhat as this test
//! binary's allocator: `Rendering::render` on a success allocates nothing, and a request
//! through a router with a renderer allocates exactly as many blocks as without one.

use conduit_core::{Body, ErrorRenderer, Handler, IntoResponse, Request, Router, get};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

fn request() -> Request {
    Request::get("/")
        .header("accept", "application/problem+json, text/plain;q=0.5")
        .body(Body::empty())
        .unwrap()
}

fn allocations_of(app: &Router, rt: &tokio::runtime::Runtime) -> u64 {
    let req = request();
    let before = blocks();
    let res = rt.block_on(app.call(req));
    let after = blocks();
    assert_eq!(res.status(), 200);
    drop(res);
    after - before
}

#[test]
fn a_success_costs_no_allocation_with_any_renderer() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let renderers = [
        ErrorRenderer::text(),
        ErrorRenderer::problem_json(),
        ErrorRenderer::negotiate(),
        ErrorRenderer::custom(|p| p.status().into_response()),
    ];
    for renderer in &renderers {
        let req = request();
        let res = "ok".into_response();
        let before = blocks();
        let rendering = renderer.for_request(&req);
        let res = rendering.render(res);
        assert_eq!(blocks(), before, "{renderer:?}");
        assert_eq!(res.body().as_bytes(), Some(&b"ok"[..]));
    }

    let plain = Router::new().route("/", get(|_req: Request| async { "ok" }));
    // Warm up (lazy statics, the runtime's first poll).
    allocations_of(&plain, &rt);
    let baseline = allocations_of(&plain, &rt);
    for renderer in renderers {
        let rendered = plain.clone().errors(renderer.clone());
        allocations_of(&rendered, &rt);
        assert_eq!(allocations_of(&rendered, &rt), baseline, "{renderer:?}");
    }
}
