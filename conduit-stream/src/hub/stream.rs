//! [`HubStream`]: one subscriber's events with the [`SlowConsumer`] policy applied, what an
//! [`Sse`](crate::sse::Sse) response streams.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::hub::backend::Message;
use crate::hub::memory::InMemoryEvents;
use crate::sse::Event;

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

/// What the slow-consumer policy did, over every subscriber of a hub since it was made
/// ([`Hub::stats`](super::Hub::stats)); counters only grow, for a Prometheus `rate()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Times a subscriber fell a whole queue behind and skipped ahead
    /// ([`SlowConsumer::SkipAhead`]).
    pub skipped_ahead: u64,
    /// Subscribers disconnected for falling a whole queue behind
    /// ([`SlowConsumer::Disconnect`]).
    pub disconnected: u64,
    /// Events those subscribers missed.
    pub missed_events: u64,
}

/// The counters behind [`HubStats`], shared by a hub and its subscribers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    skipped_ahead: AtomicU64,
    disconnected: AtomicU64,
    missed_events: AtomicU64,
}

impl Counters {
    pub(crate) fn stats(&self) -> HubStats {
        HubStats {
            skipped_ahead: self.skipped_ahead.load(Relaxed),
            disconnected: self.disconnected.load(Relaxed),
            missed_events: self.missed_events.load(Relaxed),
        }
    }
}

/// One subscriber's events, as made by [`Hub::subscribe`](super::Hub::subscribe); never fails.
pub struct HubStream<S = InMemoryEvents> {
    sub: S,
    policy: SlowConsumer,
    ended: bool,
    counters: Arc<Counters>,
}

impl<S> HubStream<S> {
    /// `sub` with `policy` applied, counted in `counters`.
    pub(crate) fn new(sub: S, policy: SlowConsumer, counters: Arc<Counters>) -> Self {
        Self {
            sub,
            policy,
            ended: false,
            counters,
        }
    }
}

impl<S> fmt::Debug for HubStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubStream")
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S: Stream<Item = Message> + Unpin> Stream for HubStream<S> {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.sub).poll_next(cx) {
            Poll::Ready(Some(Message::Event(ev))) => Poll::Ready(Some(Ok(ev))),
            Poll::Ready(Some(Message::Lagged(n))) => match self.policy {
                SlowConsumer::SkipAhead => {
                    self.counters.skipped_ahead.fetch_add(1, Relaxed);
                    self.counters.missed_events.fetch_add(n, Relaxed);
                    tracing::debug!(missed = n, "slow SSE subscriber skipped ahead");
                    let ev = Event::default()
                        .event("lagged")
                        .expect("static name")
                        .data(format!("{{\"missed\":{n}}}"));
                    Poll::Ready(Some(Ok(ev)))
                }
                SlowConsumer::Disconnect => {
                    self.counters.disconnected.fetch_add(1, Relaxed);
                    self.counters.missed_events.fetch_add(n, Relaxed);
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
