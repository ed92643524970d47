//! [`InMemory`]: the in-process [`Backend`], one ring of the latest events that every
//! subscriber reads through a cursor.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use conduit_core::{BoxError, Error};
use futures_core::Stream;

use crate::hub::backend::{Backend, Message, bad_last_event_id};
use crate::sse::Event;

/// The in-process [`Backend`]: one ring of the latest events, shared by every subscriber.
///
/// A subscriber is only a cursor (the next id it wants) into the ring, so its queue is bounded
/// by the ring and a publish costs one wake-up per waiting subscriber, nothing more: no copy,
/// no per-subscriber buffer. Replay after `Last-Event-ID` reads the same ring. Ids are decimal
/// sequence numbers from 1.
pub struct InMemory {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<Ring>,
    /// How far behind the live edge a subscriber may fall before the slow-consumer policy.
    queue: u64,
    /// How many of the latest events a reconnecting subscriber may replay.
    replay: u64,
    /// `Ring::epoch`, readable without the lock: a subscriber whose waker went in during this
    /// epoch, and that has seen every event, may answer `Pending` without locking.
    epoch: AtomicU64,
}

struct Ring {
    /// The latest events, oldest first: `events[i]` has id `first + i`.
    events: VecDeque<Event>,
    first: u64,
    next_id: u64,
    /// `max(queue, replay)`: what the ring keeps.
    capacity: usize,
    /// Wakers of subscribers that found nothing new, woken (and dropped) by the next publish.
    waiters: Vec<Waker>,
    /// Bumped whenever `waiters` is emptied, so a subscriber knows its slot is gone.
    epoch: u64,
    /// Slots in `waiters` whose subscriber went away (replaced by a no-op waker).
    dead: usize,
    subscribers: usize,
    closed: bool,
}

impl Ring {
    /// Empties `waiters` (to be woken outside the lock), starting a new epoch.
    fn take_waiters(&mut self, epoch: &AtomicU64) -> Vec<Waker> {
        self.epoch += 1;
        epoch.store(self.epoch, Ordering::Release);
        self.dead = 0;
        let n = self.waiters.len();
        std::mem::replace(&mut self.waiters, Vec::with_capacity(n))
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for InMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("InMemory")
            .field("next_id", &s.next_id)
            .field("retained", &s.events.len())
            .field("subscribers", &s.subscribers)
            .finish()
    }
}

/// Default per-subscriber queue length of [`InMemory`].
pub const DEFAULT_QUEUE: usize = 256;
/// Default number of events [`InMemory`] keeps for replay.
pub const DEFAULT_REPLAY: usize = 1024;

impl Default for InMemory {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// Configures an [`InMemory`] backend: `InMemory::builder().queue(64).replay(512).build()`.
#[derive(Debug, Clone, Copy)]
pub struct InMemoryBuilder {
    queue: usize,
    replay: usize,
}

impl Default for InMemoryBuilder {
    fn default() -> Self {
        Self {
            queue: DEFAULT_QUEUE,
            replay: DEFAULT_REPLAY,
        }
    }
}

impl InMemoryBuilder {
    /// How many events a subscriber may fall behind the live edge before the slow-consumer
    /// policy applies (default [`DEFAULT_QUEUE`]; at least 1).
    pub fn queue(mut self, events: usize) -> Self {
        self.queue = events;
        self
    }

    /// How many of the latest events are kept for clients that reconnect with
    /// `Last-Event-ID` (default [`DEFAULT_REPLAY`]; 0 keeps none beyond the queue).
    pub fn replay(mut self, events: usize) -> Self {
        self.replay = events;
        self
    }

    /// The backend.
    pub fn build(self) -> InMemory {
        InMemory::build(self.queue, self.replay)
    }
}

impl InMemory {
    /// Configure a backend; [`InMemory::default`] is `InMemory::builder().build()`.
    pub fn builder() -> InMemoryBuilder {
        InMemoryBuilder::default()
    }

    /// A backend whose subscribers may fall `queue` events behind before the slow-consumer
    /// policy applies, keeping the last `replay` events for reconnecting clients.
    #[deprecated(
        since = "0.1.0",
        note = "two positional counts read alike: use `InMemory::builder().queue(q).replay(r).build()`"
    )]
    pub fn new(queue: usize, replay: usize) -> Self {
        Self::build(queue, replay)
    }

    fn build(queue: usize, replay: usize) -> Self {
        let queue = queue.max(1);
        let capacity = queue.max(replay);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(Ring {
                    events: VecDeque::with_capacity(capacity.min(4096)),
                    first: 1,
                    next_id: 1,
                    capacity,
                    waiters: Vec::new(),
                    epoch: 0,
                    dead: 0,
                    subscribers: 0,
                    closed: false,
                }),
                queue: queue as u64,
                replay: replay as u64,
                epoch: AtomicU64::new(0),
            }),
        }
    }

    /// Subscribers currently connected.
    pub fn subscribers(&self) -> usize {
        self.shared.lock().subscribers
    }

    /// Publish synchronously (what [`Backend::publish`] does for this backend).
    pub fn publish_now(&self, event: Event) -> String {
        self.push(event, true).to_string()
    }

    /// Deliver `event` to the subscribers as it is, keeping the `id` it carries (or none):
    /// the local fan-out of a backend whose ids come from a shared log (e.g. Redis Streams),
    /// with the same bounded queues and slow-consumer policy. Such a backend answers
    /// `Last-Event-ID` itself and subscribes here with [`subscribe_now`](Self::subscribe_now)
    /// at the live edge.
    pub fn relay(&self, event: Event) {
        self.push(event, false);
    }

    /// Append `event` (with the ring's sequence number as its `id` if `number`) and wake the
    /// waiting subscribers; returns that sequence number.
    fn push(&self, event: Event, number: bool) -> u64 {
        let mut s = self.shared.lock();
        let id = s.next_id;
        let event = if number {
            event.id(id.to_string()).expect("digits")
        } else {
            event
        };
        if s.events.len() == s.capacity {
            s.events.pop_front();
            s.first += 1;
        }
        s.events.push_back(event);
        s.next_id += 1;
        let waiters = s.take_waiters(&self.shared.epoch);
        drop(s);
        wake_all(waiters);
        id
    }

    /// Subscribe synchronously (what [`Backend::subscribe`] does for this backend); `None` is
    /// the live edge.
    pub fn subscribe_now(&self, last_event_id: Option<&str>) -> Result<InMemoryEvents, Error> {
        let after = match last_event_id.map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(s.parse::<u64>().map_err(|_| bad_last_event_id(s))?),
        };
        let mut s = self.shared.lock();
        s.subscribers += 1;
        let live = s.next_id;
        // The oldest event a reconnecting client may replay.
        let oldest = live - (s.events.len() as u64).min(self.shared.replay);
        let (next, lagged) = match after {
            None => (live, 0),
            Some(after) if after >= live => {
                // An id from another incarnation of this stream (the process restarted):
                // everything retained is new to this client.
                tracing::debug!(
                    after,
                    next = live,
                    "Last-Event-ID ahead of the stream; replaying all retained"
                );
                (oldest, 0)
            }
            Some(after) if oldest > after + 1 => (oldest, oldest - after - 1),
            Some(after) => (after + 1, 0),
        };
        drop(s);
        Ok(InMemoryEvents {
            shared: self.shared.clone(),
            next,
            live,
            lagged,
            slot: None,
            waker: (0, 0),
        })
    }
}

impl Drop for InMemory {
    /// Subscribers receive what is left in the ring, then their streams end.
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.closed = true;
        let waiters = s.take_waiters(&self.shared.epoch);
        drop(s);
        wake_all(waiters);
    }
}

impl Backend for InMemory {
    type Events = InMemoryEvents;

    fn publish(&self, event: Event) -> impl Future<Output = Result<String, BoxError>> + Send {
        std::future::ready(Ok(self.publish_now(event)))
    }

    fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> impl Future<Output = Result<InMemoryEvents, Error>> + Send {
        std::future::ready(self.subscribe_now(last_event_id))
    }
}

/// One subscriber of [`InMemory`]: a cursor into the shared ring.
pub struct InMemoryEvents {
    shared: Arc<Shared>,
    /// The id of the next event to deliver.
    next: u64,
    /// The live edge when it subscribed: ids below it are replay, exempt from `queue`.
    live: u64,
    /// Events missed before the first one it gets (replay from before what is retained).
    lagged: u64,
    /// Where this subscriber's waker sits in `waiters`: (epoch, index).
    slot: Option<(u64, usize)>,
    /// That waker's identity (`Waker::data`, `Waker::vtable`), to compare without the lock.
    waker: (usize, usize),
}

fn identity(w: &Waker) -> (usize, usize) {
    (w.data() as usize, w.vtable() as *const _ as usize)
}

/// Puts (or keeps) a subscriber's waker in `waiters` for the current epoch, noting where
/// (`slot`) and whose (`id`).
fn register(slot: &mut Option<(u64, usize)>, id: &mut (usize, usize), s: &mut Ring, waker: &Waker) {
    match *slot {
        Some((epoch, i)) if epoch == s.epoch => {
            if !s.waiters[i].will_wake(waker) {
                s.waiters[i] = waker.clone();
            }
        }
        _ => {
            *slot = Some((s.epoch, s.waiters.len()));
            s.waiters.push(waker.clone());
        }
    }
    *id = identity(waker);
}

impl fmt::Debug for InMemoryEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryEvents")
            .field("next", &self.next)
            .finish()
    }
}

impl Stream for InMemoryEvents {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = &mut *self;
        if this.lagged > 0 {
            return Poll::Ready(Some(Message::Lagged(std::mem::take(&mut this.lagged))));
        }
        // Fast path: this task's waker went in after the last event it took, and no publish
        // (or compaction) has emptied the list since, so nothing is new.
        if let Some((epoch, _)) = this.slot
            && this.waker == identity(cx.waker())
            && this.shared.epoch.load(Ordering::Acquire) == epoch
        {
            return Poll::Pending;
        }
        let mut s = this.shared.lock();
        // Skip what the ring no longer holds, and live events past the queue's length.
        let mut to = this.next.max(s.first);
        if s.next_id - to.max(this.live) > this.shared.queue {
            to = s.next_id - this.shared.queue;
        }
        if to > this.next {
            let missed = to - this.next;
            this.next = to;
            return Poll::Ready(Some(Message::Lagged(missed)));
        }
        if this.next < s.next_id {
            let ev = s.events[(this.next - s.first) as usize].clone();
            this.next += 1;
            if this.next == s.next_id && !s.closed {
                // The caller polls again for more: register now, so that poll takes the fast
                // path instead of this lock.
                register(&mut this.slot, &mut this.waker, &mut s, cx.waker());
            }
            return Poll::Ready(Some(Message::Event(ev)));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        register(&mut this.slot, &mut this.waker, &mut s, cx.waker());
        Poll::Pending
    }
}

impl Drop for InMemoryEvents {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.subscribers -= 1;
        let Some((epoch, i)) = self.slot else { return };
        if epoch != s.epoch {
            return;
        }
        // Release the task now; the slot itself goes at the next publish, or here once most
        // slots are dead (the live ones are woken to register again), so connection churn
        // without publishes cannot grow the list.
        s.waiters[i] = Waker::noop().clone();
        s.dead += 1;
        if s.dead > 64 && s.dead * 2 > s.waiters.len() {
            let waiters = s.take_waiters(&self.shared.epoch);
            drop(s);
            wake_all(waiters);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::hub::{Hub, HubStream, SlowConsumer};
    use tokio_stream::StreamExt;

    fn in_memory(queue: usize, replay: usize) -> InMemory {
        InMemory::builder().queue(queue).replay(replay).build()
    }

    fn ev(s: &str) -> Event {
        Event::default().data(s)
    }

    async fn next(s: &mut HubStream) -> String {
        s.next().await.unwrap().unwrap().to_string()
    }

    #[tokio::test]
    async fn replay_after_last_event_id_then_live() {
        let hub = Hub::with_backend(in_memory(8, 3));
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
        assert_eq!(err.status(), conduit_core::http::StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn relayed_events_keep_their_ids_and_go_through_the_same_queues() {
        let hub = Hub::with_backend(in_memory(2, 0));
        let mut live = hub.subscribe(None).await.unwrap();
        let ring = hub.backend();
        ring.relay(ev("a").id("1700000000000-0").unwrap());
        assert_eq!(next(&mut live).await, "data: a\nid: 1700000000000-0\n\n");
        for i in 0..3 {
            ring.relay(ev(&format!("r{i}")));
        }
        // A queue of 2: the first relayed of three is skipped, as for published events.
        assert_eq!(
            next(&mut live).await,
            "event: lagged\ndata: {\"missed\":1}\n\n"
        );
        assert_eq!(next(&mut live).await, "data: r1\n\n");
    }

    #[test]
    fn the_builder_sets_queue_and_replay_and_defaults_match() {
        let b = in_memory(8, 3);
        assert_eq!((b.shared.queue, b.shared.replay), (8, 3));
        assert_eq!(b.shared.lock().capacity, 8);
        let d = InMemory::default();
        let (q, r) = (DEFAULT_QUEUE as u64, DEFAULT_REPLAY as u64);
        assert_eq!((d.shared.queue, d.shared.replay), (q, r));
        let zero = in_memory(0, 0);
        assert_eq!(zero.shared.queue, 1, "a queue holds at least one event");
        #[allow(deprecated)]
        let deprecated = InMemory::new(8, 3);
        assert_eq!((deprecated.shared.queue, deprecated.shared.replay), (8, 3));
    }

    #[tokio::test]
    async fn slow_consumer_policies() {
        let hub = Hub::with_backend(in_memory(2, 0));
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

    fn poll_once(s: &mut HubStream, waker: &Waker) -> Poll<Option<Result<Event, Infallible>>> {
        Pin::new(s).poll_next(&mut Context::from_waker(waker))
    }

    #[tokio::test]
    async fn a_waiting_subscriber_holds_one_slot_and_churn_does_not_grow_the_list() {
        let hub = Hub::with_backend(in_memory(4, 4));
        let waker = Waker::noop();
        let mut s = hub.subscribe(None).await.unwrap();
        for _ in 0..10 {
            assert!(poll_once(&mut s, waker).is_pending());
        }
        assert_eq!(hub.backend().shared.lock().waiters.len(), 1);
        // Subscribers that wait and go away, with no publish to clear the list.
        for _ in 0..10_000 {
            let mut gone = hub.subscribe(None).await.unwrap();
            assert!(poll_once(&mut gone, waker).is_pending());
        }
        assert!(hub.backend().shared.lock().waiters.len() <= 200);
        assert_eq!(hub.backend().subscribers(), 1);
        // The survivor was woken by the compaction and still gets the next event.
        hub.publish(ev("after churn")).await.unwrap();
        assert_eq!(next(&mut s).await, "data: after churn\nid: 1\n\n");
    }

    #[tokio::test]
    async fn dropping_the_hub_ends_streams_after_what_is_left() {
        let hub = Hub::with_backend(in_memory(4, 0));
        let mut s = hub.subscribe(None).await.unwrap();
        hub.publish(ev("last")).await.unwrap();
        let waiting = tokio::spawn({
            let mut t = hub.subscribe(None).await.unwrap();
            async move { t.next().await.is_none() }
        });
        tokio::task::yield_now().await;
        drop(hub);
        assert_eq!(next(&mut s).await, "data: last\nid: 1\n\n");
        assert!(s.next().await.is_none());
        assert!(
            waiting.await.unwrap(),
            "a waiting subscriber is woken and ends"
        );
    }

    #[tokio::test]
    async fn a_slow_replay_is_bounded_by_the_ring() {
        // queue 2, replay 4: a reconnecting client replays up to 4, then lags like any other.
        let hub = Hub::with_backend(in_memory(2, 4));
        for i in 1..=4 {
            hub.publish(ev(&format!("e{i}"))).await.unwrap();
        }
        let mut s = hub.subscribe(Some("0")).await.unwrap();
        assert_eq!(next(&mut s).await, "data: e1\nid: 1\n\n");
        for i in 5..=9 {
            hub.publish(ev(&format!("e{i}"))).await.unwrap();
        }
        // Live edge 10, queue 2: skip to 8 (2..=7 missed).
        assert_eq!(
            next(&mut s).await,
            "event: lagged\ndata: {\"missed\":6}\n\n"
        );
        assert_eq!(next(&mut s).await, "data: e8\nid: 8\n\n");
        assert_eq!(next(&mut s).await, "data: e9\nid: 9\n\n");
    }

    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_has_everything_waits_without_the_lock_and_is_still_woken() {
        let hub = Hub::with_backend(in_memory(4, 0));
        let mut s = hub.subscribe(None).await.unwrap();
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        hub.publish(ev("a")).await.unwrap();
        // Taking the latest event registers the waker; the next poll is the lock-free one.
        assert!(matches!(
            poll_once(&mut s, &waker),
            Poll::Ready(Some(Ok(_)))
        ));
        let epoch = hub.backend().shared.epoch.load(Ordering::SeqCst);
        let mut s = {
            // Hold the lock while another thread polls: a poll that needed it would block.
            let _held = hub.backend().shared.lock();
            let (tx, rx) = std::sync::mpsc::channel();
            let w = waker.clone();
            std::thread::spawn(move || {
                let pending = poll_once(&mut s, &w).is_pending();
                let _ = tx.send((pending, s));
            });
            let (pending, s) = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("the poll waited for the lock: no lock-free path");
            assert!(pending);
            s
        };
        assert_eq!(hub.backend().shared.lock().waiters.len(), 1);
        hub.publish(ev("b")).await.unwrap();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the publish woke the subscriber"
        );
        assert!(hub.backend().shared.epoch.load(Ordering::SeqCst) > epoch);
        let Poll::Ready(Some(Ok(b))) = poll_once(&mut s, &waker) else {
            panic!("the event published after the lock-free wait was not delivered")
        };
        assert_eq!(b.to_string(), "data: b\nid: 2\n\n");
        // Another task's waker takes the locked path and replaces the registered one.
        let other = Arc::new(Count(Default::default()));
        assert!(poll_once(&mut s, &Waker::from(other.clone())).is_pending());
        hub.publish(ev("c")).await.unwrap();
        assert_eq!(other.0.load(Ordering::SeqCst), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
