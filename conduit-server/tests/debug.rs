//! The profiling and statistics endpoints over real sockets: a separate listener, the token,
//! a CPU profile taken under load that parses as pprof protobuf, and the flamegraph.
#![cfg(feature = "profiling")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conduit_core::{HandlerExt, Request, Router, get};
use conduit_server::Server;
use conduit_server::debug::Debug;
use http_body_util::Full;
use pprof::protos::Message;
use tokio::sync::Notify;

fn request(path: &str, token: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::get(path).header("host", "x");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

async fn fetch(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (u16, http::HeaderMap, Bytes) {
    let mut c = common::h1_client(addr).await;
    let (s, h, b) = common::send(&mut c, request(path, token)).await;
    (s.as_u16(), h, b)
}

#[tokio::test]
async fn stats_report_runtime_connections_and_in_flight_requests() {
    common::init_tracing();
    let server = Server::bind(common::config()).await.unwrap();
    let debug = Debug::new()
        .server(server.handle())
        .stat("db_pool", || serde_json::json!({ "open": 3 }));
    let release = Arc::new(Notify::new());
    let app = Router::new()
        .route(
            "/slow",
            get({
                let release = release.clone();
                move |_req: Request| {
                    let release = release.clone();
                    async move {
                        release.notified().await;
                        "done"
                    }
                }
            }),
        )
        .with(debug.in_flight());
    let profiling = debug.spawn("127.0.0.1:0", &server.handle()).await.unwrap();
    let running = common::start_server(server, app);

    let slow = tokio::spawn(common::get(running.addr, "/slow"));
    let stats_addr = profiling.local_addr();
    let mut doc = serde_json::Value::Null;
    for _ in 0..2000 {
        let (status, headers, body) = fetch(stats_addr, "/debug/stats", None).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/json");
        doc = serde_json::from_slice(&body).unwrap();
        if doc["server"]["in_flight_requests"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(doc["server"]["in_flight_requests"], 1, "{doc}");
    assert_eq!(doc["server"]["open_connections"], 1, "{doc}");
    assert_eq!(doc["server"]["draining"], false);
    assert!(doc["tokio"]["workers"].as_u64().unwrap() >= 1, "{doc}");
    assert!(doc["tokio"]["alive_tasks"].as_u64().unwrap() >= 1, "{doc}");
    assert!(doc["tokio"]["global_queue_depth"].is_u64(), "{doc}");
    assert!(
        doc["process"]["rss_bytes"].as_u64().unwrap() > 1 << 20,
        "{doc}"
    );
    assert!(doc["process"]["threads"].as_u64().unwrap() >= 1, "{doc}");
    assert_eq!(doc["db_pool"]["open"], 3);

    release.notify_one();
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"done"[..]));
    let (_, _, body) = fetch(stats_addr, "/debug/stats", None).await;
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["server"]["in_flight_requests"], 0, "{doc}");

    // The debug listener stops with the app server.
    running.handle.shutdown();
    tokio::time::timeout(Duration::from_secs(30), running.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), profiling.stopped())
        .await
        .expect("debug server stopped");
}

#[tokio::test]
async fn cpu_profile_under_load_is_valid_pprof_protobuf_and_svg() {
    let server = Server::bind(common::config()).await.unwrap();
    let handle = server.handle();
    let debug = Debug::new().server(handle.clone());
    let profiling = debug.spawn("127.0.0.1:0", &handle).await.unwrap();
    let running = common::start_server(server, common::app());

    // Load for the profile to sample: requests over one keep-alive connection.
    let addr = running.addr;
    let load = tokio::spawn(async move {
        let mut c = common::h1_client(addr).await;
        loop {
            common::send(&mut c, request("/", None)).await;
        }
    });
    // Samples landing in libc are dropped (the default blocklist), so on a loaded machine one
    // short profile can come back empty; a few tries guard against that without a timing bound.
    let mut profile = pprof::protos::Profile::default();
    for _ in 0..5 {
        let (status, headers, body) = fetch(
            profiling.local_addr(),
            "/debug/pprof/profile?seconds=1",
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/octet-stream");
        profile = pprof::protos::Profile::parse_from_bytes(&body).expect("pprof protobuf");
        if !profile.sample.is_empty() {
            break;
        }
    }
    let strings = &profile.string_table;
    let types: Vec<(&str, &str)> = profile
        .sample_type
        .iter()
        .map(|t| (&*strings[t.ty as usize], &*strings[t.unit as usize]))
        .collect();
    assert!(types.contains(&("cpu", "nanoseconds")), "{types:?}");
    assert!(!profile.sample.is_empty(), "no samples under load");
    assert!(!profile.function.is_empty());
    // The unwinder's own frames are trimmed: leaves are the server's code, not `backtrace::`.
    let leaf_name = |sample: &pprof::protos::Sample| {
        let loc = profile
            .location
            .iter()
            .find(|l| l.id == sample.location_id[0])
            .unwrap();
        let func = profile
            .function
            .iter()
            .find(|f| f.id == loc.line[0].function_id)
            .unwrap();
        strings[func.name as usize].clone()
    };
    let leaves: Vec<String> = profile.sample.iter().map(leaf_name).collect();
    let unwinder = leaves
        .iter()
        .filter(|n| n.starts_with("backtrace::"))
        .count();
    assert!(unwinder * 2 < leaves.len(), "{leaves:?}");

    let (status, headers, body) = fetch(
        profiling.local_addr(),
        "/debug/pprof/flamegraph?seconds=1",
        None,
    )
    .await;
    load.abort();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/svg+xml");
    let svg = String::from_utf8_lossy(&body);
    assert!(svg.contains("<svg"), "{}", &svg[..svg.len().min(200)]);
    handle.shutdown();
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_and_heap_501() {
    let server = Server::bind(common::config()).await.unwrap();
    let handle = server.handle();
    let profiling = Debug::new().spawn("127.0.0.1:0", &handle).await.unwrap();
    let addr = profiling.local_addr();
    for (path, want) in [
        ("/debug/pprof/profile?seconds=0", 400),
        ("/debug/pprof/profile?seconds=1000", 400),
        ("/debug/pprof/flamegraph?seconds=abc", 400),
        ("/debug/pprof/heap", 501),
        ("/debug/pprof/goroutine", 404),
        ("/debug/pprof/", 200),
        ("/nothing", 404),
    ] {
        let (status, _, body) = fetch(addr, path, None).await;
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let (_, headers, body) = fetch(addr, "/debug/pprof/", None).await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(String::from_utf8_lossy(&body).contains("goroutine"));
    handle.shutdown();
}

#[tokio::test]
async fn token_guards_every_endpoint_and_is_required_off_loopback() {
    let server = Server::bind(common::config()).await.unwrap();
    let handle = server.handle();
    let debug = Debug::new().token("s3cret");
    let profiling = debug.spawn("127.0.0.1:0", &handle).await.unwrap();
    let addr = profiling.local_addr();
    let (status, headers, _) = fetch(addr, "/debug/stats", None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(fetch(addr, "/debug/stats", Some("wrong")).await.0, 401);
    assert_eq!(fetch(addr, "/debug/pprof/heap", None).await.0, 401);
    assert_eq!(fetch(addr, "/debug/stats", Some("s3cret")).await.0, 200);
    assert_eq!(fetch(addr, "/debug/stats?token=s3cret", None).await.0, 200);

    let err = Debug::new()
        .spawn("0.0.0.0:0", &handle)
        .await
        .expect_err("non-loopback without a token must be refused");
    assert!(err.to_string().contains("token"), "{err}");
    // The deprecated name does the same.
    #[allow(deprecated)]
    let err = Debug::new().serve("0.0.0.0:0", &handle).await.unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
    handle.shutdown();
}
