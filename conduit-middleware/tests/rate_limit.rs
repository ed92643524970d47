//! Rate limiting over a real socket, keyed by client IP.

mod wire;

use conduit_core::{HandlerExt, Request, Router, get};
use conduit_middleware::{MemoryStore, Quota, RateLimit, TrustedProxies};
use wire::{get as fetch, send, start};

#[tokio::test]
async fn a_burst_gets_exactly_its_size_then_429s() {
    // One request back per hour: nothing refills during the test, however slow the machine.
    let limit = RateLimit::new(Quota::per_hour(1).burst(5));
    let app = Router::new()
        .route("/limited", get(|_req: Request| async { "ok" }))
        .with(limit);
    let server = start(app).await;

    let mut statuses = Vec::new();
    for i in 0..8 {
        let res = fetch(server.addr, "/limited").await;
        statuses.push(res.status.as_u16());
        assert_eq!(res.header("ratelimit-limit"), Some("5"));
        if i < 5 {
            assert_eq!(res.text(), "ok");
            assert_eq!(
                res.header("ratelimit-remaining"),
                Some((4 - i).to_string().as_str())
            );
        } else {
            assert_eq!(res.header("ratelimit-remaining"), Some("0"));
            let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
            assert!((3000..=3600).contains(&retry), "retry-after {retry}");
            let reset: u64 = res.header("ratelimit-reset").unwrap().parse().unwrap();
            assert!(reset >= retry, "reset {reset} >= retry {retry}");
            assert_eq!(res.text(), "Too Many Requests");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
}

#[tokio::test]
async fn keys_are_client_ips_behind_trusted_proxies() {
    let limit = RateLimit::new(Quota::per_hour(1).burst(2)).store(MemoryStore::new(1000));
    let app = Router::new()
        .route("/limited", get(|_req: Request| async { "ok" }))
        .with(limit)
        .with(TrustedProxies::new(["127.0.0.0/8"]).unwrap());
    let server = start(app).await;

    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for ip in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..2 {
            assert_eq!(
                send(server.addr, "GET", "/limited", &from(ip)).await.status,
                200
            );
        }
        assert_eq!(
            send(server.addr, "GET", "/limited", &from(ip)).await.status,
            429
        );
    }
    // A client cannot escape by prepending addresses: the right-most untrusted hop is the key.
    let spoof = [("x-forwarded-for", "1.2.3.4, 203.0.113.1")];
    assert_eq!(
        send(server.addr, "GET", "/limited", &spoof).await.status,
        429
    );
    // IPv6 clients are keyed by /64: rotating the interface id does not help.
    for ip in ["2001:db8:7:7::1", "2001:db8:7:7::2"] {
        assert_eq!(
            send(server.addr, "GET", "/limited", &from(ip)).await.status,
            200
        );
    }
    assert_eq!(
        send(
            server.addr,
            "GET",
            "/limited",
            &from("2001:db8:7:7:ffff::3")
        )
        .await
        .status,
        429
    );
    assert_eq!(
        send(server.addr, "GET", "/limited", &from("2001:db8:7:8::1"))
            .await
            .status,
        200,
        "another /64 is another client"
    );
    // Without the header the key is the proxy itself (127.0.0.1), a fresh bucket.
    assert_eq!(fetch(server.addr, "/limited").await.status, 200);
}
