//! conduit-stream over real sockets: a real conduit server on 127.0.0.1:0, hyper's HTTP/1.1
//! and HTTP/2 clients, and raw TCP where the framing itself is the point.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use conduit_core::{IntoResponse, Request, RequestExt, Router, get};
use conduit_server::{Config, Server, ShutdownHandle};
use conduit_stream::hub::{Hub, InMemory};
use conduit_stream::{Chunked, Event, JsonArray, LastEventId, Ndjson, Sse};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const GUARD: Duration = Duration::from_secs(20);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Item {
    id: u64,
    name: String,
}

fn items(n: u64) -> impl Iterator<Item = Item> {
    (0..n).map(|id| Item {
        id,
        name: format!("item-{id}"),
    })
}

/// Sets its flag when dropped: tells the test that the server let go of a producer.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A stream that never yields and sets `flag` when dropped.
fn pending_until_dropped(
    flag: Arc<AtomicBool>,
) -> impl futures_core::Stream<Item = Result<Event, Infallible>> + Send {
    let guard = DropFlag(flag);
    let mut fut = Box::pin(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    });
    futures_core_stream(move |cx| fut.as_mut().poll(cx).map(|()| None))
}

/// A stream from a poll function (no futures-util needed).
fn futures_core_stream<T, F>(f: F) -> impl futures_core::Stream<Item = T> + Send
where
    F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<T>> + Send + Unpin,
{
    struct PollFn<F>(F);
    impl<T, F> futures_core::Stream for PollFn<F>
    where
        F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<T>> + Unpin,
    {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            (self.0)(cx)
        }
    }
    PollFn(f)
}

use std::future::Future as _;

#[derive(Deserialize)]
struct Count {
    n: u64,
}

fn count(req: &Request) -> u64 {
    req.query::<Count>().map_or(10, |c| c.n)
}

struct Shared {
    hub: Hub,
    produced: AtomicU64,
    dropped: Arc<AtomicBool>,
}

fn app(shared: Arc<Shared>) -> Router {
    let s1 = shared.clone();
    let s2 = shared.clone();
    let s3 = shared.clone();
    Router::new()
        .route(
            "/json",
            get(|req: Request| async move {
                let n = count(&req);
                JsonArray::from_items(items(n))
            }),
        )
        .route(
            "/ndjson",
            get(|req: Request| async move {
                let n = count(&req);
                Ndjson::from_items(items(n))
            }),
        )
        .route(
            "/json-fail",
            get(|_req: Request| async {
                // 5000 good items (several frames on the wire), then an error.
                let s = tokio_stream::iter(
                    items(5000)
                        .map(Ok)
                        .chain(std::iter::once(Err("database went away"))),
                );
                JsonArray::new(s)
            }),
        )
        .route(
            "/json-endless",
            get(move |_req: Request| {
                let shared = s1.clone();
                async move {
                    let mut i = 0u64;
                    JsonArray::from_items(std::iter::from_fn(move || {
                        i += 1;
                        shared.produced.fetch_add(1, Ordering::Relaxed);
                        Some(Item {
                            id: i,
                            name: "x".repeat(100),
                        })
                    }))
                }
            }),
        )
        .route(
            "/text",
            get(|_req: Request| async {
                Chunked::text(tokio_stream::iter(
                    ["alpha\n", "beta\n", "gamma\n"].map(Ok::<_, Infallible>),
                ))
            }),
        )
        .route(
            "/reader",
            get(|_req: Request| async {
                let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
                Chunked::reader(std::io::Cursor::new(data))
            }),
        )
        .route(
            "/sse-fixed",
            get(|req: Request| async move {
                let last = req.last_event_id().unwrap_or("none").to_owned();
                let events = vec![
                    Ok::<_, Infallible>(Event::default().retry_ms(2500)),
                    Ok(Event::default()
                        .id("1")
                        .unwrap()
                        .event("greeting")
                        .unwrap()
                        .data("hello\nworld")),
                    Ok(Event::default().comment("just a comment")),
                    Ok(Event::default().data(format!("last={last}"))),
                ];
                Sse::new(tokio_stream::iter(events))
            }),
        )
        .route(
            "/sse-silent",
            get(move |_req: Request| {
                let flag = s2.dropped.clone();
                async move {
                    Sse::new(pending_until_dropped(flag))
                        .keep_alive(Duration::from_millis(100))
                        .on_shutdown(Event::default().event("bye").unwrap().data("shutting down"))
                }
            }),
        )
        .route(
            "/events",
            get(move |req: Request| {
                let sse = s3.hub.sse(&req);
                async move {
                    sse.await
                        .map(|s| s.keep_alive(Duration::from_millis(200)))
                        .into_response()
                }
            }),
        )
}

struct Running {
    addr: SocketAddr,
    handle: ShutdownHandle,
    task: JoinHandle<Result<(), conduit_server::ServerError>>,
    shared: Arc<Shared>,
}

async fn start_with(hub: Hub, config: Config) -> Running {
    let shared = Arc::new(Shared {
        hub,
        produced: AtomicU64::new(0),
        dropped: Arc::new(AtomicBool::new(false)),
    });
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    let task = tokio::spawn(server.serve(app(shared.clone())));
    Running {
        addr,
        handle,
        task,
        shared,
    }
}

fn config() -> Config {
    Config::new("127.0.0.1:0").handle_signals(false)
}

async fn start() -> Running {
    start_with(Hub::new(), config()).await
}

enum Client {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

async fn client(addr: SocketAddr, h2: bool) -> Client {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    if h2 {
        let (tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        Client::H2(tx)
    } else {
        let (tx, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Client::H1(tx)
    }
}

async fn request(
    addr: SocketAddr,
    h2: bool,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response<Incoming> {
    let mut b = http::Request::get(format!("http://{addr}{path}"));
    if !h2 {
        b = b.header("host", addr.to_string()); // HTTP/2 sends :authority instead
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::new()).unwrap();
    let fut = async {
        match client(addr, h2).await {
            Client::H1(mut c) => c.send_request(req).await,
            Client::H2(mut c) => c.send_request(req).await,
        }
    };
    tokio::time::timeout(GUARD, fut)
        .await
        .expect("response in time")
        .expect("response")
}

async fn body_of(res: http::Response<Incoming>) -> Result<Bytes, hyper::Error> {
    tokio::time::timeout(GUARD, res.into_body().collect())
        .await
        .expect("body in time")
        .map(|c| c.to_bytes())
}

async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = tokio::time::timeout(GUARD, body.frame())
            .await
            .expect("frame in time")?
            .expect("frame");
        if let Ok(d) = frame.into_data() {
            return Some(d);
        }
    }
}

#[tokio::test]
async fn json_array_and_ndjson_parse_back_over_h1_and_h2() {
    let srv = start().await;
    for h2 in [false, true] {
        let res = request(srv.addr, h2, "/json?n=20000", &[]).await;
        assert_eq!(res.headers()["content-type"], "application/json");
        let parsed: Vec<Item> = serde_json::from_slice(&body_of(res).await.unwrap()).unwrap();
        assert_eq!(parsed, items(20000).collect::<Vec<_>>());

        let res = request(srv.addr, h2, "/json?n=0", &[]).await;
        assert_eq!(&body_of(res).await.unwrap()[..], b"[]");

        let res = request(srv.addr, h2, "/ndjson?n=5000", &[]).await;
        assert_eq!(res.headers()["content-type"], "application/x-ndjson");
        let body = body_of(res).await.unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.ends_with('\n'));
        let parsed: Vec<Item> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed, items(5000).collect::<Vec<_>>());
    }
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_error_mid_stream_aborts_the_response() {
    let srv = start().await;
    // HTTP/1.1, raw: the connection closes without the terminating zero-length chunk.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /json-fail HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(GUARD, s.read_to_end(&mut raw))
        .await
        .expect("server closes the connection")
        .ok();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:.200}");
    assert!(text.contains("transfer-encoding: chunked"), "{text:.300}");
    assert!(
        text.contains("item-100"),
        "items before the error were sent"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "no final chunk after an error"
    );
    // hyper's clients see an error, not a complete body, on HTTP/1.1 and HTTP/2 (RST_STREAM).
    // Here every item is ready at once, so on HTTP/2 the reset may even beat the headers.
    for h2 in [false, true] {
        let req = http::Request::get(format!("http://{}/json-fail", srv.addr))
            .header("host", srv.addr.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = match client(srv.addr, h2).await {
            Client::H1(mut c) => c.send_request(req).await,
            Client::H2(mut c) => c.send_request(req).await,
        };
        match res {
            Ok(res) => {
                assert_eq!(res.status(), 200);
                assert!(
                    body_of(res).await.is_err(),
                    "h2={h2}: truncated body must be an error"
                );
            }
            Err(e) => assert!(h2, "HTTP/1.1 sends the head before the error: {e}"),
        }
    }
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn chunked_text_and_reader() {
    let srv = start().await;
    for h2 in [false, true] {
        let res = request(srv.addr, h2, "/text", &[]).await;
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(&body_of(res).await.unwrap()[..], b"alpha\nbeta\ngamma\n");
        let res = request(srv.addr, h2, "/reader", &[]).await;
        assert_eq!(res.headers()["content-type"], "application/octet-stream");
        let body = body_of(res).await.unwrap();
        let want: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(&body[..], &want[..]);
    }
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn sse_exact_wire_format_and_headers() {
    let srv = start().await;
    for h2 in [false, true] {
        let res = request(srv.addr, h2, "/sse-fixed", &[("last-event-id", "41")]).await;
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        assert_eq!(res.headers()["cache-control"], "no-cache");
        assert_eq!(res.headers()["x-accel-buffering"], "no");
        let body = body_of(res).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "retry: 2500\n\n\
             id: 1\nevent: greeting\ndata: hello\ndata: world\n\n\
             : just a comment\n\n\
             data: last=41\n\n"
        );
    }
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn sse_keep_alive_comments_then_a_final_event_on_shutdown() {
    for h2 in [false, true] {
        let srv = start_with(
            Hub::new(),
            config().shutdown_timeout(Duration::from_secs(120)),
        )
        .await;
        let res = request(srv.addr, h2, "/sse-silent", &[]).await;
        let mut body = res.into_body();
        assert_eq!(&next_data(&mut body).await.unwrap()[..], b": \n\n");
        assert_eq!(&next_data(&mut body).await.unwrap()[..], b": \n\n");
        // Graceful shutdown: the stream ends with its final event instead of holding the
        // drain open until the 120 s deadline.
        srv.handle.shutdown();
        let mut rest = Vec::new();
        while let Some(d) = next_data(&mut body).await {
            rest.extend_from_slice(&d);
        }
        let rest = String::from_utf8(rest).unwrap();
        assert!(
            rest.ends_with("event: bye\ndata: shutting down\n\n"),
            "h2={h2}: {rest:?}"
        );
        tokio::time::timeout(GUARD, srv.task)
            .await
            .expect("shutdown does not wait for the SSE stream")
            .unwrap()
            .unwrap();
        assert!(srv.shared.dropped.load(Ordering::SeqCst));
    }
}

async fn wait_for(flag: &AtomicBool) -> bool {
    let end = tokio::time::Instant::now() + GUARD;
    while tokio::time::Instant::now() < end {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_client_that_disconnects_is_noticed() {
    for h2 in [false, true] {
        let srv = start().await;
        let res = request(srv.addr, h2, "/sse-silent", &[]).await;
        let mut body = res.into_body();
        assert_eq!(&next_data(&mut body).await.unwrap()[..], b": \n\n");
        assert!(!srv.shared.dropped.load(Ordering::SeqCst));
        drop(body); // h2: RST_STREAM; h1: the connection task ends and the socket closes
        assert!(
            wait_for(&srv.shared.dropped).await,
            "h2={h2}: producer dropped after the client left"
        );
        srv.handle.shutdown();
        srv.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_slow_reader_makes_the_producer_wait() {
    let srv = start().await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /json-endless HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    // The client stops reading. The producer runs until the socket buffers are full, then
    // waits: its count settles instead of growing without bound.
    let end = tokio::time::Instant::now() + GUARD;
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = srv.shared.produced.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "producer never paused");
        last = now;
    }
    // ~120 bytes an item: what the kernel's socket buffers and hyper's buffer hold.
    assert!(
        last < 400_000,
        "{last} items produced for a client that read 4 KiB"
    );
    drop(s);
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn hub_replays_after_last_event_id_over_the_wire() {
    let srv = start().await;
    for i in 1..=5 {
        srv.shared
            .hub
            .publish(Event::default().event("tick").unwrap().data(format!("{i}")))
            .await
            .unwrap();
    }
    for h2 in [false, true] {
        let res = request(srv.addr, h2, "/events", &[("last-event-id", "3")]).await;
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        let mut got = String::new();
        while !got.contains("id: 5\n") {
            got.push_str(std::str::from_utf8(&next_data(&mut body).await.unwrap()).unwrap());
        }
        assert!(
            got.starts_with("event: tick\ndata: 4\nid: 4\n\nevent: tick\ndata: 5\nid: 5\n\n"),
            "{got:?}"
        );
        // live events follow the replay
        srv.shared
            .hub
            .publish(Event::default().data("live"))
            .await
            .unwrap();
        let mut live = String::new();
        while !live.contains("data: live") {
            live.push_str(std::str::from_utf8(&next_data(&mut body).await.unwrap()).unwrap());
        }
        assert!(live.contains("data: live\nid: "), "{live:?}");
    }
    // A Last-Event-ID that is not one of ours is the client's fault.
    let res = request(
        srv.addr,
        false,
        "/events",
        &[("last-event-id", "not-a-number")],
    )
    .await;
    assert_eq!(res.status(), 400);
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn hub_slow_consumer_skips_ahead_and_is_told() {
    // Queues of 4 events; a client that does not read while 400 events of 32 KiB (12.5 MiB,
    // more than the socket buffers hold) are published falls behind.
    let srv = start_with(
        Hub::with_backend(InMemory::builder().queue(4).replay(16).build()),
        config(),
    )
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(GUARD, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let payload = "x".repeat(32 * 1024);
    for _ in 0..400 {
        srv.shared
            .hub
            .publish(Event::default().data(&payload))
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    srv.shared
        .hub
        .publish(Event::default().event("last").unwrap().data("end"))
        .await
        .unwrap();
    // Now read everything the server sends until the last event.
    let mut seen = Vec::new();
    let found = tokio::time::timeout(GUARD, async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed early");
            let from = seen.len().saturating_sub(16);
            seen.extend_from_slice(&buf[..n]);
            if seen[from..].windows(11).any(|w| w == b"event: last") {
                break;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the last event arrived");
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("event: lagged\ndata: {\"missed\":"),
        "told about the gap"
    );
    let delivered = text.matches("data: xxxx").count();
    assert!(
        delivered < 400,
        "{delivered} of 400 delivered: some were skipped"
    );
    // The hub counts what its policy did, for the metrics and alerts.
    let stats = srv.shared.hub.stats();
    assert!(stats.skipped_ahead >= 1, "{stats:?}");
    assert!(stats.missed_events >= (400 - delivered) as u64, "{stats:?}");
    assert_eq!(stats.disconnected, 0, "{stats:?}");
    drop(s);
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn head_on_an_event_stream_answers_headers_and_ends() {
    let srv = start().await;
    for h2 in [false, true] {
        let req = http::Request::head(format!("http://{}/events", srv.addr))
            .header("host", srv.addr.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = match client(srv.addr, h2).await {
            Client::H1(mut c) => c.send_request(req).await,
            Client::H2(mut c) => c.send_request(req).await,
        }
        .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        assert!(body_of(res).await.unwrap().is_empty(), "h2={h2}");
    }
    // the subscriptions made for the HEAD requests were dropped with their bodies
    assert_eq!(srv.shared.hub.backend().subscribers(), 0);
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}
