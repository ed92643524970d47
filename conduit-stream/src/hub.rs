//! [`Hub`]: publish an event once, deliver it to every subscribed SSE stream.
//!
//! - Each subscriber reads through a **bounded** queue ([`InMemory::new`]'s `queue`): a stuck
//!   client never makes memory grow. When a subscriber falls a whole queue behind, the
//!   [`SlowConsumer`] policy decides: skip ahead and tell the client with a `lagged` event
//!   (the default), or end its stream (the browser then reconnects with `Last-Event-ID`).
//! - The hub assigns every event an increasing `id` and keeps the last `replay` events, so a
//!   client that reconnects with `Last-Event-ID` first receives the events it missed.
//! - Delivery goes through the small async [`Backend`] trait. [`InMemory`] (one process) is the
//!   default; a backend over a shared log (e.g. Redis Streams: `XADD` to publish, `XREAD` from
//!   the last id to subscribe) lets several instances behind a load balancer share one stream.
//!
//! ```
//! use conduit_core::{IntoResponse, Request, Router, get};
//! use conduit_stream::hub::Hub;
//! use conduit_stream::sse::Event;
//!
//! let hub = Hub::new(); // in-process, 1024 retained events, queues of 256
//! let events = hub.clone();
//! let app: Router = Router::new().route("/events", get(move |req: Request| {
//!     let hub = events.clone();
//!     async move { hub.sse(&req).await.into_response() } // a bad Last-Event-ID is a 400
//! }));
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! hub.publish(Event::default().event("tick").unwrap().data("hello")).await.unwrap();
//! # });
//! # let _ = app;
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use conduit_core::http::StatusCode;
use conduit_core::{BoxError, Error, Request};
use futures_core::Stream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::sse::{Event, LastEventId, Sse};

/// What a subscription yields: an event, or how many events this subscriber missed.
#[derive(Debug, Clone)]
pub enum Message {
    /// The next event, with its `id` set by the backend.
    Event(Event),
    /// The subscriber fell behind (or asked to replay from before what is retained) and this
    /// many events were skipped.
    Lagged(u64),
}

/// A backend's stream of [`Message`]s for one subscriber.
pub type Subscription = Pin<Box<dyn Stream<Item = Message> + Send + 'static>>;

/// Where a [`Hub`] publishes and subscribes: in-process today ([`InMemory`]), a shared log
/// across instances tomorrow. Implementations assign event ids and keep what replay needs.
pub trait Backend: Send + Sync + 'static {
    /// Publish `event` to every subscriber; returns the id it was given.
    fn publish(&self, event: Event) -> impl Future<Output = Result<String, BoxError>> + Send;

    /// Subscribe at the live edge, or, with `last_event_id`, replay what came after it first.
    /// An id that cannot belong to this stream is the client's fault: a 4xx [`Error`].
    fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> impl Future<Output = Result<Subscription, Error>> + Send;
}

/// What happens to a subscriber that falls a whole queue behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SlowConsumer {
    /// Skip to the oldest event still queued and send `event: lagged` with
    /// `data: {"missed":N}` first, so the client knows it has a gap.
    #[default]
    SkipAhead,
    /// End the subscriber's stream (cleanly). An `EventSource` reconnects with
    /// `Last-Event-ID` and gets what the replay buffer still holds.
    Disconnect,
}

/// Publish once, deliver to every subscriber. Cheap to clone: clones share the backend.
pub struct Hub<B = InMemory> {
    backend: Arc<B>,
    policy: SlowConsumer,
}

impl<B> Clone for Hub<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            policy: self.policy,
        }
    }
}

impl<B> fmt::Debug for Hub<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").field("policy", &self.policy).finish()
    }
}

impl Default for Hub<InMemory> {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub<InMemory> {
    /// An in-process hub with the [`InMemory`] defaults.
    pub fn new() -> Self {
        Self::with_backend(InMemory::default())
    }
}

impl<B: Backend> Hub<B> {
    /// A hub over `backend`.
    pub fn with_backend(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            policy: SlowConsumer::default(),
        }
    }

    /// Choose the slow-consumer policy (default [`SlowConsumer::SkipAhead`]).
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.policy = policy;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Publish `event` (any `id` it carries is replaced by the backend's); returns the new id.
    pub async fn publish(&self, event: Event) -> Result<String, BoxError> {
        self.backend.publish(event).await
    }

    /// A subscriber's event stream, with the slow-consumer policy applied.
    pub async fn subscribe(&self, last_event_id: Option<&str>) -> Result<HubStream, Error> {
        let sub = self.backend.subscribe(last_event_id).await?;
        Ok(HubStream {
            sub,
            policy: self.policy,
            ended: false,
        })
    }

    /// An SSE response for `req`, replaying after its `Last-Event-ID` if it has one.
    ///
    /// The future owns what it needs (it does not borrow `req` or the hub), so it can be
    /// awaited after `req` has moved on.
    pub fn sse(
        &self,
        req: &Request,
    ) -> impl Future<Output = Result<Sse<HubStream>, Error>> + Send + use<B> {
        let last = req.last_event_id().map(str::to_owned);
        let hub = self.clone();
        async move { Ok(Sse::new(hub.subscribe(last.as_deref()).await?)) }
    }
}

/// One subscriber's events, as made by [`Hub::subscribe`]; never fails.
pub struct HubStream {
    sub: Subscription,
    policy: SlowConsumer,
    ended: bool,
}

impl fmt::Debug for HubStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubStream")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Stream for HubStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.sub.as_mut().poll_next(cx) {
            Poll::Ready(Some(Message::Event(ev))) => Poll::Ready(Some(Ok(ev))),
            Poll::Ready(Some(Message::Lagged(n))) => match self.policy {
                SlowConsumer::SkipAhead => {
                    tracing::debug!(missed = n, "slow SSE subscriber skipped ahead");
                    let ev = Event::default()
                        .event("lagged")
                        .expect("static name")
                        .data(format!("{{\"missed\":{n}}}"));
                    Poll::Ready(Some(Ok(ev)))
                }
                SlowConsumer::Disconnect => {
                    tracing::info!(missed = n, "slow SSE subscriber disconnected");
                    self.ended = true;
                    Poll::Ready(None)
                }
            },
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The in-process [`Backend`]: a `tokio::sync::broadcast` channel (one shared ring; each
/// subscriber is a cursor into it, so its queue is bounded by the ring's size) and a replay
/// buffer of the last events. Ids are decimal sequence numbers from 1.
pub struct InMemory {
    state: Mutex<Replay>,
    tx: broadcast::Sender<Event>,
}

struct Replay {
    next_id: u64,
    events: VecDeque<(u64, Event)>,
    capacity: usize,
}

impl fmt::Debug for InMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("InMemory")
            .field("next_id", &s.next_id)
            .field("retained", &s.events.len())
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

/// Default per-subscriber queue length of [`InMemory`].
pub const DEFAULT_QUEUE: usize = 256;
/// Default number of events [`InMemory`] keeps for replay.
pub const DEFAULT_REPLAY: usize = 1024;

impl Default for InMemory {
    fn default() -> Self {
        Self::new(DEFAULT_QUEUE, DEFAULT_REPLAY)
    }
}

impl InMemory {
    /// A backend whose subscribers may fall `queue` events behind before the slow-consumer
    /// policy applies, keeping the last `replay` events for reconnecting clients.
    pub fn new(queue: usize, replay: usize) -> Self {
        let (tx, _) = broadcast::channel(queue.max(1));
        Self {
            state: Mutex::new(Replay {
                next_id: 1,
                events: VecDeque::with_capacity(replay.min(4096)),
                capacity: replay,
            }),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Replay> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribers currently connected.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Publish synchronously (what [`Backend::publish`] does for this backend).
    pub fn publish_now(&self, event: Event) -> String {
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1;
        let event = event.id(id.to_string()).expect("digits");
        if s.capacity > 0 {
            if s.events.len() == s.capacity {
                s.events.pop_front();
            }
            s.events.push_back((id, event.clone()));
        }
        // Sent under the lock, so a subscriber sees replay and live events without gap or
        // duplicate. No receivers is not an error.
        let _ = self.tx.send(event);
        id.to_string()
    }

    fn subscribe_now(&self, last_event_id: Option<&str>) -> Result<Subscription, Error> {
        let after = match last_event_id.map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                tracing::info!(
                    last_event_id = s,
                    "rejected SSE subscription: bad Last-Event-ID"
                );
                Error::new(
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID is not an event id of this stream",
                )
            })?),
        };
        let s = self.lock();
        let live = BroadcastStream::new(self.tx.subscribe());
        let mut replay = VecDeque::new();
        if let Some(after) = after {
            if after >= s.next_id {
                // An id from another incarnation of this stream (the process restarted):
                // everything retained is new to this client.
                tracing::debug!(
                    after,
                    next = s.next_id,
                    "Last-Event-ID ahead of the stream; replaying all retained"
                );
                replay.extend(s.events.iter().map(|(_, e)| Message::Event(e.clone())));
            } else {
                let oldest = s.events.front().map_or(s.next_id, |(id, _)| *id);
                if oldest > after + 1 {
                    replay.push_back(Message::Lagged(oldest - after - 1));
                }
                let skip = s.events.partition_point(|(id, _)| *id <= after);
                replay.extend(
                    s.events
                        .range(skip..)
                        .map(|(_, e)| Message::Event(e.clone())),
                );
            }
        }
        drop(s);
        Ok(Box::pin(InMemorySubscription { replay, live }))
    }
}

impl Backend for InMemory {
    fn publish(&self, event: Event) -> impl Future<Output = Result<String, BoxError>> + Send {
        std::future::ready(Ok(self.publish_now(event)))
    }

    fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> impl Future<Output = Result<Subscription, Error>> + Send {
        std::future::ready(self.subscribe_now(last_event_id))
    }
}

struct InMemorySubscription {
    replay: VecDeque<Message>,
    live: BroadcastStream<Event>,
}

impl Stream for InMemorySubscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        if let Some(m) = self.replay.pop_front() {
            return Poll::Ready(Some(m));
        }
        Pin::new(&mut self.live).poll_next(cx).map(|o| {
            o.map(|r| match r {
                Ok(ev) => Message::Event(ev),
                Err(BroadcastStreamRecvError::Lagged(n)) => Message::Lagged(n),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn ev(s: &str) -> Event {
        Event::default().data(s)
    }

    async fn next(s: &mut HubStream) -> String {
        s.next().await.unwrap().unwrap().to_bytes()
    }

    #[tokio::test]
    async fn replay_after_last_event_id_then_live() {
        let hub = Hub::with_backend(InMemory::new(8, 3));
        for i in 1..=5 {
            hub.publish(ev(&format!("e{i}"))).await.unwrap();
        }
        // retained: 3, 4, 5. After 3 -> 4, 5, then live 6.
        let mut s = hub.subscribe(Some("3")).await.unwrap();
        assert_eq!(next(&mut s).await, "data: e4\nid: 4\n\n");
        assert_eq!(next(&mut s).await, "data: e5\nid: 5\n\n");
        hub.publish(ev("e6")).await.unwrap();
        assert_eq!(next(&mut s).await, "data: e6\nid: 6\n\n");
        // after 1: retained are 4, 5, 6 -> lagged 2, then 4..
        let mut s = hub.subscribe(Some("1")).await.unwrap();
        assert_eq!(
            next(&mut s).await,
            "event: lagged\ndata: {\"missed\":2}\n\n"
        );
        assert_eq!(next(&mut s).await, "data: e4\nid: 4\n\n");
        // bad id -> 400
        let err = hub.subscribe(Some("x")).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn slow_consumer_policies() {
        let hub = Hub::with_backend(InMemory::new(2, 0));
        let mut skip = hub.subscribe(None).await.unwrap();
        let mut drop = hub
            .clone()
            .slow_consumer(SlowConsumer::Disconnect)
            .subscribe(None)
            .await
            .unwrap();
        for i in 1..=5 {
            hub.publish(ev(&format!("e{i}"))).await.unwrap();
        }
        assert_eq!(
            next(&mut skip).await,
            "event: lagged\ndata: {\"missed\":3}\n\n"
        );
        assert_eq!(next(&mut skip).await, "data: e4\nid: 4\n\n");
        assert!(drop.next().await.is_none());
    }
}
