use super::*;
use crate::Body;
use crate::{HandlerExt, Next, RequestExt, from_fn};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use http_body::Body as _;
use std::sync::Arc;

fn req(method: Method, uri: &str) -> Request {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap()
}

async fn body(res: Response) -> String {
    let bytes = crate::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn get_text(app: &impl Handler, uri: &str) -> (StatusCode, String) {
    let res = app.call(req(Method::GET, uri)).await;
    (res.status(), body(res).await)
}

/// A handler that echoes the path, query and params it sees.
async fn echo(req: Request) -> String {
    let params: Vec<String> = req
        .params()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{} [{}]", req.uri(), params.join(","))
}

#[tokio::test]
async fn static_routes_and_404() {
    let app = Router::new()
        .route("/", get(|_r: Request| async { "root" }))
        .route("/about", get(|_r: Request| async { "about" }));
    assert_eq!(get_text(&app, "/").await, (StatusCode::OK, "root".into()));
    assert_eq!(
        get_text(&app, "/about").await,
        (StatusCode::OK, "about".into())
    );
    let (status, _) = get_text(&app, "/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get_text(&app, "/about/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // No params, no extension.
    let app = Router::new().route(
        "/x",
        get(
            |r: Request| async move { format!("{}", r.extensions().get::<PathParams>().is_none()) },
        ),
    );
    assert_eq!(get_text(&app, "/x").await.1, "true");
}

#[tokio::test]
async fn params_are_percent_decoded() {
    let app = Router::new().route("/users/{id}/posts/{post}", get(echo));
    let (status, text) = get_text(&app, "/users/a%20b/posts/%E2%9C%93+x").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "/users/a%20b/posts/%E2%9C%93+x [id=a b,post=✓+x]");
    let app = Router::new().route(
        "/u/{id}",
        get(|r: Request| async move { r.param("id").unwrap_or("none").to_owned() }),
    );
    assert_eq!(get_text(&app, "/u/42").await.1, "42");
}

#[tokio::test]
async fn invalid_utf8_param_is_400() {
    let app = Router::new().route("/u/{id}", get(echo));
    let (status, _) = get_text(&app, "/u/%FF%FE").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A lone `%` is kept as is.
    assert_eq!(
        get_text(&app, "/u/100%").await,
        (StatusCode::OK, "/u/100% [id=100%]".into())
    );
}

#[tokio::test]
async fn catch_all() {
    let app = Router::new()
        .route("/files/{*path}", get(echo))
        .route("/files/special", get(|_r: Request| async { "special" }));
    assert_eq!(
        get_text(&app, "/files/a/b%2Fc.txt").await.1,
        "/files/a/b%2Fc.txt [path=a/b/c.txt]"
    );
    assert_eq!(get_text(&app, "/files/special").await.1, "special");
    assert_eq!(get_text(&app, "/files/").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn method_not_allowed_lists_methods() {
    let app = Router::new().route(
        "/",
        post(|_r: Request| async { "p" })
            .get(|_r: Request| async { "g" })
            .on(Method::from_bytes(b"PURGE").unwrap(), |_r: Request| async {
                "purge"
            }),
    );
    let res = app.call(req(Method::DELETE, "/")).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[header::ALLOW], "GET, HEAD, POST, PURGE");
    let res = app.call(req(Method::OPTIONS, "/")).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let res = app
        .call(req(Method::from_bytes(b"PURGE").unwrap(), "/"))
        .await;
    assert_eq!(body(res).await, "purge");

    let only_post = post(|_r: Request| async { "p" });
    let res = only_post.call(req(Method::HEAD, "/")).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[header::ALLOW], "POST");
}

#[tokio::test]
async fn any_catches_other_methods() {
    let app = Router::new().route(
        "/",
        get(|_r: Request| async { "get" }).any(|_r: Request| async { "any" }),
    );
    assert_eq!(body(app.call(req(Method::GET, "/")).await).await, "get");
    assert_eq!(body(app.call(req(Method::PUT, "/")).await).await, "any");
    let app = Router::new().route("/", any(|r: Request| async move { r.method().to_string() }));
    assert_eq!(
        body(app.call(req(Method::DELETE, "/")).await).await,
        "DELETE"
    );
}

#[tokio::test]
async fn head_uses_get_without_body() {
    let app = Router::new()
        .route("/", get(|_r: Request| async { "hello" }))
        .route(
            "/explicit",
            get(|_r: Request| async { "get" })
                .head(|_r: Request| async { (StatusCode::ACCEPTED, "") }),
        )
        .route(
            "/declared",
            get(|_r: Request| async {
                let mut h = http::HeaderMap::new();
                h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
                (h, Body::from_stream(futures_stream()))
            }),
        );
    let res = app.call(req(Method::HEAD, "/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "5");
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(res.body().size_hint().exact(), Some(0));
    assert_eq!(body(res).await, "");

    let res = app.call(req(Method::HEAD, "/explicit")).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    let res = app.call(req(Method::HEAD, "/declared")).await;
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "99");
    assert_eq!(body(res).await, "");
}

fn futures_stream() -> impl futures_core::Stream<Item = Result<&'static str, std::io::Error>> {
    struct Once(Option<&'static str>);
    impl futures_core::Stream for Once {
        type Item = Result<&'static str, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.take().map(Ok))
        }
    }
    Once(Some("streamed"))
}

#[tokio::test]
async fn route_twice_merges_methods() {
    let app = Router::new()
        .route("/", get(|_r: Request| async { "g" }))
        .route("/", post(|_r: Request| async { "p" }));
    assert_eq!(body(app.call(req(Method::POST, "/")).await).await, "p");
    assert_eq!(body(app.call(req(Method::GET, "/")).await).await, "g");
}

#[test]
#[should_panic(expected = "already has a handler for GET")]
fn duplicate_method_panics() {
    let _ = Router::new().route("/", get(echo)).route("/", get(echo));
}

#[test]
#[should_panic(expected = "conflict")]
fn conflicting_route_panics() {
    let _ = Router::new()
        .route("/{a}", get(echo))
        .route("/{b}", get(echo));
}

#[test]
#[should_panic(expected = "must start with `/`")]
fn route_without_slash_panics() {
    let _ = Router::new().route("users", get(echo));
}

#[tokio::test]
async fn mount_strips_prefix() {
    let app = Router::new().mount("/api", echo).route("/api2", get(echo));
    assert_eq!(get_text(&app, "/api").await.1, "/ []");
    assert_eq!(get_text(&app, "/api/").await.1, "/ []");
    assert_eq!(
        get_text(&app, "/api/users/7?page=2").await.1,
        "/users/7?page=2 []"
    );
    assert_eq!(get_text(&app, "/api?x=1").await.1, "/?x=1 []");
    assert_eq!(get_text(&app, "/api2").await.1, "/api2 []");
    assert_eq!(get_text(&app, "/apix").await.0, StatusCode::NOT_FOUND);
    // Mount answers every method.
    assert_eq!(
        body(app.call(req(Method::DELETE, "/api/x")).await).await,
        "/x []"
    );
}

#[tokio::test]
async fn mount_at_root_and_trailing_slash_prefix() {
    let app = Router::new()
        .route("/health", get(|_r: Request| async { "ok" }))
        .mount("/", echo);
    assert_eq!(get_text(&app, "/health").await.1, "ok");
    assert_eq!(get_text(&app, "/").await.1, "/ []");
    assert_eq!(get_text(&app, "/a/b?c").await.1, "/a/b?c []");
    let app = Router::new().mount("/v1/", echo);
    assert_eq!(get_text(&app, "/v1/x").await.1, "/x []");
    assert_eq!(get_text(&app, "/v1").await.1, "/ []");
}

#[tokio::test]
async fn original_uri_is_the_outermost() {
    let show = |r: Request| async move {
        let original = r.extensions().get::<OriginalUri>().map(|o| o.0.to_string());
        format!("{} {}", r.uri(), original.unwrap_or_default())
    };
    let inner = Router::new().mount("/b", show);
    let app = Router::new().nest("/a", inner);
    assert_eq!(get_text(&app, "/a/b/c?q=1").await.1, "/c?q=1 /a/b/c?q=1");
    // Absolute-form URIs (HTTP/2) keep scheme and authority.
    assert_eq!(
        get_text(&app, "http://example.com/a/b/c").await.1,
        "http://example.com/c http://example.com/a/b/c"
    );
}

#[tokio::test]
async fn nest_keeps_outer_params_and_appends_inner() {
    let inner = Router::new()
        .route("/posts/{id}", get(echo))
        .route("/", get(echo))
        .fallback(|_r: Request| async { (StatusCode::IM_A_TEAPOT, "inner fallback") });
    let app = Router::new().nest("/users/{id}", inner);
    assert_eq!(
        get_text(&app, "/users/7/posts/9").await.1,
        "/posts/9 [id=7,id=9]"
    );
    assert_eq!(get_text(&app, "/users/7").await.1, "/ [id=7]");
    assert_eq!(get_text(&app, "/users/7/").await.1, "/ [id=7]");
    assert_eq!(
        get_text(&app, "/users/7/nothing").await,
        (StatusCode::IM_A_TEAPOT, "inner fallback".into())
    );
    // `get` returns the innermost value of a repeated name.
    let inner = Router::new().route(
        "/{id}",
        get(|r: Request| async move { r.param("id").unwrap().to_owned() }),
    );
    let app = Router::new().nest("/u/{id}", inner);
    assert_eq!(get_text(&app, "/u/1/2").await.1, "2");
}

#[tokio::test]
async fn custom_fallback() {
    let app = Router::new()
        .route("/", get(echo))
        .fallback(
            |r: Request| async move { (StatusCode::NOT_FOUND, format!("no {}", r.uri().path())) },
        );
    assert_eq!(
        get_text(&app, "/x/y").await,
        (StatusCode::NOT_FOUND, "no /x/y".into())
    );
}

#[tokio::test]
async fn layer_wraps_routes_mounts_and_fallback_registered_before() {
    let mark = from_fn(|req: Request, next: Next| async move {
        let mut res = next.run(req).await;
        res.headers_mut()
            .insert("x-layer", HeaderValue::from_static("1"));
        res
    });
    let app = Router::new()
        .route("/a", get(echo))
        .mount("/m", echo)
        .layer(mark)
        .route("/b", get(echo));
    let res = app.call(req(Method::GET, "/a")).await;
    assert_eq!(res.headers()["x-layer"], "1");
    let res = app.call(req(Method::GET, "/m/x")).await;
    assert_eq!(res.headers()["x-layer"], "1");
    let res = app.call(req(Method::GET, "/nothing")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["x-layer"], "1");
    let res = app.call(req(Method::GET, "/b")).await;
    assert!(res.headers().get("x-layer").is_none());
    // HEAD via GET goes through the wrapped GET handler.
    let res = app.call(req(Method::HEAD, "/a")).await;
    assert_eq!(res.headers()["x-layer"], "1");
}

#[tokio::test]
async fn state_present_missing_and_nested() {
    #[derive(Clone)]
    struct Name(&'static str);
    #[derive(Clone)]
    struct Inner(u32);
    let show = |r: Request| async move {
        let name = r.state::<Name>().map(|n| n.0).unwrap_or("-");
        let inner = r.state::<Inner>().map(|i| i.0).unwrap_or(0);
        format!("{name} {inner}")
    };
    let nested = Router::new().route("/", get(show)).state(Inner(3));
    let app = Router::new()
        .route("/", get(show))
        .route(
            "/missing",
            get(|r: Request| async move { r.state::<Inner>().map(|i| i.0.to_string()) }),
        )
        .nest("/n", nested)
        .state(Name("outer"));
    assert_eq!(get_text(&app, "/").await.1, "outer 0");
    assert_eq!(get_text(&app, "/n").await.1, "outer 3");
    let (status, text) = get_text(&app, "/missing").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !text.contains("Inner"),
        "type names are logged, not sent: {text}"
    );
    // Without state the request carries no extension (the template is beside it).
    let app = Router::new().route(
        "/",
        get(|r: Request| async move { r.extensions().len().to_string() }),
    );
    assert_eq!(get_text(&app, "/").await.1, "0");
}

/// What a handler sees as `matched_path`, and what the response carries.
async fn matched(app: &Router, method: Method, uri: &str) -> (StatusCode, String, Option<String>) {
    let mut request = req(method, uri);
    request.extensions_mut().insert(RecordMatchedPath);
    let res = app.call(request).await;
    let on_response = res
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let status = res.status();
    (status, body(res).await, on_response)
}

fn show_matched() -> MethodRouter {
    get(|r: Request| async move {
        format!(
            "{} {}",
            r.matched_path().as_deref().unwrap_or("-"),
            r.param("id").unwrap_or("-")
        )
    })
}

#[tokio::test]
async fn matched_path_on_request_and_response() {
    let users = Router::new()
        .route("/", show_matched())
        .route("/{id}", show_matched())
        .route("/{id}/posts/{*rest}", show_matched());
    let teams = Router::new().nest("/{team}/users", users.clone());
    let app = Router::new()
        .route("/", show_matched())
        .route("/items/{id}", show_matched())
        .nest("/api/users", users)
        .nest("/teams", teams)
        .mount("/files", |r: Request| async move {
            r.matched_path().as_deref().unwrap_or("-").to_owned()
        })
        .layer(from_fn(|req: Request, next: Next| async move {
            // A layer sees the template too, also for nested routes.
            let seen = req.matched_path().as_deref().unwrap_or("-").to_owned();
            let mut res = next.run(req).await;
            res.headers_mut()
                .insert("x-seen", HeaderValue::from_str(&seen).unwrap());
            res
        }));
    let full = |t: &str| Some(t.to_owned());
    assert_eq!(
        matched(&app, Method::GET, "/").await,
        (StatusCode::OK, "/ -".into(), full("/"))
    );
    assert_eq!(
        matched(&app, Method::GET, "/items/42").await,
        (StatusCode::OK, "/items/{id} 42".into(), full("/items/{id}"))
    );
    assert_eq!(
        matched(&app, Method::GET, "/api/users/7").await,
        (
            StatusCode::OK,
            "/api/users/{id} 7".into(),
            full("/api/users/{id}")
        )
    );
    assert_eq!(
        matched(&app, Method::GET, "/api/users").await,
        (StatusCode::OK, "/api/users -".into(), full("/api/users"))
    );
    assert_eq!(
        matched(&app, Method::GET, "/api/users/7/posts/a/b").await.2,
        full("/api/users/{id}/posts/{*rest}")
    );
    assert_eq!(
        matched(&app, Method::GET, "/teams/red/users/9").await,
        (
            StatusCode::OK,
            "/teams/{team}/users/{id} 9".into(),
            full("/teams/{team}/users/{id}")
        )
    );
    assert_eq!(
        matched(&app, Method::GET, "/files/a/b.txt").await,
        (StatusCode::OK, "/files".into(), full("/files"))
    );
    // HEAD through GET keeps it.
    assert_eq!(
        matched(&app, Method::HEAD, "/items/1").await.2,
        full("/items/{id}")
    );
    // 404 (outer and nested fallback) and 405 carry none.
    assert_eq!(matched(&app, Method::GET, "/nowhere").await.2, None);
    assert_eq!(matched(&app, Method::GET, "/api/users/7/x").await.2, None);
    let (status, _, on_response) = matched(&app, Method::DELETE, "/items/1").await;
    assert_eq!(
        (status, on_response),
        (StatusCode::METHOD_NOT_ALLOWED, None)
    );
    let (status, _, on_response) = matched(&app, Method::DELETE, "/api/users/1").await;
    assert_eq!(
        (status, on_response),
        (StatusCode::METHOD_NOT_ALLOWED, None)
    );
    // The layer added after nesting wrapped the nested routes and saw their templates.
    let res = app.call(req(Method::GET, "/teams/a/users/1")).await;
    assert_eq!(res.headers()["x-seen"], "/teams/{team}/users/{id}");
    let res = app.call(req(Method::GET, "/files/x")).await;
    assert_eq!(res.headers()["x-seen"], "/files");
}

#[tokio::test]
async fn matched_path_goes_on_the_response_only_when_asked() {
    let app = Router::new().route(
        "/a/{id}",
        get(|r: Request| async move { r.matched_path().as_deref().unwrap_or_default().to_owned() }),
    );
    let res = app.call(req(Method::GET, "/a/1")).await;
    assert!(res.extensions().get::<MatchedPath>().is_none());
    assert_eq!(body(res).await, "/a/{id}"); // the handler still sees it
}

#[tokio::test]
async fn matched_path_is_shared_not_rebuilt() {
    // The template is built once per route: two requests get the same Arc.
    let app = Router::new().route("/a/{id}", get(|_r: Request| async { "" }));
    let recorded = |uri| {
        let mut r = req(Method::GET, uri);
        r.extensions_mut().insert(RecordMatchedPath);
        r
    };
    let one = app.call(recorded("/a/1")).await;
    let two = app.call(recorded("/a/2")).await;
    let one = one.extensions().get::<MatchedPath>().unwrap();
    let two = two.extensions().get::<MatchedPath>().unwrap();
    assert!(std::ptr::eq(one.as_str(), two.as_str()));
}

#[tokio::test]
async fn router_is_a_cheap_clone_and_a_handler() {
    let app = Router::new().route("/", get(echo));
    let clone = app.clone();
    assert!(Arc::ptr_eq(&app.inner, &clone.inner));
    let boxed = app.boxed();
    assert_eq!(
        boxed.call(req(Method::GET, "/")).await.status(),
        StatusCode::OK
    );
    assert!(format!("{clone:?}").contains("GET, HEAD"));
}

#[tokio::test]
async fn weird_targets_do_not_panic() {
    let app = Router::new().route("/{a}", get(echo)).mount("/m", echo);
    for uri in [
        "*",
        "/%",
        "/%%",
        "/m/%FF",
        "//",
        "/m//x",
        "http://h",
        "http://h?x=1",
    ] {
        let res = app.call(req(Method::OPTIONS, uri)).await;
        assert!(
            res.status().is_client_error() || res.status().is_success(),
            "{uri}: {}",
            res.status()
        );
    }
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri("example.com:443")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.call(connect).await.status(), StatusCode::NOT_FOUND);
}

#[test]
fn path_params_api() {
    let mut p = PathParams::new();
    assert!(p.is_empty());
    p.push("a", "1");
    let mut q = PathParams::new();
    q.push("b", "2");
    q.push("a", "3");
    p.append(q);
    assert_eq!(p.len(), 3);
    assert_eq!(p.get("a"), Some("3"));
    assert_eq!(p.get("b"), Some("2"));
    assert_eq!(p.get("c"), None);
    assert_eq!(format!("{p:?}"), r#"{"a": "1", "b": "2", "a": "3"}"#);
    assert!(p.push_decoded("x", "%C3%A9").is_ok());
    assert_eq!(p.get("x"), Some("é"));
    assert!(p.push_decoded("y", "%C3").is_err());
    assert_eq!(p.len(), 4);
}

/// `app.call(req)` as the server makes it: the call and every poll of its future with `info`
/// as the current connection.
async fn served(app: &Router, req: Request, info: &crate::ConnectInfo) -> Response {
    let mut conn = Some(std::sync::Arc::new(info.clone()));
    let mut fut = crate::with_connection(&mut conn, || Box::pin(app.call(req)));
    std::future::poll_fn(|cx| crate::with_connection(&mut conn, || fut.as_mut().poll(cx))).await
}

/// The connection and the template are beside the request, not in its extensions: the
/// handler reads them through the accessors, a route without parameters leaves the request
/// without a single extension, a nested router's finer template wins inside it, and nothing
/// is current once the request is done.
#[tokio::test]
async fn matched_path_and_connect_info_beside_the_request() {
    let seen = |req: Request| async move {
        // Read again after a yield: the values hold across polls, not only in the call.
        tokio::task::yield_now().await;
        format!(
            "{} {} {} {}",
            req.matched_path().as_deref().unwrap_or("-"),
            MatchedPath::of(&req).as_deref().unwrap_or("-"),
            req.connect_info()
                .map_or("-".into(), |c| c.peer_addr().to_string()),
            req.extensions().len(),
        )
    };
    let inner = Router::new().route("/{id}", get(seen));
    let app = Router::new()
        .route("/a", get(seen))
        .nest("/users", inner)
        .mount("/files", seen);
    let info = crate::ConnectInfo::new(
        "192.0.2.1:5000".parse().unwrap(),
        "127.0.0.1:80".parse().unwrap(),
    );
    let res = served(&app, req(Method::GET, "/a"), &info).await;
    assert_eq!(body(res).await, "/a /a 192.0.2.1:5000 0");
    // Nested: the outer router's mount, then the inner route (the extensions are the path
    // parameters and the original URI of the nest).
    let res = served(&app, req(Method::GET, "/users/7"), &info).await;
    assert_eq!(body(res).await, "/users/{id} /users/{id} 192.0.2.1:5000 2");
    let res = served(&app, req(Method::GET, "/files/x"), &info).await;
    assert_eq!(body(res).await, "/files /files 192.0.2.1:5000 1");
    // Asked for on the response too (as logging and metrics do).
    let mut recorded = req(Method::GET, "/users/7");
    recorded.extensions_mut().insert(RecordMatchedPath);
    let res = served(&app, recorded, &info).await;
    let on_response = res
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    assert_eq!(on_response.as_deref(), Some("/users/{id}"));
    let res = served(&app, req(Method::GET, "/a"), &info).await;
    assert!(res.extensions().get::<MatchedPath>().is_none());
    // Done: nothing is left current on this thread.
    let after = req(Method::GET, "/a");
    assert!(after.connect_info().is_none());
    assert!(after.matched_path().is_none());

    // Built by hand (no server): a plain `ConnectInfo` extension, found by the same accessor.
    let mut plain = req(Method::GET, "/a");
    plain.extensions_mut().insert(info.clone());
    let res = app.call(plain).await;
    assert_eq!(body(res).await, "/a /a 192.0.2.1:5000 1");
    assert_eq!(get_text(&app, "/a").await.1, "/a /a - 0");
    // A plain extension also overrides the connection (a PROXY-protocol peer).
    let mut corrected = req(Method::GET, "/a");
    let proxied = crate::ConnectInfo::new(
        "198.51.100.9:4000".parse().unwrap(),
        "127.0.0.1:80".parse().unwrap(),
    );
    corrected.extensions_mut().insert(proxied);
    let res = served(&app, corrected, &info).await;
    assert_eq!(body(res).await, "/a /a 198.51.100.9:4000 1");
}

/// A handler that sends a request of its own through another router sees its own template
/// again afterwards, and the inner request sees the inner route's.
#[tokio::test]
async fn an_inner_router_restores_the_outer_template() {
    let inner = Router::new().route(
        "/inner/{x}",
        get(|req: Request| async move { req.matched_path().as_deref().unwrap_or("-").to_owned() }),
    );
    let app = Router::new().route(
        "/outer",
        get(move |req: Request| {
            let inner = inner.clone();
            async move {
                let before = req.matched_path().as_deref().unwrap_or("-").to_owned();
                let res = inner.call(self::req(Method::GET, "/inner/1")).await;
                let nested = body(res).await;
                let after = req.matched_path().as_deref().unwrap_or("-").to_owned();
                format!("{before} {nested} {after}")
            }
        }),
    );
    assert_eq!(get_text(&app, "/outer").await.1, "/outer /inner/{x} /outer");
}

/// A panicking handler leaves nothing current behind it.
#[test]
fn a_panic_restores_the_outer_values() {
    let info = crate::ConnectInfo::new(
        "192.0.2.1:5000".parse().unwrap(),
        "127.0.0.1:80".parse().unwrap(),
    );
    let mut conn = Some(std::sync::Arc::new(info));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::with_connection(&mut conn, || panic!("handler panicked"))
    }));
    assert!(caught.is_err());
    assert!(conn.is_some(), "the connection went back to its holder");
    assert!(req(Method::GET, "/").connect_info().is_none());
}
