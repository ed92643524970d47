//! CORS over a real socket: preflights and simple requests from a table.

mod wire;

use std::time::Duration;

use conduit_core::{HandlerExt, Request, Router, get, http::Method, post};
use conduit_middleware::Cors;
use wire::{send, start};

fn app(cors: Cors) -> impl conduit_core::Handler {
    Router::new()
        .route("/api", get(|_req: Request| async { "data" }))
        .route(
            "/write",
            post(|_req: Request| async {
                let mut res = conduit_core::IntoResponse::into_response("written");
                res.headers_mut()
                    .insert("vary", "accept-encoding".parse().unwrap());
                res.headers_mut().insert("x-total", "7".parse().unwrap());
                res
            }),
        )
        .with(cors)
}

fn strict() -> Cors {
    Cors::builder()
        .allow_origins(["https://app.example", "http://localhost:3000"])
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers(["content-type", "x-token"])
        .expose_headers(["x-total"])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
        .build()
        .unwrap()
}

struct Case {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// Expected headers; `None` = must be absent.
    expect: &'static [(&'static str, Option<&'static str>)],
}

const ORIGIN: &str = "https://app.example";

#[tokio::test]
async fn strict_policy_table() {
    let server = start(app(strict())).await;
    #[rustfmt::skip]
    let cases = [
        // Preflight for a POST-only route: 204 from the middleware, not the router's 405.
        Case { method: "OPTIONS", path: "/write", status: 204,
            headers: &[("origin", ORIGIN), ("access-control-request-method", "POST"),
                       ("access-control-request-headers", "content-type")],
            expect: &[("access-control-allow-origin", Some(ORIGIN)),
                      ("access-control-allow-credentials", Some("true")),
                      ("access-control-allow-methods", Some("GET,POST,DELETE")),
                      ("access-control-allow-headers", Some("content-type,x-token")),
                      ("access-control-max-age", Some("600"))] },
        // Preflight from an unknown origin: 204 without the allow headers.
        Case { method: "OPTIONS", path: "/api", status: 204,
            headers: &[("origin", "https://evil.example"), ("access-control-request-method", "GET")],
            expect: &[("access-control-allow-origin", None),
                      ("access-control-allow-methods", None),
                      ("access-control-allow-credentials", None)] },
        // Malformed origins are just not allowed.
        Case { method: "OPTIONS", path: "/api", status: 204,
            headers: &[("origin", "https://app.example/"), ("access-control-request-method", "GET")],
            expect: &[("access-control-allow-origin", None)] },
        Case { method: "GET", path: "/api", status: 200,
            headers: &[("origin", "null")],
            expect: &[("access-control-allow-origin", None), ("vary", Some("origin"))] },
        // A plain OPTIONS (no Access-Control-Request-Method) is not a preflight: the router answers.
        Case { method: "OPTIONS", path: "/api", status: 405,
            headers: &[("origin", ORIGIN)],
            expect: &[("access-control-allow-origin", Some(ORIGIN))] },
        // Simple request from an allowed origin.
        Case { method: "GET", path: "/api", status: 200,
            headers: &[("origin", "http://localhost:3000")],
            expect: &[("access-control-allow-origin", Some("http://localhost:3000")),
                      ("access-control-allow-credentials", Some("true")),
                      ("access-control-expose-headers", Some("x-total")),
                      ("vary", Some("origin"))] },
        // From a foreign origin: the response, without CORS headers, still varying on Origin.
        Case { method: "GET", path: "/api", status: 200,
            headers: &[("origin", "https://evil.example")],
            expect: &[("access-control-allow-origin", None),
                      ("access-control-expose-headers", None),
                      ("vary", Some("origin"))] },
        // Same-origin / non-browser request: no Origin, still Vary.
        Case { method: "GET", path: "/api", status: 200, headers: &[],
            expect: &[("access-control-allow-origin", None), ("vary", Some("origin"))] },
        // 404s get the headers too (the middleware wraps the whole router).
        Case { method: "GET", path: "/missing", status: 404, headers: &[("origin", ORIGIN)],
            expect: &[("access-control-allow-origin", Some(ORIGIN))] },
    ];
    for (i, c) in cases.iter().enumerate() {
        let res = send(server.addr, c.method, c.path, c.headers).await;
        assert_eq!(res.status.as_u16(), c.status, "case {i}");
        for (name, want) in c.expect {
            if *name == "vary" {
                let vary: Vec<&str> = res
                    .headers
                    .get_all("vary")
                    .iter()
                    .map(|v| v.to_str().unwrap())
                    .collect();
                assert!(vary.contains(&want.unwrap()), "case {i}: vary {vary:?}");
                continue;
            }
            assert_eq!(res.header(name), *want, "case {i}: {name}");
        }
    }

    // The handler's own Vary is kept, Origin added.
    let res = send(server.addr, "POST", "/write", &[("origin", ORIGIN)]).await;
    let vary: Vec<&str> = res
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(vary, ["accept-encoding", "origin"]);
    assert_eq!(res.header("access-control-expose-headers"), Some("x-total"));

    // Preflights vary on the request method and headers too.
    let res = send(
        server.addr,
        "OPTIONS",
        "/api",
        &[("origin", ORIGIN), ("access-control-request-method", "GET")],
    )
    .await;
    let vary: Vec<&str> = res
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        vary,
        [
            "origin",
            "access-control-request-method",
            "access-control-request-headers"
        ]
    );
}

#[tokio::test]
async fn permissive_and_predicate_policies() {
    let server = start(app(Cors::permissive())).await;
    let res = send(
        server.addr,
        "OPTIONS",
        "/write",
        &[
            ("origin", "https://any.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(res.status, 204);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(res.header("access-control-allow-methods"), Some("*"));
    assert_eq!(res.header("access-control-allow-headers"), Some("*"));
    assert_eq!(res.header("access-control-allow-credentials"), None);
    let res = send(
        server.addr,
        "GET",
        "/api",
        &[("origin", "https://any.example")],
    )
    .await;
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert!(
        res.headers.get("vary").is_none(),
        "`*` does not depend on the origin"
    );

    let subdomains = Cors::builder()
        .allow_origin_fn(|o| o.as_bytes().ends_with(b".corp.example"))
        .build()
        .unwrap();
    let server = start(app(subdomains)).await;
    let res = send(
        server.addr,
        "GET",
        "/api",
        &[("origin", "https://a.corp.example")],
    )
    .await;
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://a.corp.example")
    );
    let res = send(
        server.addr,
        "GET",
        "/api",
        &[("origin", "https://corp.example.evil")],
    )
    .await;
    assert_eq!(res.header("access-control-allow-origin"), None);
}

#[test]
fn wildcard_with_credentials_is_refused_at_build_time() {
    let err = Cors::builder()
        .allow_any_origin()
        .allow_credentials(true)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("allow_credentials"), "{err}");
}
