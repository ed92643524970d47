//! The production shape of a conduit server: the standard middleware stack, static files, an
//! SSE feed, a database pool over a real SQLite file with rows streamed as a JSON array,
//! profiling on a separate localhost-only port, and a graceful shutdown whose hook closes the
//! pool. See `examples/performance/README.md`.
//!
//! ```text
//! cargo run --release --example optimized_server
//! curl localhost:8080/                      # Hello, World!
//! curl localhost:8080/json                  # {"message":"Hello, World!"}
//! curl localhost:8080/items/42              # one row from SQLite
//! curl 'localhost:8080/items?limit=1000'    # rows streamed as a JSON array
//! curl -N localhost:8080/events             # SSE: a tick every second
//! curl localhost:8080/static/               # static files (ETag, ranges, compression)
//! curl localhost:6060/debug/stats           # runtime, connections, in-flight, pool
//! curl -o cpu.pb 'localhost:6060/debug/pprof/profile?seconds=10'
//! scripts/load_test.sh targets              # in another terminal
//! ```
//!
//! Environment: `ADDR` (default `127.0.0.1:8080`), `PROFILE_ADDR` (default `127.0.0.1:6060`;
//! `off` disables profiling), `DATABASE_PATH` (default a file in the temp directory, created
//! and filled with `ITEMS` rows, default 10 000), `STATIC_DIR` (default
//! `examples/performance/static`), `RUST_LOG` (default `info`; access logs are at `debug`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use conduit::http::StatusCode;
use conduit::middleware::{
    Compression, Logging, Metrics, MetricsRegistry, Recovery, RequestId, Timeout,
};
use conduit::server::debug::Debug;
use conduit::server::pool::{Pool, PoolConfig, SqliteManager};
use conduit::{
    Config, Error, Event, HandlerExt, Hub, IntoResponse, Json, JsonArray, Request, RequestExt,
    Response, Router, ServeDir, Server, get,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

type Db = Pool<SqliteManager>;

#[derive(Serialize)]
struct Item {
    id: i64,
    name: String,
    price_cents: i64,
}

#[derive(Deserialize)]
struct Page {
    limit: Option<u32>,
}

const MAX_LIMIT: u32 = 100_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let db_path = std::env::var("DATABASE_PATH").unwrap_or_else(|_| {
        let p = std::env::temp_dir().join("conduit-optimized-server.sqlite");
        p.to_string_lossy().into_owned()
    });
    let items: i64 = std::env::var("ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let manager = SqliteManager::new(&deadpool_sqlite::Config::new(&db_path));
    let db = Pool::new(manager, PoolConfig::default())?;
    seed(&db, items).await?;
    tracing::info!(path = %db_path, items, "database ready");

    let server = Server::bind(Config::from_env_addr("127.0.0.1:8080")).await?;
    db.close_on_shutdown(&server);

    let stats_db = db.clone();
    let debug = Debug::new()
        .server(server.handle())
        .stat("db_pool", move || {
            let s = stats_db.stats();
            serde_json::json!({
                "max_open": s.max_open, "open": s.open, "in_use": s.in_use, "idle": s.idle,
                "waiting": s.waiting, "wait_count": s.wait_count,
                "wait_duration_ms": s.wait_duration.as_millis() as u64,
                "max_idle_closed": s.max_idle_closed,
                "max_idle_time_closed": s.max_idle_time_closed,
                "max_lifetime_closed": s.max_lifetime_closed,
            })
        });

    // The SSE feed: one publisher, every subscriber gets each tick (and a replay after
    // Last-Event-ID on reconnect).
    let hub = Hub::new();
    tokio::spawn(tick(hub.clone(), db.clone()));
    let static_dir = std::env::var("STATIC_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/performance/static").into()
    });

    // Prometheus metrics for every request (labelled by route template), served at /metrics.
    let registry = MetricsRegistry::new();
    // The pool's and the hub's own figures, read at each scrape (docs/alerts.yml alerts on them).
    let stats = db.clone();
    registry.gauge_fn(
        "db_pool_connections_in_use",
        "Pool connections checked out.",
        move || stats.stats().in_use as i64,
    );
    let stats = db.clone();
    registry.gauge_fn("db_pool_max_open", "The pool's max_open.", move || {
        stats.stats().max_open as i64
    });
    let stats = db.clone();
    registry.counter_fn(
        "db_pool_waits",
        "Checkouts that found the pool exhausted and waited.",
        move || stats.stats().wait_count,
    );
    let stats = hub.clone();
    registry.counter_fn(
        "sse_slow_consumer_skips",
        "Times an SSE subscriber fell a whole queue behind and skipped ahead.",
        move || stats.stats().skipped_ahead,
    );
    let stats = hub.clone();
    registry.counter_fn(
        "sse_slow_consumer_disconnects",
        "SSE subscribers disconnected for falling a whole queue behind.",
        move || stats.stats().disconnected,
    );
    let app = Router::new()
        .route("/", get(|_req: Request| async { "Hello, World!" }))
        .route("/metrics", get(registry.endpoint()))
        .route(
            "/json",
            get(|_req: Request| async { Json(serde_json::json!({"message": "Hello, World!"})) }),
        )
        .route("/health", get(|_req: Request| async { "ok" }))
        .route("/ready", get(server.handle().readiness()))
        .route("/items", get(with_db(&db, list_items)))
        .route("/items/{id}", get(with_db(&db, one_item)))
        .route(
            "/events",
            get(move |req: Request| {
                let sse = hub.sse(&req);
                async move {
                    sse.await
                        .map(|s| s.keep_alive(Duration::from_secs(15)))
                        .into_response()
                }
            }),
        )
        .mount("/static", ServeDir::new(&static_dir))
        // The recommended stack (conduit-middleware's README): the last `with` is outermost.
        .with(Compression::new())
        .with(Timeout::new(Duration::from_secs(30)))
        .with(Recovery::new())
        .with(Metrics::new(&registry))
        .with(Logging::new().success_level(tracing::Level::DEBUG))
        .with(RequestId::new())
        .with(debug.in_flight());

    let profile_addr = std::env::var("PROFILE_ADDR").unwrap_or_else(|_| "127.0.0.1:6060".into());
    if profile_addr != "off" {
        let profiling = debug.spawn(&profile_addr, &server.handle()).await?;
        tracing::info!(
            "profiling: http://{}/debug/pprof/ and /debug/stats",
            profiling.local_addr()
        );
    }
    server.serve(app).await?;
    Ok(())
}

/// A handler `f(db, req)` with a clone of the pool.
fn with_db<F, Fut>(db: &Db, f: F) -> impl conduit::Handler
where
    F: Fn(Db, Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let db = db.clone();
    move |req: Request| f(db.clone(), req)
}

async fn seed(db: &Db, items: i64) -> Result<(), Box<dyn std::error::Error>> {
    let conn = db.get().await?;
    conn.interact(move |c| -> rusqlite::Result<()> {
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS items (
                 id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL);",
        )?;
        let have: i64 = c.query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))?;
        if have < items {
            let tx = c.transaction()?;
            {
                let mut insert =
                    tx.prepare("INSERT INTO items (id, name, price_cents) VALUES (?1, ?2, ?3)")?;
                for id in have + 1..=items {
                    insert.execute((id, format!("item {id}"), id * 7 % 10_000))?;
                }
            }
            tx.commit()?;
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(())
}

/// Publish a `tick` event every second with the pool's figures, until the process ends (SSE
/// responses end by themselves when shutdown begins).
async fn tick(hub: Hub, db: Db) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    for seq in 0u64.. {
        every.tick().await;
        let s = db.stats();
        let data = serde_json::json!({"seq": seq, "db_open": s.open, "db_in_use": s.in_use});
        let event = Event::default()
            .event("tick")
            .map_err(|e| e.to_string())
            .and_then(|e| e.json_data(&data).map_err(|e| e.to_string()));
        match event {
            Ok(e) => {
                let _ = hub.publish(e).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot build the tick event"),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "database unavailable");
    Error::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
}

/// `GET /items/{id}`: one row, 400 for a malformed id, 404 when there is none.
async fn one_item(db: Db, req: Request) -> Response {
    let Ok(id) = req.param("id").unwrap_or_default().parse::<i64>() else {
        return Error::bad_request("item id must be an integer").into_response();
    };
    let conn = match db.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    // A lookup by primary key takes a few microseconds once SQLite's pages are cached: it runs
    // right here, on the async worker, holding the connection's lock. A trip through tokio's
    // blocking pool (`interact`: a wake-up of another thread each way) costs more than the
    // query and, at tens of thousands of requests a second on one core, adds the tail of a
    // thread hand-off to every request. Queries that take longer (`/items`) use `interact`.
    let row = match conn.lock() {
        Ok(c) => item_by_id(&c, id),
        Err(_) => return unavailable("a query panicked on this connection"),
    };
    match row {
        Ok(Some(item)) => Json(item).into_response(),
        Ok(None) => Error::not_found().into_response(),
        Err(e) => Error::internal(e).into_response(),
    }
}

/// One row by primary key.
fn item_by_id(c: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<Item>> {
    let mut stmt = c.prepare_cached("SELECT id, name, price_cents FROM items WHERE id = ?1")?;
    let mut rows = stmt.query([id])?;
    rows.next()?
        .map(|r| {
            Ok(Item {
                id: r.get(0)?,
                name: r.get(1)?,
                price_cents: r.get(2)?,
            })
        })
        .transpose()
}

/// `GET /items?limit=N`: the first N rows (default 100), streamed as one JSON array while
/// SQLite reads them on a blocking thread; memory stays at a few chunks whatever N is.
async fn list_items(db: Db, req: Request) -> Response {
    let page: Page = match req.query() {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let limit = page.limit.unwrap_or(100);
    if limit > MAX_LIMIT {
        tracing::info!(limit, "rejected /items limit (400)");
        return Error::bad_request(format!("limit must be at most {MAX_LIMIT}")).into_response();
    }
    let conn = match db.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    // SQLite reads on a blocking thread and hands rows over a bounded channel (backpressure:
    // it waits while the client is slow); conduit-stream's JsonArray writes them in frames of
    // a few KiB and aborts the response if an error arrives mid-array.
    let (tx, rx) = mpsc::channel::<Result<Item, Error>>(256);
    tokio::spawn(async move {
        let res = conn
            .interact(move |c| {
                if let Err(e) = send_rows(c, limit, &tx) {
                    tracing::error!(error = %e, "streaming /items failed; aborting the response");
                    let _ = tx.blocking_send(Err(Error::internal(e)));
                }
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "streaming /items: the database task failed");
        }
    });
    JsonArray::new(ChannelStream(rx)).into_response()
}

/// Run the query on the blocking thread, sending each row.
fn send_rows(
    c: &mut rusqlite::Connection,
    limit: u32,
    tx: &mpsc::Sender<Result<Item, Error>>,
) -> rusqlite::Result<()> {
    let mut stmt =
        c.prepare_cached("SELECT id, name, price_cents FROM items ORDER BY id LIMIT ?1")?;
    let mut rows = stmt.query([limit])?;
    while let Some(r) = rows.next()? {
        let item = Item {
            id: r.get(0)?,
            name: r.get(1)?,
            price_cents: r.get(2)?,
        };
        if tx.blocking_send(Ok(item)).is_err() {
            return Ok(()); // the client went away
        }
    }
    Ok(())
}

/// A `Stream` over an mpsc receiver (tokio's receiver has `poll_recv` but no `Stream` impl).
struct ChannelStream(mpsc::Receiver<Result<Item, Error>>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<Item, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
