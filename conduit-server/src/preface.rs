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

#[cfg(feature = "tls")]
use tokio::io::AsyncWriteExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 section 3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[cfg(feature = "tls")]
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
#[cfg(feature = "tls")]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Preface {
    /// The HTTP/2 preface: serve the connection through [`Replay`].
    Valid,
    /// Something else: GOAWAY(PROTOCOL_ERROR) has been sent and the connection shut down.
    Invalid,
}

#[cfg(feature = "tls")]
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
    /// An I/O stream whose first bytes read are the ones already consumed from it (the HTTP/2
    /// preface by [`expect_preface`], or what [`sniff_preface`] read), then the stream's own.
    pub(crate) struct Replay<T> {
        #[pin]
        inner: T,
        prefix: [u8; PREFACE.len()],
        len: u8,
        replayed: u8,
    }
}

impl<T> Replay<T> {
    /// `inner`, whose HTTP/2 preface was read already.
    #[cfg(feature = "tls")]
    pub(crate) fn new(inner: T) -> Self {
        Self::with_prefix(inner, *PREFACE, PREFACE.len())
    }

    /// `inner`, whose first `len` bytes were read into `prefix` already.
    pub(crate) fn with_prefix(inner: T, prefix: [u8; PREFACE.len()], len: usize) -> Self {
        debug_assert!(len <= PREFACE.len());
        Self {
            inner,
            prefix,
            len: len as u8,
            replayed: 0,
        }
    }
}

/// Reads from a plain-text connection until its first bytes either differ from the HTTP/2
/// prior-knowledge preface or are all of it (as hyper-util's `auto` connection does), into
/// `buf`: how many bytes were read, and whether they are the preface. End of stream before
/// that is `(n, false)`, left to the HTTP/1 connection to see.
pub(crate) async fn sniff_preface<I>(
    io: &mut I,
    buf: &mut [u8; PREFACE.len()],
) -> io::Result<(usize, bool)>
where
    I: AsyncRead + Unpin,
{
    let mut n = 0;
    while n < PREFACE.len() {
        let got = io.read(&mut buf[n..]).await?;
        if got == 0 {
            return Ok((n, false));
        }
        n += got;
        if buf[..n] != PREFACE[..n] {
            return Ok((n, false));
        }
    }
    Ok((n, true))
}

impl<T: AsyncRead> AsyncRead for Replay<T> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.replayed < *this.len && buf.remaining() > 0 {
            let rest = &this.prefix[*this.replayed as usize..*this.len as usize];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            *this.replayed += n as u8;
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Replay<T> {
    crate::io::forward_async_write!();
}

impl<T: crate::io::Socket> crate::io::Socket for Replay<T> {
    crate::io::forward_socket!(T);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[cfg(feature = "tls")]
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

    /// What `sniff_preface` read, replayed in front of the rest of the stream.
    async fn sniff(sent: &[&[u8]]) -> (bool, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1024);
        for part in sent {
            client.write_all(part).await.unwrap();
        }
        drop(client);
        let mut io = server;
        let mut buf = [0u8; PREFACE.len()];
        let (n, h2) = sniff_preface(&mut io, &mut buf).await.unwrap();
        let mut all = Vec::new();
        Replay::with_prefix(io, buf, n)
            .read_to_end(&mut all)
            .await
            .unwrap();
        (h2, all)
    }

    #[tokio::test]
    async fn sniffing_replays_what_it_read() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".as_slice();
        assert_eq!(sniff(&[get]).await, (false, get.to_vec()));
        // Starts like the preface, then differs.
        assert_eq!(
            sniff(&[b"PRI * HTTP/1.1\r\n"]).await,
            (false, b"PRI * HTTP/1.1\r\n".to_vec())
        );
        let mut h2 = PREFACE.to_vec();
        h2.extend_from_slice(b"frames");
        assert_eq!(
            sniff(&[&PREFACE[..5], &PREFACE[5..], b"frames"]).await,
            (true, h2)
        );
        // End of stream inside the preface: not HTTP/2, the bytes still replayed.
        assert_eq!(sniff(&[b"PRI"]).await, (false, b"PRI".to_vec()));
        assert_eq!(sniff(&[]).await, (false, Vec::new()));
    }
}
