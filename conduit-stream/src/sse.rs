//! Server-Sent Events: the [`Event`] builder and the [`Sse`] response.
//!
//! `Sse` sends `Content-Type: text/event-stream`, `Cache-Control: no-cache` and
//! `X-Accel-Buffering: no` (so nginx does not buffer the stream), writes each event as soon as
//! it is produced (events ready together share a write), and sends a keep-alive comment after
//! [`DEFAULT_KEEP_ALIVE`] (15 s, configurable) without an event. The keep-alive write is also
//! what notices a client that went away: its stream (and subscription) is dropped within about
//! one interval.
//!
//! When the server's graceful shutdown begins, the stream ends cleanly (after an optional
//! final event), so the drain never waits on an open event stream; browsers reconnect by
//! themselves, with `Last-Event-ID`, to whichever instance is up.
//!
//! ```
//! use std::time::Duration;
//! use conduit_core::{IntoResponse, Request};
//! use conduit_stream::sse::{Event, LastEventId, Sse};
//!
//! async fn events(req: Request) -> impl IntoResponse {
//!     let after: u64 = req.last_event_id().and_then(|id| id.parse().ok()).unwrap_or(0);
//!     let events = (after + 1..after + 4).map(|i| {
//!         Ok::<_, conduit_stream::sse::EventError>(
//!             Event::default().id(i.to_string())?.event("tick")?.data(format!("tick {i}")),
//!         )
//!     });
//!     Sse::new(tokio_stream::iter(events))
//!         .keep_alive(Duration::from_secs(5))
//!         .on_shutdown(Event::default().event("bye").unwrap().data("server restarting"))
//! }
//! # let _ = events;
//! ```
//!
//! Wire format of one event (fields in the order they were set, a blank line after):
//!
//! ```
//! use conduit_stream::sse::Event;
//! let ev = Event::default().id("7").unwrap().event("tick").unwrap().data("a\nb").retry_ms(3000);
//! assert_eq!(ev.to_string(), "id: 7\nevent: tick\ndata: a\ndata: b\nretry: 3000\n\n");
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use conduit_core::{Body, BoxError, IntoResponse, Response, ShutdownSignal};
use futures_core::Stream;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use serde::Serialize;
use tokio::time::{Instant, Sleep};

/// How long an `Sse` stream may stay silent before a keep-alive comment is sent.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A field value that cannot go on the wire: `id` and `event` must not contain CR, LF or NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    field: &'static str,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SSE `{}` field must not contain CR, LF or NUL",
            self.field
        )
    }
}

impl std::error::Error for EventError {}

/// One Server-Sent Event, encoded as it is built. Cheap to clone (shared bytes): a hub
/// hands every subscriber the same bytes, and a lone event goes on the wire without a copy.
///
/// Fields are written in the order they are set; setting `id` or `event` twice writes both
/// lines and the last one wins, as the SSE parsing rules say.
#[derive(Clone, Default)]
pub struct Event {
    /// The fields followed by the blank line that ends the event; empty for no fields.
    buf: Bytes,
    id: Option<Bytes>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("wire", &String::from_utf8_lossy(&self.buf))
            .finish()
    }
}

fn has_line_break(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

impl Event {
    /// The fields, without the terminating blank line.
    fn fields(&self) -> &[u8] {
        &self.buf[..self.buf.len().saturating_sub(1)]
    }

    fn push(mut self, parts: &[&[u8]]) -> Self {
        let extra: usize = parts.iter().map(|p| p.len()).sum();
        let mut b = BytesMut::with_capacity(self.buf.len() + extra + 1);
        b.extend_from_slice(self.fields());
        for p in parts {
            b.extend_from_slice(p);
        }
        b.put_u8(b'\n');
        self.buf = b.freeze();
        self
    }

    /// The `id` field (what the browser sends back as `Last-Event-ID` when it reconnects).
    pub fn id(mut self, id: impl AsRef<str>) -> Result<Self, EventError> {
        let id = id.as_ref();
        if has_line_break(id) {
            return Err(EventError { field: "id" });
        }
        self.id = Some(Bytes::copy_from_slice(id.as_bytes()));
        Ok(self.push(&[b"id: ", id.as_bytes(), b"\n"]))
    }

    /// The `event` field: the event type (`addEventListener(type, ..)` in the browser).
    pub fn event(self, event: impl AsRef<str>) -> Result<Self, EventError> {
        let event = event.as_ref();
        if has_line_break(event) {
            return Err(EventError { field: "event" });
        }
        Ok(self.push(&[b"event: ", event.as_bytes(), b"\n"]))
    }

    /// The `data` field. Line breaks (LF, CRLF or CR) split it over several `data:` lines,
    /// which the browser joins back with LF. Calling it again adds more lines.
    pub fn data(mut self, data: impl AsRef<str>) -> Self {
        let data = data.as_ref();
        let mut b = BytesMut::with_capacity(self.buf.len() + data.len() + 8);
        b.extend_from_slice(self.fields());
        let mut rest = data;
        loop {
            let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
            b.put_slice(b"data: ");
            b.put_slice(&rest.as_bytes()[..end]);
            b.put_u8(b'\n');
            if end == rest.len() {
                break;
            }
            let skip = if rest[end..].starts_with("\r\n") {
                2
            } else {
                1
            };
            rest = &rest[end + skip..];
        }
        b.put_u8(b'\n');
        self.buf = b.freeze();
        self
    }

    /// The `data` field as JSON (one line: serde_json never writes a raw line break).
    pub fn json_data<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, serde_json::Error> {
        let json = serde_json::to_vec(value)?;
        Ok(self.push(&[b"data: ", &json, b"\n"]))
    }

    /// The `retry` field: how long the browser waits before reconnecting.
    pub fn retry(self, after: Duration) -> Self {
        self.retry_ms(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
    }

    /// The `retry` field in milliseconds.
    pub fn retry_ms(self, ms: u64) -> Self {
        self.push(&[b"retry: ", ms.to_string().as_bytes(), b"\n"])
    }

    /// A comment line (`: text`), ignored by the browser. Line breaks start new comment lines.
    pub fn comment(self, text: impl AsRef<str>) -> Self {
        let mut ev = self;
        for line in text.as_ref().split(['\r', '\n']) {
            ev = ev.push(&[b": ", line.as_bytes(), b"\n"]);
        }
        ev
    }

    /// The last `id` set, if any.
    pub fn get_id(&self) -> Option<&str> {
        self.id
            .as_ref()
            .map(|b| std::str::from_utf8(b).expect("ids are set from &str"))
    }

    /// The last `event` field set, if any (the event type).
    pub fn get_event(&self) -> Option<&str> {
        self.field_lines(b"event: ").last()
    }

    /// The `data` lines joined with LF, as a browser's `EventSource` hands them over
    /// (`None` if the event has no `data` field).
    ///
    /// ```
    /// use conduit_stream::sse::Event;
    ///
    /// let ev = Event::default().event("tick").unwrap().data("a\nb");
    /// assert_eq!(ev.get_event(), Some("tick"));
    /// assert_eq!(ev.get_data().as_deref(), Some("a\nb"));
    /// assert_eq!(Event::default().comment("x").get_data(), None);
    /// ```
    pub fn get_data(&self) -> Option<String> {
        let mut lines = self.field_lines(b"data: ");
        let first = lines.next()?;
        let mut data = first.to_owned();
        for line in lines {
            data.push('\n');
            data.push_str(line);
        }
        Some(data)
    }

    /// The values of the field lines that start with `prefix` (every value was set from a
    /// `&str` without line breaks, so each is UTF-8).
    fn field_lines<'a>(&'a self, prefix: &'static [u8]) -> impl Iterator<Item = &'a str> + 'a {
        self.fields()
            .split(|b| *b == b'\n')
            .filter_map(move |line| line.strip_prefix(prefix))
            .filter_map(|v| std::str::from_utf8(v).ok())
    }

    /// The event as it goes on the wire, including the blank line that ends it, as text.
    #[deprecated(
        since = "0.1.0",
        note = "it returns a `String`: use `to_string()` (the wire text) or `encode()` (the wire bytes)"
    )]
    pub fn to_bytes(&self) -> String {
        self.to_string()
    }

    /// The event as it goes on the wire, including the blank line that ends it (shared, not
    /// copied). [`to_string`](ToString::to_string) gives the same as text.
    pub fn encode(&self) -> Bytes {
        self.wire()
    }

    pub(crate) fn encode_into(&self, out: &mut BytesMut) {
        out.put_slice(&self.wire());
    }

    /// The event's wire bytes (shared, not copied).
    pub(crate) fn wire(&self) -> Bytes {
        if self.buf.is_empty() {
            Bytes::from_static(b"\n")
        } else {
            self.buf.clone()
        }
    }
}

/// The wire text of the event, including the blank line that ends it.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.wire()).expect("built from &str"))
    }
}

/// Access to the `Last-Event-ID` request header that a reconnecting `EventSource` sends.
pub trait LastEventId {
    /// The header's value, if present and valid UTF-8 without line breaks.
    fn last_event_id(&self) -> Option<&str>;
}

impl<B> LastEventId for http::Request<B> {
    fn last_event_id(&self) -> Option<&str> {
        self.headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !has_line_break(s))
    }
}

/// A Server-Sent Events response from a `Stream` of `Result<Event, E>`.
///
/// An `Err` from the stream is logged and aborts the response (the browser reconnects).
#[derive(Debug)]
pub struct Sse<S> {
    stream: S,
    keep_alive: Option<Duration>,
    keep_alive_event: Event,
    on_shutdown: Option<Event>,
    retry: Option<Duration>,
}

impl<S> Sse<S> {
    /// Events from `stream`, with keep-alive comments every [`DEFAULT_KEEP_ALIVE`].
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            keep_alive_event: Event::default().comment(""),
            on_shutdown: None,
            retry: None,
        }
    }

    /// Start the stream with a `retry` field: how long the browser waits before it
    /// reconnects (browsers default to about 3 s).
    pub fn retry(mut self, after: Duration) -> Self {
        self.retry = Some(after);
        self
    }

    /// Send a keep-alive comment after `interval` without events. A dead client is noticed
    /// (and the stream dropped) within about one interval.
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// The keep-alive text (a comment, by default an empty one: `:\n\n`).
    pub fn keep_alive_text(mut self, text: &str) -> Self {
        self.keep_alive_event = Event::default().comment(text);
        self
    }

    /// No keep-alive comments: a silent stream stays silent, and a dead client is only noticed
    /// when the next event is written.
    pub fn no_keep_alive(mut self) -> Self {
        self.keep_alive = None;
        self
    }

    /// An event sent as the last one when the server shuts down (by default the stream just
    /// ends).
    pub fn on_shutdown(mut self, event: Event) -> Self {
        self.on_shutdown = Some(event);
        self
    }
}

impl<S, E> IntoResponse for Sse<S>
where
    S: Stream<Item = Result<Event, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn into_response(self) -> Response {
        let shutdown = ShutdownSignal::new();
        let mut buf = BytesMut::new();
        if let Some(retry) = self.retry {
            Event::default().retry(retry).encode_into(&mut buf);
        }
        let body = SseBody {
            stream: self.stream,
            buf,
            keep_alive: self.keep_alive,
            keep_alive_event: self.keep_alive_event,
            sleep: None,
            shutdown: shutdown.clone(),
            on_shutdown: self.on_shutdown,
            registered: None,
            sleep_polled: false,
            last_write: Instant::now(),
            done: false,
            error: None,
        };
        let mut res = Response::new(Body::new(body));
        // Sized for these three: hyper keeps a response's emptied map for the connection's
        // life (to parse the next request into), so the default 6-slot table would stay
        // allocated under every open stream.
        *res.headers_mut() = HeaderMap::with_capacity(3);
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        res.extensions_mut().insert(shutdown);
        res
    }
}

/// Stop coalescing ready events into one frame past this size.
const MAX_FRAME: usize = 16 * 1024;

pin_project_lite::pin_project! {
    struct SseBody<S> {
        #[pin]
        stream: S,
        buf: BytesMut,
        keep_alive: Option<Duration>,
        keep_alive_event: Event,
        // Inline (not boxed): one allocation, and one cache line fewer to touch per event.
        #[pin]
        sleep: Option<Sleep>,
        shutdown: ShutdownSignal,
        on_shutdown: Option<Event>,
        // The waker last registered with `shutdown` (registering again only when it changes).
        registered: Option<Waker>,
        // `sleep` was polled with `registered` since it was last armed: until it fires, a poll
        // need not touch the timer again.
        sleep_polled: bool,
        // When the last frame went out: the keep-alive timer is re-armed from it lazily, when
        // it fires, rather than reset on every event.
        last_write: Instant,
        done: bool,
        // An error that arrived after events still in `buf`: those go out first.
        error: Option<BoxError>,
    }
}

impl<S, E> http_body::Body for SseBody<S>
where
    S: Stream<Item = Result<Event, E>>,
    E: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        let shutting_down = this.shutdown.is_triggered()
            || (!this
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
                && {
                    *this.registered = Some(cx.waker().clone());
                    *this.sleep_polled = false;
                    this.shutdown.poll_triggered(cx).is_ready()
                });
        if shutting_down {
            *this.done = true;
            this.buf.clear();
            return match this.on_shutdown.take() {
                Some(ev) => Poll::Ready(Some(Ok(Frame::data(ev.wire())))),
                None => Poll::Ready(None),
            };
        }
        // A lone ready event is sent as its own shared bytes; several are copied into `buf`.
        let mut single: Option<Bytes> = None;
        loop {
            if this.buf.len() >= MAX_FRAME {
                break;
            }
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(ev))) => {
                    if single.is_none() && this.buf.is_empty() {
                        single = Some(ev.wire());
                    } else {
                        if let Some(first) = single.take() {
                            this.buf.put_slice(&first);
                        }
                        ev.encode_into(this.buf);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let e: BoxError = e.into();
                    tracing::error!(error = %e, "event stream failed; aborting the response");
                    *this.done = true;
                    if let Some(first) = single.take() {
                        this.buf.put_slice(&first);
                    }
                    if this.buf.is_empty() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    *this.error = Some(e);
                    break;
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        let frame = match single {
            Some(bytes) => Some(bytes),
            // The whole buffer goes out with the frame (not `split`, which would keep the
            // allocation's spare room under an idle stream); the next batch allocates anew.
            None if !this.buf.is_empty() => Some(std::mem::take(this.buf).freeze()),
            None => None,
        };
        if let Some(bytes) = frame {
            if this.keep_alive.is_some() {
                *this.last_write = Instant::now();
            }
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        let Some(interval) = *this.keep_alive else {
            return Poll::Pending;
        };
        if this.sleep.is_none() {
            this.sleep
                .set(Some(tokio::time::sleep_until(*this.last_write + interval)));
        }
        let mut sleep = this.sleep.as_pin_mut().expect("armed above");
        // The common case under a busy stream: the timer already holds this task's waker.
        if *this.sleep_polled && !sleep.is_elapsed() {
            return Poll::Pending;
        }
        *this.sleep_polled = true;
        while sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let due = *this.last_write + interval;
            if due > now {
                // Events went out since the timer was armed: re-arm for the real deadline.
                sleep.as_mut().reset(due);
                continue;
            }
            *this.last_write = now;
            sleep.as_mut().reset(now + interval);
            // Register the new deadline's waker before handing out the frame.
            let _ = sleep.as_mut().poll(cx);
            return Poll::Ready(Some(Ok(Frame::data(this.keep_alive_event.wire()))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.buf.is_empty() && self.error.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_line_breaks_in_id_and_event() {
        assert_eq!(
            Event::default().id("a\nb").unwrap_err().to_string(),
            "SSE `id` field must not contain CR, LF or NUL"
        );
        assert!(Event::default().id("a\rb").is_err());
        assert!(Event::default().id("a\0b").is_err());
        assert!(Event::default().event("x\r\ny").is_err());
        assert!(Event::default().event("ok").is_ok());
    }

    #[test]
    fn wire_format() {
        let ev = Event::default()
            .comment("hi")
            .event("e")
            .unwrap()
            .data("one\r\ntwo\rthree\nfour")
            .json_data(&serde_json::json!({"a": "x\ny"}))
            .unwrap();
        assert_eq!(
            ev.to_string(),
            ": hi\nevent: e\ndata: one\ndata: two\ndata: three\ndata: four\ndata: {\"a\":\"x\\ny\"}\n\n"
        );
        assert_eq!(Event::default().data("").to_string(), "data: \n\n");
        assert_eq!(
            Event::default().data("trailing\n").to_string(),
            "data: trailing\ndata: \n\n"
        );
        assert_eq!(Event::default().id("1").unwrap().get_id(), Some("1"));
    }

    #[test]
    fn encode_is_the_wire_bytes_and_to_string_the_same_text() {
        let ev = Event::default().id("7").unwrap().data("a");
        assert_eq!(ev.encode(), "id: 7\ndata: a\n\n");
        assert_eq!(ev.encode(), ev.to_string().as_bytes());
        assert_eq!(Event::default().encode(), "\n");
        #[allow(deprecated)]
        let deprecated = ev.to_bytes();
        assert_eq!(deprecated, ev.to_string());
    }

    /// Between events an open stream holds no frame buffer and only a three-header table:
    /// both would otherwise stay allocated under every connected client.
    #[test]
    fn idle_stream_keeps_no_frame_buffer() {
        use std::convert::Infallible;
        use tokio_stream::StreamExt;
        let two_then_nothing = tokio_stream::iter([
            Ok::<_, Infallible>(Event::default().data("a")),
            Ok(Event::default().data("b")),
        ])
        .chain(tokio_stream::pending());
        let res = Sse::new(tokio_stream::pending::<Result<Event, Infallible>>()).into_response();
        assert_eq!(res.headers().len(), 3);
        assert!(
            res.headers().capacity() <= 3,
            "{}",
            res.headers().capacity()
        );

        let body = SseBody {
            stream: two_then_nothing,
            buf: BytesMut::new(),
            keep_alive: None,
            keep_alive_event: Event::default(),
            sleep: None,
            shutdown: ShutdownSignal::new(),
            on_shutdown: None,
            registered: None,
            sleep_polled: false,
            last_write: Instant::now(),
            done: false,
            error: None,
        };
        let mut body = std::pin::pin!(body);
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Some(Ok(frame))) = http_body::Body::poll_frame(body.as_mut(), &mut cx)
        else {
            panic!("the two ready events were not sent")
        };
        let frame = frame.into_data().unwrap();
        assert_eq!(&frame[..], b"data: a\n\ndata: b\n\n");
        assert!(http_body::Body::poll_frame(body.as_mut(), &mut cx).is_pending());
        // `buf` must not still point into the frame's allocation (as `split` leaves it).
        let frame = frame.as_ptr_range();
        assert!(!(frame.start..=frame.end).contains(&body.buf.as_ptr()));
        assert_eq!(body.buf.capacity(), 0);
    }

    #[tokio::test]
    async fn retry_goes_first_and_errors_abort() {
        use http_body_util::BodyExt;
        let events = vec![Ok(Event::default().data("x")), Err("gone")];
        let res = Sse::new(tokio_stream::iter(events))
            .retry(Duration::from_millis(1500))
            .into_response();
        assert!(res.extensions().get::<ShutdownSignal>().is_some());
        let mut body = res.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"retry: 1500\n\ndata: x\n\n");
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());
    }
}
