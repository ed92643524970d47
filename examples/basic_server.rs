//! A small but complete conduit server: routes, path parameters, JSON in and out, health and
//! readiness probes, logging, and graceful shutdown with a cleanup hook.
//!
//! ```text
//! cargo run --release --example basic_server            # listens on 127.0.0.1:8080
//! ADDR=0.0.0.0:3000 RUST_LOG=debug cargo run --example basic_server
//!
//! curl localhost:8080/                  # Hello, World!
//! curl localhost:8080/json              # {"message":"Hello, World!"}
//! curl localhost:8080/users/42          # {"id":"42","name":"user 42"}
//! curl localhost:8080/health            # ok
//! curl localhost:8080/ready             # ready (503 "draining" once shutdown starts)
//! curl localhost:8080/echo -H 'content-type: application/json' -d '{"any":"json"}'
//! curl localhost:8080/nope              # Not Found (plain text)
//! curl localhost:8080/nope -H 'accept: application/json'   # the same 404 as RFC 9457 problem+json
//! ```
//!
//! Ctrl-C (SIGINT) or SIGTERM starts a graceful shutdown: `/ready` turns 503, the listener
//! closes, in-flight requests finish (up to 30 s), then the cleanup hook runs and the process
//! exits with status 0.

use conduit::middleware::Logging;
use conduit::{
    Config, ErrorRenderer, HandlerExt, Json, Request, RequestExt, Router, Server, get, post,
};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

#[derive(Serialize)]
struct User {
    id: String,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), conduit::ServerError> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    // Errors as problem+json for clients that ask for JSON, plain text for the others.
    let config = Config::from_env_addr("127.0.0.1:8080").errors(ErrorRenderer::negotiate());
    let server = Server::bind(config).await?;

    let app = Router::new()
        .route("/", get(|_req: Request| async { "Hello, World!" }))
        .route(
            "/json",
            get(|_req: Request| async {
                Json(Message {
                    message: "Hello, World!",
                })
            }),
        )
        .route("/health", get(|_req: Request| async { "ok" }))
        .route("/ready", get(server.handle().readiness()))
        .route(
            "/users/{id}",
            get(|req: Request| async move {
                let id = req.param("id").unwrap_or_default().to_owned();
                let name = format!("user {id}");
                Json(User { id, name })
            }),
        )
        .route(
            "/echo",
            // 415 unless the body is JSON, 400 if malformed, 413 over the server's body limit.
            post(|req: Request| async move { req.json::<serde_json::Value>().await.map(Json) }),
        )
        // One access-log line per request (method, route, status, latency); 4xx below WARN.
        .with(Logging::new());

    server.on_shutdown("goodbye", |left| async move {
        tracing::info!(?left, "shutdown hook: cleanup done, goodbye");
    });

    tracing::info!(addr = %server.local_addr(), "basic_server listening on http://{}", server.local_addr());
    server.serve(app).await
}
