//! [`HubStream`]: one subscriber's events with the [`SlowConsumer`] policy applied, what an
//! [`Sse`](crate::sse::Sse) response streams.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
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

/// One subscriber's events, as made by [`Hub::subscribe`](super::Hub::subscribe); never fails.
pub struct HubStream<S = InMemoryEvents> {
    sub: S,
    policy: SlowConsumer,
    ended: bool,
}

impl<S> HubStream<S> {
    /// `sub` with `policy` applied.
    pub(crate) fn new(sub: S, policy: SlowConsumer) -> Self {
        Self {
            sub,
            policy,
            ended: false,
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
