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

    let text = logs.text();
    for line in [
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
