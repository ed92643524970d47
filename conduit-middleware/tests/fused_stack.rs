//! `Stack` (the recommended stack fused into one middleware) answers exactly like the five
//! layers composed in the recommended order, over real sockets; and the panic and timeout log
//! lines of both carry the request id.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use conduit_core::http::{HeaderMap, Method, StatusCode};
use conduit_core::{Body, Handler, HandlerExt, Request, Router, get};
use conduit_middleware::{Compression, Logging, Recovery, RequestId, Stack, Timeout, request_id};
use tracing_subscriber::layer::SubscriberExt;

const DEADLINE: Duration = Duration::from_millis(200);

fn routes() -> Router {
    let big = "conduit streams and compresses. ".repeat(200);
    Router::new()
        .route("/small", get(|_r: Request| async { "Hello, World!" }))
        .route(
            "/big",
            get(move |_r: Request| {
                let big = big.clone();
                async move { big }
            }),
        )
        .route(
            "/stream",
            get(|_r: Request| async {
                let chunks = (0..50).map(|i| {
                    Ok::<_, std::io::Error>(Bytes::from(format!("line {i} of a stream\n")))
                });
                Body::from_stream(tokio_stream::iter(chunks))
            }),
        )
        .route(
            "/id",
            get(|_r: Request| async { request_id::current().unwrap().to_string() }),
        )
        .route("/panic", get(panics))
        .route(
            "/slow",
            get(|_r: Request| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }),
        )
        .route(
            "/empty",
            get(|_r: Request| async { StatusCode::NO_CONTENT }),
        )
}

fn composed() -> impl Handler {
    routes()
        .with(Compression::new())
        .with(Timeout::new(DEADLINE))
        .with(Recovery::new())
        .with(Logging::new())
        .with(RequestId::new())
}

fn fused() -> impl Handler {
    routes().with(Stack::new().timeout(Timeout::new(DEADLINE)))
}

fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match encoding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::decode_all(body).unwrap(),
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

/// Status, the headers that must match (all but `date`, and `x-request-id` when generated),
/// the decoded body.
async fn exchange(
    addr: std::net::SocketAddr,
    method: &Method,
    path: &str,
    accept: Option<&str>,
    id: Option<&str>,
) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let mut req = request(path).method(method.clone());
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let (status, headers, body) = send(addr, req.body(empty()).unwrap()).await;
    let generated = headers["x-request-id"].to_str().unwrap().to_owned();
    match id {
        Some(id) if request_id::is_sane(id.as_bytes()) => assert_eq!(generated, id),
        _ => assert!(request_id::is_sane(generated.as_bytes()), "{generated}"),
    }
    let keep = |h: &HeaderMap| {
        let mut v: Vec<(String, String)> = h
            .iter()
            .filter(|(n, _)| *n != "date" && (*n != "x-request-id" || id.is_some()))
            .filter(|(n, _)| *n != "x-request-id" || request_id::is_sane(id.unwrap().as_bytes()))
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        v.sort();
        v
    };
    let encoding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    // A HEAD answer carries its GET's `Content-Encoding` and no body.
    let body = if *method == Method::HEAD {
        assert!(body.is_empty());
        body.to_vec()
    } else {
        decode(encoding.as_deref(), &body)
    };
    // `/id` answers with the (generated) id itself: compare what it must be.
    let body = if path == "/id" && status == StatusCode::OK && method == Method::GET {
        assert_eq!(body, generated.as_bytes());
        b"<id>".to_vec()
    } else {
        body
    };
    (status, keep(&headers), body)
}

#[tokio::test]
async fn fused_stack_answers_like_the_composed_layers() {
    let a = start(composed()).await;
    let b = start(fused()).await;
    let paths = [
        "/small", "/big", "/stream", "/id", "/panic", "/slow", "/empty", "/nowhere",
    ];
    let accepts = [
        None,
        Some("gzip"),
        Some("br;q=0.9, zstd"),
        Some("deflate, identity;q=0"),
        Some("gzip;q=0, identity;q=0"),
        Some("*;q=0"),
        Some("not a ; valid = list"),
    ];
    let ids = [None, Some("abc-123"), Some("bad id")];
    let mut checked = 0;
    for method in [Method::GET, Method::HEAD] {
        for path in paths {
            for accept in accepts {
                // The slow route waits for the deadline: once per method is enough.
                if path == "/slow" && accept.is_some() {
                    continue;
                }
                for id in ids {
                    let left = exchange(a.addr, &method, path, accept, id).await;
                    let right = exchange(b.addr, &method, path, accept, id).await;
                    assert_eq!(
                        left, right,
                        "{method} {path} accept={accept:?} id={id:?}: composed vs fused"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 200, "{checked}");
    // The cases above do reach every branch.
    let (status, headers, _) = exchange(b.addr, &Method::GET, "/big", Some("gzip"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains(&("content-encoding".into(), "gzip".into())));
    let (status, ..) = exchange(b.addr, &Method::GET, "/panic", None, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, ..) = exchange(b.addr, &Method::GET, "/slow", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Nothing acceptable: identity (RFC 9110 section 12.5.3), not 406.
    let (status, headers, _) = exchange(b.addr, &Method::GET, "/small", Some("*;q=0"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!headers.iter().any(|(n, _)| n == "content-encoding"));
    let (_, headers, _) = exchange(b.addr, &Method::HEAD, "/big", Some("gzip"), None).await;
    assert!(
        headers.contains(&("content-encoding".into(), "gzip".into())),
        "HEAD as GET"
    );
    a.handle.shutdown();
    b.handle.shutdown();
}

/// The warning/error of `target` logged for the request with id `id`.
async fn logged(events: &Events, target: &str, id: &str) -> BTreeMap<String, String> {
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        if let Some(e) =
            events.lock().unwrap().iter().find(|e| {
                e["target"] == target && e.get("request_id").map(String::as_str) == Some(id)
            })
        {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {target} event with request_id {id}: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// One thread: the server's tasks run where the scoped subscriber is set.
#[tokio::test(flavor = "current_thread")]
async fn panic_and_timeout_log_lines_carry_the_request_id() {
    let events: Events = Arc::default();
    let subscriber = tracing_subscriber::registry().with(Capture(events.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    for (name, srv) in [
        ("composed", start(composed()).await),
        ("fused", start(fused()).await),
    ] {
        for (path, status, target) in [
            (
                "/panic",
                StatusCode::INTERNAL_SERVER_ERROR,
                "conduit_middleware::recovery",
            ),
            (
                "/slow",
                StatusCode::SERVICE_UNAVAILABLE,
                "conduit_middleware::timeout",
            ),
        ] {
            let id = format!("{name}{path}");
            let req = request(path).header("x-request-id", &id).body(empty());
            let (got, headers, _) = send(srv.addr, req.unwrap()).await;
            assert_eq!(got, status, "{name} {path}");
            assert_eq!(headers["x-request-id"], id.as_str());
            let e = logged(&events, target, &id).await;
            if path == "/panic" {
                assert_eq!(e["panic"], "handler broke", "{e:?}");
            }
            // And the request's own log event, with the answered status.
            let e = logged(&events, "conduit_middleware::logging", &id).await;
            assert_eq!(e["status"], status.as_u16().to_string());
        }
        srv.handle.shutdown();
    }
    // Outside a request, there is no current id.
    assert!(request_id::current().is_none());
}
