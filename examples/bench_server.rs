//! The server `scripts/perf/compare.sh` and `scripts/perf/instr.sh` measure against raw hyper,
//! axum, actix-web and nginx (the reference servers are in `benches/peers`).
//!
//! Usage: `bench_server [ADDR] [ROOT]`: ADDR defaults to `127.0.0.1:18090`; ROOT (the folder
//! `/static/*` and `/gz/*` serve) to `$CONDUIT_BENCH_ROOT`, else the current directory.
//!
//! Routes:
//! - `/`     "Hello, World!" as text/plain
//! - `/json` `{"message":"Hello, World!"}` as application/json, serialized per request
//! - `/sse` Server-Sent Events from a hub that publishes `event: tick`, `id: <seq>`,
//!   `data: {"seq":<seq>}` every 100 ms (from the first subscription on); a `Last-Event-ID`
//!   first replays the retained ticks after it
//! - `/stream/json?n=N` a JSON array of N objects `{"id":i,"name":"item-i"}`, streamed
//! - `/stream/ndjson?n=N` the same as NDJSON
//! - `/static/*` the files under ROOT (`conduit::ServeDir`, default settings; set
//!   `CONDUIT_STATIC_CACHE_MAX_FILE=BYTES` to hold only files up to that size in memory, e.g. 0
//!   to measure the streamed path: larger files are read in chunks on the blocking pool)
//! - `/stack` "Hello, World!" behind the recommended middleware stack (request id, logging,
//!   recovery, timeout, compression), as the axum peer puts tower-http's layers on it
//! - `/gz/*` the compression middleware (default settings) over `ServeDir` on ROOT
//! - `/etag/json` `/json` behind the conditional-response middleware (`ETag`, 304 on `If-None-Match`)
//! - `/limited` "Hello, World!" behind a rate limit of a burst of 5, then 1 request/s per client IP
//! - `/metrics` the Prometheus exposition of the metrics middleware on `/stack` and of the
//!   WebSocket counts (`websocket_*`)
//! - `/tower` "Hello, World!" behind tower-http's `SetResponseHeaderLayer` (`cache-control:
//!   no-store` unless the handler set one) through `conduit::tower::TowerLayer`
//! - `/tower-identity` "Hello, World!" through `TowerLayer(Identity)`: the adapter alone
//! - `/no-store` the same answer with conduit's own equivalent, `CacheControl::no_store()`: the
//!   baseline `/tower` is compared with (`scripts/instr_routes.sh`, see ARCHITECTURE.md)
//!
//! - `/ws` a WebSocket (HTTP/1.1 upgrade, or RFC 8441 over HTTP/2) that echoes every text and
//!   binary message as it came, permessage-deflate when the client offers it, default limits
//! - `/ws/ticks` a WebSocket subscribed to the `/sse` hub: one text message (`{"seq":N}`) per
//!   tick; `?last_event_id=N` first replays the retained ticks after N
//!
//! `CONDUIT_STACK_METRICS=0` leaves the metrics middleware out of `/stack`, to measure its cost.
//!
//! With `REDIS_URL` set (e.g. `redis://127.0.0.1:6379`), `/sse` (and `/ws/ticks`) is a hub on
//! the Redis stream of topic `ticks` and `/limited` keeps its quota in Redis (`conduit_redis`), so several
//! bench_servers on one Redis behave as one service; only the one started with `TICKS=1`
//! publishes the ticks. Without `REDIS_URL` nothing changes. `REDIS_LOCAL_DENIALS=0` makes every
//! `/limited` check a Redis round trip (no local memory of Redis's refusals).
use std::sync::OnceLock;
use std::time::Duration;

use conduit::http::{HeaderValue, header::CACHE_CONTROL};
use conduit::middleware::{
    CacheControl, Compression, ETag, Logging, Metrics, MetricsRegistry, Quota, RateLimit, Recovery,
    RequestId, Stack, Timeout,
};
use conduit::tower::TowerLayer;
use conduit::{
    Config, Event, HandlerExt, Hub, IntoResponse, Json, JsonArray, MethodRouter, Ndjson, Request,
    RequestExt, Router, ServeDir, get,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

#[derive(Serialize)]
struct Item {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct Count {
    n: u64,
}

fn items(
    req: &Request,
) -> Result<impl Iterator<Item = Item> + Send + Unpin + use<>, conduit::Error> {
    let Count { n } = req.query()?; // missing or malformed n: 400
    Ok((0..n).map(|id| Item {
        id,
        name: format!("item-{id}"),
    }))
}

/// The `/sse` hub; its ticker starts with the first subscription (inside the runtime).
fn hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(|| {
        let hub = Hub::new();
        let ticker = hub.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for seq in 1u64.. {
                every.tick().await;
                let event = Event::default()
                    .event("tick")
                    .expect("static name")
                    .data(format!("{{\"seq\":{seq}}}"));
                if let Err(e) = ticker.publish(event).await {
                    tracing::warn!(error = %e, "tick not published");
                }
            }
        });
        hub
    })
}

fn app(root: &str) -> Router {
    ws_routes(Router::new())
        .route(
            "/sse",
            redis_mode::sse().unwrap_or_else(|| {
                get(|req: Request| {
                    let sse = hub().sse(&req);
                    async move { sse.await.into_response() }
                })
            }),
        )
        .route(
            "/stream/json",
            get(|req: Request| async move { items(&req).map(JsonArray::from_items) }),
        )
        .route(
            "/stream/ndjson",
            get(|req: Request| async move { items(&req).map(Ndjson::from_items) }),
        )
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
        .route("/stack", stack())
        .mount("/gz", ServeDir::new(root).with(Compression::new()))
        .route("/etag/json", get(json.with(ETag::new())))
        .route(
            "/limited",
            redis_mode::limited().unwrap_or_else(|| {
                get((|_req: Request| async { "Hello, World!" })
                    .with(RateLimit::new(Quota::per_second(1).burst(5))))
            }),
        )
        .route("/metrics", get(metrics_registry().endpoint()))
        .route(
            "/tower",
            get((|_req: Request| async { "Hello, World!" }).with(TowerLayer(
                tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                    CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ),
            ))),
        )
        .route(
            "/tower-identity",
            get((|_req: Request| async { "Hello, World!" })
                .with(TowerLayer(tower::layer::util::Identity::new()))),
        )
        .route(
            "/no-store",
            get((|_req: Request| async { "Hello, World!" }).with(CacheControl::no_store())),
        )
}

// ---- WebSockets (conduit-ws) ----------------------------------------------------------------

/// `/ws` (echo) and `/ws/ticks` (the `/sse` hub). `any`: an HTTP/2 WebSocket is a CONNECT.
fn ws_routes(router: Router) -> Router {
    use conduit_ws::{Message, WebSocketUpgrade};

    router
        .route(
            "/ws",
            conduit::any(|mut req: Request| async move {
                let ws = WebSocketUpgrade::from_request(&mut req)?;
                Ok::<_, conduit_ws::WsRejection>(ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
                        if echo && socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                }))
            }),
        )
        .route(
            "/ws/ticks",
            conduit::any(|mut req: Request| async move {
                let ws = match WebSocketUpgrade::from_request(&mut req) {
                    Ok(ws) => ws,
                    Err(refused) => return refused.into_response(),
                };
                let last = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("last_event_id="));
                match redis_mode::hub() {
                    Some(redis_hub) => conduit_ws::hub::subscribe(ws, redis_hub, last).await,
                    None => conduit_ws::hub::subscribe(ws, hub(), last).await,
                }
            }),
        )
}

/// The recommended stack around "Hello, World!" ([`Stack`], the five layers fused), with the
/// request metrics outside it (unless `CONDUIT_STACK_METRICS=0`). `CONDUIT_STACK=layers`
/// composes the five layers one by one instead, to compare.
fn stack() -> MethodRouter {
    let hello = |_req: Request| async { "Hello, World!" };
    let metrics = std::env::var("CONDUIT_STACK_METRICS").as_deref() != Ok("0");
    if std::env::var("CONDUIT_STACK").as_deref() == Ok("layers") {
        let inner = hello
            .with(Compression::new())
            .with(Timeout::new(Duration::from_secs(30)))
            .with(Recovery::new())
            .with(Logging::new());
        if metrics {
            get(inner.with(stack_metrics()).with(RequestId::new()))
        } else {
            get(inner.with(RequestId::new()))
        }
    } else if metrics {
        get(hello.with(Stack::new()).with(stack_metrics()))
    } else {
        get(hello.with(Stack::new()))
    }
}

async fn json(_req: Request) -> Json<Message> {
    Json(Message {
        message: "Hello, World!",
    })
}

/// The registry `/metrics` serves.
fn metrics_registry() -> &'static MetricsRegistry {
    static REGISTRY: OnceLock<MetricsRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = MetricsRegistry::new();
        conduit_ws::metrics::register(&registry); // the `/ws` sockets' counts
        registry
    })
}

/// The request metrics of `/stack` (registered once in [`metrics_registry`]).
fn stack_metrics() -> Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS
        .get_or_init(|| Metrics::new(metrics_registry()))
        .clone()
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
        .or_else(|| std::env::var("CONDUIT_BENCH_ROOT").ok())
        .unwrap_or_else(|| ".".into());
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
    if let Ok(url) = std::env::var("REDIS_URL") {
        return redis_mode::run(config, &url, &root);
    }
    conduit::run(config, app(&root))
}

/// `REDIS_URL` mode: the `/sse` hub and the `/limited` quota in Redis.
mod redis_mode {
    use std::sync::OnceLock;
    use std::time::Duration;

    use conduit::middleware::{Quota, RateLimit};
    use conduit::{Config, Event, HandlerExt, Hub, IntoResponse, MethodRouter, Request, get};
    use conduit_redis::{Redis, RedisStore, RedisStreams};

    static REDIS: OnceLock<(Redis, Hub<RedisStreams>)> = OnceLock::new();

    /// The Redis hub, when in this mode (`/ws/ticks` subscribes to it too).
    pub fn hub() -> Option<&'static Hub<RedisStreams>> {
        REDIS.get().map(|(_, hub)| hub)
    }

    /// `/sse` on the Redis hub, when in this mode.
    pub fn sse() -> Option<MethodRouter> {
        let (_, hub) = REDIS.get()?;
        let hub = hub.clone();
        Some(get(move |req: Request| {
            let sse = hub.sse(&req);
            async move { sse.await.into_response() }
        }))
    }

    /// `/limited` with its quota in Redis, when in this mode. `REDIS_LOCAL_DENIALS=0` asks
    /// Redis for every request, refusals included (`RedisStore::local_denials(false)`).
    pub fn limited() -> Option<MethodRouter> {
        let (redis, _) = REDIS.get()?;
        let local = std::env::var("REDIS_LOCAL_DENIALS").as_deref() != Ok("0");
        let store = RedisStore::new(redis).local_denials(local);
        let limit = RateLimit::new(Quota::per_second(1).burst(5)).store(store);
        Some(get((|_req: Request| async { "Hello, World!" }).with(limit)))
    }

    pub fn run(config: Config, url: &str, root: &str) -> Result<(), conduit::ServerError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let redis = Redis::open(url).map_err(std::io::Error::other)?;
            let hub = Hub::with_backend(RedisStreams::new(&redis, "ticks"));
            if std::env::var("TICKS").as_deref() == Ok("1") {
                tokio::spawn(tick(hub.clone()));
            }
            let _ = REDIS.set((redis, hub));
            conduit::Server::bind(config)
                .await?
                .serve(super::app(root))
                .await
        })
    }

    /// A `tick` every 100 ms, as the in-process hub publishes them, stamped with the time
    /// just before its `XADD` (`"t"`, microseconds since the Unix epoch) so `sse_load` measures
    /// the fan-out from the publish.
    async fn tick(hub: Hub<RedisStreams>) {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for seq in 1u64.. {
            every.tick().await;
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros();
            let event = Event::default()
                .event("tick")
                .expect("static name")
                .data(format!("{{\"seq\":{seq},\"t\":{t}}}"));
            if let Err(e) = hub.publish(event).await {
                tracing::warn!(error = %e, "tick not published to Redis");
            }
        }
    }
}
