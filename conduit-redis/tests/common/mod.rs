//! Conduit instances on a shared Redis, and an SSE client that reads events off the wire.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use conduit_core::http::StatusCode;
use conduit_core::{HandlerExt, IntoResponse, Request, Router, get as route_get, post};
use conduit_middleware::{Quota, RateLimit};
use conduit_redis::{Health, OnError, Redis, RedisStore, RedisStreams};
use conduit_stream::hub::Hub;
use conduit_stream::sse::Event;
pub use conduit_test_support::*;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The command timeout the instances use.
pub const TIMEOUT: Duration = Duration::from_millis(300);
/// The SSE keep-alive interval of the instances.
pub const KEEP_ALIVE: Duration = Duration::from_millis(200);

/// One conduit server with a Redis hub on topic `topic` at `/sse`, `POST /publish?data`,
/// a Redis-backed `/limited` (burst 5, one an hour) and `/ready` gated on the hub's reader.
pub struct Instance {
    pub server: Running,
    pub hub: Hub<RedisStreams>,
    pub store: std::sync::Arc<RedisStore>,
}

impl Instance {
    pub async fn start(redis: &Redis, topic: &str) -> Self {
        Self::start_with(redis, topic, RedisStore::new(redis)).await
    }

    pub async fn start_with(redis: &Redis, topic: &str, store: RedisStore) -> Self {
        let hub = Hub::with_backend(RedisStreams::new(redis, topic));
        let limit = RateLimit::new(Quota::per_hour(1).burst(5)).store(store);
        let store = limit.shared_store().clone();
        let health: Health = hub.backend().health();
        let (sse, publish) = (hub.clone(), hub.clone());
        let app: Router = Router::new()
            .route(
                "/sse",
                route_get(move |req: Request| {
                    let hub = sse.clone();
                    async move {
                        match hub.sse(&req).await {
                            Ok(sse) => sse.keep_alive(KEEP_ALIVE).into_response(),
                            Err(e) => e.into_response(),
                        }
                    }
                }),
            )
            .route(
                "/publish",
                post(move |req: Request| {
                    let hub = publish.clone();
                    async move {
                        let data = req.uri().query().unwrap_or("").to_owned();
                        match hub.publish(Event::default().data(data)).await {
                            Ok(id) => id.into_response(),
                            Err(e) => {
                                (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
                            }
                        }
                    }
                }),
            )
            .route(
                "/limited",
                route_get((|_req: Request| async { "ok" }).with(limit)),
            )
            .route(
                "/ready",
                route_get(health.gate(|_req: Request| async { "ready" })),
            );
        let server = start(config(), app).await;
        Self { server, hub, store }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Wait until the hub's reader has reached Redis.
    pub async fn ready(&self) {
        let backend = self.hub.backend();
        assert!(
            eventually(HANG, || backend.is_healthy()).await,
            "the reader never reached Redis"
        );
    }
}

pub fn redis(url: &str) -> Redis {
    Redis::builder(url)
        .command_timeout(TIMEOUT)
        .build()
        .unwrap()
}

pub fn store(redis: &Redis, on_error: OnError) -> RedisStore {
    RedisStore::new(redis).on_error(on_error)
}

/// `POST /publish?data` on `addr`: the status and the body (the id).
pub async fn publish(addr: SocketAddr, data: &str) -> (u16, String) {
    let r = send_to(addr, "POST", &format!("/publish?{data}"), &[]).await;
    (r.status.as_u16(), r.text().to_owned())
}

/// An SSE response being read.
pub struct SseClient {
    pub status: u16,
    body: Incoming,
    buf: String,
    /// Keep-alive comments seen so far.
    pub keep_alives: usize,
}

/// One event: its id (if any), type (if any) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseClient {
    pub async fn connect(addr: SocketAddr, last_event_id: Option<&str>) -> Self {
        let mut headers = vec![("accept", "text/event-stream")];
        if let Some(id) = last_event_id {
            headers.push(("last-event-id", id));
        }
        let res = send_streaming(addr, request_with("GET", "/sse", &headers)).await;
        Self {
            status: res.status().as_u16(),
            body: res.into_body(),
            buf: String::new(),
            keep_alives: 0,
        }
    }

    /// The next event (keep-alives counted, not returned); `None` when the stream ended or
    /// nothing came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Ev> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Ev {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut fields = 0;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data = v.to_owned();
                    } else {
                        continue;
                    }
                    fields += 1;
                }
                if fields == 0 {
                    self.keep_alives += 1;
                    continue;
                }
                return Some(ev);
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.ok()?.into_data() {
                let data: Bytes = data;
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    pub async fn next(&mut self) -> Ev {
        self.next_within(HANG).await.expect("an event")
    }

    /// Events up to (and including) the one whose data is `data`.
    pub async fn until(&mut self, data: &str) -> Vec<Ev> {
        let mut out = Vec::new();
        loop {
            let ev = self.next().await;
            let done = ev.data == data;
            out.push(ev);
            if done {
                return out;
            }
        }
    }

    /// Wait `wait` for keep-alives only: the count of those seen; panics on an event.
    pub async fn keep_alives_for(&mut self, wait: Duration) -> usize {
        let before = self.keep_alives;
        if let Some(ev) = self.next_within(wait).await {
            panic!("unexpected event {ev:?}");
        }
        self.keep_alives - before
    }
}

pub fn data(evs: &[Ev]) -> Vec<String> {
    evs.iter().map(|e| e.data.clone()).collect()
}

pub fn cluster(cluster: &RedisCluster) -> Redis {
    Redis::cluster(cluster.urls())
        .command_timeout(TIMEOUT)
        .build()
        .unwrap()
}
