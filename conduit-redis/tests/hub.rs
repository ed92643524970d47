//! The Redis hub backend over real sockets: two conduit servers, one real redis-server.
//!
//! Every test captures its thread's logs, even those that do not read them: a callsite first
//! reached on a thread without a subscriber can stay disabled for a capturing thread running
//! in parallel (tracing caches a callsite's interest).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn an_event_published_on_a_reaches_a_and_b_and_b_replays_after_an_id_read_on_a() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "ticks").await;
    let b = Instance::start(&redis, "ticks").await;
    a.ready().await;
    b.ready().await;

    let mut on_a = SseClient::connect(a.addr(), None).await;
    let mut on_b = SseClient::connect(b.addr(), None).await;
    assert_eq!((on_a.status, on_b.status), (200, 200));
    let (status, id1) = publish(a.addr(), "one").await;
    assert_eq!(status, 200);
    assert!(conduit_redis::EntryId::parse(&id1).is_some(), "{id1}");
    let ev = on_a.next().await;
    assert_eq!(
        (ev.id.as_deref(), ev.data.as_str()),
        (Some(id1.as_str()), "one")
    );
    let ev = on_b.next().await;
    assert_eq!(
        (ev.id.as_deref(), ev.data.as_str()),
        (Some(id1.as_str()), "one")
    );

    // Published on B too; A's client reads up to "two", then goes away.
    let (_, id2) = publish(b.addr(), "two").await;
    assert_eq!(on_a.next().await.id.as_deref(), Some(id2.as_str()));
    drop(on_a);
    for d in ["three", "four", "five"] {
        assert_eq!(publish(a.addr(), d).await.0, 200);
    }
    // Reconnect to B with the last id read on A: exactly the events after it, then live.
    let mut again = SseClient::connect(b.addr(), Some(&id2)).await;
    assert_eq!(again.status, 200);
    let replayed = again.until("five").await;
    assert_eq!(data(&replayed), ["three", "four", "five"]);
    publish(a.addr(), "six").await;
    assert_eq!(again.next().await.data, "six");
    assert_eq!(
        data(&on_b.until("six").await),
        ["two", "three", "four", "five", "six"]
    );

    // A malformed Last-Event-ID is the client's fault.
    for bad in ["x", "12", "1-2-3", "-1-0"] {
        let c = SseClient::connect(b.addr(), Some(bad)).await;
        assert_eq!(c.status, 400, "{bad}");
    }
    // Topics do not mix: another topic on the same Redis sees nothing of "ticks".
    let other = Instance::start(&redis, "other").await;
    other.ready().await;
    let mut on_other = SseClient::connect(other.addr(), Some("0-0")).await;
    assert!(
        on_other
            .next_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(
        redis_server.cli(&["XLEN", "conduit:hub:{ticks}"]).trim(),
        "6"
    );
}

#[tokio::test]
async fn replay_joins_the_live_stream_without_a_gap_or_a_duplicate() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "seam").await;
    let b = Instance::start(&redis, "seam").await;
    a.ready().await;
    b.ready().await;
    let (_, first) = publish(a.addr(), "0").await;
    // Publish 1..=300 from A while clients reconnect to B with ids along the way.
    let publisher = tokio::spawn({
        let addr = a.addr();
        async move {
            let mut ids = Vec::new();
            for i in 1..=300 {
                ids.push(publish(addr, &i.to_string()).await.1);
            }
            ids
        }
    });
    let mut clients = vec![(0u32, SseClient::connect(b.addr(), Some(&first)).await)];
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut probe = SseClient::connect(b.addr(), Some(&first)).await;
        let seen = probe.next().await;
        let n: u32 = seen.data.parse().unwrap();
        drop(probe);
        clients.push((n, SseClient::connect(b.addr(), seen.id.as_deref()).await));
    }
    publisher.await.unwrap();
    for (after, mut c) in clients {
        let got: Vec<u32> = c
            .until("300")
            .await
            .iter()
            .map(|e| e.data.parse().unwrap())
            .collect();
        let want: Vec<u32> = (after + 1..=300).collect();
        assert_eq!(got, want, "client that had seen {after}");
    }
}

#[tokio::test]
async fn an_id_older_than_what_redis_retains_gets_what_is_retained_after_a_lagged_event() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "short").await;
    a.ready().await;
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(publish(a.addr(), &format!("e{i}")).await.1);
    }
    // Keep only the last two (an exact trim, as MAXLEN ~ does for whole nodes).
    assert_eq!(
        redis_server
            .cli(&["XTRIM", "conduit:hub:{short}", "MAXLEN", "2"])
            .trim(),
        "3"
    );
    let mut c = SseClient::connect(a.addr(), Some(&ids[0])).await;
    let lagged = c.next().await;
    assert_eq!(lagged.event.as_deref(), Some("lagged"));
    assert!(lagged.data.starts_with("{\"missed\":"), "{}", lagged.data);
    assert_eq!(data(&c.until("e5").await), ["e4", "e5"]);
    // An id still retained: exactly what follows, no lagged event.
    let mut c = SseClient::connect(a.addr(), Some(&ids[3])).await;
    assert_eq!(data(&c.until("e5").await), ["e5"]);
    assert_eq!(a.hub.backend().stats().lagged_replays, 1);
}

#[tokio::test]
async fn a_reader_that_loses_its_connection_resumes_after_the_last_id_it_relayed() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "resume").await;
    let b = Instance::start(&redis, "resume").await;
    a.ready().await;
    b.ready().await;
    let mut on_b = SseClient::connect(b.addr(), None).await;
    publish(a.addr(), "before").await;
    assert_eq!(on_b.next().await.data, "before");
    // Cut every client connection but keep the data: the readers reconnect and resume.
    let publisher = tokio::spawn({
        let addr = a.addr();
        async move {
            let mut ok = 0;
            for i in 0..40 {
                if publish(addr, &format!("p{i}")).await.0 == 200 {
                    ok += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ok
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    redis_server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    let published = publisher.await.unwrap();
    publish(a.addr(), "after").await;
    let got = on_b.until("after").await;
    let mut seen = std::collections::HashSet::new();
    for ev in &got {
        assert!(seen.insert(ev.id.clone()), "delivered twice: {ev:?}");
    }
    assert_eq!(
        got.len(),
        published + 1,
        "every published event, once: {:?}",
        data(&got)
    );
    assert!(b.hub.backend().stats().reconnects >= 1);
}

#[tokio::test]
async fn redis_killed_and_restarted_empty_streams_stay_open_publish_fails_fast_and_loss_is_told() {
    let (logs, _guard) = Logs::capture();
    let mut redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "faults").await;
    let b = Instance::start(&redis, "faults").await;
    a.ready().await;
    b.ready().await;
    let registry = conduit_middleware::metrics::MetricsRegistry::new();
    b.hub.backend().register_metrics(&registry, "");
    let mut live = SseClient::connect(b.addr(), None).await;
    let (_, x) = publish(a.addr(), "x").await;
    publish(a.addr(), "y").await;
    assert_eq!(data(&live.until("y").await), ["x", "y"]);
    assert_eq!(get(b.addr(), "/ready").await.status, 200);

    redis_server.kill();
    // Streams stay open: keep-alives go on.
    assert!(live.keep_alives_for(KEEP_ALIVE * 4).await >= 2);
    // Publishing fails fast, with a 503 from the app, never a hang.
    let t = Instant::now();
    let (status, _) = publish(a.addr(), "lost").await;
    assert_eq!(status, 503);
    assert!(t.elapsed() < TIMEOUT * 3, "publish took {:?}", t.elapsed());
    assert_eq!(publish(a.addr(), "lost2").await.0, 503);
    assert!(a.hub.backend().stats().publish_errors >= 2);
    let b_backend = b.hub.backend();
    assert!(eventually(HANG, || !b_backend.is_healthy()).await);
    assert_eq!(get(b.addr(), "/ready").await.status, 503);
    // A client reconnecting meanwhile is served (200, keep-alives): its replay waits.
    let mut during = SseClient::connect(b.addr(), Some(&x)).await;
    assert_eq!(during.status, 200);
    assert!(during.keep_alives_for(KEEP_ALIVE * 2).await >= 1);

    redis_server.restart();
    a.ready().await;
    b.ready().await;
    assert_eq!(get(b.addr(), "/ready").await.status, 200);
    assert!(b.hub.backend().stats().reconnects >= 1);
    // Every event published after the restart arrives once.
    for d in ["z1", "z2"] {
        assert_eq!(publish(a.addr(), d).await.0, 200);
    }
    assert_eq!(data(&live.until("z2").await), ["z1", "z2"]);
    // Clients replaying from before the restart are told that events were lost, then get
    // what came after it: the one that waited through the outage, and one arriving now.
    let mut replay = SseClient::connect(b.addr(), Some(&x)).await;
    for c in [&mut during, &mut replay] {
        assert_eq!(c.next().await.event.as_deref(), Some("lagged"));
        assert_eq!(data(&c.until("z2").await), ["z1", "z2"]);
    }
    // Logged and counted.
    let text = logs.text();
    assert!(text.contains("hub reader lost Redis"), "{text}");
    assert!(text.contains("hub reader reconnected"), "{text}");
    assert_eq!(
        text.matches("hub publish to Redis failed").count(),
        1,
        "{text}"
    );
    assert!(text.contains("hub publishes to Redis again"), "{text}");
    assert!(text.contains("hub stream is gone from Redis"), "{text}");
    let exposition = registry.encode();
    for line in [
        "conduit_redis_hub_connected 1",
        "conduit_redis_hub_data_loss_total 1",
        "conduit_redis_hub_lagged_replays_total 2",
    ] {
        assert!(exposition.contains(line), "{line} in {exposition}");
    }
    assert!(b.hub.backend().stats().relayed >= 4);
    // A conduit instance started now replays from Redis.
    let c = Instance::start(&redis, "faults").await;
    c.ready().await;
    let mut from_c = SseClient::connect(c.addr(), Some("0-0")).await;
    let got = from_c.until("z2").await;
    assert_eq!(data(&got), ["z1", "z2"], "{got:?} {}", logs.text());
}

#[tokio::test]
async fn kill_9_and_restart_with_persistence_loses_nothing_and_repeats_nothing() {
    let (_logs, _guard) = Logs::capture();
    // appendfsync always: every acknowledged XADD is on disk before the kill.
    let mut redis_server =
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "durable").await;
    let b = Instance::start(&redis, "durable").await;
    a.ready().await;
    b.ready().await;
    let mut live = SseClient::connect(b.addr(), None).await;
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let (status, _) = publish(a.addr(), &format!("e{i}")).await;
        assert_eq!(status, 200);
        acknowledged.push(format!("e{i}"));
    }
    // Killed right after the publishes, before B's reader may have relayed them all.
    redis_server.kill();
    for i in 10..13 {
        assert_eq!(publish(a.addr(), &format!("e{i}")).await.0, 503);
    }
    redis_server.restart();
    b.ready().await;
    for i in 13..16 {
        let (status, _) = publish(a.addr(), &format!("e{i}")).await;
        assert_eq!(status, 200);
        acknowledged.push(format!("e{i}"));
    }
    assert_eq!(data(&live.until("e15").await), acknowledged);
    assert!(
        live.next_within(KEEP_ALIVE * 2).await.is_none(),
        "nothing twice"
    );
    assert_eq!(b.hub.backend().stats().data_loss, 0);
}

#[tokio::test]
async fn retention_by_length_and_by_age_trims_the_stream() {
    let (_logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    let redis = redis(&redis_server.url());
    let ev = |i: usize| conduit_stream::sse::Event::default().data(i.to_string());
    // MAXLEN ~ 100: Redis trims whole nodes (of 100 entries by default), so about 100 stay.
    let by_len = conduit_stream::hub::Hub::with_backend(
        conduit_redis::RedisStreams::builder(&redis, "len")
            .max_len(100)
            .build(),
    );
    for i in 0..350 {
        by_len.publish(ev(i)).await.unwrap();
    }
    let len: usize = redis_server
        .cli(&["XLEN", "conduit:hub:{len}"])
        .trim()
        .parse()
        .unwrap();
    assert!((100..=200).contains(&len), "{len} entries kept");
    // MINID ~ now - 200 ms: the first 150, published before the pause, go (whole nodes).
    let by_age = conduit_stream::hub::Hub::with_backend(
        conduit_redis::RedisStreams::builder(&redis, "age")
            .max_len(None)
            .max_age(Duration::from_millis(200))
            .build(),
    );
    for i in 0..150 {
        by_age.publish(ev(i)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    by_age.publish(ev(150)).await.unwrap();
    let len: usize = redis_server
        .cli(&["XLEN", "conduit:hub:{age}"])
        .trim()
        .parse()
        .unwrap();
    assert!(len <= 51, "{len} entries kept");
}

#[tokio::test]
async fn a_key_that_is_not_a_stream_is_retried_with_backoff_not_in_a_spin() {
    let (logs, _guard) = Logs::capture();
    let redis_server = RedisServer::start();
    assert_eq!(
        redis_server.cli(&["SET", "conduit:hub:{bad}", "x"]).trim(),
        "OK"
    );
    let redis = redis(&redis_server.url());
    let a = Instance::start(&redis, "bad").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!a.hub.backend().is_healthy());
    assert_eq!(get(a.addr(), "/ready").await.status, 503);
    // Backoff from 100 ms doubling: a handful of attempts in a second, one warning.
    let clients = redis_server.cli(&["INFO", "stats"]);
    let connections: u64 = clients
        .lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(connections <= 12, "{connections} connections in a second");
    assert_eq!(
        logs.text()
            .matches("hub reader cannot read its stream from Redis")
            .count(),
        1
    );
    // Publishing answers the error (503 from the app), an SSE client is still served.
    assert_eq!(publish(a.addr(), "x").await.0, 503);
    let mut c = SseClient::connect(a.addr(), None).await;
    assert_eq!(c.status, 200);
    assert!(c.keep_alives_for(KEEP_ALIVE * 2).await >= 1);
    // Once the key is a stream again, the reader recovers.
    redis_server.cli(&["DEL", "conduit:hub:{bad}"]);
    a.ready().await;
    publish(a.addr(), "fine").await;
    assert_eq!(c.next().await.data, "fine");
}
