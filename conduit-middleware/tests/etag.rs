//! ETag and Cache-Control over a real socket with hyper's client.

mod wire;

use std::time::Duration;

use conduit_core::{Body, HandlerExt, IntoResponse, Json, Request, Router, get, post};
use conduit_middleware::{CacheControl, ETag};
use http::StatusCode;
use wire::{get as fetch, send, start};

fn app() -> Router {
    Router::new()
        .route(
            "/json",
            get(|_req: Request| async { Json(serde_json_value()) })
                .post(|_req: Request| async { Json(serde_json_value()) }),
        )
        .route(
            "/own",
            get(|_req: Request| async {
                let mut res = IntoResponse::into_response("own");
                res.headers_mut()
                    .insert("etag", "W/\"v7\"".parse().unwrap());
                res
            }),
        )
        .route(
            "/stream",
            get(|_req: Request| async {
                Body::new(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"streamed",
                )))
            }),
        )
        .route("/big", get(|_req: Request| async { "x".repeat(2048) }))
        .route(
            "/created",
            post(|_req: Request| async { (StatusCode::CREATED, "made") }),
        )
        .route(
            "/private",
            get((|_req: Request| async { "secret" }).with(CacheControl::no_store())),
        )
        .route(
            "/mine",
            get(|_req: Request| async {
                let mut res = IntoResponse::into_response("mine");
                res.headers_mut()
                    .insert("cache-control", "max-age=5".parse().unwrap());
                res
            }),
        )
        .layer(ETag::new().max_body_bytes(1024))
        .layer(CacheControl::public(Duration::from_secs(300)))
}

fn serde_json_value() -> std::collections::BTreeMap<&'static str, &'static str> {
    [("message", "Hello, World!")].into_iter().collect()
}

#[tokio::test]
async fn not_modified_round_trips() {
    let server = start(app()).await;
    let first = fetch(server.addr, "/json").await;
    assert_eq!(first.status, 200);
    let tag = first.header("etag").expect("etag").to_owned();
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() == 18,
        "{tag}"
    );
    assert_eq!(first.header("cache-control"), Some("public, max-age=300"));
    // Same body, same tag (deterministic hash).
    assert_eq!(
        fetch(server.addr, "/json").await.header("etag"),
        Some(&*tag)
    );

    let weak = format!("W/{tag}");
    let list = format!("\"nope\", {tag}");
    for inm in [tag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let res = send(server.addr, "GET", "/json", &[("if-none-match", inm)]).await;
        assert_eq!(res.status, StatusCode::NOT_MODIFIED, "If-None-Match: {inm}");
        assert!(res.body.is_empty());
        assert_eq!(res.header("etag"), Some(&*tag));
        assert_eq!(res.header("cache-control"), Some("public, max-age=300"));
        assert_eq!(res.header("content-type"), None);
    }
    // HEAD is conditional too.
    let res = send(server.addr, "HEAD", "/json", &[("if-none-match", &tag)]).await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);

    // No match, malformed, or not GET/HEAD: the full response.
    for inm in ["\"other\"", "garbage", "\"unterminated", "W/ \"x\""] {
        let res = send(server.addr, "GET", "/json", &[("if-none-match", inm)]).await;
        assert_eq!(res.status, 200, "If-None-Match: {inm}");
        assert_eq!(res.text(), r#"{"message":"Hello, World!"}"#);
    }
    let res = send(server.addr, "POST", "/json", &[("if-none-match", "*")]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("etag"), None);
}

#[tokio::test]
async fn handler_tags_streams_and_limits() {
    let server = start(app()).await;
    // The handler's own (weak) tag is kept and answered from.
    let res = fetch(server.addr, "/own").await;
    assert_eq!(res.header("etag"), Some("W/\"v7\""));
    let res = send(server.addr, "GET", "/own", &[("if-none-match", "\"v7\"")]).await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    assert_eq!(res.header("etag"), Some("W/\"v7\""));

    // Streamed and over-the-limit bodies get no tag, and If-None-Match: * does not apply.
    for path in ["/stream", "/big"] {
        let res = send(server.addr, "GET", path, &[("if-none-match", "*")]).await;
        assert_eq!(res.status, 200, "{path}");
        assert_eq!(res.header("etag"), None, "{path}");
    }
    // Errors get neither a tag nor the freshness policy.
    let res = fetch(server.addr, "/missing").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.header("etag"), None);
    assert_eq!(res.header("cache-control"), None);
}

#[tokio::test]
async fn cache_control_policies() {
    let server = start(app()).await;
    assert_eq!(
        fetch(server.addr, "/private").await.header("cache-control"),
        Some("no-store"),
        "the route's policy wins over the router's"
    );
    assert_eq!(
        fetch(server.addr, "/mine").await.header("cache-control"),
        Some("max-age=5"),
        "the handler's header is never overridden"
    );
    let res = send(server.addr, "POST", "/created", &[]).await;
    assert_eq!(res.status, 201);
    assert_eq!(res.header("cache-control"), Some("public, max-age=300"));
}

#[tokio::test]
async fn compressed_variants_get_304_too() {
    use conduit_middleware::Compression;
    let text = "conduit ".repeat(512);
    let app = Router::new()
        .route(
            "/text",
            get(move |_req: Request| {
                let text = text.clone();
                async move { text }
            }),
        )
        .layer(ETag::new())
        .with(Compression::new());
    let server = start(app).await;
    let gz = [("accept-encoding", "gzip")];
    let first = send(server.addr, "GET", "/text", &gz).await;
    assert_eq!(first.header("content-encoding"), Some("gzip"));
    let tag = first.header("etag").expect("etag").to_owned();
    assert!(tag.ends_with("-gzip\""), "{tag}");

    let res = send(
        server.addr,
        "GET",
        "/text",
        &[("accept-encoding", "gzip"), ("if-none-match", &tag)],
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        res.header("etag"),
        Some(&*tag),
        "the 304 names the variant the client has"
    );
    assert!(res.body.is_empty());
}
