//! Request id, recovery, timeout and logging over real sockets; MatchedPath in the log event.

mod common;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use conduit_core::http::{StatusCode, header};
use conduit_core::{Body, Handler, HandlerExt, Request, Router, get};
use conduit_middleware::{Logging, Recovery, RequestId, RequestIdExt, Timeout};
use http_body_util::BodyExt;
use tracing_subscriber::layer::SubscriberExt;

fn id_app() -> impl Handler {
    (|req: Request| async move { req.request_id().unwrap_or("none").to_owned() })
        .with(RequestId::new())
}

#[tokio::test]
async fn request_id_is_reused_when_sane_and_generated_otherwise() {
    let srv = start(id_app()).await;
    let send_id = |id: Option<&'static [u8]>| {
        let mut req = request("/");
        if let Some(id) = id {
            req = req.header("x-request-id", http::HeaderValue::from_bytes(id).unwrap());
        }
        send(srv.addr, req.body(empty()).unwrap())
    };
    let (status, headers, body) = send_id(Some(b"abc-123")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-request-id"], "abc-123");
    assert_eq!(body, "abc-123");
    // Generated: unique, echoed, the same the handler saw.
    let (_, h1, b1) = send_id(None).await;
    let (_, h2, b2) = send_id(None).await;
    assert_eq!(h1["x-request-id"].as_bytes(), &b1[..]);
    assert_ne!(b1, b2);
    assert_eq!(h2["x-request-id"].as_bytes(), &b2[..]);
    // Not sane: replaced (never a 4xx/5xx for it).
    let long: &'static [u8] = Box::leak(vec![b'a'; 129].into_boxed_slice());
    for bad in [&b"has space"[..], b"", long, b"caf\xc3\xa9"] {
        let (status, headers, body) = send_id(Some(bad)).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(headers["x-request-id"].as_bytes(), bad);
        assert_eq!(headers["x-request-id"].as_bytes(), &body[..]);
    }
    let exactly_128: &'static [u8] = Box::leak(vec![b'z'; 128].into_boxed_slice());
    let (_, headers, _) = send_id(Some(exactly_128)).await;
    assert_eq!(headers["x-request-id"].as_bytes(), exactly_128);
    srv.handle.shutdown();

    // A custom header name.
    let app = (|req: Request| async move { req.request_id().unwrap_or("none").to_owned() })
        .with(RequestId::new().header(header::HeaderName::from_static("x-correlation-id")));
    let srv = start(app).await;
    let req = request("/")
        .header("x-correlation-id", "corr-1")
        .body(empty())
        .unwrap();
    let (_, headers, body) = send(srv.addr, req).await;
    assert_eq!(
        (headers["x-correlation-id"].to_str().unwrap(), &body[..]),
        ("corr-1", &b"corr-1"[..])
    );
    assert!(headers.get("x-request-id").is_none());
    srv.handle.shutdown();
}

#[tokio::test]
async fn generated_request_ids_are_unique_random_and_show_no_counter() {
    let srv = start(id_app()).await;
    let mut tx = client(srv.addr).await;
    let mut ids = Vec::new();
    for _ in 0..500 {
        let res = tx
            .send_request(request("/").body(empty()).unwrap())
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{id}"
        );
        ids.push(u128::from_str_radix(&id, 16).unwrap());
    }
    let unique: std::collections::HashSet<u128> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len());
    // Consecutive ids: no common prefix beyond chance, no step of one anywhere.
    let mut shared_prefix_digits = 0;
    for w in ids.windows(2) {
        let (a, b) = (w[0], w[1]);
        shared_prefix_digits += (a ^ b).leading_zeros() / 4;
        for shift in [0, 32, 64, 96] {
            assert_ne!(
                (b >> shift).wrapping_sub(a >> shift) & 0xffff_ffff,
                1,
                "{a:032x} {b:032x}"
            );
        }
    }
    // Random digits agree on a leading digit 1 time in 16: about 0.07 digits per pair.
    assert!(
        shared_prefix_digits < 100,
        "{shared_prefix_digits} shared leading digits"
    );
    srv.handle.shutdown();
}

/// Yields one chunk, then panics.
struct PanicAfterOne(bool);

impl futures_core::Stream for PanicAfterOne {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.0 {
            panic!("body broke");
        }
        self.0 = true;
        Poll::Ready(Some(Ok(Bytes::from_static(b"first chunk"))))
    }
}

fn recovery_app() -> impl Handler {
    Router::new()
        .route("/ok", get(|_r: Request| async { "fine" }))
        .route("/panic", get(panics))
        .route(
            "/panic-in-body",
            get(|_r: Request| async { Body::from_stream(PanicAfterOne(false)) }),
        )
        .with(Recovery::new())
        .with(RequestId::new())
}

#[tokio::test]
async fn panic_is_a_500_while_concurrent_requests_succeed() {
    let srv = start(recovery_app()).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let path = if i % 2 == 0 { "/panic" } else { "/ok" };
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            (path, send(addr, request(path).body(empty()).unwrap()).await)
        }));
    }
    for task in tasks {
        let (path, (status, headers, body)) = task.await.unwrap();
        assert!(headers.contains_key("x-request-id"));
        if path == "/panic" {
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body, "Internal Server Error"); // never the panic message
        } else {
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"fine"[..]));
        }
    }
    // A panic mid-body ends that response (the HTTP/1 connection is closed) ...
    // (hyper may close before it flushed the head: the client then sees an incomplete
    // message; either way the response never looks complete.)
    let mut c = client(srv.addr).await;
    let req = request("/panic-in-body").body(empty()).unwrap();
    match tokio::time::timeout(HANG, c.send_request(req))
        .await
        .unwrap()
    {
        Ok(res) => {
            assert_eq!(res.status(), StatusCode::OK);
            let collected = tokio::time::timeout(HANG, res.into_body().collect())
                .await
                .unwrap();
            assert!(
                collected.is_err(),
                "the body must end with an error, not look complete"
            );
        }
        Err(e) => assert!(e.is_incomplete_message(), "{e}"),
    }
    // ... and the server keeps serving.
    let (status, _, body) = send(srv.addr, request("/ok").body(empty()).unwrap()).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"fine"[..]));
    srv.handle.shutdown();
}

#[tokio::test]
async fn panic_mid_body_resets_only_that_http2_stream() {
    let srv = start(recovery_app()).await;
    let mut h2 = h2_client(srv.addr).await;
    let h2_request = |path: &str| {
        http::Request::get(format!("http://test{path}"))
            .body(empty())
            .unwrap()
    };
    // The stream is reset (before or after its head, as hyper happened to flush), never
    // completed.
    match tokio::time::timeout(HANG, h2.send_request(h2_request("/panic-in-body")))
        .await
        .unwrap()
    {
        Ok(res) => {
            let collected = tokio::time::timeout(HANG, res.into_body().collect())
                .await
                .unwrap();
            assert!(collected.is_err(), "the stream is reset, not completed");
        }
        Err(e) => assert!(format!("{e:?}").contains("Reset"), "{e:?}"),
    }
    // The same connection still serves.
    let res = tokio::time::timeout(HANG, h2.send_request(h2_request("/ok")))
        .await
        .unwrap()
        .expect("connection still open");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "fine");
    srv.handle.shutdown();
}

/// Sets its flag when dropped: proves the handler future was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn timeout_answers_503_and_cancels_the_handler() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let (t, d) = (ticks.clone(), dropped.clone());
    let slow = move |_r: Request| {
        let (ticks, dropped) = (t.clone(), d.clone());
        async move {
            let _flag = DropFlag(dropped);
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            #[allow(unreachable_code)]
            "never"
        }
    };
    let app = Router::new()
        .route(
            "/slow",
            get(slow.with(Timeout::new(Duration::from_millis(100)))),
        )
        .route(
            "/slow-504",
            get((|_r: Request| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            })
            .with(
                Timeout::new(Duration::from_millis(50))
                    .status(StatusCode::GATEWAY_TIMEOUT)
                    .message("took too long"),
            )),
        )
        .route(
            "/fast",
            get((|_r: Request| async { "quick" }).with(Timeout::new(Duration::from_secs(30)))),
        )
        .route(
            "/never",
            get((|_r: Request| async {
                tokio::task::yield_now().await; // pending once: the timer is armed
                "no limit"
            })
            .with(Timeout::new(Duration::MAX))),
        );
    let srv = start(app).await;
    let (status, _, body) = send(srv.addr, request("/slow").body(empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.is_empty());
    // The handler's future was dropped before the answer left: its work stopped.
    assert!(dropped.load(Ordering::SeqCst));
    let after = ticks.load(Ordering::SeqCst);
    assert!(after > 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        after,
        "the handler kept running"
    );

    let (status, _, body) = send(srv.addr, request("/slow-504").body(empty()).unwrap()).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::GATEWAY_TIMEOUT, &b"took too long"[..])
    );
    let (status, _, body) = send(srv.addr, request("/fast").body(empty()).unwrap()).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"quick"[..]));
    // A deadline past what `Instant` can hold means no limit, not a panic.
    let (status, _, body) = send(srv.addr, request("/never").body(empty()).unwrap()).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"no limit"[..]));
    srv.handle.shutdown();
}

/// A body that sends one chunk and then never ends.
struct Forever(bool);

impl futures_core::Stream for Forever {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.0 {
            return Poll::Pending;
        }
        self.0 = true;
        Poll::Ready(Some(Ok(Bytes::from_static(b"head is in time"))))
    }
}

#[tokio::test]
async fn streaming_body_is_not_cut_by_the_head_timeout_but_by_body_timeout() {
    let app = Router::new()
        .route(
            "/slow-body",
            get((|_r: Request| async {
                Body::from_stream(SlowChunks {
                    left: 3,
                    sleep: None,
                })
            })
            .with(Timeout::new(Duration::from_millis(20)))),
        )
        .route(
            "/forever",
            get(
                (|_r: Request| async { Body::from_stream(Forever(false)) }).with(
                    Timeout::new(Duration::from_secs(30)).body_timeout(Duration::from_millis(200)),
                ),
            ),
        );
    let srv = start(app).await;
    // The head is in time; the body takes longer than the head timeout and is still whole.
    let (status, _, body) = send(srv.addr, request("/slow-body").body(empty()).unwrap()).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"chunkchunkchunk"[..])
    );
    // body_timeout ends a body that streams too long.
    let res = send_streaming(srv.addr, request("/forever").body(empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let collected = tokio::time::timeout(HANG, res.into_body().collect())
        .await
        .unwrap();
    assert!(collected.is_err());
    srv.handle.shutdown();
}

/// Three chunks, 30 ms apart (longer than the 20 ms head timeout in total).
struct SlowChunks {
    left: u32,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl futures_core::Stream for SlowChunks {
    type Item = Result<&'static str, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(30))));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sleep = None;
        self.left -= 1;
        Poll::Ready(Some(Ok("chunk")))
    }
}

use std::future::Future as _;

// ---------------------------------------------------------------------------------------------
// Logging: capture the events with a test subscriber.
// ---------------------------------------------------------------------------------------------

/// Wait (bounded) until `n` request events (of `Logging`) are captured.
async fn wait_for(events: &Events, n: usize) -> Vec<BTreeMap<String, String>> {
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        {
            let got = events_of(events, "conduit_middleware::logging");
            if got.len() >= n {
                return got;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no log event");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// One thread: the server's tasks run where the scoped subscriber is set.
#[tokio::test(flavor = "current_thread")]
async fn one_log_event_per_request_with_its_fields() {
    let events: Events = Arc::default();
    let subscriber = tracing_subscriber::registry().with(Capture(events.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let users = Router::new().route("/{id}", get(|_r: Request| async { "user" }));
    let app = Router::new()
        .nest("/api/users", users)
        .route(
            "/stream",
            get(|_r: Request| async {
                Body::from_stream(SlowChunks {
                    left: 2,
                    sleep: None,
                })
            }),
        )
        .route(
            "/boom",
            get(|_r: Request| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .with(Logging::new())
        .with(RequestId::new());
    let srv = start(app).await;

    let req = request("/api/users/42?secret=1")
        .header("x-request-id", "req-1")
        .body(empty())
        .unwrap();
    let (status, _, _) = send(srv.addr, req).await;
    assert_eq!(status, StatusCode::OK);
    let e = wait_for(&events, 1).await.remove(0);
    assert_eq!(e["message"], "request");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["path"], "/api/users/42");
    assert_eq!(e["route"], "/api/users/{id}");
    assert_eq!(e["status"], "200");
    assert_eq!(e["bytes"], "4");
    assert_eq!(e["request_id"], "req-1");
    assert_eq!(e["version"], "HTTP/1.1");
    assert_eq!(e["completed"], "true");
    assert_eq!(e["level"], "INFO");
    assert!(e["peer"].starts_with("127.0.0.1:"), "{e:?}");
    assert!(e["latency_us"].parse::<u64>().is_ok());
    assert!(
        !e.values().any(|v| v.contains("secret")),
        "the query is not logged"
    );

    // 404: no route; INFO, like any request (a client error is no warning).
    send(srv.addr, request("/nowhere").body(empty()).unwrap()).await;
    let e = wait_for(&events, 2).await.remove(1);
    assert_eq!((e["status"].as_str(), e["level"].as_str()), ("404", "INFO"));
    assert!(!e.contains_key("route"));

    // A streamed body: logged when it completes, with its byte count.
    let (_, _, body) = send(srv.addr, request("/stream").body(empty()).unwrap()).await;
    assert_eq!(body, "chunkchunk");
    let e = wait_for(&events, 3).await.remove(2);
    assert_eq!(
        (e["route"].as_str(), e["bytes"].as_str()),
        ("/stream", "10")
    );
    assert_eq!(e["completed"], "true");

    // 5xx: ERROR.
    send(srv.addr, request("/boom").body(empty()).unwrap()).await;
    let e = wait_for(&events, 4).await.remove(3);
    assert_eq!(
        (e["status"].as_str(), e["level"].as_str()),
        ("500", "ERROR")
    );
    assert_eq!(
        events_of(&events, "conduit_middleware::logging").len(),
        4,
        "one event per request"
    );
    srv.handle.shutdown();
}
