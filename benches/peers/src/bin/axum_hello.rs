// axum 0.8 + tower-http 0.6: the stack most Rust users pick. Same routes as conduit's bench_server:
//   /  plaintext   /json   /static/*  ServeDir   /gz/*  CompressionLayer over ServeDir
//   /stack  plaintext behind request-id, trace, catch-panic, timeout and compression layers
//   /sse    one `tick` event a second per client, with keep-alive comments
use axum::{
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
    Json, Router,
};
use futures::stream::{self, Stream};
use std::{convert::Infallible, time::Duration};
use tokio_stream::StreamExt as _;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    services::ServeDir,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

async fn sse() -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = stream::repeat_with(|| Event::default().event("tick").data("{}"))
        .map(Ok)
        .throttle(Duration::from_secs(1));
    Sse::new(ticks).keep_alive(KeepAlive::default())
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:18081".into());
    let root = std::env::args().nth(2).unwrap_or(".".into());
    let x_request_id = http::HeaderName::from_static("x-request-id");
    let stack = Router::new()
        .route("/stack", get(|| async { "Hello, World!" }))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    x_request_id.clone(),
                    MakeRequestUuid,
                ))
                .layer(PropagateRequestIdLayer::new(x_request_id))
                .layer(TraceLayer::new_for_http())
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    http::StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                ))
                .layer(CompressionLayer::new()),
        );
    let app = Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route("/sse", get(sse))
        .route(
            "/json",
            get(|| async { Json(serde_json::json!({"message":"Hello, World!"})) }),
        )
        .nest_service("/static", ServeDir::new(&root))
        .nest_service(
            "/gz",
            ServiceBuilder::new()
                .layer(CompressionLayer::new())
                .service(ServeDir::new(&root)),
        )
        .merge(stack);
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
