//! Two conduit instances on two ports sharing one Redis: the live events page on both, fed by
//! one Redis stream, so a browser may move from one instance to the other (as behind a load
//! balancer) and miss nothing.
//!
//! ```sh
//! redis-server --port 6379 --save "" --appendonly no &   # or any Redis you run
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example cluster
//! # open http://127.0.0.1:8081/ and http://127.0.0.1:8082/: the same ticks, the same ids
//! curl -X POST 'http://127.0.0.1:8082/publish?hello'   # published on B, shown on A too
//! ```
//!
//! Usage: `cluster [ADDR_A] [ADDR_B]` (defaults `127.0.0.1:8081`, `127.0.0.1:8082`); `REDIS_URL`
//! defaults to `redis://127.0.0.1:6379`. Each instance has its own Redis handle and hub, as
//! two processes would: nothing but Redis is shared.
//!
//! - `/`        the live events page (`examples/live_events/index.html`)
//! - `/events`  the SSE stream of topic `ticks` (a `tick` a second, published through A);
//!   `Last-Event-ID` replays from Redis on either instance
//! - `POST /publish?TEXT` publishes `TEXT` as a `message` event (503 while Redis is away)
//! - `/ready`   200 while serving and connected to Redis, else 503 (for the load balancer)
use std::time::Duration;

use conduit::{
    Config, Event, Hub, IntoResponse, Request, Router, ServeFile, Server, get, http::StatusCode,
    post,
};
use conduit_redis::{Redis, RedisStreams};

/// The live events page, next to the live_events example.
const PAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/live_events/index.html"
);

/// One instance's app over `hub`; `ready` is its server's readiness handler.
fn app(hub: Hub<RedisStreams>, ready: conduit::Readiness) -> Router {
    let (events, publish) = (hub.clone(), hub.clone());
    Router::new()
        .route("/", get(ServeFile::new(PAGE)))
        .route(
            "/events",
            get(move |req: Request| {
                let sse = events.sse(&req);
                async move {
                    sse.await
                        .map(|s| s.retry(Duration::from_secs(1)))
                        .into_response()
                }
            }),
        )
        .route(
            "/publish",
            post(move |req: Request| {
                let hub = publish.clone();
                async move {
                    let text = req.uri().query().unwrap_or("").to_owned();
                    match hub.publish(Event::default().data(text)).await {
                        Ok(id) => id.into_response(),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
                    }
                }
            }),
        )
        .route("/ready", get(hub.backend().health().gate(ready)))
}

#[tokio::main]
async fn main() -> Result<(), conduit::ServerError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut args = std::env::args().skip(1);
    let addrs = [
        args.next().unwrap_or_else(|| "127.0.0.1:8081".into()),
        args.next().unwrap_or_else(|| "127.0.0.1:8082".into()),
    ];
    let mut servers = Vec::new();
    let mut hubs = Vec::new();
    for addr in addrs {
        let redis = Redis::open(&url).map_err(std::io::Error::other)?;
        let hub = Hub::with_backend(RedisStreams::builder(&redis, "ticks").max_len(1000).build());
        let server = Server::bind(Config::new(addr)).await?;
        println!("instance on http://{}/", server.local_addr());
        let app = app(hub.clone(), server.handle().readiness());
        servers.push(tokio::spawn(server.serve(app)));
        hubs.push(hub);
    }
    let ticker = hubs[0].clone();
    tokio::spawn(async move {
        for seq in 1u64.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let event = Event::default()
                .event("tick")
                .expect("static name")
                .data(format!("tick {seq}"));
            if let Err(e) = ticker.publish(event).await {
                tracing::warn!(error = %e, "tick not published");
            }
        }
    });
    for server in servers {
        server.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}
