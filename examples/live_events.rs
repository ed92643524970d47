//! A page that shows live Server-Sent Events, and the hub that feeds it.
//!
//! ```sh
//! cargo run --example live_events        # then open http://127.0.0.1:8080/
//! ```
//!
//! - `/`       the page (`examples/live_events/index.html`, served by conduit-static's
//!   `ServeFile`): subscribes with `EventSource`
//! - `/events` the SSE stream: a `tick` every second from the hub; a browser that reconnects
//!   (after a network blip or a server restart) sends `Last-Event-ID` and gets the ticks it
//!   missed from the hub's replay buffer
//!
//! Stop it with Ctrl-C: open streams end at once, so graceful shutdown does not wait on them.
use std::time::Duration;

use conduit::{Config, Event, Hub, IntoResponse, Request, Router, ServeFile, Server, get};

/// The page, next to this file.
const PAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/live_events/index.html"
);

/// The app: the page and the event stream of `hub`.
fn app(hub: Hub) -> Router {
    Router::new().route("/", get(ServeFile::new(PAGE))).route(
        "/events",
        get(move |req: Request| {
            let sse = hub.sse(&req);
            async move {
                sse.await
                    .map(|s| s.retry(Duration::from_secs(1)))
                    .into_response()
            }
        }),
    )
}

#[tokio::main]
async fn main() -> Result<(), conduit::ServerError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let hub = Hub::new();
    let ticker = hub.clone();
    tokio::spawn(async move {
        for seq in 1u64.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let event = Event::default()
                .event("tick")
                .expect("static name")
                .data(format!("tick {seq}"));
            let _ = ticker.publish(event).await;
        }
    });
    let server = Server::bind(Config::from_env_addr("127.0.0.1:8080")).await?;
    println!("open http://{}/", server.local_addr());
    server.serve(app(hub)).await
}
