//! The HTTP/2 connection preface on a TLS connection that negotiated `h2` with ALPN.
//!
//! Such a connection is HTTP/2 and nothing else, so bytes that are not the client preface
//! are a connection error of type PROTOCOL_ERROR (RFC 9113 section 3.4). The `h2` crate closes
//! the connection without a word in that case; [`expect_preface`] reads the preface first and
//! answers a bad one with the server preface (an empty SETTINGS frame) and a GOAWAY frame
//! carrying PROTOCOL_ERROR, as the RFC describes. A good preface is handed on to hyper by
//! [`Replay`], which serves those 24 bytes again before reading on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The client connection preface (RFC 9113 section 3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame, then GOAWAY(last stream 0, PROTOCOL_ERROR, debug data).
const SETTINGS_THEN_GOAWAY: &[u8] = &[
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, length 0, stream 0
    0, 0, 34, 0x7, 0, 0, 0, 0, 0, // GOAWAY, length 8 + 26, stream 0
    0, 0, 0, 0, // last stream id 0
    0, 0, 0, 0x1, // PROTOCOL_ERROR
    b'i', b'n', b'v', b'a', b'l', b'i', b'd', b' ', b'c', b'o', b'n', b'n', b'e', b'c', b't', b'i',
    b'o', b'n', b' ', b'p', b'r', b'e', b'f', b'a', b'c', b'e',
];

/// What the client sent first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Preface {
    /// The HTTP/2 preface: serve the connection through [`Replay`].
    Valid,
    /// Something else: GOAWAY(PROTOCOL_ERROR) has been sent and the connection shut down.
    Invalid,
}

/// Read the client preface; on a mismatch, send SETTINGS + GOAWAY(PROTOCOL_ERROR) and shut the
/// connection down. Stops reading at the first byte that differs.
pub(crate) async fn expect_preface<I>(io: &mut I) -> io::Result<Preface>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = [0u8; PREFACE.len()];
    let mut n = 0;
    while n < PREFACE.len() {
        let got = io.read(&mut buf[n..]).await?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if buf[n..n + got] != PREFACE[n..n + got] {
            io.write_all(SETTINGS_THEN_GOAWAY).await?;
            io.shutdown().await?;
            return Ok(Preface::Invalid);
        }
        n += got;
    }
    Ok(Preface::Valid)
}

pin_project_lite::pin_project! {
    /// An I/O stream whose first 24 bytes read are the HTTP/2 preface (already consumed by
    /// [`expect_preface`]), then the stream's own.
    pub(crate) struct Replay<T> {
        #[pin]
        inner: T,
        replayed: usize,
    }
}

impl<T> Replay<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self { inner, replayed: 0 }
    }
}

impl<T: AsyncRead> AsyncRead for Replay<T> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.replayed < PREFACE.len() && buf.remaining() > 0 {
            let rest = &PREFACE[*this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            *this.replayed += n;
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Replay<T> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goaway_frame_is_well_formed() {
        let (settings, goaway) = SETTINGS_THEN_GOAWAY.split_at(9);
        assert_eq!(settings[3], 0x4);
        let len = u32::from_be_bytes([0, goaway[0], goaway[1], goaway[2]]) as usize;
        assert_eq!(len, goaway.len() - 9);
        assert_eq!(goaway[3], 0x7);
        assert_eq!(&goaway[13..17], &[0, 0, 0, 1]);
        assert_eq!(&goaway[17..], b"invalid connection preface");
    }
}
