//! [`WebSocket`]: an upgraded connection as a [`Stream`] of received messages and a [`Sink`]
//! of messages to send, with the limits, keep-alive and closing handshake of [`Config`].
//!
//! Reading does the protocol's own work as it goes: a Ping is answered with a Pong, a Close is
//! answered with a Close before it is handed over, a fault (see [`WsError`]) is answered with
//! the matching Close frame (1002, 1007, 1009) before the error is returned, and after the
//! stream has ended (`None`) the connection is closed. Keep-alive pings and the idle timeout
//! run while the stream is being polled, as it is while a handler awaits the next message.
//!
//! Memory: the read buffer is empty (no allocation) while the socket is idle; it grows to hold
//! one frame while one arrives and is released once the frames in it are handed over. Sending
//! appends to a write buffer whose size is bounded by [`Config::write_buffer_size`]: while it
//! is full, [`Sink::poll_ready`] (and so `send().await`) waits until the peer has read enough,
//! so a client that stops reading holds the writer back instead of growing the server's memory.
//!
//! ```
//! use std::time::Duration;
//! use conduit_ws::Config;
//!
//! let config = Config::default()
//!     .max_message_size(1 << 20)
//!     .ping_interval(Some(Duration::from_secs(20)))
//!     .idle_timeout(Some(Duration::from_secs(45)));
//! assert_eq!(config.get_max_message_size(), 1 << 20);
//! ```

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use conduit_core::ShutdownSignal;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::deflate::{Deflate, Session};
use crate::error::WsError;
use crate::frame::{self, OpCode};
use crate::message::{CloseCode, CloseFrame, Message, Utf8Bytes};

/// Limits and timers of a WebSocket.
#[derive(Clone, Debug)]
pub struct Config {
    max_frame_size: usize,
    max_message_size: usize,
    write_buffer_size: usize,
    ping_interval: Option<Duration>,
    idle_timeout: Option<Duration>,
    close_timeout: Duration,
    deflate: Option<Deflate>,
}

impl Default for Config {
    /// 16 MiB frames, 64 MiB messages (axum's limits), a 128 KiB write buffer, a ping after
    /// 30 s of silence, closed after 60 s of silence, 5 s for the peer's Close reply, and
    /// permessage-deflate when the client offers it with [`Deflate::default`] (no context
    /// kept per socket).
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            write_buffer_size: 128 << 10,
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            deflate: Some(Deflate::default()),
        }
    }
}

impl Config {
    /// The largest frame payload accepted; a larger one closes the socket with 1009.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// The largest message accepted, all its continuation frames counted; a larger one closes
    /// the socket with 1009 as soon as the frame header that crosses the limit arrives.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The bounded send queue: how many encoded bytes may wait for the peer before the writer
    /// waits. A single message larger than this is still sent, once the queue is empty.
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes.max(1);
        self
    }

    /// Send a Ping after this long without receiving anything (`None`: no keep-alive pings).
    pub fn ping_interval(mut self, every: Option<Duration>) -> Self {
        self.ping_interval = every;
        self
    }

    /// Close with 1001 after this long without receiving anything (`None`: never).
    pub fn idle_timeout(mut self, after: Option<Duration>) -> Self {
        self.idle_timeout = after;
        self
    }

    /// How long to wait for the peer's Close after sending one, and for the last frames to
    /// be written before the connection is dropped.
    pub fn close_timeout(mut self, within: Duration) -> Self {
        self.close_timeout = within;
        self
    }

    /// permessage-deflate (RFC 7692) when the client offers it, with these settings (`None`:
    /// offers are declined).
    pub fn deflate(mut self, deflate: Option<Deflate>) -> Self {
        self.deflate = deflate;
        self
    }

    /// The permessage-deflate settings, if compression is on.
    pub fn get_deflate(&self) -> Option<&Deflate> {
        self.deflate.as_ref()
    }

    /// The frame limit.
    pub fn get_max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The message limit.
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }
}

/// The bytes read from the socket in one go when the read buffer has no room: a stack buffer,
/// so that an idle socket holds no read buffer at all.
const READ_CHUNK: usize = 4096;

/// A server-side WebSocket over an upgraded connection `S`.
///
/// A [`Stream`] of `Result<Message, WsError>` and a [`Sink`] of [`Message`]; use
/// [`WebSocket::split`] to read and write from different tasks. Dropping it closes the
/// connection.
pub struct WebSocket<S = crate::Upgraded> {
    io: S,
    config: Config,
    protocol: Option<http::HeaderValue>,
    http_version: http::Version,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// A fragmented message being assembled: its opcode and the payload so far.
    partial: Option<(OpCode, BytesMut)>,
    /// The message being assembled is compressed (its first frame had RSV1).
    partial_compressed: bool,
    /// permessage-deflate, when negotiated (boxed: most sockets have none).
    deflate: Option<Box<Session>>,
    /// What to hand over once the connection is closed: the peer's Close or the fault.
    last: Option<Result<Message, WsError>>,
    /// We sent a Close frame.
    close_sent: bool,
    /// The code of the first Close sent or received (what [`stats`](crate::stats()) counts).
    close_code: Option<u16>,
    /// Counted as opened in [`stats`](crate::stats()), so counted as closed when dropped.
    counted: bool,
    /// Flush what is queued, shut the connection down, hand over `last`, then end.
    finishing: bool,
    /// The stream has ended.
    done: bool,
    last_read: Instant,
    ping_outstanding: bool,
    /// Set while closing: the peer's Close (or the final flush) must come by then.
    close_deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    shutdown: Option<ShutdownSignal>,
    /// The reader and the writer half poll the same connection for writing; whichever of
    /// them makes progress wakes the other one, which may have been the one registered.
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
}

impl<S> fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("protocol", &self.protocol)
            .field("http_version", &self.http_version)
            .field("close_sent", &self.close_sent)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Reader,
    Writer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// The server side of a connection whose handshake is already done (the upgrade's
    /// [`on_upgrade`](crate::WebSocketUpgrade::on_upgrade) builds one for you).
    pub fn from_io(io: S, config: Config) -> Self {
        WebSocket {
            io,
            config,
            protocol: None,
            http_version: http::Version::HTTP_11,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            partial: None,
            partial_compressed: false,
            deflate: None,
            last: None,
            close_sent: false,
            close_code: None,
            counted: false,
            finishing: false,
            done: false,
            last_read: Instant::now(),
            ping_outstanding: false,
            close_deadline: None,
            timer: None,
            shutdown: None,
            reader_waker: None,
            writer_waker: None,
        }
    }

    pub(crate) fn with_protocol(mut self, protocol: Option<http::HeaderValue>) -> Self {
        self.protocol = protocol;
        self
    }

    pub(crate) fn with_deflate(mut self, session: Option<Session>) -> Self {
        self.deflate = session.map(Box::new);
        self
    }

    /// Count this socket in [`stats`](crate::stats()): opened now, closed when dropped.
    pub(crate) fn counted(mut self) -> Self {
        crate::stats::opened(
            self.http_version == http::Version::HTTP_2,
            self.deflate.is_some(),
        );
        self.counted = true;
        self
    }

    pub(crate) fn with_http_version(mut self, version: http::Version) -> Self {
        self.http_version = version;
        self
    }

    /// Send Close 1001 when `signal` triggers (the server links it to its graceful shutdown).
    pub fn close_on(mut self, signal: ShutdownSignal) -> Self {
        self.shutdown = Some(signal);
        self
    }

    /// The subprotocol chosen in the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|p| p.to_str().ok())
    }

    /// The HTTP version the socket runs over: `HTTP/1.1` (an upgraded connection) or
    /// `HTTP/2` (an extended CONNECT stream, RFC 8441).
    pub fn http_version(&self) -> http::Version {
        self.http_version
    }

    /// The negotiated `Sec-WebSocket-Extensions` (as a browser's `WebSocket.extensions`
    /// shows it), e.g. `permessage-deflate; server_no_context_takeover;
    /// client_no_context_takeover`; `None` without compression.
    pub fn extensions(&self) -> Option<&str> {
        self.deflate.as_ref().and_then(|d| d.header().to_str().ok())
    }

    /// The limits and timers of this socket.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes queued for the peer and not yet written.
    pub fn buffered(&self) -> usize {
        self.write_buf.len()
    }

    /// Receive the next message (`None` once the socket is closed).
    pub async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Send a message and flush it (waits while the send queue is full).
    pub async fn send(&mut self, msg: Message) -> Result<(), WsError> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_ready(cx)).await?;
        Pin::new(&mut *self).start_send(msg)?;
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_flush(cx)).await
    }

    /// Start the closing handshake with `code` and `reason`; keep reading until `None` to
    /// complete it (or drop the socket).
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), WsError> {
        let frame = CloseFrame::new(code, Utf8Bytes::from(reason.to_owned()));
        self.send(Message::Close(Some(frame))).await
    }

    /// Queue a Close frame (if none was sent yet) and start the close timer.
    fn queue_close(&mut self, code: CloseCode, reason: &str) {
        if !self.close_sent {
            frame::write_close(&mut self.write_buf, code, reason);
            self.close_sent = true;
            self.close_code.get_or_insert(code.0);
        }
        self.close_deadline
            .get_or_insert_with(|| Instant::now() + self.config.close_timeout);
    }

    /// The peer broke a rule: send the matching Close, then end with the error.
    #[cold]
    fn fail(&mut self, err: WsError) {
        let code = err.close_code().unwrap_or(CloseCode::PROTOCOL);
        crate::stats::fault(&err);
        tracing::info!(
            code = code.0,
            error = %err,
            "closing WebSocket: {err} ({})",
            code.0
        );
        let reason = match &err {
            WsError::Protocol(why) => why,
            WsError::InvalidUtf8 => "invalid UTF-8",
            WsError::TooBig { what, .. } if *what == "frame" => "frame too big",
            WsError::TooBig { .. } => "message too big",
            WsError::IdleTimeout => "idle timeout",
            _ => "",
        };
        self.queue_close(code, reason);
        self.partial = None;
        self.read_buf = BytesMut::new();
        self.last = Some(Err(err));
        self.finishing = true;
    }

    /// Write the queued bytes. Ready(Ok) once the queue is empty.
    fn poll_write_buf(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<io::Result<()>> {
        let mut progressed = false;
        let res = loop {
            if self.write_buf.is_empty() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n);
                    progressed = true;
                }
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => {
                    let slot = match side {
                        Side::Reader => &mut self.reader_waker,
                        Side::Writer => &mut self.writer_waker,
                    };
                    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *slot = Some(cx.waker().clone());
                    }
                    break Poll::Pending;
                }
            }
        };
        if progressed {
            if self.write_buf.is_empty() {
                // Nothing queued: hold no write buffer either while the socket is idle.
                self.write_buf = BytesMut::new();
            }
            let other = match side {
                Side::Reader => self.writer_waker.take(),
                Side::Writer => self.reader_waker.take(),
            };
            if let Some(w) = other {
                w.wake();
            }
        }
        res
    }

    /// Write the queue and flush the connection.
    fn poll_flush_all(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<io::Result<()>> {
        ready!(self.poll_write_buf(cx, side))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// The next time the timer must fire, if any.
    fn deadline(&self) -> Option<Instant> {
        if let Some(d) = self.close_deadline {
            return Some(d);
        }
        let ping = match self.config.ping_interval {
            Some(p) if !self.ping_outstanding => Some(self.last_read + p),
            _ => None,
        };
        let idle = self.config.idle_timeout.map(|i| self.last_read + i);
        match (ping, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Poll the timer; Ready when its deadline has passed.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = self.deadline() else {
            return Poll::Pending;
        };
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        match &mut self.timer {
            Some(t) => {
                if t.deadline() != deadline {
                    t.as_mut().reset(deadline);
                }
            }
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        let t = self.timer.as_mut().expect("timer set above");
        ready!(t.as_mut().poll(cx));
        Poll::Ready(())
    }

    /// React to the timer: a keep-alive ping, the idle timeout, or the close timeout.
    fn on_timer(&mut self) {
        let now = Instant::now();
        if let Some(d) = self.close_deadline {
            if now >= d {
                tracing::debug!("WebSocket close timeout: dropping the connection");
                self.done = true;
            }
            return;
        }
        if self
            .config
            .idle_timeout
            .is_some_and(|idle| now >= self.last_read + idle)
        {
            self.fail(WsError::IdleTimeout);
            return;
        }
        if !self.ping_outstanding
            && self
                .config
                .ping_interval
                .is_some_and(|p| now >= self.last_read + p)
        {
            tracing::trace!("WebSocket keep-alive ping");
            frame::write_frame(&mut self.write_buf, OpCode::Ping, b"");
            self.ping_outstanding = true;
        }
    }

    /// Take one frame from the read buffer, if a whole one is there. A message (or `None`
    /// when the frame completed nothing the reader sees, or more bytes are needed).
    fn parse_frame(&mut self) -> Result<Parsed, WsError> {
        let Some(h) = frame::parse_header(&self.read_buf, self.deflate.is_some())? else {
            return Ok(Parsed::NeedMore);
        };
        let limit = self.config.max_frame_size;
        if h.payload_len > limit as u64 {
            return Err(WsError::TooBig {
                what: "frame",
                limit,
            });
        }
        let len = h.payload_len as usize;
        let limit = self.config.max_message_size;
        match (h.opcode, &self.partial) {
            (OpCode::Continuation, None) => {
                return Err(WsError::Protocol("continuation frame without a message"));
            }
            (OpCode::Continuation, Some((_, so_far))) if so_far.len() + len > limit => {
                return Err(WsError::TooBig {
                    what: "message",
                    limit,
                });
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(WsError::Protocol("new message inside a fragmented one"));
            }
            (OpCode::Text | OpCode::Binary, None) if len > limit => {
                return Err(WsError::TooBig {
                    what: "message",
                    limit,
                });
            }
            _ => {}
        }
        let total = h.header_len + len;
        if self.read_buf.len() < total {
            // Room for the rest of this frame, a chunk at a time (a header alone does not get
            // to allocate its announced size).
            let missing = total - self.read_buf.len();
            self.read_buf.reserve(missing.min(64 << 10));
            return Ok(Parsed::NeedMore);
        }
        let mut payload = self.read_buf.split_to(total);
        payload.advance(h.header_len);
        frame::unmask(&mut payload, h.mask);
        if self.read_buf.is_empty() {
            // Release the buffer (the payload keeps what it needs), so an idle socket holds
            // no read buffer: the next read lands in the stack chunk again.
            self.read_buf = BytesMut::new();
        }
        match h.opcode {
            OpCode::Ping => {
                if !self.close_sent {
                    frame::write_frame(&mut self.write_buf, OpCode::Pong, &payload);
                }
                Ok(Parsed::Message(Message::Ping(payload.freeze())))
            }
            OpCode::Pong => Ok(Parsed::Message(Message::Pong(payload.freeze()))),
            OpCode::Close => {
                let close = frame::parse_close(payload.freeze())?;
                self.close_code
                    .get_or_insert(close.as_ref().map_or(1005, |f| f.code.0));
                if !self.close_sent {
                    let code = close.as_ref().map_or(CloseCode::NORMAL, |f| f.code);
                    tracing::debug!(code = code.0, "WebSocket closed by the peer");
                    // Echo the code, as RFC 6455 section 5.5.1 suggests.
                    match &close {
                        Some(f) => frame::write_close(&mut self.write_buf, f.code, ""),
                        None => frame::write_frame(&mut self.write_buf, OpCode::Close, b""),
                    }
                    self.close_sent = true;
                }
                self.close_deadline
                    .get_or_insert_with(|| Instant::now() + self.config.close_timeout);
                self.last = Some(Ok(Message::Close(close)));
                self.finishing = true;
                Ok(Parsed::Consumed)
            }
            OpCode::Text | OpCode::Binary if h.fin => {
                let payload = self.inflated(payload.freeze(), h.compressed)?;
                Ok(Parsed::Message(data_message(h.opcode, payload)?))
            }
            OpCode::Text | OpCode::Binary => {
                self.partial = Some((h.opcode, payload));
                self.partial_compressed = h.compressed;
                Ok(Parsed::Consumed)
            }
            OpCode::Continuation => {
                let (opcode, mut so_far) = self.partial.take().expect("checked above");
                so_far.extend_from_slice(&payload);
                if h.fin {
                    let payload = self.inflated(so_far.freeze(), self.partial_compressed)?;
                    Ok(Parsed::Message(data_message(opcode, payload)?))
                } else {
                    self.partial = Some((opcode, so_far));
                    Ok(Parsed::Consumed)
                }
            }
        }
    }

    /// A whole received message's payload, inflated if it was compressed (bounded by the
    /// message limit: 1009 before it is inflated in full).
    fn inflated(&mut self, payload: Bytes, compressed: bool) -> Result<Bytes, WsError> {
        match (&mut self.deflate, compressed) {
            (Some(d), true) => d.inflate(&payload, self.config.max_message_size),
            _ => Ok(payload),
        }
    }

    /// Append a message to the write buffer: text and binary compressed when permessage-deflate
    /// is on and it pays.
    fn encode(&mut self, msg: &Message) {
        let (opcode, payload) = match msg {
            Message::Text(t) => (OpCode::Text, t.as_bytes().as_ref()),
            Message::Binary(b) => (OpCode::Binary, b.as_ref()),
            _ => return frame::write_message(&mut self.write_buf, msg),
        };
        if let Some(d) = &mut self.deflate {
            let mut out = Vec::new();
            if d.compress(payload, &mut out) {
                return frame::write_compressed(&mut self.write_buf, opcode, &out);
            }
        }
        frame::write_frame(&mut self.write_buf, opcode, payload);
    }

    /// Read what the connection has into the read buffer. Ready(Ok(false)) at end of file.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let n = if self.read_buf.capacity() - self.read_buf.len() >= READ_CHUNK {
            ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut self.read_buf
            ))?
        } else {
            let mut chunk = [0u8; READ_CHUNK];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            self.read_buf.extend_from_slice(rb.filled());
            rb.filled().len()
        };
        if n > 0 {
            self.last_read = Instant::now();
            self.ping_outstanding = false;
        }
        Poll::Ready(Ok(n > 0))
    }

    fn poll_next_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, WsError>>> {
        loop {
            if self.done {
                self.timer = None;
                self.read_buf = BytesMut::new();
                if let Some(w) = self.writer_waker.take() {
                    w.wake();
                }
                return Poll::Ready(self.last.take());
            }
            let flushed = match self.poll_flush_all(cx, Side::Reader) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "WebSocket connection lost while writing");
                    self.done = true;
                    if self.last.is_none() {
                        self.last = Some(Err(WsError::Io(e)));
                    }
                    continue;
                }
                Poll::Pending => false,
            };
            if self.finishing {
                if flushed && Pin::new(&mut self.io).poll_shutdown(cx).is_ready() {
                    // Our part of the closing handshake is written and the connection is
                    // closed (the server closes first, RFC 6455 section 7.1.1).
                    self.done = true;
                    continue;
                }
                // Waiting for the peer to read the last frames, up to the close deadline.
                ready!(self.poll_timer(cx));
                tracing::debug!("WebSocket close timeout: dropping the connection");
                self.done = true;
                continue;
            }
            if !self.close_sent
                && self
                    .shutdown
                    .as_ref()
                    .is_some_and(|s| s.poll_triggered(cx).is_ready())
            {
                tracing::debug!("server shutting down: closing WebSocket (1001)");
                self.queue_close(CloseCode::AWAY, "server shutting down");
                continue;
            }
            match self.parse_frame() {
                Ok(Parsed::Message(msg)) => return Poll::Ready(Some(Ok(msg))),
                Ok(Parsed::Consumed) => continue,
                Ok(Parsed::NeedMore) => {}
                Err(e) => {
                    self.fail(e);
                    continue;
                }
            }
            if self.poll_timer(cx).is_ready() {
                self.on_timer();
                continue;
            }
            if self.write_buf.len() >= self.config.write_buffer_size {
                // The peer does not read what we owe it (pongs): stop reading until it does.
                return Poll::Pending;
            }
            match ready!(self.poll_fill(cx)) {
                Ok(true) => {}
                Ok(false) => {
                    if self.close_sent {
                        tracing::debug!("WebSocket peer closed the connection after our Close");
                    } else {
                        tracing::debug!(
                            "WebSocket peer closed the connection without a Close (1006)"
                        );
                    }
                    self.done = true;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket connection lost while reading");
                    self.done = true;
                    self.last = Some(Err(WsError::Io(e)));
                }
            }
        }
    }
}

/// What one parse of the read buffer gave.
enum Parsed {
    /// A message for the reader.
    Message(Message),
    /// A frame the reader does not see (a fragment, a Close): parse again.
    Consumed,
    /// No whole frame yet.
    NeedMore,
}

fn data_message(opcode: OpCode, payload: Bytes) -> Result<Message, WsError> {
    if opcode == OpCode::Text {
        Utf8Bytes::try_from_bytes(payload)
            .map(Message::Text)
            .map_err(|_| WsError::InvalidUtf8)
    } else {
        Ok(Message::Binary(payload))
    }
}

impl<S> Drop for WebSocket<S> {
    fn drop(&mut self) {
        if self.counted {
            crate::stats::closed(self.close_code);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_inner(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.close_sent || this.done {
            return Poll::Ready(Err(WsError::Closed));
        }
        while this.write_buf.len() >= this.config.write_buffer_size {
            ready!(this.poll_write_buf(cx, Side::Writer))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), WsError> {
        let this = self.get_mut();
        if this.close_sent || this.done {
            return Err(WsError::Closed);
        }
        this.encode(&msg);
        if let Message::Close(frame) = &msg {
            this.close_code
                .get_or_insert(frame.as_ref().map_or(1000, |f| f.code.0));
        }
        if msg.is_close() {
            this.close_sent = true;
            this.close_deadline = Some(Instant::now() + this.config.close_timeout);
            // The reader waits for the peer's Close from now on, with a deadline.
            if let Some(w) = this.reader_waker.take() {
                w.wake();
            }
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Ok(()));
        }
        this.poll_flush_all(cx, Side::Writer).map_err(WsError::Io)
    }

    /// Send a Close (1000) unless one was sent, and flush it. The reader completes the
    /// handshake.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if !this.close_sent && !this.done {
            this.queue_close(CloseCode::NORMAL, "");
        }
        if this.done {
            return Poll::Ready(Ok(()));
        }
        this.poll_flush_all(cx, Side::Writer).map_err(WsError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [3, 1, 4, 1];
        let mut out = vec![b0, 0x80 | 126];
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn an_idle_socket_holds_no_read_or_write_buffer_after_traffic() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (mut client_rx, mut client_tx) = tokio::io::split(client);
        let mut ws = WebSocket::from_io(server, Config::default());
        assert_eq!((ws.read_buf.capacity(), ws.write_buf.capacity()), (0, 0));
        // 10,000 bytes in two fragments: more than one read chunk, assembled across reads.
        client_tx
            .write_all(&masked(0x02, &[7; 6000]))
            .await
            .unwrap();
        client_tx
            .write_all(&masked(0x80, &[8; 4000]))
            .await
            .unwrap();
        let msg = ws.recv().await.unwrap().unwrap();
        let Message::Binary(b) = &msg else {
            panic!("{msg:?}")
        };
        assert_eq!(b.len(), 10_000);
        assert!(b[..6000].iter().all(|x| *x == 7) && b[6000..].iter().all(|x| *x == 8));
        assert_eq!(ws.read_buf.capacity(), 0, "read buffer released");
        ws.send(msg).await.unwrap();
        assert_eq!(ws.write_buf.capacity(), 0, "write buffer released");
        let mut out = vec![0u8; 10_004];
        client_rx.read_exact(&mut out).await.unwrap();
        assert_eq!(&out[..4], &[0x82, 126, 0x27, 0x10]);
    }
}
