//! Tower interop over the wire (`conduit::tower`): real servers (conduit's, and `axum::serve`
//! for the other direction), real hyper clients.
//!
//! Covered: tower-http's CORS layer on conduit routes (preflight and simple request), a stack of
//! tower-http layers (set-header, propagate-header, sensitive-headers, trace, body limit) on a
//! conduit handler, an axum router mounted in conduit (its routes, a path parameter, its 404
//! and 405), back-pressure through `ConcurrencyLimit` (readiness awaited per request), a
//! conduit router nested in axum with `nest_service` and served by `axum::serve`, a
//! failing tower service (500, and the keep-alive connection still serves), and 5 MB uploads
//! echoed and streamed response bodies through each direction. The `tower_interop` example
//! binary is run too.
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Path;
use bytes::Bytes;
use common::*;
use conduit::http::{HeaderValue, StatusCode, header};
use conduit::tower::{HandlerService, ServiceHandler, TowerLayer};
use conduit::{Body, HandlerExt, Request, RequestExt, Response, Router, any, get, post};
use http_body_util::{BodyExt, Full};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::propagate_header::PropagateHeaderLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

const FIVE_MB: usize = 5 * 1024 * 1024;

/// 5 MB of a pattern that a dropped, repeated or reordered chunk would break.
/// POST a 5 MB body to `path` and check it comes back intact.
async fn assert_echoes<S: SendReq>(c: &mut S, path: &str) {
    let data = upload();
    let res = send(
        c,
        body_req("POST", path, "application/octet-stream", data.clone()),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{path}");
    assert_eq!(res.body.len(), FIVE_MB, "{path}");
    assert!(res.body == data, "{path}: echoed body differs");
}

fn upload() -> Bytes {
    (0..FIVE_MB)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn config() -> conduit::Config {
    common::config().max_body_bytes(8 << 20)
}

/// A conduit handler that streams the request body back as the response body.
async fn echo(req: Request) -> Response {
    Response::new(req.into_body())
}

/// A stream of chunks fed through a channel, so a test decides when each chunk is produced.
struct Chunks(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// Produces `first`, waits for `go` (sent once the client has received `first`), then `rest`:
/// a body that was buffered instead of streamed never lets the client see `first`.
fn gated_chunks(first: &'static str, rest: &'static str) -> (Chunks, oneshot::Sender<()>) {
    let (tx, rx) = mpsc::channel(1);
    let (go, gate) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tx.send(Bytes::from_static(first.as_bytes())).await.ok();
        if gate.await.is_ok() {
            tx.send(Bytes::from_static(rest.as_bytes())).await.ok();
        }
    });
    (Chunks(rx), go)
}

/// Reads a streamed response: the first data frame, then (after `go`) the rest.
async fn read_gated(res: http::Response<hyper::body::Incoming>, go: oneshot::Sender<()>) -> String {
    let mut body = res.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let frame = body.frame().await.expect("a frame").expect("frame ok");
            if let Ok(data) = frame.into_data() {
                break data;
            }
        }
    })
    .await
    .expect("the first chunk arrived while the producer was still waiting: it is streamed");
    go.send(()).expect("producer waiting");
    let rest = body.collect().await.expect("rest").to_bytes();
    format!(
        "{}{}",
        std::str::from_utf8(&first).unwrap(),
        std::str::from_utf8(&rest).unwrap()
    )
}

fn empty_req(method: &str, path: &str) -> http::request::Builder {
    request(method, path)
}

fn no_body(b: http::request::Builder) -> http::Request<Full<Bytes>> {
    b.body(Full::new(Bytes::new())).unwrap()
}

/// A CORS preflight for `method` on `path` from `origin`.
fn preflight(path: &str, origin: &str, method: &str) -> http::Request<Full<Bytes>> {
    no_body(
        empty_req("OPTIONS", path)
            .header("origin", origin)
            .header("access-control-request-method", method),
    )
}

/// A GET of `path` from `origin`.
fn get_from(path: &str, origin: &str) -> http::Request<Full<Bytes>> {
    no_body(empty_req("GET", path).header("origin", origin))
}

// ---------------------------------------------------------------------------------------------
// tower layers on conduit handlers
// ---------------------------------------------------------------------------------------------

fn cors_app() -> Router {
    let permissive = Router::new()
        .route("/hello", get(|_req: Request| async { "hello, any origin" }))
        .with(TowerLayer(CorsLayer::permissive()));
    let strict = Router::new()
        .route("/data", get(|_req: Request| async { "data" }))
        .with(TowerLayer(
            CorsLayer::new()
                .allow_origin([
                    HeaderValue::from_static("https://app.example"),
                    HeaderValue::from_static("https://admin.example"),
                ])
                .allow_methods([http::Method::GET, http::Method::PUT])
                .allow_headers(Any),
        ));
    Router::new()
        .mount("/cors", permissive)
        .mount("/strict", strict)
}

/// What a handler sees of its connection and route: `peer-ip template`.
fn seen(req: &Request) -> String {
    format!(
        "{} {}",
        req.connect_info()
            .map_or("-".into(), |c| c.peer_addr().ip().to_string()),
        req.matched_path().as_deref().unwrap_or("-")
    )
}

async fn where_from(req: Request) -> String {
    seen(&req)
}

/// A handler that reads them in `call` itself, before its future exists, as middleware do
/// (`TrustedProxies`, `RateLimit`).
struct ReadsInCall;

impl conduit::Handler for ReadsInCall {
    fn call(&self, req: Request) -> impl std::future::Future<Output = Response> + Send + use<> {
        let seen = seen(&req);
        async move { Response::new(Body::from(seen)) }
    }
}

/// The connection and the route template reach a handler behind tower's `Buffer`, which calls
/// the inner service on its worker task (the handler runs when the future comes back to the
/// request's task), and a task a handler spawns sees them only when it takes them along.
#[tokio::test]
async fn connection_and_template_reach_a_handler_behind_buffer_and_a_spawned_task() {
    let app = Router::new()
        .route(
            "/buffered/{id}",
            get(ReadsInCall.with(TowerLayer(tower::buffer::BufferLayer::new(16)))),
        )
        .route(
            "/plain/{id}",
            get(|req: Request| async move {
                let bare = tokio::spawn(async move { where_from(req).await });
                let bare = bare.await.unwrap();
                let mut req = Request::new(Body::empty());
                if let Some(info) = req.connect_info() {
                    req.extensions_mut().insert(info);
                }
                let carried = tokio::spawn(async move { where_from(req).await });
                format!("{bare} | {}", carried.await.unwrap())
            }),
        );
    let srv = start(config(), app).await;
    let mut c = h1_client(srv.addr).await;
    for _ in 0..3 {
        let res = send(&mut c, no_body(empty_req("GET", "/buffered/7"))).await;
        assert_eq!(res.text(), "127.0.0.1 /buffered/{id}");
    }
    let res = send(&mut c, no_body(empty_req("GET", "/plain/7"))).await;
    assert_eq!(res.text(), "- - | 127.0.0.1 -");
}

#[tokio::test]
async fn cors_layer_answers_preflight_and_decorates_simple_requests() {
    let srv = start(config(), cors_app()).await;
    let mut c = h1_client(srv.addr).await;

    // Preflight: answered by the layer (conduit's GET-only route would say 405).
    let res = send(
        &mut c,
        no_body(
            empty_req("OPTIONS", "/cors/hello")
                .header("origin", "https://elsewhere.example")
                .header("access-control-request-method", "PUT")
                .header("access-control-request-headers", "x-custom"),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(res.header("access-control-allow-methods"), Some("*"));
    assert_eq!(res.header("access-control-allow-headers"), Some("*"));
    assert!(res.body.is_empty());

    // Simple request: the handler answers, the layer adds its headers.
    let res = send(&mut c, get_from("/cors/hello", "https://elsewhere.example")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "hello, any origin");
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert!(res.header("vary").unwrap().contains("origin"));

    // An origin list keeps tower-http's semantics: a listed origin is echoed, others get none.
    let res = send(
        &mut c,
        preflight("/strict/data", "https://app.example", "PUT"),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(res.header("access-control-allow-methods"), Some("GET,PUT"));
    let res = send(&mut c, get_from("/strict/data", "https://evil.example")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("access-control-allow-origin"), None);
    // Conduit's routing still applies behind the layer.
    let res = send(&mut c, get_from("/strict/nope", "https://app.example")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_stack_of_tower_http_layers_keeps_each_layers_semantics() {
    init_tracing();
    let stack = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(PropagateHeaderLayer::new(header::HeaderName::from_static(
            "x-request-id",
        )))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(RequestBodyLimitLayer::new(FIVE_MB + 1024));
    let app = Router::new()
        .route(
            "/whoami",
            get(|req: Request| async move {
                let auth = &req.headers()[header::AUTHORIZATION];
                format!("sensitive={}", auth.is_sensitive())
            }),
        )
        .route(
            "/cached",
            get(|_req: Request| async {
                let mut res = Response::new(Body::from("cached"));
                res.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("max-age=60"),
                );
                res
            }),
        )
        .route("/echo", post(echo))
        .route(
            "/bytes",
            post(|req: Request| async move { req.bytes().await.map(|b| b.len().to_string()) }),
        )
        .layer(TowerLayer(stack));
    let srv = start(config(), app).await;
    let mut c = h1_client(srv.addr).await;

    let res = send(
        &mut c,
        no_body(
            empty_req("GET", "/whoami")
                .header("authorization", "Bearer secret")
                .header("x-request-id", "abc-123"),
        ),
    )
    .await;
    assert_eq!(res.text(), "sensitive=true");
    assert_eq!(res.header("x-request-id"), Some("abc-123"));
    assert_eq!(res.header("cache-control"), Some("no-store"));

    let res = send(&mut c, get_req("/cached")).await;
    assert_eq!(res.header("cache-control"), Some("max-age=60"));
    assert_eq!(res.header("x-request-id"), None);

    // 5 MB through the limit layer's `Limited` body and the trace layer's response body.
    let data = upload();
    let res = send(
        &mut c,
        body_req("POST", "/echo", "application/octet-stream", data.clone()),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body.len(), data.len());
    assert!(res.body == data, "echoed body differs");
    let res = send(
        &mut c,
        body_req("POST", "/bytes", "application/octet-stream", data.clone()),
    )
    .await;
    assert_eq!(res.text(), FIVE_MB.to_string());

    // Over the layer's limit by Content-Length: the layer's own 413, handler not called.
    let big = Bytes::from(vec![b'x'; FIVE_MB + 2048]);
    let res = send(&mut c, body_req("POST", "/echo", "text/plain", big)).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn back_pressure_shared_between_clones_holds_requests_until_ready() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // tower's ConcurrencyLimit keeps its semaphore behind an Arc, so the per-request clones
    // share it: with a limit of 1, the second request waits in `poll_ready` until the first
    // is answered.
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), max.clone());
    let slow = move |_req: Request| {
        let (n, m) = (n.clone(), m.clone());
        async move {
            let inside = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(inside, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            "done"
        }
    };
    let app = Router::new().route(
        "/slow",
        get(slow.with(TowerLayer(tower::limit::ConcurrencyLimitLayer::new(1)))),
    );
    let srv = start(config(), app).await;
    let started = Instant::now();
    let requests = (0..3).map(|_| {
        let addr = srv.addr;
        tokio::spawn(async move { common::get(addr, "/slow").await })
    });
    for r in join_all(requests).await {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "done");
    }
    assert_eq!(max.load(Ordering::SeqCst), 1, "never two inside at once");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "served one after another"
    );
}

async fn join_all(handles: impl Iterator<Item = tokio::task::JoinHandle<Reply>>) -> Vec<Reply> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.expect("request task"));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// tower services (axum) as conduit handlers
// ---------------------------------------------------------------------------------------------

fn axum_app() -> axum::Router {
    axum::Router::new()
        .route("/hi", axum::routing::get(|| async { "hi from axum" }))
        .route(
            "/users/{id}",
            axum::routing::get(|Path(id): Path<String>| async move { format!("axum user {id}") }),
        )
        .route(
            "/echo",
            axum::routing::post(|body: axum::body::Body| async move { body }),
        )
        .route(
            "/stream",
            axum::routing::get(|| async {
                let (chunks, go) = gated_chunks("first,", "rest");
                STREAM_GATE.lock().unwrap().replace(go);
                axum::body::Body::from_stream(chunks)
            }),
        )
}

/// The `/stream` producers' gates, handed from the handler to the test that reads the body.
static STREAM_GATE: std::sync::Mutex<Option<oneshot::Sender<()>>> = std::sync::Mutex::new(None);

#[derive(Clone)]
struct Failing {
    in_ready: bool,
}

impl tower::Service<Request> for Failing {
    type Response = Response;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Response, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.in_ready {
            Poll::Ready(Err(std::io::Error::other("backend gone (poll_ready)")))
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, _req: Request) -> Self::Future {
        std::future::ready(Err(std::io::Error::other("backend gone (call)")))
    }
}

fn conduit_with_axum() -> Router {
    Router::new()
        .route("/", get(|_req: Request| async { "Hello from conduit" }))
        .mount("/axum", ServiceHandler::new(axum_app()))
        .route(
            "/fail/call",
            any(ServiceHandler::new(Failing { in_ready: false })),
        )
        .route(
            "/fail/ready",
            any(ServiceHandler::new(Failing { in_ready: true })),
        )
}

#[tokio::test]
async fn axum_router_mounted_in_conduit() {
    let srv = start(config(), conduit_with_axum()).await;
    for mut c in [
        Box::new(h1_client(srv.addr).await) as Box<dyn ClientBox>,
        Box::new(h2_client(srv.addr).await),
    ] {
        let res = c.go(get_req("/axum/hi")).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.text(), "hi from axum");

        let res = c.go(get_req("/axum/users/42")).await;
        assert_eq!(res.text(), "axum user 42");
        let res = c.go(get_req("/axum/users/caf%C3%A9")).await;
        assert_eq!(
            res.text(),
            "axum user café",
            "axum percent-decodes its own params"
        );

        // axum's own 404 and 405 (conduit matched the mount and handed the request over).
        let res = c.go(get_req("/axum/nope")).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        let res = c.go(no_body(empty_req("DELETE", "/axum/hi"))).await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
        // conduit's 404 outside the mount.
        let res = c.go(get_req("/elsewhere")).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        let res = c.go(get_req("/")).await;
        assert_eq!(res.text(), "Hello from conduit");
    }
}

#[tokio::test]
async fn failing_tower_service_is_a_500_and_the_connection_stays_usable() {
    init_tracing();
    let srv = start(config(), conduit_with_axum()).await;
    let mut c = h1_client(srv.addr).await;
    for path in ["/fail/call", "/fail/ready", "/fail/call"] {
        let res = send(&mut c, get_req(path)).await;
        assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(res.text(), "Internal Server Error");
        assert_eq!(res.header("connection"), None, "no `connection: close`");
        // The same keep-alive connection (one TCP stream under this client) serves the next.
        assert!(!c.is_closed());
        let res = send(&mut c, get_req("/axum/hi")).await;
        assert_eq!(res.text(), "hi from axum");
    }
}

#[tokio::test]
async fn bodies_pass_through_an_axum_router_intact() {
    let srv = start(config(), conduit_with_axum()).await;
    let mut c = h1_client(srv.addr).await;
    assert_echoes(&mut c, "/axum/echo").await;

    let res = c
        .send_request(get_req("/axum/stream"))
        .await
        .expect("stream");
    let go = STREAM_GATE.lock().unwrap().take().expect("handler ran");
    assert_eq!(read_gated(res, go).await, "first,rest");
}

// ---------------------------------------------------------------------------------------------
// conduit handlers as tower services (in axum)
// ---------------------------------------------------------------------------------------------

fn conduit_api() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|req: Request| async move {
                format!(
                    "conduit user {} (matched {})",
                    req.param("id").unwrap_or_default(),
                    req.matched_path().as_deref().unwrap_or("?")
                )
            }),
        )
        .route("/echo", post(echo))
        .route(
            "/bytes",
            post(|req: Request| async move { req.bytes().await.map(|b| b.len().to_string()) }),
        )
        .route(
            "/stream",
            get(|_req: Request| async {
                let (chunks, go) = gated_chunks("conduit first,", "conduit rest");
                CONDUIT_GATE.lock().unwrap().replace(go);
                Body::from_stream(chunks)
            }),
        )
}

static CONDUIT_GATE: std::sync::Mutex<Option<oneshot::Sender<()>>> = std::sync::Mutex::new(None);

async fn serve_axum(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("axum::serve") });
    addr
}

#[tokio::test]
async fn conduit_router_nested_in_axum() {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "axum root" }))
        .nest_service("/conduit", HandlerService::new(conduit_api()));
    let addr = serve_axum(app).await;
    let mut c = h1_client(addr).await;

    let res = send(&mut c, get_req("/conduit/users/7")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "conduit user 7 (matched /users/{id})");
    // conduit's own 404 and 405 inside the nested service.
    let res = send(&mut c, get_req("/conduit/nope")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = send(&mut c, no_body(empty_req("DELETE", "/conduit/users/7"))).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.header("allow"), Some("GET, HEAD"));
    // HEAD answered by conduit's GET route, through axum.
    let res = send(&mut c, no_body(empty_req("HEAD", "/conduit/users/7"))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.is_empty());
    let res = send(&mut c, get_req("/")).await;
    assert_eq!(res.text(), "axum root");

    // 5 MB up, streamed back by the conduit handler (no conduit limit applies: axum's body).
    assert_echoes(&mut c, "/conduit/echo").await;

    // No conduit server, so no `BodyLimit`: the body helpers' 2 MiB default applies.
    let data = upload();
    let res = send(
        &mut c,
        body_req(
            "POST",
            "/conduit/bytes",
            "application/octet-stream",
            data.slice(..1 << 20),
        ),
    )
    .await;
    assert_eq!(res.text(), (1 << 20).to_string());
    // (on its own connection: hyper closes one whose request body was left unread)
    let res = send(
        &mut h1_client(addr).await,
        body_req(
            "POST",
            "/conduit/bytes",
            "application/octet-stream",
            data.clone(),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);

    // A streamed conduit body reaches the axum client chunk by chunk.
    let res = c
        .send_request(get_req("/conduit/stream"))
        .await
        .expect("stream");
    let go = CONDUIT_GATE.lock().unwrap().take().expect("handler ran");
    assert_eq!(read_gated(res, go).await, "conduit first,conduit rest");
}

#[tokio::test]
async fn conduit_handler_under_tower_service_builder_and_hyper_util() {
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    // hyper-util's adapter takes any tower service: the request body is hyper's `Incoming`.
    let service = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::SERVER,
            HeaderValue::from_static("conduit-in-tower"),
        ))
        .service(HandlerService::new(conduit_api()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let mut c = h1_client(addr).await;
    let res = send(&mut c, get_req("/users/9")).await;
    assert_eq!(res.text(), "conduit user 9 (matched /users/{id})");
    assert_eq!(res.header("server"), Some("conduit-in-tower"));
    let data = upload();
    let res = send(
        &mut c,
        body_req("POST", "/echo", "application/octet-stream", data.clone()),
    )
    .await;
    assert!(res.body == data, "echoed body differs");
}

// ---------------------------------------------------------------------------------------------
// the example binary
// ---------------------------------------------------------------------------------------------

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn tower_interop_example_serves_its_routes() {
    let bin = example_binary("tower_interop");
    let addr = free_addr();
    let mut child = Guard(
        Command::new(&bin)
            .env("ADDR", addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display())),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "example exited early"
        );
        assert!(
            Instant::now() < deadline,
            "example did not listen on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = h1_client(addr).await;
    assert_eq!(
        send(&mut c, get_req("/")).await.text(),
        "Hello from conduit"
    );
    let res = send(&mut c, get_from("/cors/hello", "https://a.example")).await;
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    let res = send(
        &mut c,
        preflight("/cors/hello", "https://a.example", "POST"),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        send(&mut c, get_req("/axum/hi")).await.text(),
        "hi from axum"
    );
    let res = send(&mut c, get_req("/axum/missing")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------

/// Both hyper client kinds behind one object, for tests that run over HTTP/1.1 and h2c.
trait ClientBox {
    fn go<'a>(
        &'a mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Pin<Box<dyn std::future::Future<Output = Reply> + 'a>>;
}

impl<S: SendReq> ClientBox for S {
    fn go<'a>(
        &'a mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Pin<Box<dyn std::future::Future<Output = Reply> + 'a>> {
        Box::pin(send(self, req))
    }
}
