//! Two `bench_server` processes in `REDIS_URL` mode, and the `cluster` example, against one
//! real `redis-server`: the ticks of the one started with `TICKS=1` reach SSE clients of both,
//! and `/limited`'s quota is shared. The example binaries come from `cargo build --examples`
//! (`scripts/test.sh` builds them first).
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;

/// Kills the child however the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn spawn(name: &str, args: &[String], env: &[(&str, &str)], wait_on: &[SocketAddr]) -> Proc {
    let bin = example_binary(name);
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc(cmd.spawn().expect("spawn example"));
    let deadline = Instant::now() + Duration::from_secs(15);
    for addr in wait_on {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(p.0.try_wait().unwrap().is_none(), "{name} exited early");
            assert!(Instant::now() < deadline, "{name} did not listen on {addr}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    p
}

/// The `id:` and `data:` lines of the SSE stream at `path` on `addr`, until `done` says so.
async fn sse_until(
    addr: SocketAddr,
    path: &str,
    last: Option<&str>,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut headers = vec![("accept", "text/event-stream")];
    if let Some(id) = last {
        headers.push(("last-event-id", id));
    }
    let res = send_streaming(addr, request_with("GET", path, &headers)).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut text = String::new();
    let mut out = Vec::new();
    while !done(&out) {
        let frame = tokio::time::timeout(HANG, body.frame())
            .await
            .expect("an event in time");
        let data = frame
            .expect("stream open")
            .expect("frame")
            .into_data()
            .unwrap_or_default();
        text.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            if let (Some(id), Some(data)) = (field("id: "), field("data: "))
                && !done(&out)
            {
                out.push((id, data));
            }
        }
    }
    out
}

async fn sse_events(
    addr: SocketAddr,
    path: &str,
    last: Option<&str>,
    n: usize,
) -> Vec<(String, String)> {
    sse_until(addr, path, last, |evs| evs.len() >= n).await
}

#[tokio::test]
async fn two_bench_servers_on_one_redis_behave_as_one_service() {
    let redis = RedisServer::start();
    let (a, b) = (free_addr(), free_addr());
    let url = redis.url();
    let _a = spawn(
        "bench_server",
        &[a.to_string()],
        &[("REDIS_URL", &url), ("TICKS", "1")],
        &[a],
    )
    .await;
    let _b = spawn(
        "bench_server",
        &[b.to_string()],
        &[("REDIS_URL", &url)],
        &[b],
    )
    .await;

    // B publishes nothing, yet its clients get A's ticks, with the Redis entry ids.
    let on_b = sse_events(b, "/sse", None, 3).await;
    let on_a = sse_events(a, "/sse", Some(&on_b[0].0), 2).await;
    assert_eq!(
        on_a,
        on_b[1..],
        "A replays after B's first id, then the same ticks"
    );
    assert!(on_b[0].1.starts_with("{\"seq\":"), "{:?}", on_b[0]);
    assert!(conduit_redis::EntryId::parse(&on_b[0].0).is_some());

    // /ws/ticks follows the same Redis hub: B's WebSocket gets A's ticks.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{b}/ws/ticks"))
        .await
        .expect("websocket");
    let text = loop {
        use futures_util::StreamExt;
        let msg = tokio::time::timeout(HANG, ws.next())
            .await
            .expect("a tick in time");
        if let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = msg {
            break t.to_string();
        }
    };
    assert!(
        text.starts_with("{\"seq\":") && text.contains("\"t\":"),
        "{text}"
    );

    // The /limited quota (burst 5, then 1/s per client IP) is shared by A and B.
    let t = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(
            get(if i % 2 == 0 { a } else { b }, "/limited")
                .await
                .status
                .as_u16(),
        );
    }
    let refilled = t.elapsed().as_secs() as usize; // at most one more a second
    assert_eq!(
        statuses[..6],
        [200, 200, 200, 200, 200, 429],
        "{statuses:?}"
    );
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        admitted <= 5 + refilled,
        "{statuses:?} in {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn the_cluster_example_serves_one_stream_on_two_ports() {
    let redis = RedisServer::start();
    let (a, b) = (free_addr(), free_addr());
    let _p = spawn(
        "cluster",
        &[a.to_string(), b.to_string()],
        &[("REDIS_URL", &redis.url())],
        &[a, b],
    )
    .await;
    assert!(get(a, "/").await.text().contains("EventSource"));
    let deadline = Instant::now() + HANG;
    while get(b, "/ready").await.status != 200 {
        assert!(Instant::now() < deadline, "B never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listen = tokio::spawn(async move {
        sse_until(a, "/events", None, |evs| {
            evs.last().is_some_and(|(_, d)| d == "hello-from-b")
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let published = send_to(b, "POST", "/publish?hello-from-b", &[]).await;
    assert_eq!(published.status, 200);
    // Ticks may come first; then the message published on B, with B's Redis id.
    let seen = listen.await.unwrap();
    assert_eq!(
        seen.last().unwrap(),
        &(published.text().to_owned(), "hello-from-b".to_owned())
    );
}
