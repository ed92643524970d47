//! [`RedisStreams`]: a [`Backend`] for the SSE [`Hub`](conduit_stream::hub::Hub) on a Redis
//! Stream, so every instance behind a load balancer delivers every event, and a client may
//! reconnect to any of them with `Last-Event-ID`.
//!
//! - `publish` is one `XADD` (`MAXLEN ~ n` and/or `MINID ~ now - age`), bounded by the command
//!   timeout; the entry id (`1712345678901-0`) is the SSE `id:`.
//! - Each instance runs **one reader per topic**: a task blocking in `XREAD` on a connection of
//!   its own, which relays every entry into an in-process [`InMemory`] ring. Subscribers are
//!   cursors into that ring, with its bounded queues and the hub's slow-consumer policy: no
//!   Redis connection and no Redis read per SSE client.
//! - `Last-Event-ID: X` replays with `XRANGE key (X <last relayed>` (exclusive start, in pages),
//!   then continues from the ring exactly after the last relayed id: no gap, no duplicate. An
//!   id from before what Redis retains (trimmed, or lost in a restart of Redis without
//!   persistence) gets a `lagged` event first, as the in-memory hub does; its `missed` count is
//!   1, a lower bound, since Redis does not record how many entries it trimmed after an id. A
//!   malformed id is a 400. A client that reconnects while Redis is unreachable is served: its
//!   replay waits for Redis (retried with backoff) while its stream stays open.
//! - When Redis goes away the reader reconnects with backoff (100 ms doubling to 5 s) and
//!   resumes after the last id it relayed; SSE streams stay open meanwhile (their keep-alives
//!   go on). A Redis that came back without the stream's entries is detected, logged, counted
//!   and told to the subscribers with a `lagged` event.
//!
//! ```no_run
//! // no_run: it needs a Redis server on 127.0.0.1:6379.
//! use conduit_core::{IntoResponse, Request, Router, get};
//! use conduit_redis::{Redis, RedisStreams};
//! use conduit_stream::hub::Hub;
//! use conduit_stream::sse::Event;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let redis = Redis::open("redis://127.0.0.1:6379").unwrap();
//! let hub = Hub::with_backend(RedisStreams::builder(&redis, "ticks").max_len(10_000).build());
//! let events = hub.clone();
//! let app: Router = Router::new().route("/events", get(move |req: Request| {
//!     let hub = events.clone();
//!     async move { hub.sse(&req).await.into_response() }
//! }));
//! let id = hub.publish(Event::default().event("tick").unwrap().data("hello")).await.unwrap();
//! assert!(id.contains('-')); // the stream entry id
//! # let _ = app;
//! # });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use conduit_core::{BoxError, Error};
use conduit_stream::hub::{Backend, InMemory, InMemoryEvents, Message, bad_last_event_id};
use conduit_stream::sse::Event;
use futures_core::Stream;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{RedisResult, Value};

use crate::conn::{BLOCK, Conn, Redis};
/// Entries one `XREAD` or replay `XRANGE` asks for at most.
const PAGE: usize = 256;
/// The first and the longest pause between reconnect attempts of a reader.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// The stream field that holds the event's wire text (without its id).
const FIELD: &str = "e";

/// A Redis Stream entry id, `<ms>-<seq>`, ordered as Redis orders them: what a
/// [`RedisStreams`] subscriber receives as its SSE `id:` and sends back as `Last-Event-ID`.
///
/// ```
/// use conduit_redis::EntryId;
///
/// let id = EntryId::parse("1712345678901-2").unwrap();
/// assert_eq!((id.ms, id.seq), (1712345678901, 2));
/// assert!(EntryId::parse("1712345678901-10").unwrap() > id);
/// assert_eq!(EntryId::parse("12"), None); // a Last-Event-ID like this is a 400
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EntryId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl EntryId {
    /// Parse `<ms>-<seq>` (both decimal); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What the Redis hub backends of a process have done; counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubBackendStats {
    /// Events published (`XADD` answered).
    pub published: u64,
    /// Publishes that failed (Redis unreachable, timed out, an error reply).
    pub publish_errors: u64,
    /// Times a reader connected again after losing Redis.
    pub reconnects: u64,
    /// Times a reader found that Redis lost entries it had not relayed (a restart without
    /// persistence), and told its subscribers with a `lagged` event.
    pub data_loss: u64,
    /// Replays that began with a `lagged` event (their id was older than what Redis retains).
    pub lagged_replays: u64,
    /// Entries the readers relayed to local subscribers.
    pub relayed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    publish_errors: AtomicU64,
    reconnects: AtomicU64,
    data_loss: AtomicU64,
    lagged_replays: AtomicU64,
    relayed: AtomicU64,
}

/// Configures a [`RedisStreams`] backend: `RedisStreams::builder(&redis, "topic")`.
#[derive(Debug, Clone)]
pub struct RedisStreamsBuilder {
    redis: Redis,
    topic: String,
    max_len: Option<usize>,
    max_age: Option<Duration>,
    queue: usize,
}

impl RedisStreamsBuilder {
    /// Keep about `n` entries (`XADD ... MAXLEN ~ n`; Redis trims whole nodes, so a little
    /// more may stay). Default 10,000; `None` with [`max_age`](Self::max_age) keeps by age only.
    pub fn max_len(mut self, n: impl Into<Option<usize>>) -> Self {
        self.max_len = n.into();
        self
    }

    /// Keep entries younger than `age` (`XADD ... MINID ~ <now - age>`, by this instance's
    /// clock). Default none. With a [`max_len`](Self::max_len) too, the `XADD` trims by length
    /// and an `XTRIM ... MINID ~` after it by age (two commands a publish).
    pub fn max_age(mut self, age: impl Into<Option<Duration>>) -> Self {
        self.max_age = age.into();
        self
    }

    /// How many events a local subscriber may fall behind before the hub's slow-consumer
    /// policy applies (default [`conduit_stream::hub::DEFAULT_QUEUE`]).
    pub fn queue(mut self, events: usize) -> Self {
        self.queue = events.max(1);
        self
    }

    /// The backend, its reader started (needs a Tokio runtime). It does not wait for Redis:
    /// subscribers at the live edge are served as soon as the reader connects.
    pub fn build(self) -> RedisStreams {
        let shared = Arc::new(Shared {
            key: self.redis.key("hub", &self.topic),
            redis: self.redis,
            max_len: self.max_len,
            max_age: self.max_age,
            counters: Counters::default(),
            healthy: AtomicBool::new(false),
            publish_failing: AtomicBool::new(false),
        });
        let local = Arc::new(Local {
            ring: InMemory::builder().queue(self.queue).replay(0).build(),
            last: Arc::default(),
        });
        let reader = tokio::spawn(read_loop(shared.clone(), local.clone()));
        RedisStreams {
            shared,
            local,
            reader,
        }
    }
}

/// The hub [`Backend`] on a Redis Stream (see the [module docs](self)): one stream key per
/// topic, `{prefix}hub:{<topic>}` (a Cluster hash tag).
///
/// ```no_run
/// // no_run: it needs a Redis server on 127.0.0.1:6379.
/// use conduit_redis::{Redis, RedisStreams};
/// use conduit_stream::hub::Hub;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let redis = Redis::open("redis://127.0.0.1:6379").unwrap();
/// let orders = Hub::with_backend(RedisStreams::new(&redis, "orders"));
/// let prices = Hub::with_backend(RedisStreams::new(&redis, "prices"));
/// # let _ = (orders, prices);
/// # });
/// ```
pub struct RedisStreams {
    shared: Arc<Shared>,
    local: Arc<Local>,
    reader: tokio::task::JoinHandle<()>,
}

struct Shared {
    redis: Redis,
    key: String,
    max_len: Option<usize>,
    max_age: Option<Duration>,
    counters: Counters,
    healthy: AtomicBool,
    /// Whether the last publish failed (to log an outage once).
    publish_failing: AtomicBool,
}

/// The local fan-out: the ring and the id of the last entry relayed into it, changed together
/// under the lock so a subscriber's replay ends exactly where its ring cursor starts.
struct Local {
    ring: InMemory,
    /// `None` until the reader first reached Redis.
    last: Arc<Mutex<Option<EntryId>>>,
}

fn lock(last: &Mutex<Option<EntryId>>) -> std::sync::MutexGuard<'_, Option<EntryId>> {
    last.lock().unwrap_or_else(|e| e.into_inner())
}

impl Local {
    fn last(&self) -> std::sync::MutexGuard<'_, Option<EntryId>> {
        lock(&self.last)
    }
}

impl fmt::Debug for RedisStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreams")
            .field("key", &self.shared.key)
            .field("last", &*self.local.last())
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl Drop for RedisStreams {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl RedisStreams {
    /// A backend for `topic` with the defaults.
    pub fn new(redis: &Redis, topic: &str) -> Self {
        Self::builder(redis, topic).build()
    }

    /// Configure a backend for `topic`.
    pub fn builder(redis: &Redis, topic: &str) -> RedisStreamsBuilder {
        RedisStreamsBuilder {
            redis: redis.clone(),
            topic: topic.to_owned(),
            max_len: Some(10_000),
            max_age: None,
            queue: conduit_stream::hub::DEFAULT_QUEUE,
        }
    }

    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// Whether the reader is connected to Redis now (for a readiness probe: [`Health`](crate::Health)).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Relaxed)
    }

    /// A cheap handle to [`is_healthy`](Self::is_healthy), for a readiness check.
    pub fn health(&self) -> crate::Health {
        let shared = self.shared.clone();
        crate::Health::new(move || shared.healthy.load(Relaxed))
    }

    /// Local subscribers now.
    pub fn subscribers(&self) -> usize {
        self.local.ring.subscribers()
    }

    /// What this backend has done so far (for metrics).
    pub fn stats(&self) -> HubBackendStats {
        let c = &self.shared.counters;
        HubBackendStats {
            published: c.published.load(Relaxed),
            publish_errors: c.publish_errors.load(Relaxed),
            reconnects: c.reconnects.load(Relaxed),
            data_loss: c.data_loss.load(Relaxed),
            lagged_replays: c.lagged_replays.load(Relaxed),
            relayed: c.relayed.load(Relaxed),
        }
    }

    /// Export [`stats`](Self::stats) and the reader's health as Prometheus metrics named
    /// `conduit_redis_hub_*` with a `topic`-free name per backend: pass a distinct `name`
    /// (`conduit_redis_hub_<name>_...`) when a process has several topics.
    #[cfg(feature = "metrics")]
    pub fn register_metrics(
        &self,
        registry: &conduit_middleware::metrics::MetricsRegistry,
        name: &str,
    ) {
        let base = if name.is_empty() {
            "conduit_redis_hub".to_owned()
        } else {
            format!("conduit_redis_hub_{name}")
        };
        type Read = fn(&Counters) -> &AtomicU64;
        let counters: [(&str, &str, Read); 6] = [
            ("published", "Events published to the Redis stream", |c| {
                &c.published
            }),
            (
                "publish_errors",
                "Publishes that failed (Redis unreachable or an error)",
                |c| &c.publish_errors,
            ),
            (
                "reconnects",
                "Times the stream reader reconnected to Redis",
                |c| &c.reconnects,
            ),
            (
                "data_loss",
                "Times Redis was found to have lost entries not yet relayed",
                |c| &c.data_loss,
            ),
            (
                "lagged_replays",
                "Replays told that events were missed (lagged)",
                |c| &c.lagged_replays,
            ),
            (
                "relayed",
                "Entries relayed from Redis to local subscribers",
                |c| &c.relayed,
            ),
        ];
        for (suffix, help, read) in counters {
            let s = self.shared.clone();
            registry.counter_fn(&format!("{base}_{suffix}"), help, move || {
                read(&s.counters).load(Relaxed)
            });
        }
        let s = self.shared.clone();
        registry.gauge_fn(
            &format!("{base}_connected"),
            "1 while the stream reader is connected to Redis",
            move || i64::from(s.healthy.load(Relaxed)),
        );
    }
}

/// The wire text of `event` without `id:` lines (the entry id replaces them).
fn encode(event: &Event) -> String {
    let text = event.to_string();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.is_empty() || line.starts_with("id:") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The event `encode` wrote, with `id` as its id: the same wire bytes as the one published.
fn decode(text: &str, id: &str) -> Event {
    let mut ev = Event::default();
    for line in text.lines() {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        ev = match field {
            "" => ev.comment(value),
            "data" => ev.data(value),
            "event" => ev.event(value).unwrap_or_else(|_| Event::default()),
            "retry" => match value.parse() {
                Ok(ms) => ev.retry_ms(ms),
                Err(_) => ev,
            },
            _ => ev,
        };
    }
    ev.id(id).unwrap_or_default()
}

fn entry_event(entry: &StreamId) -> Option<(EntryId, Event)> {
    let id = EntryId::parse(&entry.id)?;
    let text = match entry.map.get(FIELD) {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b),
        _ => Default::default(),
    };
    Some((id, decode(&text, &entry.id)))
}

fn lagged(missed: u64) -> Event {
    Event::default()
        .event("lagged")
        .expect("static name")
        .data(format!("{{\"missed\":{missed}}}"))
}

impl Shared {
    async fn publish(&self, event: Event) -> RedisResult<String> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.key);
        if let Some(n) = self.max_len {
            cmd.arg("MAXLEN").arg("~").arg(n);
        } else if let Some(age) = self.max_age {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let min = now.saturating_sub(age).as_millis() as u64;
            cmd.arg("MINID").arg("~").arg(min);
        }
        cmd.arg("*").arg(FIELD).arg(encode(&event));
        let id: String = self.redis.run(async |c| cmd.query_async(c).await).await?;
        // Both limits: MINID trims by age after the MAXLEN trim of the XADD.
        if let (Some(_), Some(age)) = (self.max_len, self.max_age) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let min = now.saturating_sub(age).as_millis() as u64;
            let key = &self.key;
            let _: RedisResult<i64> = self
                .redis
                .run(async |c| {
                    redis::cmd("XTRIM")
                        .arg(key)
                        .arg("MINID")
                        .arg("~")
                        .arg(min)
                        .query_async(c)
                        .await
                })
                .await;
        }
        Ok(id)
    }

    /// Entries after `after` up to `until` (inclusive), at most `PAGE`.
    async fn range(&self, after: EntryId, until: EntryId) -> RedisResult<Vec<StreamId>> {
        let key = &self.key;
        let reply: StreamRangeReply = self
            .redis
            .run(async |c| {
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg(format!("({after}"))
                    .arg(until.to_string())
                    .arg("COUNT")
                    .arg(PAGE)
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(reply.ids)
    }

    /// What Redis still holds of the stream: `None` if the key is gone, else the first entry's
    /// id (`None` if empty) and the greatest id trimmed or deleted so far.
    async fn retained(
        &self,
        conn: Option<&mut Conn>,
    ) -> RedisResult<Option<(Option<EntryId>, EntryId)>> {
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("STREAM").arg(&self.key);
        let reply: RedisResult<Value> = match conn {
            Some(c) => cmd.query_async(c).await,
            None => self.redis.run(async |c| cmd.query_async(c).await).await,
        };
        let info = match reply {
            Ok(v) => v,
            Err(e) if e.to_string().contains("no such key") => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut first = None;
        let mut deleted = EntryId::default();
        let pairs: Vec<(String, Value)> = match info {
            Value::Array(items) => items
                .chunks(2)
                .filter_map(|kv| match kv {
                    [k, v] => redis::from_redis_value::<String>(k)
                        .ok()
                        .map(|k| (k, v.clone())),
                    _ => None,
                })
                .collect(),
            Value::Map(items) => items
                .into_iter()
                .filter_map(|(k, v)| redis::from_redis_value::<String>(&k).ok().map(|k| (k, v)))
                .collect(),
            _ => Vec::new(),
        };
        for (k, v) in pairs {
            match k.as_str() {
                "first-entry" => {
                    if let Value::Array(e) = &v
                        && let Some(id) = e.first()
                    {
                        first = redis::from_redis_value::<String>(id)
                            .ok()
                            .and_then(|s| EntryId::parse(&s));
                    }
                }
                "max-deleted-entry-id" => {
                    if let Ok(s) = redis::from_redis_value::<String>(&v) {
                        deleted = EntryId::parse(&s).unwrap_or_default();
                    }
                }
                _ => {}
            }
        }
        Ok(Some((first, deleted)))
    }
}

/// Whether entries after `after` may be missing from what Redis retains (`retained` as
/// [`Shared::retained`] gives it): the stream is gone, or its first entry is later than
/// `after` and `after` is not the last entry deleted by `XDEL`. Redis does not record what
/// `MAXLEN`/`MINID` trimmed, so an id that was itself the last one trimmed (nothing after it
/// missing) is reported too: a client is never left unaware of a gap.
fn missing_after(after: EntryId, retained: Option<(Option<EntryId>, EntryId)>) -> bool {
    match retained {
        None => after != EntryId::default(),
        Some((first, deleted)) => match first {
            Some(first) if first > after => deleted != after,
            Some(_) => false,
            None => deleted > after,
        },
    }
}

async fn read_loop(shared: Arc<Shared>, local: Arc<Local>) {
    let mut backoff = BACKOFF.0;
    let mut ever = false;
    // Whether the current streak of failures has been logged at `warn` yet.
    let mut warned = false;
    loop {
        let step = async {
            let mut conn = shared.redis.dedicated().await?;
            resume(&shared, &local, &mut conn, ever).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        let mut conn = match step.await {
            Ok(c) => c,
            Err(e) => {
                shared.healthy.store(false, Relaxed);
                if !warned {
                    warned = true;
                    tracing::warn!(stream = %shared.key, error = %e, "hub reader cannot read its stream from Redis; retrying with backoff");
                } else {
                    tracing::debug!(stream = %shared.key, error = %e, "hub reader still cannot read its stream from Redis");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        if ever {
            shared.counters.reconnects.fetch_add(1, Relaxed);
            tracing::info!(stream = %shared.key, "hub reader reconnected to Redis");
        }
        ever = true;
        shared.healthy.store(true, Relaxed);
        let (err, progressed) = read(&shared, &local, &mut conn).await;
        shared.healthy.store(false, Relaxed);
        tracing::warn!(stream = %shared.key, error = %err, "hub reader lost Redis; reconnecting");
        warned = true; // the failures until the next connection are that same outage
        if progressed {
            backoff = BACKOFF.0;
        } else {
            // Connected but the very first read failed (e.g. the key is not a stream): back off
            // rather than spin.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }
}

/// After (re)connecting: start at the stream's end the first time; later, check that Redis
/// still holds what comes after the last relayed entry, and tell the subscribers if not.
async fn resume(shared: &Shared, local: &Local, conn: &mut Conn, ever: bool) -> RedisResult<()> {
    if !ever {
        let last: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&shared.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        let last = last
            .ids
            .first()
            .and_then(|e| EntryId::parse(&e.id))
            .unwrap_or_default();
        *local.last() = Some(last);
        return Ok(());
    }
    let after = local.last().unwrap_or_default();
    let retained = shared.retained(Some(conn)).await?;
    if retained.is_none() && after != EntryId::default() {
        shared.counters.data_loss.fetch_add(1, Relaxed);
        tracing::warn!(stream = %shared.key, last = %after,
            "hub stream is gone from Redis (restarted without persistence?): entries not yet relayed are lost");
    } else if missing_after(after, retained) {
        shared.counters.data_loss.fetch_add(1, Relaxed);
        tracing::warn!(stream = %shared.key, last = %after,
            "Redis no longer holds the entries after the last relayed one: subscribers are told they lagged");
        let _guard = local.last();
        local.ring.relay(lagged(1));
    }
    Ok(())
}

/// Relay entries until the connection fails; returns the error, and whether any read
/// succeeded before it.
async fn read(shared: &Shared, local: &Local, conn: &mut Conn) -> (redis::RedisError, bool) {
    let mut progressed = false;
    loop {
        let after = local.last().unwrap_or_default();
        let reply: RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&shared.key)
            .arg(after.to_string())
            .query_async(conn)
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return (e, progressed),
        };
        progressed = true;
        let Some(reply) = reply else { continue };
        for key in reply.keys {
            for entry in &key.ids {
                let Some((id, event)) = entry_event(entry) else {
                    continue;
                };
                let mut last = local.last();
                if last.is_some_and(|l| id <= l) {
                    continue;
                }
                local.ring.relay(event);
                *last = Some(id);
                drop(last);
                shared.counters.relayed.fetch_add(1, Relaxed);
            }
        }
    }
}

impl Backend for RedisStreams {
    type Events = RedisEvents;

    fn publish(&self, event: Event) -> impl Future<Output = Result<String, BoxError>> + Send {
        let shared = self.shared.clone();
        async move {
            match shared.publish(event).await {
                Ok(id) => {
                    shared.counters.published.fetch_add(1, Relaxed);
                    if shared.publish_failing.swap(false, Relaxed) {
                        tracing::info!(stream = %shared.key, "hub publishes to Redis again");
                    }
                    Ok(id)
                }
                Err(e) => {
                    shared.counters.publish_errors.fetch_add(1, Relaxed);
                    // One warning an outage (each failure is counted), not one a publish.
                    if shared.publish_failing.swap(true, Relaxed) {
                        tracing::debug!(stream = %shared.key, error = %e, "hub publish to Redis failed");
                    } else {
                        tracing::warn!(stream = %shared.key, error = %e, "hub publish to Redis failed");
                    }
                    Err(e.into())
                }
            }
        }
    }

    fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> impl Future<Output = Result<RedisEvents, Error>> + Send {
        std::future::ready(self.subscribe_now(last_event_id))
    }
}

impl RedisStreams {
    /// A subscriber: its ring cursor at the live edge and, after `Last-Event-ID: X`, a replay
    /// of `(X, L]` where `L` is the last id relayed when the cursor was taken (read under the
    /// same lock). No Redis command here: the replay's reads happen as the client reads, and
    /// while Redis is away they are retried (the client's stream stays open), so a client that
    /// reconnects during an outage is served, not refused.
    fn subscribe_now(&self, last_event_id: Option<&str>) -> Result<RedisEvents, Error> {
        let after = match last_event_id.map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(EntryId::parse(s).ok_or_else(|| bad_last_event_id(s))?),
        };
        let (live, until) = {
            let last = self.local.last();
            (self.local.ring.subscribe_now(None)?, *last)
        };
        Ok(RedisEvents {
            live,
            // Live events up to X are the client's already (this reader may lag the one the
            // client read from); past the first later one, nothing is compared.
            skip_through: after,
            replay: after.map(|after| {
                Box::new(Replay {
                    shared: self.shared.clone(),
                    last: self.local.last.clone(),
                    buf: VecDeque::new(),
                    after,
                    until,
                    checked: false,
                    done: false,
                    fetch: None,
                })
            }),
        })
    }
}

/// One page of a replay: the entries, the replay's end, whether entries after the client's id
/// are missing from Redis (checked with the first page).
struct Page {
    entries: Vec<StreamId>,
    until: EntryId,
    lagged: bool,
}

/// Reads the next page of `(after, until]`, waiting for the reader's first id when `until` is
/// not known yet, retrying with backoff while Redis is unreachable.
async fn next_page(
    shared: Arc<Shared>,
    last: Arc<Mutex<Option<EntryId>>>,
    after: EntryId,
    until: Option<EntryId>,
    check: bool,
) -> Page {
    let until = loop {
        if let Some(until) = until.or(*lock(&last)) {
            break until;
        }
        tokio::time::sleep(BACKOFF.0).await;
    };
    if after >= until {
        return Page {
            entries: Vec::new(),
            until,
            lagged: false,
        };
    }
    let mut backoff = BACKOFF.0;
    loop {
        let page = async {
            let lagged = check && missing_after(after, shared.retained(None).await?);
            Ok::<_, redis::RedisError>((lagged, shared.range(after, until).await?))
        };
        match page.await {
            Ok((lagged, entries)) => {
                return Page {
                    entries,
                    until,
                    lagged,
                };
            }
            Err(e) => {
                tracing::debug!(stream = %shared.key, error = %e, "SSE replay waits for Redis");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

/// The replay part of a subscription: `XRANGE` pages from after the client's id up to the
/// last entry relayed when it subscribed.
struct Replay {
    shared: Arc<Shared>,
    last: Arc<Mutex<Option<EntryId>>>,
    buf: VecDeque<StreamId>,
    /// The last id read (the client's, at first).
    after: EntryId,
    /// The replay's end, once the reader has reached Redis.
    until: Option<EntryId>,
    /// Whether the first page (with the check for missing entries) came.
    checked: bool,
    done: bool,
    fetch: Option<Pin<Box<dyn Future<Output = Page> + Send>>>,
}

impl Replay {
    /// The next replayed message, `None` once the replay is done.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        loop {
            if let Some(entry) = self.buf.pop_front() {
                match entry_event(&entry) {
                    Some((_, ev)) => return Poll::Ready(Some(Message::Event(ev))),
                    None => continue,
                }
            }
            if self.done {
                return Poll::Ready(None);
            }
            let fetch = self.fetch.get_or_insert_with(|| {
                Box::pin(next_page(
                    self.shared.clone(),
                    self.last.clone(),
                    self.after,
                    self.until,
                    !self.checked,
                ))
            });
            let page = std::task::ready!(fetch.as_mut().poll(cx));
            self.fetch = None;
            self.checked = true;
            self.until = Some(page.until);
            match page.entries.last().and_then(|e| EntryId::parse(&e.id)) {
                Some(id) if page.entries.len() == PAGE => self.after = id,
                _ => self.done = true,
            }
            self.buf.extend(page.entries);
            if page.lagged {
                self.shared.counters.lagged_replays.fetch_add(1, Relaxed);
                tracing::debug!(stream = %self.shared.key, "replay from before what Redis retains");
                return Poll::Ready(Some(Message::Lagged(1)));
            }
        }
    }
}

/// One subscriber of [`RedisStreams`]: its replay (if it sent `Last-Event-ID`), then its
/// cursor into the instance's ring.
pub struct RedisEvents {
    live: InMemoryEvents,
    /// Skip live events up to this id (the client has them).
    skip_through: Option<EntryId>,
    /// Boxed: most subscribers (and all of them once caught up) have none, and the size of
    /// this struct is the per-client memory of the hub.
    replay: Option<Box<Replay>>,
}

impl fmt::Debug for RedisEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEvents")
            .field("replaying", &self.replay.is_some())
            .finish()
    }
}

impl Stream for RedisEvents {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = &mut *self;
        if let Some(replay) = &mut this.replay {
            match std::task::ready!(replay.poll_next(cx)) {
                Some(msg) => return Poll::Ready(Some(msg)),
                None => this.replay = None,
            }
        }
        loop {
            let msg = std::task::ready!(Pin::new(&mut this.live).poll_next(cx));
            if let (Some(through), Some(Message::Event(ev))) = (this.skip_through, &msg) {
                match ev.get_id().and_then(EntryId::parse) {
                    Some(id) if id <= through => continue,
                    Some(_) => this.skip_through = None,
                    None => {}
                }
            }
            return Poll::Ready(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_is_the_in_memory_cursor_and_two_words() {
        // Per-client memory: the ring cursor, the id to skip through, the boxed replay.
        let cursor = std::mem::size_of::<InMemoryEvents>();
        assert!(
            std::mem::size_of::<RedisEvents>() <= cursor + 32,
            "{} vs {cursor}",
            std::mem::size_of::<RedisEvents>()
        );
    }

    #[test]
    fn entry_ids_parse_strictly_and_order_as_redis_does() {
        let id = |s| EntryId::parse(s);
        assert_eq!(id("1-2"), Some(EntryId { ms: 1, seq: 2 }));
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "a-1",
            "1-2-3",
            "1 -2",
            "+1-2",
            "99999999999999999999999-0",
        ] {
            assert_eq!(id(bad), None, "{bad}");
        }
        assert!(id("2-0") > id("1-9"));
        assert!(id("10-0") > id("9-99"));
        assert_eq!(id("7-3").unwrap().to_string(), "7-3");
    }

    #[test]
    fn events_round_trip_through_the_stream_field() {
        let ev = Event::default()
            .id("x")
            .unwrap()
            .event("tick")
            .unwrap()
            .data("a\nb")
            .comment("c")
            .retry_ms(10);
        let back = decode(&encode(&ev), "5-1");
        let want = Event::default()
            .event("tick")
            .unwrap()
            .data("a\nb")
            .comment("c")
            .retry_ms(10)
            .id("5-1")
            .unwrap();
        assert_eq!(back.to_string(), want.to_string());
        assert_eq!(
            decode(&encode(&Event::default().data("")), "1-0").to_string(),
            "data: \nid: 1-0\n\n"
        );
    }

    #[test]
    fn missing_entries_are_told_apart_from_trimmed_ones() {
        let id = |s| EntryId::parse(s).unwrap();
        // Stream holds 5-0.., nothing deleted: 4-0 was trimmed or never in it (lost).
        assert!(missing_after(
            id("4-0"),
            Some((Some(id("5-0")), EntryId::default()))
        ));
        // 4-0 itself was the last deleted: nothing after it is missing.
        assert!(!missing_after(
            id("4-0"),
            Some((Some(id("5-0")), id("4-0")))
        ));
        // Trimmed past the client's id.
        assert!(missing_after(id("2-0"), Some((Some(id("5-0")), id("4-0")))));
        // The client's id is still retained.
        assert!(!missing_after(
            id("6-0"),
            Some((Some(id("5-0")), id("4-0")))
        ));
        // Stream gone.
        assert!(missing_after(id("6-0"), None));
        assert!(!missing_after(EntryId::default(), None));
    }
}
