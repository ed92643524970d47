//! The router over the wire: a real `conduit::Server` on 127.0.0.1:0, real hyper clients
//! (HTTP/1.1 and h2c prior knowledge) and raw sockets where the client would hide the bytes.
//!
//! Covered: static routes, named parameters (percent-decoded), catch-all, 404, 405 with `Allow`,
//! HEAD answered by GET, nest/mount prefix stripping, per-router `layer`, `Router::state`,
//! query decoding, JSON and form bodies with their error statuses, the server's body limit.
mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use conduit::http::HeaderValue;
use conduit::{
    Body, Error, Json, Next, OriginalUri, Request, RequestExt, Router, from_fn, get, post,
};
use serde::{Deserialize, Serialize};

/// The server's body limit in these tests: small, to tell it apart from the 2 MiB default of
/// the body helpers.
const MAX_BODY: usize = 4 * 1024;

#[derive(Clone)]
struct AppState {
    name: &'static str,
}

#[derive(Clone)]
struct ApiState {
    version: u32,
}

#[derive(Clone)]
struct Unregistered;

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct NewUser {
    name: String,
    age: u8,
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
    page: u32,
}

/// Everything a handler sees of its request: the URI, the path parameters, the URI before a
/// mount stripped its prefix, and the state of both routers.
async fn describe(req: Request) -> String {
    let params: Vec<String> = req
        .params()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let original = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| "-".to_owned(), |o| o.0.to_string());
    let app = req.state::<AppState>().map_or("-", |s| s.name);
    let api = req.state::<ApiState>().map_or(0, |s| s.version);
    format!(
        "{} [{}] original={original} app={app} api={api}",
        req.uri(),
        params.join(",")
    )
}

/// Adds `name: value` to every response of the handlers it wraps.
fn add_header(name: &'static str, value: &'static str) -> conduit::FromFn<impl AddHeaderFn> {
    from_fn(move |req: Request, next: Next| async move {
        let mut res = next.run(req).await;
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
        res
    })
}

/// The closure type of [`add_header`] (a named bound keeps the signature readable).
trait AddHeaderFn: Fn(Request, Next) -> Self::Fut + Clone + Send + Sync + 'static {
    type Fut: Future<Output = conduit::Response> + Send + 'static;
}

impl<F, Fut> AddHeaderFn for F
where
    F: Fn(Request, Next) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = conduit::Response> + Send + 'static,
{
    type Fut = Fut;
}

fn app() -> Router {
    let api = Router::new()
        .route("/", get(describe))
        .route("/users/{id}", get(describe))
        .layer(add_header("x-api", "v2"))
        .state(ApiState { version: 2 });

    Router::new()
        .route("/", get(|_req: Request| async { "home" }))
        .route("/about", get(|_req: Request| async { "about conduit" }))
        .route(
            "/items",
            get(|_req: Request| async { "list" }).post(|_req: Request| async { "created" }),
        )
        .route(
            "/users/{id}",
            get(|req: Request| async move {
                format!("user {}", req.param("id").unwrap_or_default())
            }),
        )
        .route("/teams/{team}/users/{user}", get(describe))
        .route(
            "/files/{*path}",
            get(|req: Request| async move {
                format!("file {}", req.param("path").unwrap_or_default())
            }),
        )
        .route(
            "/stream",
            get(|_req: Request| async {
                let chunks = ["one ", "two ", "three"].map(Ok::<_, std::io::Error>);
                Body::from_stream(StreamOf(chunks.into_iter()))
            }),
        )
        .route(
            "/search",
            get(|req: Request| async move {
                let s: Search = req.query()?;
                Ok::<_, Error>(format!("q={} page={}", s.q.unwrap_or_default(), s.page))
            }),
        )
        .route(
            "/json",
            post(|req: Request| async move { req.json::<NewUser>().await.map(Json) }),
        )
        .route(
            "/form",
            post(|req: Request| async move {
                let user: NewUser = req.form().await?;
                Ok::<_, Error>(format!("{} is {}", user.name, user.age))
            }),
        )
        .route(
            "/state",
            get(|req: Request| async move { req.state::<AppState>().map(|s| s.name) }),
        )
        .route(
            "/missing-state",
            get(|req: Request| async move { req.state::<Unregistered>().map(|_| "unreachable") }),
        )
        .route(
            "/version",
            get(|req: Request| async move { format!("{:?}", req.version()) }),
        )
        .nest("/api", api)
        .mount("/legacy", describe)
        .layer(add_header("x-layer", "outer"))
        .state(AppState { name: "conduit" })
}

/// A `Stream` over an iterator (no size hint the body could turn into `Content-Length`).
struct StreamOf<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for StreamOf<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

async fn start_app() -> Running {
    init_tracing();
    start(config().max_body_bytes(MAX_BODY as u64), app()).await
}

fn reply_text(r: &Reply) -> (u16, &str) {
    (r.status.as_u16(), r.text())
}

#[tokio::test]
async fn static_routes() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    let r = send(&mut c, get_req("/")).await;
    assert_eq!(reply_text(&r), (200, "home"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("4"));
    let r = send(&mut c, get_req("/about")).await;
    assert_eq!(reply_text(&r), (200, "about conduit"));
    let r = send(&mut c, body_req("POST", "/items", "text/plain", "x")).await;
    assert_eq!(reply_text(&r), (200, "created"));
    // matched as sent: a trailing slash is another path
    assert_eq!(send(&mut c, get_req("/about/")).await.status, 404);
}

#[tokio::test]
async fn named_params_are_percent_decoded() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    for (path, expect) in [
        ("/users/42", "user 42"),
        ("/users/a%20b", "user a b"),
        ("/users/caf%C3%A9", "user café"),
        ("/users/a%2Fb", "user a/b"), // an encoded slash stays inside one segment
        ("/users/a+b", "user a+b"),   // `+` is not a space in a path
    ] {
        let r = send(&mut c, get_req(path)).await;
        assert_eq!(reply_text(&r), (200, expect), "{path}");
    }
    let r = send(&mut c, get_req("/teams/red%20team/users/ana")).await;
    assert_eq!(
        reply_text(&r),
        (
            200,
            "/teams/red%20team/users/ana [team=red team,user=ana] original=- app=conduit api=0"
        )
    );
    // not UTF-8 once decoded: the client's fault
    let r = send(&mut c, get_req("/users/%FF")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("`id`"), "{}", r.text());
    // a parameter is one non-empty segment
    assert_eq!(send(&mut c, get_req("/users/")).await.status, 404);
    assert_eq!(send(&mut c, get_req("/users/1/2")).await.status, 404);
}

#[tokio::test]
async fn catch_all_takes_the_rest_of_the_path() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    let r = send(&mut c, get_req("/files/a/b/c.txt")).await;
    assert_eq!(reply_text(&r), (200, "file a/b/c.txt"));
    let r = send(&mut c, get_req("/files/my%20docs/x.txt?download=1")).await;
    assert_eq!(reply_text(&r), (200, "file my docs/x.txt"));
    assert_eq!(send(&mut c, get_req("/files/")).await.status, 404);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    for path in ["/nope", "/users", "/api-nope", "/legacyx"] {
        let r = send(&mut c, get_req(path)).await;
        assert_eq!(reply_text(&r), (404, "Not Found"), "{path}");
        // the fallback is wrapped by `layer` too
        assert_eq!(r.header("x-layer"), Some("outer"), "{path}");
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_exact_allow() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    for (method, path, allow) in [
        ("PUT", "/items", "GET, HEAD, POST"),
        ("DELETE", "/items", "GET, HEAD, POST"),
        ("DELETE", "/", "GET, HEAD"),
        ("POST", "/users/7", "GET, HEAD"),
        ("OPTIONS", "/about", "GET, HEAD"),
        ("GET", "/json", "POST"),
        ("HEAD", "/json", "POST"),
    ] {
        let req = request(method, path)
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let r = send(&mut c, req).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        // the router's own 405 runs before any per-route middleware
        assert_eq!(r.header("x-layer"), None, "{method} {path}");
    }
}

/// Splits a raw HTTP/1 reply into its head (status line and headers, lower-cased) and the rest.
fn split_reply(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)))
        + 4;
    (
        String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(),
        &raw[end..],
    )
}

#[tokio::test]
async fn head_is_answered_by_get_without_body_bytes() {
    let srv = start_app().await;
    let wait = Duration::from_secs(5);

    let out = raw(
        srv.addr,
        b"GET /about HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        wait,
    )
    .await;
    let (head, body) = split_reply(&out);
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-length: 13\r\n"), "{head}");
    assert_eq!(body, b"about conduit");

    // HEAD: same status and Content-Length, and not one byte of body on the wire.
    let out = raw(
        srv.addr,
        b"HEAD /about HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        wait,
    )
    .await;
    let (head, body) = split_reply(&out);
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-length: 13\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-layer: outer\r\n"), "{head}");
    assert!(body.is_empty(), "HEAD sent a body: {body:?}");

    // Pipelined HEAD then GET on one connection: a stray body byte would corrupt the second.
    let out = raw(
        srv.addr,
        b"HEAD /about HTTP/1.1\r\nHost: x\r\n\r\nGET /about HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        wait,
    )
    .await;
    let (first, rest) = split_reply(&out);
    assert!(first.contains("\r\ncontent-length: 13\r\n"), "{first}");
    let (second, body) = split_reply(rest);
    assert!(second.starts_with("http/1.1 200 ok\r\n"), "{second}");
    assert_eq!(body, b"about conduit");

    // A streamed GET body has no known size: HEAD says nothing about the length (no
    // `Content-Length: 0` lie, no chunked framing) and sends nothing.
    let out = raw(
        srv.addr,
        b"HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        wait,
    )
    .await;
    let (head, body) = split_reply(&out);
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(body.is_empty(), "HEAD sent a body: {body:?}");
    let r = send(&mut h1_client(srv.addr).await, get_req("/stream")).await;
    assert_eq!(reply_text(&r), (200, "one two three"));

    // hyper's client agrees (it hides the framing, but keeps the header)
    let req = request("HEAD", "/about")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let r = send(&mut h1_client(srv.addr).await, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("13"));
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn nest_and_mount_strip_the_prefix() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    for (path, expect) in [
        (
            "/api",
            "/ [] original=/api app=conduit api=2", //
        ),
        ("/api/", "/ [] original=/api/ app=conduit api=2"),
        (
            "/api/users/7?x=1",
            "/users/7?x=1 [id=7] original=/api/users/7?x=1 app=conduit api=2",
        ),
        (
            "/api/users/a%20b",
            "/users/a%20b [id=a b] original=/api/users/a%20b app=conduit api=2",
        ),
        ("/legacy", "/ [] original=/legacy app=conduit api=0"),
        (
            "/legacy/a/b?x=%20",
            "/a/b?x=%20 [] original=/legacy/a/b?x=%20 app=conduit api=0",
        ),
    ] {
        let r = send(&mut c, get_req(path)).await;
        assert_eq!(reply_text(&r), (200, expect), "{path}");
    }
    // the nested router's own 404 (its fallback), under the prefix
    let r = send(&mut c, get_req("/api/nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-api"), Some("v2"));
}

#[tokio::test]
async fn layer_wraps_its_own_router_only() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    let r = send(&mut c, get_req("/")).await;
    assert_eq!(r.header("x-layer"), Some("outer"));
    assert_eq!(r.header("x-api"), None);
    // the outer layer wraps the nested router as a whole; the inner one wraps its routes
    let r = send(&mut c, get_req("/api/users/1")).await;
    assert_eq!(r.header("x-layer"), Some("outer"));
    assert_eq!(r.header("x-api"), Some("v2"));
}

#[tokio::test]
async fn state_is_shared_with_handlers() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    let r = send(&mut c, get_req("/state")).await;
    assert_eq!(reply_text(&r), (200, "conduit"));
    // a missing state is a server bug: 500, with a generic message for the client
    let r = send(&mut c, get_req("/missing-state")).await;
    assert_eq!(reply_text(&r), (500, "Internal Server Error"));
}

#[tokio::test]
async fn query_is_decoded_and_bad_queries_are_400() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    let r = send(&mut c, get_req("/search?q=a%20b+c&page=2")).await;
    assert_eq!(reply_text(&r), (200, "q=a b c page=2"));
    let r = send(&mut c, get_req("/search?page=7&extra=ignored")).await;
    assert_eq!(reply_text(&r), (200, "q= page=7"));
    for path in [
        "/search?page=x",
        "/search",
        "/search?q=1",
        "/search?page=-1",
    ] {
        let r = send(&mut c, get_req(path)).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().starts_with("Invalid query string"), "{}", r.text());
    }
}

#[tokio::test]
async fn json_bodies() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    let json = "application/json";

    let r = send(
        &mut c,
        body_req("POST", "/json", json, r#"{"name":"ana","age":30}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let user: NewUser = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        user,
        NewUser {
            name: "ana".into(),
            age: 30
        }
    );

    for (content_type, body, status) in [
        ("text/plain", r#"{"name":"ana","age":30}"#, 415),
        ("application/jsonx", r#"{"name":"ana","age":30}"#, 415),
        (json, r#"{"name":"#, 400),
        (json, "{nope}", 400),
        (json, "", 400),
        (json, r#"{"name":"ana"}"#, 422),
        (json, r#"{"name":"ana","age":300}"#, 422),
        (json, r#"[1,2]"#, 422),
    ] {
        let r = send(&mut c, body_req("POST", "/json", content_type, body)).await;
        assert_eq!(r.status, status, "{content_type} {body}: {}", r.text());
    }
    // no content type at all
    let req = request("POST", "/json")
        .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(send(&mut c, req).await.status, 415);
}

fn json_of_size(len: usize) -> String {
    let overhead = r#"{"name":"","age":1}"#.len();
    format!(r#"{{"name":"{}","age":1}}"#, "a".repeat(len - overhead))
}

#[tokio::test]
async fn json_over_the_server_body_limit_is_413() {
    let srv = start_app().await;
    // just under the server's limit: fine
    let mut c = h1_client(srv.addr).await;
    let r = send(
        &mut c,
        body_req("POST", "/json", "application/json", json_of_size(MAX_BODY)),
    )
    .await;
    assert_eq!(r.status, 200);
    // over it (far under the 2 MiB default of the body helpers): 413
    let mut c = h1_client(srv.addr).await;
    let r = send(
        &mut c,
        body_req(
            "POST",
            "/json",
            "application/json",
            json_of_size(MAX_BODY + 1),
        ),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    // the same, chunked (no Content-Length to refuse early), on a raw socket
    let body = json_of_size(2 * MAX_BODY);
    let mut req = String::from(
        "POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for chunk in body.as_bytes().chunks(1000) {
        req.push_str(&format!("{:x}\r\n", chunk.len()));
        req.push_str(std::str::from_utf8(chunk).unwrap());
        req.push_str("\r\n");
    }
    req.push_str("0\r\n\r\n");
    let out = raw(srv.addr, req.as_bytes(), Duration::from_secs(5)).await;
    let (head, _) = split_reply(&out);
    assert!(head.starts_with("http/1.1 413 "), "{head}");
}

#[tokio::test]
async fn form_bodies() {
    let srv = start_app().await;
    let mut c = h1_client(srv.addr).await;
    let form = "application/x-www-form-urlencoded";
    let r = send(&mut c, body_req("POST", "/form", form, "name=ana+b&age=30")).await;
    assert_eq!(reply_text(&r), (200, "ana b is 30"));
    let r = send(
        &mut c,
        body_req(
            "POST",
            "/form",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "age=1&name=caf%C3%A9",
        ),
    )
    .await;
    assert_eq!(reply_text(&r), (200, "café is 1"));
    for (content_type, body, status) in [
        ("application/json", "name=ana&age=30", 415),
        ("multipart/form-data", "name=ana&age=30", 415),
        (form, "name=ana", 422),
        (form, "name=ana&age=old", 422),
    ] {
        let r = send(&mut c, body_req("POST", "/form", content_type, body)).await;
        assert_eq!(r.status, status, "{content_type} {body}: {}", r.text());
    }
}

#[tokio::test]
async fn http2_goes_through_the_same_router() {
    let srv = start_app().await;
    let mut c = h2_client(srv.addr).await;

    let r = send(&mut c, get_req("/version")).await;
    assert_eq!(reply_text(&r), (200, "HTTP/2.0"));
    assert_eq!(r.header("x-layer"), Some("outer"));
    let r = send(&mut c, get_req("/users/a%20b")).await;
    assert_eq!(reply_text(&r), (200, "user a b"));
    let r = send(&mut c, get_req("/files/a/b")).await;
    assert_eq!(reply_text(&r), (200, "file a/b"));
    assert_eq!(send(&mut c, get_req("/nope")).await.status, 404);

    let req = request("PUT", "/items")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let r = send(&mut c, req).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));

    let req = request("HEAD", "/about")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let r = send(&mut c, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("13"));
    assert!(r.body.is_empty());

    let r = send(&mut c, get_req("/api/users/9?x=1")).await;
    assert_eq!(
        reply_text(&r),
        (
            200,
            "/users/9?x=1 [id=9] original=/api/users/9?x=1 app=conduit api=2"
        )
    );
    assert_eq!(r.header("x-api"), Some("v2"));

    let r = send(&mut c, get_req("/search?q=h2&page=1")).await;
    assert_eq!(reply_text(&r), (200, "q=h2 page=1"));
    assert_eq!(send(&mut c, get_req("/search?page=no")).await.status, 400);

    let json = "application/json";
    let r = send(
        &mut c,
        body_req("POST", "/json", json, r#"{"name":"h2","age":2}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        serde_json::from_slice::<NewUser>(&r.body).unwrap().name,
        "h2"
    );
    let r = send(&mut c, body_req("POST", "/json", json, r#"{"age":2}"#)).await;
    assert_eq!(r.status, 422);
    let r = send(&mut c, body_req("POST", "/json", "text/plain", "{}")).await;
    assert_eq!(r.status, 415);
    let r = send(
        &mut c,
        body_req("POST", "/json", json, json_of_size(MAX_BODY + 1)),
    )
    .await;
    assert_eq!(r.status, 413);
    let r = send(
        &mut c,
        body_req(
            "POST",
            "/form",
            "application/x-www-form-urlencoded",
            "name=x&age=5",
        ),
    )
    .await;
    assert_eq!(reply_text(&r), (200, "x is 5"));

    // every request above shared one HTTP/2 connection
    assert_eq!(srv.handle.connections(), 1);
}
