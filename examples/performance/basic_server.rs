//! The smallest useful conduit server: two routes and the server's production defaults
//! (timeouts, limits, HTTP/1.1 + h2c, graceful shutdown on SIGINT/SIGTERM).
//!
//! ```text
//! cargo run --release --example perf_basic_server        # ADDR, default 127.0.0.1:8080
//! curl localhost:8080/        # Hello, World!
//! curl localhost:8080/json    # {"message":"Hello, World!"}
//! ```

use conduit::{Config, Json, Request, Router, get};

fn main() -> Result<(), conduit::ServerError> {
    let app = Router::new()
        .route("/", get(|_req: Request| async { "Hello, World!" }))
        .route(
            "/json",
            get(|_req: Request| async { Json(serde_json::json!({"message": "Hello, World!"})) }),
        );
    conduit::run(Config::from_env_addr("127.0.0.1:8080"), app)
}
