//! The `optimized_server` example as a user runs it: the real binary with its SQLite file,
//! real requests to the app and to the profiling port, then SIGTERM and a clean exit after the
//! shutdown hook closed the pool. Needs the example built (`cargo build --examples`, which
//! `cargo test`, `cargo nextest run` and `scripts/test.sh` do).
mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn optimized_server_serves_db_rows_stats_and_closes_the_pool_on_sigterm() {
    let (addr, profile) = (free_addr(), free_addr());
    let dir = TempDir::new("optimized-server");
    let db = dir.path().join("items.sqlite");
    let mut server = ExampleProcess::spawn("optimized_server", |cmd| {
        cmd.env("ADDR", addr.to_string())
            .env("PROFILE_ADDR", profile.to_string())
            .env("DATABASE_PATH", &db)
            .env("ITEMS", "500");
    });
    server.wait_listening(addr, Duration::from_secs(30)).await;
    server
        .wait_listening(profile, Duration::from_secs(30))
        .await;

    let r = get(addr, "/").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "Hello, World!"));
    let r = get(addr, "/items/42").await;
    assert_eq!(r.status, 200);
    let item: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(item["id"], 42);
    assert_eq!(item["name"], "item 42");
    for (path, want) in [
        ("/items/0", 404),
        ("/items/x", 400),
        ("/items?limit=-1", 400),
        ("/items?limit=100001", 400),
    ] {
        assert_eq!(get(addr, path).await.status.as_u16(), want, "{path}");
    }
    // Streamed over HTTP/1.1 (chunked) and HTTP/2: the whole table, in order.
    let r = get(addr, "/items?limit=1000").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(rows.len(), 500);
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, row)| row["id"] == i as u64 + 1)
    );
    // Metrics count by route template: the requests above share one `/items/{id}` series.
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="/items/{id}""#)
            && l.contains(r#"status="404""#)),
        "{text}"
    );
    assert!(!text.contains("/items/42"), "{text}");
    // The pool's and the hub's figures that docs/alerts.yml alerts on.
    for series in [
        "db_pool_connections_in_use ",
        "db_pool_max_open ",
        "db_pool_waits_total ",
        "sse_slow_consumer_skips_total 0",
        "sse_slow_consumer_disconnects_total 0",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "{series}: {text}"
        );
    }
    let mut c = h2_client(addr).await;
    let r = send(&mut c, get_req("/items?limit=70")).await;
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(rows.len(), 70);
    drop(c);

    // The middleware stack: a request id on every response, gzip when asked for.
    let mut c = h1_client(addr).await;
    let r = send(
        &mut c,
        request("GET", "/items?limit=500")
            .header("accept-encoding", "gzip")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.header("x-request-id").is_some());
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut json).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
    assert_eq!(rows.len(), 500);

    // Static files.
    let r = get(addr, "/static/style.css").await;
    assert_eq!(r.status, 200);
    assert!(r.header("etag").is_some());
    assert!(r.header("content-type").unwrap().starts_with("text/css"));
    // A gzip client revalidates through the compression middleware: 304 with the 200's Vary.
    let mut c = h1_client(addr).await;
    let ask = |etag: Option<&str>| {
        let mut req = request("GET", "/static/style.css").header("accept-encoding", "gzip");
        if let Some(etag) = etag {
            req = req.header("if-none-match", etag);
        }
        req.body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    let ok = send(&mut c, ask(None)).await;
    let etag = ok.header("etag").unwrap().to_owned();
    let r = send(&mut c, ask(Some(&etag))).await;
    assert_eq!(r.status, 304, "a gzip client gets 304 for the tag it holds");
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("vary"), ok.header("vary"));
    assert_eq!(r.header("cache-control"), ok.header("cache-control"));
    assert_eq!(
        get(addr, "/static/../Cargo.toml").await.status.as_u16() / 100,
        4
    );

    // The SSE feed: a tick arrives within a few seconds.
    let mut c = h1_client(addr).await;
    let res = c.send_request(get_req("/events")).await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let mut seen = String::new();
    let got_tick = tokio::time::timeout(Duration::from_secs(30), async {
        use http_body_util::BodyExt;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains("event: tick") && seen.contains("\"seq\"") {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert!(matches!(got_tick, Ok(true)), "no tick event: {seen:?}");
    drop(body);
    drop(c);

    // The profiling port: stats include the pool; the app port has no debug routes.
    let r = get(profile, "/debug/stats").await;
    assert_eq!(r.status, 200);
    let stats: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(stats["db_pool"]["open"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["db_pool"]["max_open"], 100);
    assert!(stats["tokio"]["workers"].as_u64().unwrap() >= 1);
    assert_eq!(get(addr, "/debug/stats").await.status, 404);

    let (status, output) = server.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}; output:\n{output}");
    assert!(
        output.contains("running shutdown hook") && output.contains("database pool closed"),
        "the pool was not closed by the shutdown hook; output:\n{output}"
    );
}
