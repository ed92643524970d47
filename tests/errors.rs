//! Every built-in error over real sockets, in each rendering: plain text (the default, byte for
//! byte what conduit always wrote), RFC 9457 problem+json, the app's own renderer, and the
//! `Accept`-negotiated choice; where the renderer is installed (server, router) and which wins.

mod common;

use std::time::Duration;

use common::*;
use conduit::middleware::{Decompression, Quota, RateLimit, Recovery, Timeout};
use conduit::stream::hub::Hub;
use conduit::{
    Config, ErrorRenderer, HandlerExt, IntoResponse, Json, Problem, Request, RequestExt, Router,
    ServeDir, Server, get, post,
};
use conduit_core::http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

/// Said by the handlers that panic: it must never reach a client.
const SECRET: &str = "secret panic text at /srv/app/db.sqlite";

#[derive(Deserialize)]
#[allow(dead_code)]
struct NewTodo {
    title: String,
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Search {
    page: u32,
}

/// An app that can answer every built-in error.
fn app(static_root: &std::path::Path) -> Router {
    let hub = Hub::new();
    Router::new()
        .route(
            "/json",
            post(|req: Request| async move { req.json::<NewTodo>().await.map(|t| t.title) }),
        )
        .route(
            "/items/{id}",
            get(|req: Request| async move { req.path::<u32>().map(|id| id.to_string()) }),
        )
        .route(
            "/search",
            get(|req: Request| async move { req.query::<Search>().map(|s| s.page.to_string()) }),
        )
        .route(
            "/slow",
            get((|_req: Request| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            })
            .with(Timeout::new(Duration::from_millis(30)))),
        )
        .route(
            "/slow408",
            get((|_req: Request| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            })
            .with(
                Timeout::new(Duration::from_millis(30))
                    .status(StatusCode::REQUEST_TIMEOUT)
                    .message("the handler did not answer in time"),
            )),
        )
        .route(
            "/limited",
            get((|_req: Request| async { "ok" })
                .with(RateLimit::new(Quota::per_minute(1).burst(1)))),
        )
        .route(
            "/events",
            get(move |req: Request| {
                let hub = hub.clone();
                async move { hub.sse(&req).await.into_response() }
            }),
        )
        .route(
            "/panic",
            get((|_req: Request| async {
                if true {
                    panic!("{SECRET}");
                }
                "unreachable"
            })
            .with(Recovery::new())),
        )
        .route(
            "/server-panic",
            get(|_req: Request| async {
                if true {
                    panic!("{SECRET}");
                }
                "unreachable"
            }),
        )
        .route(
            "/inflate",
            post((|req: Request| async move { req.text().await }).with(Decompression::new())),
        )
        .mount("/static", ServeDir::new(static_root))
}

/// One request that gets a built-in error, and what the plain-text rendering has always been.
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<(&'static str, Vec<u8>)>,
    /// Request headers.
    headers: &'static [(&'static str, &'static str)],
    /// Requests sent first (to spend a rate limit).
    before: usize,
    status: u16,
    /// The plain-text body, exactly (empty for a bodiless error, whose problem has no detail).
    text: &'static str,
    /// Headers that must survive every rendering, with their values.
    keep: &'static [(&'static str, &'static str)],
    /// Headers that must be present (values vary).
    present: &'static [&'static str],
    /// The problem's `errors` member, if any.
    errors: Option<Value>,
}

impl Case {
    const fn new(name: &'static str, method: &'static str, path: &'static str) -> Self {
        Case {
            name,
            method,
            path,
            body: None,
            headers: &[],
            before: 0,
            status: 0,
            text: "",
            keep: &[],
            present: &[],
            errors: None,
        }
    }
}

fn cases() -> Vec<Case> {
    let json = |b: &str| Some(("application/json", b.as_bytes().to_vec()));
    vec![
        Case {
            status: 404,
            text: "Not Found",
            ..Case::new("router 404", "GET", "/nowhere")
        },
        Case {
            status: 405,
            text: "Method Not Allowed: DELETE (allowed: POST)",
            keep: &[("allow", "POST")],
            ..Case::new("router 405", "DELETE", "/json")
        },
        Case {
            status: 400,
            body: json(r#"{"title":"#),
            text: "Malformed JSON body: EOF while parsing a value at line 1 column 9",
            ..Case::new("malformed JSON 400", "POST", "/json")
        },
        Case {
            status: 415,
            body: Some(("text/plain", b"{}".to_vec())),
            text: "Expected a request with `Content-Type: application/json`",
            ..Case::new("content type 415", "POST", "/json")
        },
        Case {
            status: 422,
            body: json(r#"{"title":"a","tags":["x",5]}"#),
            text: "JSON body does not match the expected shape: invalid type: integer `5`, expected a string at line 1 column 26",
            errors: Some(
                json!([{"pointer": "/tags/1", "detail": "invalid type: integer `5`, expected a string"}]),
            ),
            ..Case::new("JSON shape 422", "POST", "/json")
        },
        Case {
            status: 422,
            body: json(r#"{"tags":[]}"#),
            text: "JSON body does not match the expected shape: missing field `title` at line 1 column 11",
            errors: Some(json!([{"pointer": "/title", "detail": "missing field `title`"}])),
            ..Case::new("missing field 422", "POST", "/json")
        },
        Case {
            status: 413,
            body: json(&format!(r#"{{"title":"{}","tags":[]}}"#, "a".repeat(2000))),
            text: "request body is larger than the limit of 1024 bytes",
            ..Case::new("server body limit 413", "POST", "/json")
        },
        Case {
            status: 400,
            text: "Invalid path parameter `id`: `x` is not a valid u32",
            errors: Some(json!([{"parameter": "id", "detail": "`x` is not a valid u32"}])),
            ..Case::new("path parameter 400", "GET", "/items/x")
        },
        Case {
            status: 400,
            text: "Invalid query string: invalid digit found in string",
            errors: Some(json!([{"parameter": "page", "detail": "invalid digit found in string"}])),
            ..Case::new("query 400", "GET", "/search?page=two")
        },
        Case {
            status: 503,
            text: "Service Unavailable: the request timed out",
            ..Case::new("timeout 503", "GET", "/slow")
        },
        Case {
            status: 408,
            text: "the handler did not answer in time",
            ..Case::new("timeout 408", "GET", "/slow408")
        },
        Case {
            status: 429,
            before: 1,
            text: "Too Many Requests",
            keep: &[("ratelimit-limit", "1"), ("ratelimit-remaining", "0")],
            present: &["retry-after", "ratelimit-reset"],
            ..Case::new("rate limit 429", "GET", "/limited")
        },
        Case {
            status: 400,
            text: "Last-Event-ID is not an event id of this stream",
            ..Case::new("hub Last-Event-ID 400", "GET", "/events")
        },
        Case {
            status: 500,
            text: "Internal Server Error",
            ..Case::new("recovery 500", "GET", "/panic")
        },
        Case {
            status: 500,
            text: "Internal Server Error",
            ..Case::new("server panic 500", "GET", "/server-panic")
        },
        Case {
            status: 404,
            text: "Not Found",
            ..Case::new("static 404", "GET", "/static/missing.txt")
        },
        Case {
            status: 405,
            text: "Method Not Allowed: POST (static files answer GET and HEAD)",
            keep: &[("allow", "GET, HEAD")],
            ..Case::new("static 405", "POST", "/static/a.txt")
        },
        Case {
            status: 400,
            text: "Bad Request: path has a . or .. segment",
            ..Case::new("static path 400", "GET", "/static/%2e%2e/secret.txt")
        },
        Case {
            status: 412,
            headers: &[("if-match", "\"not-the-tag\"")],
            present: &["etag", "last-modified"],
            ..Case::new("static precondition 412", "GET", "/static/a.txt")
        },
        Case {
            status: 416,
            headers: &[("range", "bytes=5-9")],
            keep: &[("content-range", "bytes */1")],
            ..Case::new("static range 416", "GET", "/static/a.txt")
        },
        Case {
            status: 415,
            body: Some(("text/plain", b"hi".to_vec())),
            text: "Unsupported Media Type: request Content-Encoding `bogus` (accepted: gzip, deflate, br, zstd, one at a time)",
            keep: &[("accept-encoding", "gzip, deflate, br, zstd")],
            ..Case::new("decompression 415", "POST", "/inflate")
        },
    ]
}

/// How a rendering must look, given the plain-text body it stands for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rendered {
    Text,
    ProblemJson,
    Custom,
}

fn custom() -> ErrorRenderer {
    ErrorRenderer::custom(|problem: Problem| {
        let mut res = Json(json!({
            "code": problem.status().as_u16(),
            "message": problem.text(),
        }))
        .into_response();
        *res.status_mut() = problem.status();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.test.error+json"),
        );
        res
    })
}

async fn serve(config: Config, static_root: &std::path::Path) -> Running {
    start(config.max_body_bytes(1024), app(static_root)).await
}

fn static_root() -> TempDir {
    let dir = TempDir::new("errors");
    dir.write("a.txt", "a");
    dir
}

async fn send_case(addr: std::net::SocketAddr, case: &Case, accept: Option<&str>) -> Reply {
    let mut req = request(case.method, case.path);
    if case.path == "/events" {
        req = req.header("last-event-id", "not-a-number");
    }
    if case.path == "/inflate" {
        req = req.header("content-encoding", "bogus");
    }
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    for (k, v) in case.headers {
        req = req.header(*k, *v);
    }
    let req = match &case.body {
        Some((ct, body)) => req
            .header("content-type", *ct)
            .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
            .unwrap(),
        None => req.body(empty()).unwrap(),
    };
    fetch(addr, req).await
}

/// What a problem's `text()` is for `case`: its plain-text body, or for a bodiless error the
/// status's reason phrase.
fn expected_text<'a>(case: &'a Case, reply: &Reply) -> &'a str {
    if case.text.is_empty() {
        reply.status.canonical_reason().unwrap()
    } else {
        case.text
    }
}

/// Check one reply against its case in one rendering.
fn check(case: &Case, reply: &Reply, rendered: Rendered) {
    let name = format!("{} ({rendered:?})", case.name);
    assert_eq!(
        reply.status.as_u16(),
        case.status,
        "{name}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    for (k, v) in case.keep {
        assert_eq!(reply.header(k), Some(*v), "{name}: header {k}");
    }
    for k in case.present {
        assert!(reply.headers.contains_key(*k), "{name}: header {k} missing");
    }
    let body = String::from_utf8_lossy(&reply.body);
    for leak in ["secret", "/srv", "panicked", "db.sqlite"] {
        assert!(!body.contains(leak), "{name}: {leak} leaked: {body}");
    }
    match rendered {
        Rendered::Text => {
            assert_eq!(reply.text(), case.text, "{name}");
            if case.text.is_empty() {
                assert_eq!(reply.header("content-type"), None, "{name}");
            } else if case.name != "server panic 500" {
                assert_eq!(
                    reply.header("content-type"),
                    Some("text/plain; charset=utf-8"),
                    "{name}"
                );
            }
        }
        Rendered::ProblemJson => {
            assert_eq!(
                reply.header("content-type"),
                Some("application/problem+json"),
                "{name}"
            );
            let problem: Problem = serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| panic!("{name}: not a problem ({e}): {body}"));
            assert_eq!(problem.status().as_u16(), case.status, "{name}");
            assert_eq!(problem.type_uri(), "about:blank", "{name}");
            assert_eq!(
                Some(problem.title()),
                reply.status.canonical_reason(),
                "{name}"
            );
            // The detail (or the title, when the text only repeats it) is the text rendering.
            assert_eq!(problem.text(), expected_text(case, reply), "{name}");
            assert_eq!(problem.extension("errors"), case.errors.as_ref(), "{name}");
            let length: usize = reply.header("content-length").unwrap().parse().unwrap();
            assert_eq!(length, reply.body.len(), "{name}");
        }
        Rendered::Custom => {
            assert_eq!(
                reply.header("content-type"),
                Some("application/vnd.test.error+json"),
                "{name}"
            );
            let v: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(
                v,
                json!({"code": case.status, "message": expected_text(case, reply)}),
                "{name}"
            );
        }
    }
}

async fn run_all(config: Config, rendered: Rendered, accept: Option<&str>) {
    let root = static_root();
    let server = serve(config, root.path()).await;
    for case in cases() {
        for _ in 0..case.before {
            send_case(server.addr, &case, accept).await;
        }
        let reply = send_case(server.addr, &case, accept).await;
        check(&case, &reply, rendered);
    }
    // The server's own 400, for a request that breaks HTTP's rules (no Host).
    let mut raw_req = b"GET / HTTP/1.1\r\n".to_vec();
    if let Some(accept) = accept {
        raw_req.extend_from_slice(format!("accept: {accept}\r\n").as_bytes());
    }
    raw_req.extend_from_slice(b"\r\n");
    let reply = raw_text(server.addr, &raw_req, Duration::from_secs(5)).await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    match rendered {
        Rendered::Text => {
            assert!(
                head.contains("content-type: text/plain; charset=utf-8"),
                "{head}"
            );
            assert_eq!(body, "Bad Request: missing Host header");
        }
        Rendered::ProblemJson => {
            assert!(
                head.contains("content-type: application/problem+json"),
                "{head}"
            );
            let p: Problem = serde_json::from_str(body).unwrap();
            assert_eq!(p.text(), "Bad Request: missing Host header");
        }
        Rendered::Custom => {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["code"], 400);
        }
    }
    // A successful response is never touched.
    let ok = common::get(server.addr, "/items/7").await;
    assert_eq!((ok.status.as_u16(), ok.text()), (200, "7"));
    assert_eq!(ok.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[tokio::test]
async fn every_built_in_error_as_plain_text_is_unchanged() {
    run_all(config(), Rendered::Text, None).await;
}

#[tokio::test]
async fn every_built_in_error_as_problem_json() {
    run_all(
        config().errors(ErrorRenderer::problem_json()),
        Rendered::ProblemJson,
        None,
    )
    .await;
}

#[tokio::test]
async fn every_built_in_error_through_the_apps_renderer() {
    run_all(config().errors(custom()), Rendered::Custom, None).await;
}

#[tokio::test]
async fn accept_negotiates_json_or_text() {
    let json_accepts = [
        "application/problem+json",
        "application/json",
        "application/json, text/plain",
        "text/plain;q=0.5, application/json",
    ];
    for accept in json_accepts {
        run_all(
            config().errors(ErrorRenderer::negotiate()),
            Rendered::ProblemJson,
            Some(accept),
        )
        .await;
    }
    for accept in [
        "*/*",
        "text/plain, application/json;q=0.9",
        "text/html,*/*;q=0.8",
    ] {
        run_all(
            config().errors(ErrorRenderer::negotiate()),
            Rendered::Text,
            Some(accept),
        )
        .await;
    }
    run_all(
        config().errors(ErrorRenderer::negotiate()),
        Rendered::Text,
        None,
    )
    .await;

    // The negotiated answer says it varies by Accept.
    let root = static_root();
    let server = serve(config().errors(ErrorRenderer::negotiate()), root.path()).await;
    let reply = send_to(
        server.addr,
        "GET",
        "/nowhere",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(reply.header("vary"), Some("accept"));
}

#[tokio::test]
async fn head_gets_the_rendered_headers_without_a_body() {
    let root = static_root();
    let server = serve(config().errors(ErrorRenderer::problem_json()), root.path()).await;
    let reply = send_to(server.addr, "HEAD", "/nowhere", &[]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert!(reply.body.is_empty());
    let full = common::get(server.addr, "/nowhere").await;
    assert_eq!(
        reply.header("content-length").unwrap(),
        full.body.len().to_string()
    );
    // HTTP/2 too.
    let mut h2 = h2_client(server.addr).await;
    let reply = send(&mut h2, get_req("/items/nope")).await;
    assert_eq!(reply.status, 400);
    let p: Problem = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(p.extension("errors").unwrap()[0]["parameter"], "id");
}

#[tokio::test]
async fn the_routers_renderer_wins_over_the_servers() {
    let root = static_root();
    // Problem+json in the router, nothing on the server: the router's errors are JSON, and the
    // server's own 400 stays plain text.
    let router = app(root.path()).errors(ErrorRenderer::problem_json());
    let server = start(config(), router).await;
    let reply = common::get(server.addr, "/nowhere").await;
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let raw_reply = raw_text(
        server.addr,
        b"GET / HTTP/1.1\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        raw_reply.ends_with("Bad Request: missing Host header"),
        "{raw_reply}"
    );

    // Text in the router, problem+json on the server: the router's choice stands for what it
    // answered; middleware outside the router (a rate limit here) gets the server's.
    let router = app(root.path()).errors(ErrorRenderer::text());
    let outer = router.with(RateLimit::new(Quota::per_minute(1).burst(1)));
    let server = start(config().errors(ErrorRenderer::problem_json()), outer).await;
    let reply = common::get(server.addr, "/nowhere").await;
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.text(), "Not Found");
    let reply = common::get(server.addr, "/nowhere").await;
    assert_eq!(reply.status, 429);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert!(reply.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn readiness_503_while_draining_is_rendered() {
    let root = static_root();
    let server = Server::bind(
        config()
            .errors(ErrorRenderer::problem_json())
            .drain_delay(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let ready = server.handle().readiness();
    let app = app(root.path()).route("/ready", get(ready));
    let running = start_server(server, app);
    let reply = common::get(running.addr, "/ready").await;
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "ready"));
    let handle = running.handle.clone();
    handle.shutdown();
    assert!(
        eventually(Duration::from_secs(2), || handle.is_draining()).await,
        "draining"
    );
    let reply = common::get(running.addr, "/ready").await;
    assert_eq!(reply.status, 503);
    let p: Problem = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(p.detail(), Some("draining"));
}

#[tokio::test]
async fn a_body_past_the_read_timeout_is_a_rendered_408() {
    let root = static_root();
    let config = config()
        .errors(ErrorRenderer::problem_json())
        .read_timeout(Duration::from_millis(200));
    let server = serve(config, root.path()).await;
    let head = b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 40\r\n\r\n{\"title\":";
    let reply = raw_text(server.addr, head, Duration::from_secs(2)).await;
    assert_eq!(status_of(&reply), 408, "{reply}");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    let p: Problem = serde_json::from_str(body).unwrap();
    assert_eq!(
        p.detail(),
        Some("the request body did not arrive within the read timeout")
    );
}
