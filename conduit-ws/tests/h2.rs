//! WebSockets over HTTP/2 (RFC 8441): hyper's HTTP/2 client (the `h2` crate underneath) sends
//! an extended CONNECT with `:protocol websocket`, and tokio-tungstenite speaks RFC 6455 over
//! the stream it opens, against h2c and TLS.

mod support;

use std::time::Duration;

use conduit_server::{Config as ServerConfig, TlsConfig};
use conduit_test_support::eventually;
use conduit_test_support::{client_config, connect, make_cert};
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use support::*;
use tokio_tungstenite::tungstenite::Message as TMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;

async fn echo_round_trips(tx: &mut H2Client) {
    let mut ws = open_ws(tx, "/echo").await;
    for len in [0usize, 1, 125, 126, 65_535, 65_536, MAX_FRAME] {
        let text = "x".repeat(len);
        ws.send(TMessage::text(text.clone())).await.unwrap();
        let got = tokio::time::timeout(GUARD, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            got.into_text().unwrap().as_str(),
            text,
            "text of {len} bytes"
        );
        let bin: Vec<u8> = (0..len).map(|i| i as u8).collect();
        ws.send(TMessage::binary(bin.clone())).await.unwrap();
        let got = tokio::time::timeout(GUARD, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            got.into_data().as_ref() == &bin[..],
            "binary of {len} bytes"
        );
    }
    ws.close(None).await.unwrap();
    // The server answers the Close and ends the stream.
    while let Some(Ok(_)) = tokio::time::timeout(GUARD, ws.next()).await.unwrap() {}
}

#[tokio::test]
async fn echo_over_h2c_with_two_sockets_on_one_connection() {
    let srv = start().await;
    let mut tx = h2c(srv.addr).await;
    let mut info = open_ws(&mut tx, "/info").await;
    let about = info.next().await.unwrap().unwrap();
    assert_eq!(about.into_text().unwrap().as_str(), "HTTP/2.0");
    // A second socket multiplexed on the same connection while the first is open.
    echo_round_trips(&mut tx).await;
    info.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(GUARD, info.next()).await.unwrap() {}
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn echo_over_tls_h2() {
    let cert = make_cert("ws-h2");
    let srv = start_with(
        ServerConfig::new("127.0.0.1:0")
            .handle_signals(false)
            .tls(TlsConfig::from_pem_files(&cert.cert, &cert.key)),
    )
    .await;
    let tls = connect(
        srv.addr,
        client_config(&cert, &[b"h2"], rustls::ALL_VERSIONS),
    )
    .await
    .expect("tls");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut tx = h2_over(tls).await;
    echo_round_trips(&mut tx).await;
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_extended_connects_are_refused() {
    let srv = start().await;
    let mut tx = h2c(srv.addr).await;
    let (res, _) = open_h2(&mut tx, "/echo", "websocket", &[]).await;
    assert_eq!(res.status(), 400, "no Sec-WebSocket-Version");
    let (res, _) = open_h2(
        &mut tx,
        "/echo",
        "websocket",
        &[("sec-websocket-version", "8")],
    )
    .await;
    assert_eq!(res.status(), 426);
    assert_eq!(res.headers()["sec-websocket-version"], "13");
    let (res, _) = open_h2(
        &mut tx,
        "/echo",
        "not-websocket",
        &[("sec-websocket-version", "13")],
    )
    .await;
    assert_eq!(res.status(), 400, "another :protocol");
    // A plain HTTP/2 GET to a WebSocket route is told what it needs.
    let res = tx
        .send_request(
            http::Request::get("http://localhost/echo")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 426);
    // The connection is still usable.
    echo_round_trips(&mut tx).await;
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_open_socket_keeps_its_connection_past_the_idle_timeout() {
    let srv = start_with(
        ServerConfig::new("127.0.0.1:0")
            .handle_signals(false)
            .idle_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut tx = h2c(srv.addr).await;
    let mut ws = open_ws(&mut tx, "/echo").await;
    // Three idle timeouts with the socket open and silent: the connection is not idle.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    ws.send(TMessage::text("still here")).await.unwrap();
    let got = tokio::time::timeout(GUARD, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.into_text().unwrap().as_str(), "still here");
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    // Once the socket is gone the connection is idle again, and closed after the timeout.
    let closed = eventually(Duration::from_secs(5), || tx.is_closed()).await;
    assert!(
        closed,
        "the idle connection is closed once its socket ended"
    );
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_closes_h2_sockets_with_1001() {
    let srv = start().await;
    let mut tx = h2c(srv.addr).await;
    let mut a = open_ws(&mut tx, "/echo").await;
    let mut b = open_ws(&mut tx, "/echo").await;
    a.send(TMessage::text("before")).await.unwrap();
    assert_eq!(
        a.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "before"
    );
    srv.handle.shutdown();
    for ws in [&mut a, &mut b] {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let TMessage::Close(Some(TCloseFrame { code, .. })) = msg else {
            panic!("expected Close 1001, got {msg:?}")
        };
        assert_eq!(u16::from(code), 1001);
        // Polling on sends tungstenite's Close reply and sees the stream end.
        assert!(
            tokio::time::timeout(GUARD, ws.next())
                .await
                .unwrap()
                .is_none()
        );
    }
    tokio::time::timeout(GUARD, srv.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
