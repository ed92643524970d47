//! Every refusal and every fault leaves a log line (and none is a panic or a 500): the
//! server runs on this test's thread, under a subscriber that records what is logged.

mod support;

use conduit_test_support::Logs;
use support::*;

#[tokio::test(flavor = "current_thread")]
async fn refusals_and_faults_are_logged() {
    let (logs, _guard) = Logs::capture_at(tracing::Level::DEBUG);

    let srv = start().await;
    let (_t, head) = raw_request(srv.addr, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head.status, 426);
    let bad_key = handshake("/echo", "").replace(KEY, "aGVsbG8=");
    let (_t, head) = raw_request(srv.addr, &bad_key).await;
    assert_eq!(head.status, 400);
    let (_t, head) = raw_request(
        srv.addr,
        &handshake("/origin", "Origin: https://evil.example\r\n"),
    )
    .await;
    assert_eq!(head.status, 403);
    let mut c = RawClient::connect(srv.addr, "/echo").await;
    c.send_frame(0x81, b"unmasked", false).await;
    assert_eq!(c.expect_close().await, 1002);

    // permessage-deflate faults: a bomb (1009 while inflating), a compressed control frame.
    let deflate = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    let (tcp, head) = raw_request(srv.addr, &handshake("/echo", deflate)).await;
    assert_eq!(head.status, 101);
    let mut c = RawClient { tcp };
    let mut bomb = Vec::with_capacity(MAX_MESSAGE);
    flate2::Compress::new(flate2::Compression::default(), false)
        .compress_vec(
            &vec![0u8; MAX_MESSAGE * 2],
            &mut bomb,
            flate2::FlushCompress::Sync,
        )
        .unwrap();
    c.send_frame(0xC2, &bomb, true).await;
    assert_eq!(c.expect_close().await, 1009);
    let (tcp, _) = raw_request(srv.addr, &handshake("/echo", deflate)).await;
    let mut c = RawClient { tcp };
    c.send_frame(0xC9, b"", true).await;
    assert_eq!(c.expect_close().await, 1002);
    // HTTP/2: a refused extended CONNECT, and a socket that says which version it runs over.
    let mut tx = h2c(srv.addr).await;
    let (res, _) = open_h2(&mut tx, "/echo", "chat", &[("sec-websocket-version", "13")]).await;
    assert_eq!(res.status(), 400);
    let ws = open_ws(&mut tx, "/echo").await;
    drop(ws);

    let text = logs.text();
    let too_big = format!(
        "closing WebSocket: WebSocket message is larger than the limit of {MAX_MESSAGE} bytes (1009)"
    );
    for line in [
        too_big.as_str(),
        "closing WebSocket: WebSocket protocol error: compressed control frame (1002)",
        "refused WebSocket handshake: extended CONNECT with a :protocol other than websocket (400)",
        "WebSocket opened over HTTP/2.0",
        "WebSocket opened over HTTP/1.1",
        "refused WebSocket handshake: not a WebSocket upgrade (no Upgrade: websocket) (426)",
        "refused WebSocket handshake: Sec-WebSocket-Key is not base64 of 16 bytes (400)",
        "refused WebSocket handshake: WebSocket handshake from an origin that is not allowed (403)",
        "closing WebSocket: WebSocket protocol error: unmasked client frame (1002)",
    ] {
        assert!(text.contains(line), "no log line {line:?} in:\n{text}");
    }
    assert!(!text.contains("panic"), "{text}");
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}
