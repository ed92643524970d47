//! The [`Backend`] seam: where a [`Hub`](crate::hub::Hub) publishes and subscribes, and the
//! [`Message`]s a subscription yields.

use std::future::Future;
use std::pin::Pin;

use conduit_core::http::StatusCode;
use conduit_core::{BoxError, Error};
use futures_core::Stream;

use crate::sse::Event;

/// What a subscription yields: an event, or how many events this subscriber missed.
#[derive(Debug, Clone)]
pub enum Message {
    /// The next event, with its `id` set by the backend.
    Event(Event),
    /// The subscriber fell behind (or asked to replay from before what is retained) and this
    /// many events were skipped.
    Lagged(u64),
}

/// A boxed stream of [`Message`]s, for a [`Backend`] whose subscriptions are of several types.
pub type Subscription = Pin<Box<dyn Stream<Item = Message> + Send + 'static>>;

/// Where a [`Hub`](super::Hub) publishes and subscribes: in process by default
/// ([`InMemory`](super::InMemory)), or a log shared by several instances. Implementations
/// assign event ids and keep what replay needs.
pub trait Backend: Send + Sync + 'static {
    /// One subscriber's stream of [`Message`]s ([`Subscription`] if it needs a box).
    type Events: Stream<Item = Message> + Send + Unpin + 'static;

    /// Publish `event` to every subscriber; returns the id it was given.
    fn publish(&self, event: Event) -> impl Future<Output = Result<String, BoxError>> + Send;

    /// Subscribe at the live edge, or, with `last_event_id`, replay what came after it first.
    /// An id that cannot belong to this stream is the client's fault: a 4xx [`Error`].
    fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> impl Future<Output = Result<Self::Events, Error>> + Send;
}

/// The answer of every backend to a `Last-Event-ID` that cannot be one of its ids: a 400, with
/// a debug log line (the client's fault).
pub fn bad_last_event_id(value: &str) -> Error {
    tracing::debug!(
        last_event_id = value,
        "rejected SSE subscription: bad Last-Event-ID"
    );
    Error::new(
        StatusCode::BAD_REQUEST,
        "Last-Event-ID is not an event id of this stream",
    )
}
