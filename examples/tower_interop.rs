//! Tower interop: a tower-http layer on conduit routes, and an axum router mounted in conduit.
//!
//! ```text
//! cargo run --example tower_interop                 # listens on 127.0.0.1:8080 (ADDR to change)
//!
//! curl localhost:8080/                              # Hello from conduit
//! curl -i localhost:8080/cors/hello -H 'origin: https://example.com'
//!                                                   # access-control-allow-origin: *
//! curl -i -X OPTIONS localhost:8080/cors/hello -H 'origin: https://example.com' \
//!      -H 'access-control-request-method: PUT'      # the preflight, answered by CorsLayer
//! curl localhost:8080/axum/hi                       # hi from axum
//! curl localhost:8080/axum/users/42                 # axum user 42 (axum's own Path extractor)
//! curl -i localhost:8080/axum/nope                  # 404 from axum's router
//! ```
//!
//! The tower pieces come from `conduit::tower` (the facade's `tower` feature; this example gets
//! it through the facade's dev-dependencies):
//! - `TowerLayer(CorsLayer::permissive())` makes tower-http's CORS layer a conduit middleware.
//!   It wraps the `/cors` router as a whole (`Router::with`), so the preflight `OPTIONS`
//!   reaches the layer before conduit's method routing would answer 405.
//! - `ServiceHandler::new(axum_router)` makes the axum router a conduit handler; `mount`
//!   strips `/axum`, so axum routes `/hi` and `/users/{id}`.

use axum::extract::Path;
use conduit::tower::{ServiceHandler, TowerLayer};
use conduit::{Config, HandlerExt, Request, Router, get};
use tower_http::cors::CorsLayer;
use tracing_subscriber::EnvFilter;

/// The routes axum answers under `/axum`.
fn axum_app() -> axum::Router {
    axum::Router::new()
        .route("/hi", axum::routing::get(|| async { "hi from axum" }))
        .route(
            "/users/{id}",
            axum::routing::get(|Path(id): Path<String>| async move { format!("axum user {id}") }),
        )
}

fn app() -> Router {
    let cors = Router::new()
        .route("/hello", get(|_req: Request| async { "hello, any origin" }))
        .with(TowerLayer(CorsLayer::permissive()));
    Router::new()
        .route("/", get(|_req: Request| async { "Hello from conduit" }))
        .mount("/cors", cors)
        .mount("/axum", ServiceHandler::new(axum_app()))
}

fn main() -> Result<(), conduit::ServerError> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    conduit::run(Config::from_env_addr("127.0.0.1:8080"), app())
}
