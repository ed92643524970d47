//! `rediss://`: the hub and the rate-limit store over TLS to a redis-server with a
//! self-signed certificate (rcgen), trusted through `tls_root_cert`.

mod common;

use common::*;
use conduit_redis::Redis;

#[tokio::test]
async fn hub_and_store_work_over_tls() {
    let cert = make_cert("redis");
    let redis_server = RedisServer::start_tls(&cert.cert, &cert.key);
    assert!(redis_server.url().starts_with("rediss://"));
    let redis = Redis::builder(redis_server.url())
        .command_timeout(TIMEOUT)
        .tls_root_cert(std::fs::read(&cert.cert).unwrap())
        .build()
        .unwrap();
    let a = Instance::start(&redis, "secure").await;
    let b = Instance::start(&redis, "secure").await;
    a.ready().await;
    b.ready().await;
    let mut on_b = SseClient::connect(b.addr(), None).await;
    let (status, id) = publish(a.addr(), "over-tls").await;
    assert_eq!(status, 200, "{id}");
    let ev = on_b.next().await;
    assert_eq!((ev.id, ev.data.as_str()), (Some(id), "over-tls"));
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for i in 0..6 {
            let on = if i % 2 == 0 { a.addr() } else { b.addr() };
            v.push(get(on, "/limited").await.status.as_u16());
        }
        v
    };
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(a.store.stats().errors, 0);

    // Without the CA, the server's certificate is not trusted: nothing is published.
    let untrusted = Redis::builder(redis_server.url())
        .command_timeout(TIMEOUT)
        .build()
        .unwrap();
    let c = Instance::start(&untrusted, "secure").await;
    assert_eq!(publish(c.addr(), "nope").await.0, 503);
}
