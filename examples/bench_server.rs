//! The server `../shared/perf/compare.sh` measures against raw hyper, axum, actix-web and nginx.
//!
//! Usage: `bench_server [ADDR] [ROOT]` (defaults `127.0.0.1:18090`, `/tmp/conduit-compare-root`).
//!
//! Routes (the ones that exist so far; static files, compression and the middleware stack
//! arrive with conduit-static and conduit-middleware):
//! - `/`     "Hello, World!" as text/plain
//! - `/json` `{"message":"Hello, World!"}` as application/json, serialized per request
use conduit::{Config, Json, Request, Router, get};
use serde::Serialize;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

fn app() -> Router {
    Router::new()
        .route("/", get(|_req: Request| async { "Hello, World!" }))
        .route(
            "/json",
            get(|_req: Request| async {
                Json(Message {
                    message: "Hello, World!",
                })
            }),
        )
}

fn main() -> Result<(), conduit::ServerError> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let _root = args
        .next()
        .unwrap_or_else(|| "/tmp/conduit-compare-root".into());
    conduit::run(
        Config::new(addr)
            .http2_keep_alive_interval(None)
            .tcp_nodelay(std::env::var("NODELAY").map(|v| v == "1").unwrap_or(true)),
        app(),
    )
}
