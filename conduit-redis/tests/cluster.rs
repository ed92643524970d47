//! The same hub and rate limits on a local three-node Redis Cluster (redis-rs's cluster
//! client; keys carry hash tags), including a kill and restart of the node that holds a
//! topic's stream.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A topic whose stream lives on node `node` of `cluster`.
fn topic_on(cluster: &RedisCluster, node: usize) -> String {
    (0..200)
        .map(|i| format!("topic{i}"))
        .find(|t| cluster.node_of(&format!("conduit:hub:{{{t}}}")) == node)
        .expect("some topic hashes to every node")
}

#[tokio::test]
async fn replay_shared_quota_and_a_node_restart_on_a_cluster() {
    let mut redis_cluster = RedisCluster::start();
    let redis = cluster(&redis_cluster);
    let (hot, calm) = (topic_on(&redis_cluster, 0), topic_on(&redis_cluster, 1));
    let a = Instance::start(&redis, &hot).await;
    let b = Instance::start(&redis, &hot).await;
    let other = Instance::start(&redis, &calm).await;
    for i in [&a, &b, &other] {
        i.ready().await;
    }

    // Cross-instance delivery and replay.
    let mut on_b = SseClient::connect(b.addr(), None).await;
    let (status, x) = publish(a.addr(), "one").await;
    assert_eq!(status, 200, "{x}");
    assert_eq!(on_b.next().await.data, "one");
    publish(a.addr(), "two").await;
    publish(b.addr(), "three").await;
    let mut replay = SseClient::connect(b.addr(), Some(&x)).await;
    assert_eq!(data(&replay.until("three").await), ["two", "three"]);
    assert_eq!(data(&on_b.until("three").await), ["two", "three"]);

    // The shared quota (burst 5): 10 requests over both instances, 5 admitted.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let on = if i % 2 == 0 { a.addr() } else { b.addr() };
        statuses.push(get(on, "/limited").await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);

    // Kill the node holding the hot topic's stream.
    let mut on_other = SseClient::connect(other.addr(), None).await;
    redis_cluster.nodes[0].kill();
    let t = Instant::now();
    let (status, _) = publish(a.addr(), "lost").await;
    assert_eq!(status, 503);
    assert!(t.elapsed() < TIMEOUT * 4, "publish took {:?}", t.elapsed());
    // Other topics are not disturbed.
    let (status, _) = publish(other.addr(), "calm").await;
    assert_eq!(status, 200);
    assert_eq!(on_other.next().await.data, "calm");
    // Subscribers of the hot topic keep their streams (keep-alives go on).
    assert!(on_b.keep_alives_for(KEEP_ALIVE * 3).await >= 1);

    // The node comes back (empty, same port, same slots): subscribers resume.
    redis_cluster.nodes[0].restart();
    redis_cluster.wait_ok();
    let deadline = Instant::now() + HANG;
    loop {
        let (status, _) = publish(a.addr(), "back").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "publishing never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = on_b.until("back").await;
    assert_eq!(got.last().unwrap().data, "back");
    assert!(
        got.iter()
            .all(|e| e.data == "back" || e.event.as_deref() == Some("lagged")),
        "{got:?}"
    );
}
