//! [`Hub`]: publish an event once, deliver it to every subscribed SSE stream.
//!
//! - Each subscriber reads through a **bounded** queue ([`InMemoryBuilder::queue`]): a stuck
//!   client never makes memory grow. When a subscriber falls a whole queue behind, the
//!   [`SlowConsumer`] policy decides: skip ahead and tell the client with a `lagged` event
//!   (the default), or end its stream (the browser then reconnects with `Last-Event-ID`).
//! - The hub assigns every event an increasing `id` and keeps the last
//!   [`replay`](InMemoryBuilder::replay) events, so a client that reconnects with
//!   `Last-Event-ID` first receives the events it missed. An id from before what is retained
//!   gets a `lagged` event for the gap, then the oldest retained. An id *ahead* of the stream
//!   (the client saw a previous run of the process, whose ids started again from 1) replays
//!   everything retained: every retained event is new to that client, and skipping to the live
//!   edge would lose them silently. A `Last-Event-ID` that is not a number is a 400.
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

mod backend;
mod memory;
mod stream;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use conduit_core::{BoxError, Error, Request};

pub use crate::hub::backend::{Backend, Message, Subscription, bad_last_event_id};
pub use crate::hub::memory::{
    DEFAULT_QUEUE, DEFAULT_REPLAY, InMemory, InMemoryBuilder, InMemoryEvents,
};
use crate::hub::stream::Counters;
pub use crate::hub::stream::{HubStats, HubStream, SlowConsumer};
use crate::sse::{Event, LastEventId, Sse};

/// Publish once, deliver to every subscriber. Cheap to clone: clones share the backend.
pub struct Hub<B = InMemory> {
    backend: Arc<B>,
    policy: SlowConsumer,
    counters: Arc<Counters>,
}

impl<B> Clone for Hub<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            policy: self.policy,
            counters: self.counters.clone(),
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
            counters: Arc::default(),
        }
    }

    /// What the slow-consumer policy has done so far, over all subscribers (for metrics:
    /// export them as counters, e.g. with conduit-middleware's `MetricsRegistry::counter_fn`).
    pub fn stats(&self) -> HubStats {
        self.counters.stats()
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
    pub async fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<HubStream<B::Events>, Error> {
        let sub = self.backend.subscribe(last_event_id).await?;
        Ok(HubStream::new(sub, self.policy, self.counters.clone()))
    }

    /// An SSE response for `req`, replaying after its `Last-Event-ID` if it has one.
    ///
    /// The future owns what it needs (it does not borrow `req` or the hub), so it can be
    /// awaited after `req` has moved on.
    pub fn sse(
        &self,
        req: &Request,
    ) -> impl Future<Output = Result<Sse<HubStream<B::Events>>, Error>> + Send + use<B> {
        let last = req.last_event_id().map(str::to_owned);
        let hub = self.clone();
        async move { Ok(Sse::new(hub.subscribe(last.as_deref()).await?)) }
    }
}
