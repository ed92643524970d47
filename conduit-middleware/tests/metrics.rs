//! Prometheus metrics over a real socket, the exposition read back with a real parser
//! (`prometheus-parse`).

mod wire;

use conduit_core::{Body, HandlerExt, Request, Router, get};
use conduit_middleware::prometheus_client::metrics::counter::Counter;
use conduit_middleware::{Metrics, MetricsRegistry};
use prom_text_format_parser::{Scrape, Type, ValueType};
use wire::{get as fetch, send, start};

/// Parse the exposition with a strict parser of the Prometheus text format.
fn parse(text: &str) -> Scrape {
    Scrape::parse(text).unwrap_or_else(|e| panic!("exposition does not parse: {e:?}\n{text}"))
}

fn metric<'a>(scrape: &'a Scrape, name: &str) -> &'a prom_text_format_parser::Metric {
    scrape
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// The values of `name`'s samples of `kind` whose labels include every pair in `labels`.
fn values(scrape: &Scrape, name: &str, kind: ValueType, labels: &[(&str, &str)]) -> Vec<f64> {
    metric(scrape, name)
        .samples
        .iter()
        .filter(|s| s.value.value_type == kind)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|l| l.key == *k && l.value == *v))
        })
        .map(|s| s.value.value.as_f64())
        .collect()
}

fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    values(scrape, name, ValueType::Sample, labels)
}

#[tokio::test]
async fn counters_after_a_known_sequence() {
    let registry = MetricsRegistry::new();
    let jobs: Counter = Counter::default();
    registry.register("jobs_done", "Jobs finished", jobs.clone());
    jobs.inc_by(3);

    let app = Router::new()
        .route(
            "/users/{id}",
            get(|req: Request| async move { format!("user {}", req.uri().path()) }),
        )
        .route(
            "/stream",
            get(|_req: Request| async {
                Body::new(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"12345",
                )))
            }),
        )
        .route("/metrics", get(registry.endpoint()))
        .with(
            Metrics::builder()
                .buckets([0.1, 1.0, 10.0])
                .register(&registry),
        );
    let server = start(app).await;

    for id in 1..=3 {
        assert_eq!(
            fetch(server.addr, &format!("/users/{id}")).await.status,
            200
        );
    }
    assert_eq!(fetch(server.addr, "/nope").await.status, 404);
    assert_eq!(fetch(server.addr, "/also/nope").await.status, 404);
    assert_eq!(
        send(server.addr, "DELETE", "/users/1", &[]).await.status,
        405
    );
    assert_eq!(send(server.addr, "BREW", "/users/1", &[]).await.status, 405);
    assert_eq!(fetch(server.addr, "/stream").await.text(), "12345");

    let res = fetch(server.addr, "/metrics").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = res.text().to_owned();
    let scrape = parse(&text);
    assert_eq!(metric(&scrape, "http_requests_total").kind, Type::Counter);
    assert_eq!(
        metric(&scrape, "http_request_duration_seconds").kind,
        Type::Histogram
    );
    assert_eq!(metric(&scrape, "http_requests_in_flight").kind, Type::Gauge);

    // One series for the parameterised route, not one per id (405s are unmatched).
    let users = sample(&scrape, "http_requests_total", &[("route", "/users/{id}")]);
    assert_eq!(users, [3.0], "{text}");
    let ok = sample(
        &scrape,
        "http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/users/{id}"),
            ("status", "200"),
        ],
    );
    assert_eq!(ok, [3.0]);
    assert!(!text.contains("/users/1"), "raw paths never become labels");

    // 404s share one label; 405s too; unknown methods share one.
    let missing = sample(
        &scrape,
        "http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
    );
    assert_eq!(missing, [2.0]);
    let other = sample(
        &scrape,
        "http_requests_total",
        &[
            ("method", "OTHER"),
            ("route", "unmatched"),
            ("status", "405"),
        ],
    );
    assert_eq!(other, [1.0]);

    // The histogram has the configured buckets and counts the same requests.
    let labels = [("route", "/users/{id}"), ("status", "200")];
    let hist = metric(&scrape, "http_request_duration_seconds");
    let bounds: Vec<&str> = hist
        .samples
        .iter()
        .filter(|s| s.value.value_type == ValueType::Sample)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|l| l.key == *k && l.value == *v))
        })
        .filter_map(|s| {
            s.labels
                .iter()
                .find(|l| l.key == "le")
                .map(|l| l.value.as_str())
        })
        .collect();
    assert_eq!(bounds, ["0.1", "1.0", "10.0", "+Inf"]);
    let inf: Vec<f64> = {
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        sample(&scrape, "http_request_duration_seconds", &l)
    };
    assert_eq!(inf, [3.0]);
    assert_eq!(
        values(
            &scrape,
            "http_request_duration_seconds",
            ValueType::Count,
            &labels
        ),
        [3.0]
    );
    let sum = values(
        &scrape,
        "http_request_duration_seconds",
        ValueType::Sum,
        &labels,
    );
    assert!(sum[0] > 0.0 && sum[0] < 30.0, "{sum:?}");

    // Body bytes: "user /users/N" is 13 bytes, three times; the streamed body is counted too.
    assert_eq!(
        sample(&scrape, "http_response_body_bytes_total", &labels),
        [39.0]
    );
    assert_eq!(
        sample(
            &scrape,
            "http_response_body_bytes_total",
            &[("route", "/stream")]
        ),
        [5.0]
    );

    // The scrape itself is in flight while the exposition is written.
    assert_eq!(sample(&scrape, "http_requests_in_flight", &[]), [1.0]);

    // Metrics registered by other parts of the app are in the same exposition.
    assert_eq!(sample(&scrape, "jobs_done_total", &[]), [3.0]);
    assert_eq!(metric(&scrape, "jobs_done_total").kind, Type::Counter);

    // OpenMetrics on request.
    let res = send(
        server.addr,
        "GET",
        "/metrics",
        &[("accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await;
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(res.text().ends_with("# EOF\n"));
}

#[tokio::test]
async fn wrapping_a_single_handler_uses_the_request_template() {
    let registry = MetricsRegistry::new();
    let metrics = Metrics::new(&registry);
    let app = Router::new()
        .route(
            "/items/{id}",
            get((|_req: Request| async { "item" }).with(metrics.clone())),
        )
        .layer(metrics);
    let server = start(app).await;
    assert_eq!(fetch(server.addr, "/items/9").await.status, 200);
    let text = registry.encode();
    let scrape = parse(&text);
    // Wrapped twice (route and router layer): counted twice, under the template both times.
    let s = sample(&scrape, "http_requests_total", &[("route", "/items/{id}")]);
    assert_eq!(s, [2.0], "{text}");
}
