//! Sockets subscribed to conduit-stream's `Hub` (feature `hub`), over real sockets with
//! tokio-tungstenite: live events, replay after an id, the `lagged` message, the `Disconnect`
//! policy's 1008, a bad replay id's 400, the subscription released when the client leaves, and
//! events that wait behind each other sent in one write.

#![cfg(feature = "hub")]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use conduit_core::{IntoResponse, Request, Router, any};
use conduit_server::{Config as ServerConfig, Server};
use conduit_stream::hub::{Hub, InMemory, SlowConsumer};
use conduit_stream::sse::Event;
use conduit_test_support::eventually;
use conduit_ws::WebSocketUpgrade;
use conduit_ws::hub::{Ended, forward};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as TMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;

const GUARD: Duration = Duration::from_secs(10);

fn tick(n: u64) -> Event {
    Event::default()
        .event("tick")
        .unwrap()
        .data(format!("{{\"seq\":{n}}}"))
}

/// `/ticks?last_event_id=N` forwards `hub` to the socket; the outcome goes to `ended`.
async fn serve(
    hub: Hub,
) -> (
    std::net::SocketAddr,
    conduit_server::ShutdownHandle,
    tokio::sync::mpsc::UnboundedReceiver<Ended>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = Router::new().route(
        "/ticks",
        any(move |mut req: Request| {
            let hub = hub.clone();
            let tx = tx.clone();
            async move {
                let ws = match WebSocketUpgrade::from_request(&mut req) {
                    Ok(ws) => ws,
                    Err(refused) => return refused.into_response(),
                };
                let last = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("last_event_id="));
                match hub.subscribe(last).await {
                    Ok(events) => ws.on_upgrade(move |socket| async move {
                        let ended = forward(socket, events).await.expect("forwarded");
                        let _ = tx.send(ended);
                    }),
                    Err(bad) => bad.into_response(),
                }
            }
        }),
    );
    let server = Server::bind(ServerConfig::new("127.0.0.1:0").handle_signals(false))
        .await
        .unwrap();
    let addr = server.local_addr();
    let handle = server.handle();
    tokio::spawn(server.serve(app));
    (addr, handle, rx)
}

async fn next_text<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<TMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let msg = tokio::time::timeout(GUARD, ws.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("not an error");
    msg.into_text().expect("text").as_str().to_owned()
}

#[tokio::test]
async fn live_events_reach_the_socket_and_leaving_releases_the_subscription() {
    let hub = Hub::new();
    let (addr, handle, mut ended) = serve(hub.clone()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ticks"))
        .await
        .unwrap();
    assert!(eventually(GUARD, || hub.backend().subscribers() == 1).await);
    for n in 1..=3 {
        hub.publish(tick(n)).await.unwrap();
    }
    for n in 1..=3 {
        assert_eq!(next_text(&mut ws).await, format!("{{\"seq\":{n}}}"));
    }
    ws.close(None).await.unwrap();
    assert_eq!(
        tokio::time::timeout(GUARD, ended.recv()).await.unwrap(),
        Some(Ended::ClientClosed)
    );
    assert!(eventually(GUARD, || hub.backend().subscribers() == 0).await);
    handle.shutdown();
}

#[tokio::test]
async fn replay_after_an_id_then_lagged_for_a_gap_then_400_for_a_bad_id() {
    let hub = Hub::with_backend(InMemory::builder().queue(4).replay(4).build());
    let (addr, handle, _ended) = serve(hub.clone()).await;
    for n in 1..=10 {
        hub.publish(tick(n)).await.unwrap();
    }
    // Ids 7..=10 are retained: after 8, the socket gets 9 and 10.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ticks?last_event_id=8"))
            .await
            .unwrap();
    assert_eq!(next_text(&mut ws).await, "{\"seq\":9}");
    assert_eq!(next_text(&mut ws).await, "{\"seq\":10}");
    hub.publish(tick(11)).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "{\"seq\":11}");
    // After 2: 3..=6 are gone, which the socket is told (as SSE clients are), then 7.. follow.
    let (mut gap, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ticks?last_event_id=2"))
            .await
            .unwrap();
    let lagged = next_text(&mut gap).await;
    assert!(lagged.starts_with("{\"missed\":"), "{lagged}");
    assert_eq!(next_text(&mut gap).await, "{\"seq\":8}");
    // An id that is not one of the hub's: the hub's 400, before any upgrade.
    let err = tokio_tungstenite::connect_async(format!("ws://{addr}/ticks?last_event_id=x"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), 400),
        other => panic!("expected a 400, got {other:?}"),
    }
    handle.shutdown();
}

#[tokio::test]
async fn the_disconnect_policy_closes_a_lagging_socket_with_1008() {
    let hub = Hub::with_backend(InMemory::builder().queue(2).replay(2).build())
        .slow_consumer(SlowConsumer::Disconnect);
    let (addr, handle, mut ended) = serve(hub.clone()).await;
    for n in 1..=6 {
        hub.publish(tick(n)).await.unwrap();
    }
    // Replay from before what is retained: a gap, which this policy answers by disconnecting.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ticks?last_event_id=1"))
            .await
            .unwrap();
    let msg = tokio::time::timeout(GUARD, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let TMessage::Close(Some(CloseFrame { code, reason })) = msg else {
        panic!("expected a Close, got {msg:?}")
    };
    assert_eq!((u16::from(code), reason.as_str()), (1008, "slow consumer"));
    // Polling on flushes tungstenite's Close reply, which completes the server's handshake.
    assert!(ws.next().await.is_none());
    assert_eq!(
        tokio::time::timeout(GUARD, ended.recv()).await.unwrap(),
        Some(Ended::SubscriptionEnded)
    );
    handle.shutdown();
}

/// A TCP stream that counts the writes made to it.
struct CountWrites {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for CountWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn events_waiting_behind_each_other_leave_in_one_write() {
    let hub = Hub::with_backend(InMemory::builder().queue(64).replay(64).build());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (client, server) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    let events = hub.subscribe(None).await.unwrap();
    // Fifty events wait in the subscription before the socket forwards any.
    for n in 1..=50 {
        hub.publish(tick(n)).await.unwrap();
    }
    let writes = Arc::new(AtomicUsize::new(0));
    let io = CountWrites {
        inner: server.unwrap().0,
        writes: writes.clone(),
    };
    let forwarding = tokio::spawn(forward(
        conduit_ws::WebSocket::from_io(io, conduit_ws::Config::default()),
        events,
    ));
    let mut ws = WebSocketStream::from_raw_socket(client.unwrap(), Role::Client, None).await;
    for n in 1..=50 {
        assert_eq!(next_text(&mut ws).await, format!("{{\"seq\":{n}}}"));
    }
    // One write for all fifty (a short write on a full socket buffer could add one more);
    // one per message before.
    let n = writes.load(Ordering::SeqCst);
    assert!(n <= 2, "{n} writes for 50 waiting messages");
    // Events that arrive one at a time still go out at once, each in its own write.
    hub.publish(tick(51)).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "{\"seq\":51}");
    assert_eq!(writes.load(Ordering::SeqCst), n + 1);
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    let ended = tokio::time::timeout(GUARD, forwarding)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.unwrap(), Ended::ClientClosed);
}
