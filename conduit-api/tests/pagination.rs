//! Cursor pagination over a real socket: walking a list forward by `next` and back by `prev`
//! (in the `Link` header and the body alike), filters kept in the links, the default and
//! maximum page size, every kind of bad cursor or limit answered with a 400 problem and a log
//! line, and a large page streamed through `JsonArray`.

use std::net::SocketAddr;

use conduit_api::{Cursor, Page, PageLinks, Pagination, StreamedPage};
use conduit_core::{
    Error, ErrorRenderer, IntoResponse, Request, RequestExt, Response, Router, get,
};
use conduit_test_support::{Logs, config, get as fetch_get, start};
use serde::Deserialize;
use serde_json::Value;

const KEY: &[u8] = b"test key: thirty-two bytes long!";
/// The list: the numbers 1 to 45.
const LAST: u32 = 45;

#[derive(Deserialize)]
struct Filter {
    even: Option<bool>,
}

/// Keyset pagination over 1..=LAST, optionally only the even numbers (`?even=true`).
async fn numbers(req: Request) -> Response {
    let pages = Pagination::new(KEY).default_limit(20).max_limit(25);
    let page = match pages.request::<u32>(&req) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let filter: Filter = match req.query() {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let keep = move |n: &u32| filter.even != Some(true) || n % 2 == 0;
    let n = page.fetch_limit();
    let rows: Vec<u32> = match page.cursor() {
        None => (1..=LAST).filter(keep).take(n).collect(),
        Some(Cursor::After(k)) => (k + 1..=LAST).filter(keep).take(n).collect(),
        Some(Cursor::Before(k)) => (1..*k).rev().filter(keep).take(n).collect(),
    };
    page.page(rows, |n| *n).into_response()
}

/// `?n=N` items `0..N` streamed as one page, with a `next` link.
async fn streamed(req: Request) -> Response {
    #[derive(Deserialize)]
    struct N {
        n: u32,
    }
    let n = match req.query::<N>() {
        Ok(q) => q.n,
        Err(e) => return e.into_response(),
    };
    let links = PageLinks {
        next: Some(format!("/stream?cursor=after-{n}")),
        prev: None,
    };
    let items = (0..n).map(|i| Ok::<_, Error>(serde_json::json!({ "i": i })));
    StreamedPage::new(tokio_stream::iter(items), links).into_response()
}

/// The app on a real server, serving until the test's runtime ends.
async fn server() -> SocketAddr {
    let app = Router::new()
        .route("/numbers", get(numbers))
        .route("/other", get(numbers))
        .route("/stream", get(streamed))
        .errors(ErrorRenderer::problem_json());
    let srv = start(config(), app).await;
    srv.addr
}

struct Got {
    items: Vec<u32>,
    next: Option<String>,
    prev: Option<String>,
}

/// GET `target`: the page, after checking that the `Link` header and the body agree.
async fn page(addr: SocketAddr, target: &str) -> Got {
    let res = fetch_get(addr, target).await;
    assert_eq!(res.status, 200, "{target}: {}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body: Page<u32> = serde_json::from_slice(&res.body).expect("a page");
    let mut header = Vec::new();
    if let Some(next) = &body.links.next {
        header.push(format!("<{next}>; rel=\"next\""));
    }
    if let Some(prev) = &body.links.prev {
        header.push(format!("<{prev}>; rel=\"prev\""));
    }
    let header = (!header.is_empty()).then(|| header.join(", "));
    assert_eq!(res.header("link").map(str::to_owned), header, "{target}");
    Got {
        items: body.items,
        next: body.links.next,
        prev: body.links.prev,
    }
}

#[tokio::test]
async fn walks_forward_by_next_and_back_by_prev() {
    let addr = server().await;
    let mut target = "/numbers?limit=10".to_owned();
    let mut forward = Vec::new();
    let mut prevs = Vec::new();
    loop {
        let got = page(addr, &target).await;
        assert!(got.items.len() <= 10);
        if forward.is_empty() {
            assert_eq!(got.prev, None, "the first page has no prev");
        } else {
            prevs.push(got.prev.clone().expect("a later page has a prev"));
        }
        forward.push(got.items);
        match got.next {
            Some(next) => {
                assert!(next.starts_with("/numbers?cursor=") && next.ends_with("&limit=10"));
                target = next;
            }
            None => break,
        }
    }
    let sizes: Vec<usize> = forward.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 10, 10, 5]);
    assert_eq!(forward.concat(), (1..=LAST).collect::<Vec<_>>());

    // From the last page back: each prev link gives the page before, in ascending order.
    let mut back = page(addr, prevs.last().unwrap()).await;
    assert_eq!(back.items, forward[3]);
    for i in (0..3).rev() {
        back = page(addr, &back.prev.expect("prev")).await;
        assert_eq!(back.items, forward[i]);
    }
    assert_eq!(back.prev, None, "back at the first page");
    // A page reached backwards links forward again.
    assert_eq!(page(addr, &back.next.unwrap()).await.items, forward[1]);
}

#[tokio::test]
async fn default_limit_and_filters_kept_in_links() {
    let addr = server().await;
    let first = page(addr, "/numbers").await;
    assert_eq!(first.items, (1..=20).collect::<Vec<_>>());
    let next = first.next.unwrap();
    assert!(
        !next.contains("limit="),
        "no limit asked, none added: {next}"
    );
    assert_eq!(page(addr, &next).await.items, (21..=40).collect::<Vec<_>>());

    let evens = page(addr, "/numbers?even=true&limit=25").await;
    assert_eq!(evens.items, (1..=22).map(|n| n * 2).collect::<Vec<_>>());
    assert_eq!(evens.next, None, "22 even numbers fit in one page of 25");
    let evens = page(addr, "/numbers?even=true&limit=4").await;
    let next = evens.next.unwrap();
    assert!(next.starts_with("/numbers?even=true&cursor="), "{next}");
    assert_eq!(page(addr, &next).await.items, [10, 12, 14, 16]);
}

#[tokio::test]
async fn bad_cursors_and_limits_are_400_with_a_log_line() {
    let (logs, _guard) = Logs::capture_at(tracing::Level::DEBUG);
    let addr = server().await;
    let next = page(addr, "/numbers?limit=5").await.next.unwrap();
    let cursor = next
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("cursor="))
        .unwrap()
        .to_owned();

    // Each character of the cursor altered in turn: never accepted.
    let mut altered = 0;
    for i in 0..cursor.len() {
        let mut bytes = cursor.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        let res = fetch_get(addr, &format!("/numbers?cursor={forged}")).await;
        assert_eq!(res.status, 400, "altered at {i}: {forged}");
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
        let problem: Value = serde_json::from_slice(&res.body).unwrap();
        assert_eq!(problem["status"], 400);
        assert_eq!(
            problem["detail"],
            "Query parameter `cursor` is not a valid cursor for this list"
        );
        altered += 1;
    }
    assert!(altered > 20);

    let other_key = {
        // The same cursor signed with another key.
        let req = Request::get("/numbers?limit=5")
            .body(Default::default())
            .unwrap();
        let page = Pagination::new(b"another key")
            .request::<u32>(&req)
            .unwrap();
        let link = page
            .page(vec![1, 2, 3, 4, 5, 6], |n| *n)
            .links
            .next
            .unwrap();
        link.split(['?', '&'])
            .find_map(|p| p.strip_prefix("cursor="))
            .unwrap()
            .to_owned()
    };
    let long = "A".repeat(2000);
    let targets = [
        format!("/numbers?cursor={other_key}"),
        // Made for /numbers, not /other.
        format!("/other?cursor={cursor}"),
        // Truncated.
        format!("/numbers?cursor={}", &cursor[..cursor.len() - 2]),
        "/numbers?cursor=".to_owned(),
        "/numbers?cursor=%FF%FE".to_owned(),
        "/numbers?cursor=not-a-cursor!".to_owned(),
        format!("/numbers?cursor={long}"),
        format!("/numbers?cursor={cursor}&cursor={cursor}"),
        "/numbers?limit=26".to_owned(),
        "/numbers?limit=1000000000000000000000".to_owned(),
        "/numbers?limit=0".to_owned(),
        "/numbers?limit=-1".to_owned(),
        "/numbers?limit=ten".to_owned(),
        "/numbers?limit=".to_owned(),
        "/numbers?limit=5&limit=6".to_owned(),
    ];
    for target in &targets {
        let res = fetch_get(addr, target).await;
        assert_eq!(res.status, 400, "{target}: {}", res.text());
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
    }
    let res = fetch_get(addr, "/numbers?limit=26").await;
    let problem: Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(
        problem["detail"],
        "Query parameter `limit` is 26, over the maximum page size of 25"
    );
    // Every rejection is logged.
    let rejected = logs.text().matches("request rejected").count();
    assert!(rejected >= altered + targets.len(), "{rejected} log lines");
}

#[tokio::test]
async fn a_large_page_streams_through_json_array() {
    let addr = server().await;
    let res = fetch_get(addr, "/stream?n=50000").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-length"), None, "streamed, not buffered");
    assert_eq!(res.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        res.header("link"),
        Some(r#"</stream?cursor=after-50000>; rel="next""#)
    );
    let body: Value = serde_json::from_slice(&res.body).expect("one JSON object");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 50_000);
    assert_eq!(items[49_999]["i"], 49_999);
    assert_eq!(body["links"]["next"], "/stream?cursor=after-50000");
    assert!(body["links"].get("prev").is_none());
}
