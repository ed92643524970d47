//! bench_server's WebSocket routes as the benchmark scripts use them: the real binary on a free
//! port, `/ws` echoing text and binary through tokio-tungstenite (and answering a
//! permessage-deflate offer), `/ws/ticks` delivering the `/sse` hub's ticks in order.
mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const GUARD: Duration = Duration::from_secs(15);

async fn next_text<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let msg = tokio::time::timeout(GUARD, ws.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("not an error");
    msg.into_text().expect("text").as_str().to_owned()
}

#[tokio::test]
async fn bench_server_ws_echo_and_ticks() {
    let addr = free_addr();
    let _server = tokio::process::Command::new(example_binary("bench_server"))
        .arg(addr.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start bench_server");
    let serving = eventually(GUARD, || std::net::TcpStream::connect(addr).is_ok()).await;
    assert!(serving, "bench_server listens on {addr}");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    for len in [0usize, 1, 200, 70_000] {
        let text = "é".repeat(len);
        ws.send(Message::text(text.clone())).await.unwrap();
        assert!(next_text(&mut ws).await == text, "text of {len} characters");
        let bin = vec![0xA5u8; len];
        ws.send(Message::binary(bin.clone())).await.unwrap();
        let back = tokio::time::timeout(GUARD, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, Message::binary(bin), "binary of {len} bytes");
    }
    ws.close(None).await.unwrap();

    // A permessage-deflate offer is taken (default settings: no context kept per socket).
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-extensions: permessage-deflate; server_no_context_takeover"),
        "{head}"
    );

    // Ticks: `{"seq":N}` every 100 ms, in order.
    let (mut ticks, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/ticks"))
        .await
        .unwrap();
    let seq = |s: String| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v["seq"].as_u64().unwrap()
    };
    let first = seq(next_text(&mut ticks).await);
    let second = seq(next_text(&mut ticks).await);
    assert_eq!(second, first + 1);
    // Replay after a given id: the retained ticks after it come first.
    let (mut replay, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/ticks?last_event_id={first}"))
            .await
            .unwrap();
    assert_eq!(seq(next_text(&mut replay).await), first + 1);
    assert_eq!(seq(next_text(&mut replay).await), first + 2);
    // An id that is not one of the hub's is refused before the upgrade.
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws/ticks?last_event_id=x")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 400),
        other => panic!(
            "expected a 400, got {:?}",
            other.map(|(_, res)| res.status())
        ),
    }
}
