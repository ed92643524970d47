//! The server `../shared/perf/compare.sh` measures against raw hyper, axum, actix-web and nginx.
//!
//! Usage: `bench_server [ADDR] [ROOT]` (defaults `127.0.0.1:18090`, `/tmp/conduit-compare-root`).
//!
//! Routes (the ones that exist so far; static files, compression and the middleware stack
//! arrive with conduit-static and conduit-middleware):
//! - `/`     "Hello, World!" as text/plain
//! - `/json` `{"message":"Hello, World!"}` as application/json, serialized per request
//! - `/static/*` the files under ROOT (`conduit::ServeDir`, default settings; set
//!   `CONDUIT_STATIC_CACHE_MAX_FILE=BYTES` to hold only files up to that size in memory, e.g. 0
//!   to measure the streamed path: larger files are read in chunks on the blocking pool)
use conduit::{Config, Json, Request, Router, ServeDir, get};
use serde::Serialize;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

fn app(root: &str) -> Router {
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
        .mount("/static", static_files(root))
}

fn static_files(root: &str) -> ServeDir {
    let dir = ServeDir::new(root);
    match std::env::var("CONDUIT_STATIC_CACHE_MAX_FILE").map(|v| v.parse::<u64>()) {
        Ok(Ok(max_file_size)) => dir.cache(Some(conduit::static_files::CacheConfig {
            max_file_size,
            ..Default::default()
        })),
        _ => dir,
    }
}

fn main() -> Result<(), conduit::ServerError> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let root = args
        .next()
        .unwrap_or_else(|| "/tmp/conduit-compare-root".into());
    // Server defaults, as a user would run them. Two knobs for like-for-like comparisons:
    // CONDUIT_TCP_NODELAY=0 turns Nagle back on (axum::serve's default; conduit, hyper's
    // example, Go and nginx set TCP_NODELAY), CONDUIT_H2_PING=0 turns HTTP/2 keep-alive off.
    let mut config = Config::new(addr);
    if std::env::var("CONDUIT_TCP_NODELAY").as_deref() == Ok("0") {
        config = config.tcp_nodelay(false);
    }
    if std::env::var("CONDUIT_H2_PING").as_deref() == Ok("0") {
        config = config.http2_keep_alive_interval(None);
    }
    conduit::run(config, app(&root))
}
