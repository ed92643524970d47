//! The log output of real requests through a real server: one line per request, client errors
//! below WARN unless configured otherwise, and the reason for a 4xx still there at DEBUG.

mod common;

use common::*;
use conduit_core::http::StatusCode;
use conduit_core::{Error, Handler, HandlerExt, Request, Router, get};
use conduit_middleware::{Logging, Quota, RateLimit};
use tracing::Level;

/// The lines logged so far, less the server's own (listening, draining).
fn request_lines(logs: &Logs) -> Vec<String> {
    logs.text()
        .lines()
        .filter(|l| !l.contains("conduit_server"))
        .map(str::to_owned)
        .collect()
}

fn app(logging: Logging) -> impl Handler {
    Router::new()
        .route("/", get(|_r: Request| async { "ok" }))
        .route(
            "/bad",
            get(|_r: Request| async { Error::bad_request("Bad Request: no widget named ?") }),
        )
        .route(
            "/fail",
            get(|_r: Request| async { Error::internal(std::io::Error::other("disk on fire")) }),
        )
        .with(RateLimit::new(Quota::per_minute(5).burst(5)))
        .with(logging)
}

/// Sends GET `/`, `/nowhere` (404), `/bad` (400), `/fail` (500), POST `/` (405) and one more
/// GET `/` past the rate limit (429), over one connection, logging at `max_level`.
async fn run(logging: Logging, max_level: Level) -> Vec<String> {
    let (logs, _guard) = Logs::capture_at(max_level);
    let srv = start(app(logging)).await;
    let mut statuses = Vec::new();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nowhere"),
        ("GET", "/bad"),
        ("GET", "/fail"),
        ("POST", "/"),
        ("GET", "/"),
    ] {
        let req = request(path).method(method).body(empty()).unwrap();
        statuses.push(send(srv.addr, req).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::BAD_REQUEST,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::TOO_MANY_REQUESTS,
        ]
    );
    srv.handle.shutdown();
    request_lines(&logs)
}

fn level_of(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or_default()
}

fn request_line(lines: &[String], status: u16) -> &str {
    let field = format!("status={status}");
    let found: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("conduit_middleware::logging") && l.contains(&field))
        .collect();
    assert_eq!(found.len(), 1, "one request line with {field}: {lines:#?}");
    found[0]
}

// One thread: the server's tasks run where the scoped subscriber is set.
#[tokio::test(flavor = "current_thread")]
async fn one_line_per_request_and_client_errors_at_info() {
    let lines = run(Logging::new(), Level::INFO).await;
    // Six requests, and for the 5xx the error's own line with its cause (a client fault adds
    // nothing at INFO: not the router's 404/405, the handler's 400 nor the rate limit's 429).
    let others: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("conduit_middleware::logging"))
        .collect();
    assert_eq!(lines.len(), 7, "{lines:#?}");
    assert_eq!(others.len(), 1, "{others:#?}");
    assert!(
        others[0].contains("ERROR") && others[0].contains("disk on fire"),
        "{others:#?}"
    );
    for status in [200, 404, 400, 405, 429] {
        assert_eq!(
            level_of(request_line(&lines, status)),
            "INFO",
            "{status}: {lines:#?}"
        );
    }
    assert_eq!(level_of(request_line(&lines, 500)), "ERROR");
    assert!(
        !lines.iter().any(|l| level_of(l) == "WARN"),
        "nothing at WARN: {lines:#?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_level_of_client_errors_is_configurable_and_their_reason_is_at_debug() {
    let lines = run(Logging::new().client_error_level(Level::WARN), Level::INFO).await;
    for status in [404, 400, 405, 429] {
        assert_eq!(
            level_of(request_line(&lines, status)),
            "WARN",
            "{status}: {lines:#?}"
        );
    }
    assert_eq!(level_of(request_line(&lines, 200)), "INFO");

    let lines = run(
        Logging::new().client_error_level(Level::DEBUG),
        Level::DEBUG,
    )
    .await;
    assert_eq!(level_of(request_line(&lines, 400)), "DEBUG");
    let reason: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("conduit_core::error") && l.contains("no widget named"))
        .collect();
    assert_eq!(reason.len(), 1, "the 400's reason at DEBUG: {lines:#?}");
    assert_eq!(level_of(reason[0]), "DEBUG");
    assert!(
        lines
            .iter()
            .any(|l| level_of(l) == "DEBUG" && l.contains("rate limit exceeded (429)")),
        "{lines:#?}"
    );

    // With only WARN and above, the client errors at their default level leave no line.
    let lines = run(Logging::new(), Level::WARN).await;
    assert!(lines.iter().all(|l| level_of(l) == "ERROR"), "{lines:#?}");
    assert_eq!(
        lines.len(),
        2,
        "the 500's request line and its cause: {lines:#?}"
    );
}
