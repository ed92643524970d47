//! A WebSocket subscribed to conduit-stream's [`Hub`](conduit_stream::hub::Hub) (feature
//! `hub`): the broadcast code that feeds SSE clients feeds sockets too.
//!
//! [`subscribe`] answers a handshake with a subscribed socket: it subscribes before the
//! upgrade, so that a bad replay id is refused with the hub's 400 instead of a socket that
//! closes at once, then runs [`forward`] on the socket (call `forward` yourself to do more
//! around it). Each event becomes one text message ([`data`]: the
//! event's `data` lines, or pass your own mapping to [`forward_with`]). The hub's
//! slow-consumer policy applies as it does to SSE: with
//! [`SkipAhead`](conduit_stream::hub::SlowConsumer::SkipAhead) a socket that fell a whole
//! queue behind receives the `lagged` event's data (`{"missed":N}`) and goes on from the
//! oldest queued event; with [`Disconnect`](conduit_stream::hub::SlowConsumer::Disconnect) its
//! subscription ends and the socket is closed with 1008 ("slow consumer").
//!
//! While forwarding, the socket is read too: Pings are answered, the keep-alive and the idle
//! timeout run, a Close from the client ends the forwarding, and graceful shutdown sends 1001.
//!
//! ```no_run
//! use conduit_core::{IntoResponse, Request, Router, any};
//! use conduit_stream::hub::Hub;
//! use conduit_ws::WebSocketUpgrade;
//!
//! let hub = Hub::new();
//! let app: Router = Router::new().route("/ws/ticks", any(move |mut req: Request| {
//!     let hub = hub.clone();
//!     async move {
//!         let ws = match WebSocketUpgrade::from_request(&mut req) {
//!             Ok(ws) => ws,
//!             Err(refused) => return refused.into_response(),
//!         };
//!         // Replay after the id the client last saw (`?last_event_id=` here).
//!         let last = req.uri().query().and_then(|q| q.strip_prefix("last_event_id="));
//!         conduit_ws::hub::subscribe(ws, &hub, last).await // 400 for a bad id
//!     }
//! }));
//! # let _ = app;
//! ```

use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use conduit_core::{IntoResponse, Response};
use conduit_stream::hub::{Backend, Hub};
use conduit_stream::sse::Event;
use futures_core::Stream;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::WsError;
use crate::message::{CloseCode, Message};
use crate::socket::WebSocket;
use crate::upgrade::WebSocketUpgrade;

/// Answer a checked handshake with a socket subscribed to `hub`, replaying after
/// `last_event_id` when given: the hub's 400 for an id that is not one of its own, else the
/// upgrade, with [`forward`] running on the socket. What a `/ws/ticks`-style route needs.
pub async fn subscribe<B: Backend>(
    ws: WebSocketUpgrade,
    hub: &Hub<B>,
    last_event_id: Option<&str>,
) -> Response {
    match hub.subscribe(last_event_id).await {
        Ok(events) => ws.on_upgrade(|socket| async move {
            if let Err(e) = forward(socket, events).await {
                tracing::debug!(error = %e, "hub socket ended");
            }
        }),
        Err(bad_id) => bad_id.into_response(),
    }
}

/// Why [`forward`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed the socket (or the connection ended).
    ClientClosed,
    /// The subscription ended (the hub's `Disconnect` policy, or its backend stopped); the
    /// socket was closed with 1008.
    SubscriptionEnded,
}

/// The default mapping: the event's `data` (its lines joined with LF) as a text message;
/// an event without data is not sent.
pub fn data(event: &Event) -> Option<Message> {
    event.get_data().map(Message::text)
}

/// Send every event of `events` (a [`HubStream`](conduit_stream::hub::HubStream)) to
/// `socket` as a text message of its data, until the client closes or the subscription ends.
pub async fn forward<S, E>(socket: WebSocket<S>, events: E) -> Result<Ended, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Stream<Item = Result<Event, Infallible>> + Unpin,
{
    forward_with(socket, events, data).await
}

/// [`forward`] with your own mapping from an event to a message (`None`: skip the event).
pub async fn forward_with<S, E, F>(
    mut socket: WebSocket<S>,
    mut events: E,
    mut to_message: F,
) -> Result<Ended, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Stream<Item = Result<Event, Infallible>> + Unpin,
    F: FnMut(&Event) -> Option<Message>,
{
    loop {
        // `recv` keeps its state in the socket, so dropping it when an event wins loses
        // nothing.
        let event = tokio::select! {
            biased;
            msg = socket.recv() => match msg {
                None | Some(Ok(Message::Close(_))) => return Ok(Ended::ClientClosed),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e),
            },
            event = events.next() => event,
        };
        match event {
            Some(Ok(event)) => {
                // This event and every one already waiting behind it (up to `MAX_BATCH`) go
                // out in one write: a socket that fell behind catches up with one syscall
                // instead of one per event, as an SSE response does.
                let mut queued = 0;
                let mut next = Some(event);
                let mut ended = false;
                while let Some(event) = next.take() {
                    if let Some(msg) = to_message(&event) {
                        match socket.feed(msg).await {
                            Ok(()) => queued += 1,
                            Err(WsError::Closed) => return Ok(Ended::ClientClosed),
                            Err(e) => return Err(e),
                        }
                    }
                    if queued < MAX_BATCH {
                        match ready_now(&mut events).await {
                            Some(Some(Ok(event))) => next = Some(event),
                            Some(Some(Err(never))) => match never {},
                            Some(None) => ended = true,
                            None => {}
                        }
                    }
                }
                match socket.flush().await {
                    Ok(()) => {}
                    Err(WsError::Closed) => return Ok(Ended::ClientClosed),
                    Err(e) => return Err(e),
                }
                if ended {
                    return close_ended(socket).await;
                }
            }
            Some(Err(never)) => match never {},
            None => return close_ended(socket).await,
        }
    }
}

/// The most messages [`forward_with`] queues before it writes them.
const MAX_BATCH: usize = 64;

/// The stream's next item if it is ready now (`None`: it is not; the task is woken when it is).
async fn ready_now<E: Stream + Unpin>(events: &mut E) -> Option<Option<E::Item>> {
    poll_fn(|cx| match Pin::new(&mut *events).poll_next(cx) {
        Poll::Ready(item) => Poll::Ready(Some(item)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// The subscription ended (the `Disconnect` policy, or the backend stopped): close with 1008.
async fn close_ended<S>(mut socket: WebSocket<S>) -> Result<Ended, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tracing::debug!("hub subscription ended: closing WebSocket (1008)");
    let _ = socket.close(CloseCode::POLICY, "slow consumer").await;
    // Complete the closing handshake (bounded by the close timeout).
    while socket.recv().await.is_some() {}
    Ok(Ended::SubscriptionEnded)
}
