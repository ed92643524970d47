//! [`TimedIo`]: the connection's I/O as hyper sees it. It reports reads and stalled writes to
//! the connection's [`Activity`] (for the [watchdog](crate::watchdog)), coalesces HTTP/2
//! writes (see [`coalesce`]) and sends file placeholders with `sendfile` (see [`Socket`] and
//! [`conduit_core::sendfile`]).

use std::fs::File;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use conduit_core::sendfile::{self, Sendfile};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::watchdog::Activity;

pin_project_lite::pin_project! {
    /// An I/O stream that reports reads and stalled writes to [`Activity`], and coalesces
    /// HTTP/2 writes (see [`coalesce`]).
    pub(crate) struct TimedIo<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
        yielded: bool,
    }
}

impl<T> TimedIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            yielded: false,
        }
    }
}

impl<T: AsyncRead> AsyncRead for TimedIo<T> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        res
    }
}

/// HTTP/2 write coalescing. An h2 connection's streams run as tasks of their own; each one
/// that finishes wakes the connection task, which would otherwise write (and, with
/// `TCP_NODELAY`, send a packet) per response. Before the first write of each flush the
/// connection task yields once, to the back of the run queue, so the streams that are already
/// runnable finish first and their frames leave in one write. This costs one scheduler pass
/// per flush (no timer, no added latency when nothing else is runnable) and, on `compare.sh
/// h2`, cuts the server's CPU per request by about a fifth. HTTP/1 writes are untouched.
#[inline]
fn coalesce(activity: &Activity, yielded: &mut bool, cx: &mut Context<'_>) -> bool {
    if *yielded || !activity.is_http2() {
        return false;
    }
    *yielded = true;
    let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
    true
}

impl<T: Socket> AsyncWrite for TimedIo<T> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if coalesce(this.activity, this.yielded, cx) {
            return Poll::Pending;
        }
        if this.activity.sendfile_pending().is_some() && sendfile::is_placeholder(buf) {
            // Only a vectored writer hands chunks over by reference (see `Socket`).
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file placeholder written without vectored I/O",
            )));
        }
        let res = this.inner.poll_write(cx, buf);
        this.activity.on_write(&res);
        res
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.activity.sendfile_pending().is_some() {
            return self.poll_write_files(cx, bufs);
        }
        let this = self.project();
        if coalesce(this.activity, this.yielded, cx) {
            return Poll::Pending;
        }
        let res = this.inner.poll_write_vectored(cx, bufs);
        this.activity.on_write(&res);
        res
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let res = this.inner.poll_flush(cx);
        if res.is_ready() {
            *this.yielded = false;
        }
        res
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

impl<T: Socket> TimedIo<T> {
    /// `poll_write_vectored` while file spans are queued (HTTP/1 only: no coalescing). Out of
    /// line and cold, so the plain write path stays as small as it was.
    #[cold]
    #[inline(never)]
    fn poll_write_files(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let Some(queue) = this.activity.sendfile_pending() else {
            return Poll::Ready(Err(io::ErrorKind::InvalidData.into())); // checked by the caller
        };
        let res = write_with_files(this.inner, queue, cx, bufs);
        this.activity.on_write(&res);
        res
    }
}

/// Write `bufs` while file spans are queued: the bytes before the first placeholder with
/// `writev`, or, when a placeholder comes first, its span with `sendfile`. One system call
/// either way; hyper calls again for the rest.
fn write_with_files<T: Socket>(
    inner: Pin<&mut T>,
    queue: &Sendfile,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    match bufs.iter().position(|b| sendfile::is_placeholder(b)) {
        None => inner.poll_write_vectored(cx, bufs),
        Some(0) => {
            let mut pending = false;
            let sent = queue.send_front(&bufs[0], |file, offset, len| {
                match inner.poll_sendfile(cx, file, offset, len) {
                    Poll::Ready(res) => res,
                    Poll::Pending => {
                        pending = true;
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                }
            });
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(sent)
            }
        }
        // The response head (or a multipart part's head) leaves with the span after it.
        Some(first) => inner.poll_write_before_file(cx, &bufs[..first]),
    }
}

/// A connection's socket as [`TimedIo`] writes to it: with `sendfile` too, where the socket
/// is a kernel socket written as is (plain TCP on Linux). Everything else (TLS, which
/// encrypts in user space) keeps the default: no `sendfile`, so the server never lets a file
/// body hand over placeholders on it.
pub(crate) trait Socket: AsyncWrite {
    /// Whether [`poll_sendfile`](Self::poll_sendfile) sends.
    const SENDFILE: bool = false;

    /// Send up to `len` bytes of `file` from `offset` (not moving the file's own offset): how
    /// many were sent, 0 at the end of the file.
    fn poll_sendfile(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let _ = (cx, file, offset, len);
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }

    /// Write `bufs`, which a `sendfile` follows: held back (`MSG_MORE`) to leave in the same
    /// packets as the file's first bytes, as nginx's `tcp_nopush` does.
    fn poll_write_before_file(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, bufs)
    }
}

impl Socket for tokio::net::TcpStream {
    #[cfg(target_os = "linux")]
    const SENDFILE: bool = true;

    #[cfg(target_os = "linux")]
    fn poll_sendfile(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let socket = &*self;
        poll_send(socket, cx, || {
            let mut at = offset;
            Ok(rustix::fs::sendfile(socket, file, Some(&mut at), len)?)
        })
    }

    #[cfg(target_os = "linux")]
    fn poll_write_before_file(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
        let socket = &*self;
        poll_send(socket, cx, || {
            let mut control = SendAncillaryBuffer::default();
            Ok(sendmsg(socket, bufs, &mut control, SendFlags::MORE)?)
        })
    }
}

/// Run the system call `send` on `socket` once it is writable; again after a `WouldBlock`,
/// which clears tokio's readiness so the task sleeps until the socket can take more.
#[cfg(target_os = "linux")]
fn poll_send(
    socket: &tokio::net::TcpStream,
    cx: &mut Context<'_>,
    mut send: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        std::task::ready!(socket.poll_write_ready(cx))?;
        match socket.try_io(tokio::io::Interest::WRITABLE, &mut send) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            res => return Poll::Ready(res),
        }
    }
}

#[cfg(feature = "tls")]
impl<S: AsyncRead + AsyncWrite + Unpin> Socket for tokio_rustls::server::TlsStream<S> {}

/// The items of a [`Socket`] that only forwards to its pinned `inner` field of type `$inner`.
macro_rules! forward_socket {
    ($inner:ty) => {
        const SENDFILE: bool = <$inner as $crate::io::Socket>::SENDFILE;

        #[inline]
        fn poll_sendfile(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            file: &std::fs::File,
            offset: u64,
            len: usize,
        ) -> Poll<io::Result<usize>> {
            self.project().inner.poll_sendfile(cx, file, offset, len)
        }

        #[inline]
        fn poll_write_before_file(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.project().inner.poll_write_before_file(cx, bufs)
        }
    };
}
pub(crate) use forward_socket;

impl<S: Socket, T> Socket for Held<S, T> {
    forward_socket!(S);
}

/// The methods of an `AsyncWrite` that only forwards to its pinned `inner` field (every
/// method, vectored writes included, so the wrapper costs nothing).
macro_rules! forward_async_write {
    () => {
        #[inline]
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.project().inner.poll_write(cx, buf)
        }

        #[inline]
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.project().inner.poll_write_vectored(cx, bufs)
        }

        #[inline]
        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }

        #[inline]
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.project().inner.poll_flush(cx)
        }

        #[inline]
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.project().inner.poll_shutdown(cx)
        }
    };
}
pub(crate) use forward_async_write;

pin_project_lite::pin_project! {
    /// A connection's socket with what the connection holds while it is open: its place in
    /// `max_connections` and its registration for the drain. Both go wherever the socket goes,
    /// so a connection upgraded away from HTTP (a WebSocket, which hyper hands the socket to)
    /// still counts against the limit, and the drain still waits for it, until it closes.
    pub(crate) struct Held<S, T> {
        #[pin]
        inner: S,
        hold: T,
    }
}

impl<S, T> Held<S, T> {
    pub(crate) fn new(inner: S, hold: T) -> Self {
        Self { inner, hold }
    }
}

impl<S: AsyncRead, T> AsyncRead for Held<S, T> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite, T> AsyncWrite for Held<S, T> {
    forward_async_write!();
}
