//! Graceful shutdown with 100 open sockets (60 over HTTP/1.1, 40 over HTTP/2 on 4
//! connections): every client receives Close 1001 and the server exits within its drain
//! deadline.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use conduit_server::Config as ServerConfig;
use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message as TMessage;

const DRAIN: Duration = Duration::from_secs(5);

/// Wait for the server's Close, answer it (by polling on) and see the stream end: its code.
async fn close_code<S>(mut ws: S) -> u16
where
    S: futures_util::Stream<Item = Result<TMessage, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<TMessage>
        + Unpin,
{
    let msg = timeout(GUARD, ws.next()).await.unwrap().unwrap().unwrap();
    let TMessage::Close(Some(frame)) = msg else {
        panic!("expected a Close, got {msg:?}")
    };
    assert!(timeout(GUARD, ws.next()).await.unwrap().is_none());
    u16::from(frame.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sockets_get_1001_and_the_server_exits_within_its_drain_deadline() {
    let srv = start_with(
        ServerConfig::new("127.0.0.1:0")
            .handle_signals(false)
            .shutdown_timeout(DRAIN),
    )
    .await;
    let mut waiting = Vec::new();
    for i in 0..60 {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", srv.addr))
            .await
            .unwrap();
        ws.send(TMessage::text(format!("h1 {i}"))).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            TMessage::text(format!("h1 {i}"))
        );
        waiting.push(tokio::spawn(close_code(ws)));
    }
    for c in 0..4 {
        let mut tx = h2c(srv.addr).await;
        for i in 0..10 {
            let mut ws = open_ws(&mut tx, "/echo").await;
            ws.send(TMessage::text(format!("h2 {c}.{i}")))
                .await
                .unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                TMessage::text(format!("h2 {c}.{i}"))
            );
            waiting.push(tokio::spawn(close_code(ws)));
        }
    }
    assert_eq!(srv.open.load(Ordering::SeqCst), 100);

    let began = Instant::now();
    srv.handle.shutdown();
    for w in waiting {
        assert_eq!(w.await.unwrap(), 1001);
    }
    timeout(DRAIN, srv.task)
        .await
        .expect("the server exits within its drain deadline")
        .unwrap()
        .unwrap();
    let took = began.elapsed();
    assert!(took < DRAIN, "{took:?}");
    assert_eq!(
        srv.open.load(Ordering::SeqCst),
        0,
        "every handler has ended"
    );
}
