//! The WebSocket counts as Prometheus series (feature `metrics`): sockets over both HTTP
//! versions, each way of ending, scraped from conduit-middleware's registry. One test in this
//! binary, so the process-wide counts are this test's alone.

#![cfg(feature = "metrics")]

mod support;

use conduit_middleware::MetricsRegistry;
use conduit_test_support::eventually;
use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message as TMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn sockets_closes_faults_and_compression_are_counted() {
    let registry = MetricsRegistry::new();
    conduit_ws::metrics::register(&registry);
    let srv = start().await;

    // HTTP/1.1, closed by the client with 1000.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", srv.addr))
        .await
        .unwrap();
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .unwrap();
    while ws.next().await.is_some() {}
    // HTTP/1.1 with permessage-deflate, then an unmasked frame: 1002.
    let (tcp, head) = raw_request(
        srv.addr,
        &handshake("/echo", "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
    )
    .await;
    assert_eq!(head.status, 101);
    let mut raw = RawClient { tcp };
    raw.send_frame(0x81, b"unmasked", false).await;
    assert_eq!(raw.expect_close().await, 1002);
    // A frame over the frame limit: 1009.
    let mut raw = RawClient::connect(srv.addr, "/echo").await;
    raw.send_header(0x82, MAX_FRAME as u64 + 1).await;
    assert_eq!(raw.expect_close().await, 1009);
    // HTTP/2, still open when scraped.
    let mut tx = h2c(srv.addr).await;
    let mut h2 = open_ws(&mut tx, "/echo").await;
    h2.send(TMessage::text("hi")).await.unwrap();
    assert_eq!(h2.next().await.unwrap().unwrap(), TMessage::text("hi"));

    assert!(eventually(GUARD, || conduit_ws::stats().closed_total() == 3).await);
    let text = registry.encode();
    for (series, value) in [
        ("websocket_opened_total{http=\"1.1\"}", 3),
        ("websocket_opened_total{http=\"2\"}", 1),
        ("websocket_open", 1),
        ("websocket_closed_total{code=\"1000\"}", 1),
        ("websocket_closed_total{code=\"1002\"}", 1),
        ("websocket_closed_total{code=\"1009\"}", 1),
        ("websocket_closed_total{code=\"1001\"}", 0),
        ("websocket_protocol_errors_total", 1),
        ("websocket_limit_closes_total{limit=\"frame\"}", 1),
        ("websocket_limit_closes_total{limit=\"message\"}", 0),
        ("websocket_deflate_negotiated_total", 1),
    ] {
        assert_eq!(sample(&text, series), value, "{series}\n{text}");
    }

    // Shutdown closes the HTTP/2 socket with 1001.
    srv.handle.shutdown();
    assert!(matches!(
        h2.next().await,
        Some(Ok(TMessage::Close(Some(f)))) if u16::from(f.code) == 1001
    ));
    while h2.next().await.is_some() {}
    srv.task.await.unwrap().unwrap();
    assert!(eventually(GUARD, || conduit_ws::stats().closed_with(1001) == Some(1)).await);
    assert_eq!(sample(&registry.encode(), "websocket_open"), 0);
}
