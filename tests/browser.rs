//! A real browser against a real server: headless Chromium opens the `live_events` page
//! (`examples/live_events/index.html`, served by conduit-static's `ServeFile`), which subscribes with `EventSource` and POSTs every
//! event it receives back to `/seen`. The test publishes, restarts the server on the same
//! port while publishing more, and checks that the browser reconnected by itself and that the
//! hub's replay (after the browser's `Last-Event-ID`) delivered exactly the missed events.
//!
//! Needs `chromium` (Debian package `chromium`; `scripts/test.sh` installs it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conduit::stream::hub::Backend;
use conduit::{
    Config, Event, Hub, IntoResponse, Request, RequestExt, Router, ServeFile, Server, get, post,
};
use conduit_test_support::launch;

/// The `live_events` example's page, served as the example serves it (conduit-static).
const PAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/live_events/index.html"
);
const GUARD: Duration = Duration::from_secs(90);

type Seen = Arc<Mutex<Vec<String>>>;

fn app<B: Backend>(hub: Hub<B>, seen: Seen) -> Router {
    Router::new()
        .route("/", get(ServeFile::new(PAGE)))
        .route(
            "/events",
            get(move |req: Request| {
                let sse = hub.sse(&req);
                async move {
                    sse.await
                        .map(|s| s.retry(Duration::from_millis(300)))
                        .into_response()
                }
            }),
        )
        .route(
            "/seen",
            post(move |req: Request| {
                let seen = seen.clone();
                async move {
                    let text = req.text().await?;
                    seen.lock().unwrap().push(text);
                    Ok::<_, conduit::Error>("ok")
                }
            }),
        )
}

async fn wait_until(seen: &Seen, what: &str, f: impl Fn(&[String]) -> bool) {
    let end = tokio::time::Instant::now() + GUARD;
    loop {
        if f(&seen.lock().unwrap()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}; the browser reported {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn events(seen: &[String]) -> Vec<String> {
    let mut v: Vec<String> = seen.iter().filter(|s| *s != "open").cloned().collect();
    v.sort();
    v
}

async fn serve(
    addr: SocketAddr,
    app: Router,
) -> (
    conduit::ShutdownHandle,
    tokio::task::JoinHandle<Result<(), conduit::ServerError>>,
) {
    let server = Server::bind(Config::new(addr.to_string()).handle_signals(false))
        .await
        .expect("bind");
    let handle = server.handle();
    (handle, tokio::spawn(server.serve(app)))
}

/// Shut a server down and wait for it; an open SSE stream must not hold it up.
async fn stop(
    handle: conduit::ShutdownHandle,
    task: tokio::task::JoinHandle<Result<(), conduit::ServerError>>,
) {
    handle.shutdown();
    tokio::time::timeout(GUARD, task)
        .await
        .expect("shutdown does not hang on the SSE stream")
        .unwrap()
        .unwrap();
}

/// The page opened by a browser at `addr`, once its `EventSource` reported `open`.
async fn open_page(addr: SocketAddr, seen: &Seen) -> conduit_test_support::Browser {
    let browser = launch(&format!("http://{addr}/?report"), &[]);
    wait_until(seen, "the EventSource to open", |s| {
        s.iter().any(|x| x == "open")
    })
    .await;
    browser
}

/// Publish a `tick` whose data is `data`.
async fn tick<B: Backend>(hub: &Hub<B>, data: &str) {
    hub.publish(Event::default().event("tick").unwrap().data(data))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_receives_events_reconnects_after_restart_and_gets_the_replay() {
    let hub = Hub::new();
    let seen: Seen = Arc::default();
    let app = app(hub.clone(), seen.clone());

    let server = Server::bind(Config::new("127.0.0.1:0").handle_signals(false))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    let task = tokio::spawn(server.serve(app.clone()));

    let _browser = open_page(addr, &seen).await;
    for d in ["a1", "a2", "a3"] {
        tick(&hub, d).await;
    }
    wait_until(&seen, "a1..a3", |s| events(s) == ["a1", "a2", "a3"]).await;

    // Restart: graceful shutdown ends the open SSE stream at once (no waiting for the drain
    // deadline); events published while the server is down wait in the hub's replay buffer.
    stop(handle, task).await;
    for d in ["b1", "b2", "b3"] {
        tick(&hub, d).await;
    }
    let opens_before = seen.lock().unwrap().iter().filter(|s| *s == "open").count();
    let (handle, task) = serve(addr, app).await;

    wait_until(&seen, "the replay of b1..b3 after the reconnect", |s| {
        events(s).len() >= 6
    })
    .await;
    // Exactly the missed events, each once: the browser sent Last-Event-ID of a3.
    assert_eq!(
        events(&seen.lock().unwrap()),
        ["a1", "a2", "a3", "b1", "b2", "b3"]
    );
    let opens = seen.lock().unwrap().iter().filter(|s| *s == "open").count();
    assert!(opens > opens_before, "the browser reconnected by itself");

    // And live events still flow on the new connection.
    tick(&hub, "c1").await;
    wait_until(&seen, "c1", |s| s.iter().any(|x| x == "c1")).await;
    stop(handle, task).await;
}

/// Two instances on one Redis (conduit-redis): the browser follows the stream on instance A;
/// A goes away and instance B takes its place (as a load balancer would switch it), while
/// events are published from elsewhere; the browser reconnects to B with its `Last-Event-ID`
/// and B replays exactly the missed events from Redis, then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_follows_the_stream_from_one_instance_to_another_through_redis() {
    use conduit_redis::{Redis, RedisStreams};
    let redis_server = conduit_test_support::RedisServer::start();
    let instance = || {
        let redis = Redis::open(&redis_server.url()).unwrap();
        Hub::with_backend(RedisStreams::new(&redis, "page"))
    };
    let (hub_a, publisher) = (instance(), instance());
    let seen: Seen = Arc::default();
    let addr = conduit_test_support::free_addr();
    let (handle, task) = serve(addr, app(hub_a.clone(), seen.clone())).await;
    let ready = |hub: &Hub<RedisStreams>| {
        let hub = hub.clone();
        async move {
            for _ in 0..200 {
                if hub.backend().is_healthy() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("the hub never reached Redis");
        }
    };
    ready(&hub_a).await;

    let _browser = open_page(addr, &seen).await;
    for d in ["a1", "a2", "a3"] {
        tick(&publisher, d).await;
    }
    wait_until(&seen, "a1..a3 from A", |s| events(s) == ["a1", "a2", "a3"]).await;

    // A goes away; events go on being published; B takes over the address.
    stop(handle, task).await;
    drop(hub_a);
    for d in ["b1", "b2", "b3"] {
        tick(&publisher, d).await;
    }
    let hub_b = instance();
    ready(&hub_b).await;
    let (handle, task) = serve(addr, app(hub_b, seen.clone())).await;
    wait_until(&seen, "B's replay of b1..b3", |s| events(s).len() >= 6).await;
    assert_eq!(
        events(&seen.lock().unwrap()),
        ["a1", "a2", "a3", "b1", "b2", "b3"]
    );
    tick(&publisher, "c1").await;
    wait_until(&seen, "c1 live from B", |s| s.iter().any(|x| x == "c1")).await;
    assert_eq!(events(&seen.lock().unwrap()).len(), 7, "each event once");
    stop(handle, task).await;
}
