//! Zero-copy file bodies: how a span of an open file reaches the socket through `sendfile(2)`
//! although hyper, which owns the socket, only ever writes byte slices.
//!
//! Three parties take part:
//!
//! - **the body** (conduit-static's file body, or any body built with [`Body::file`]) holds a
//!   [`SendfileGrant`]. Until the server fills the grant, the body reads its file as usual. Once
//!   it is filled, the body may hand over a span of the file as a *placeholder*: it
//!   [registers](Sendfile::push) the span with the connection's [`Sendfile`] queue and yields
//!   the chunk that call returns, of the span's length, whose bytes point into one private
//!   buffer ([`is_placeholder`] recognises it by address). The placeholder's bytes are never
//!   meant to be read.
//! - **the server** fills the grant only for a response whose body reaches it still a file body
//!   ([`Body::sendfile_grant`]: no middleware replaced it, only [observers](crate::Body::observe)
//!   wrapped it) on a plain-text HTTP/1.1 connection whose writer sends every body chunk by
//!   reference, never copied into a buffer of its own. TLS encrypts in user space and HTTP/2
//!   copies data into frames: those connections never fill a grant, and their file bodies read
//!   the file as before.
//! - **the connection's I/O**, handed the chunks to write, sends each placeholder with
//!   `sendfile` from the span at the front of the queue ([`Sendfile::send_front`]). A placeholder
//!   that does not match the front of the queue, byte for byte where it starts and how long it
//!   is, is an error that closes the connection: a client never receives the placeholder's
//!   bytes instead of the file's.
//!
//! [`Body::file`]: crate::Body::file
//! [`Body::sendfile_grant`]: crate::Body::sendfile_grant
//! [`Body::observe`]: crate::Body::observe

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// The longest placeholder chunk: a longer span is handed over in several chunks.
pub const MAX_CHUNK: usize = 1 << 20;

/// The placeholder buffer: zeroed, never written, never read (its pages stay unmapped).
fn placeholder_buf() -> &'static [u8] {
    static BUF: OnceLock<&'static [u8]> = OnceLock::new();
    BUF.get_or_init(|| Vec::leak(vec![0u8; MAX_CHUNK]))
}

/// Whether `chunk` starts inside the placeholder buffer: a span of a file registered with a
/// [`Sendfile`] queue, not bytes to write.
#[inline]
pub fn is_placeholder(chunk: &[u8]) -> bool {
    placeholder_offset(chunk).is_some()
}

/// How far into the placeholder buffer `chunk` starts, if it starts inside it.
#[inline]
fn placeholder_offset(chunk: &[u8]) -> Option<usize> {
    let buf = placeholder_buf();
    let base = buf.as_ptr() as usize;
    let at = chunk.as_ptr() as usize;
    (at >= base && at < base + buf.len()).then(|| at - base)
}

/// Bytes sent with `sendfile` by every connection of this process (for tests and metrics).
pub fn bytes_sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

static SENT: AtomicU64 = AtomicU64::new(0);

struct Region {
    file: Arc<File>,
    offset: u64,
    len: usize,
    sent: usize,
}

/// One connection's queue of file spans handed to its writer as placeholders, in the order
/// the writer meets them (see the [module docs](self)).
#[derive(Default)]
pub struct Sendfile {
    queue: Mutex<VecDeque<Region>>,
    pending: AtomicUsize,
}

impl std::fmt::Debug for Sendfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sendfile")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl Sendfile {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `len` bytes of `file` from `offset` (at most [`MAX_CHUNK`]) and return the
    /// placeholder chunk that stands for them.
    ///
    /// # Panics
    ///
    /// If `len` is 0 or more than [`MAX_CHUNK`].
    pub fn push(&self, file: Arc<File>, offset: u64, len: usize) -> Bytes {
        assert!(
            len > 0 && len <= MAX_CHUNK,
            "a placeholder spans 1..={MAX_CHUNK} bytes"
        );
        self.lock().push_back(Region {
            file,
            offset,
            len,
            sent: 0,
        });
        self.pending.fetch_add(1, Ordering::Release);
        Bytes::from_static(&placeholder_buf()[..len])
    }

    /// Whether spans are registered that the writer has not finished sending: only then does
    /// it need to look for placeholders among the chunks it writes.
    #[inline]
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }

    /// The file and offset to send `chunk` (a placeholder, or what is left of one after a
    /// partial write) from: the front of the queue, checked against where `chunk` starts and
    /// how long it is. `f` sends and returns how many bytes went out; they are marked sent.
    ///
    /// # Errors
    ///
    /// `InvalidData` when `chunk` is not what the front of the queue expects (nothing is
    /// registered, it starts elsewhere in the span, or runs past its end): the writer must
    /// close the connection rather than send the placeholder's bytes. `f`'s own error. A span
    /// that ended early (`f` returned 0: the file shrank) is `UnexpectedEof`.
    pub fn send_front<F>(&self, chunk: &[u8], f: F) -> io::Result<usize>
    where
        F: FnOnce(&File, u64, usize) -> io::Result<usize>,
    {
        let mismatch = || io::Error::new(io::ErrorKind::InvalidData, "unregistered file chunk");
        let at = placeholder_offset(chunk).ok_or_else(mismatch)?;
        let mut queue = self.lock();
        let region = queue.front_mut().ok_or_else(mismatch)?;
        if at != region.sent || chunk.len() > region.len - region.sent {
            return Err(mismatch());
        }
        let n = f(&region.file, region.offset + at as u64, chunk.len())?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its registered span",
            ));
        }
        region.sent += n;
        if region.sent == region.len {
            queue.pop_front();
            self.pending.fetch_sub(1, Ordering::Release);
        }
        SENT.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Region>> {
        // A panic while the lock was held left the queue consistent (each change is one call).
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The link between a file body and the connection that may send it with `sendfile`: empty
/// until the server [gives](Self::give) it the connection's [`Sendfile`] queue.
#[derive(Clone, Default)]
pub struct SendfileGrant(Arc<OnceLock<Arc<Sendfile>>>);

impl std::fmt::Debug for SendfileGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SendfileGrant")
            .field(&self.0.get().is_some())
            .finish()
    }
}

impl SendfileGrant {
    /// A grant not yet given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Let the body send through `queue` (the server's call; a second call changes nothing).
    pub fn give(&self, queue: Arc<Sendfile>) {
        let _ = self.0.set(queue);
    }

    /// The connection's queue, once given.
    #[inline]
    pub fn get(&self) -> Option<&Sendfile> {
        self.0.get().map(|q| &**q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<File> {
        Arc::new(File::open(std::env::current_exe().unwrap()).unwrap())
    }

    #[test]
    fn a_placeholder_is_recognised_by_address_and_nothing_else_is() {
        let q = Sendfile::new();
        let chunk = q.push(file(), 0, 10);
        assert!(is_placeholder(&chunk));
        assert!(is_placeholder(&chunk[3..]));
        assert!(!is_placeholder(&[0u8; 10]));
        assert!(!is_placeholder(b"hello"));
        assert!(q.is_pending());
    }

    #[test]
    fn partial_sends_advance_through_the_span_and_then_the_next() {
        let q = Sendfile::new();
        let a = q.push(file(), 100, 10);
        let b = q.push(file(), 500, 4);
        let mut calls = Vec::new();
        let mut send = |chunk: &[u8], n: usize| {
            q.send_front(chunk, |_, off, len| {
                calls.push((off, len));
                Ok(n.min(len))
            })
        };
        assert_eq!(send(&a, 3).unwrap(), 3);
        assert_eq!(send(&a[3..], 7).unwrap(), 7);
        assert_eq!(send(&b, 4).unwrap(), 4);
        assert_eq!(calls, [(100, 10), (103, 7), (500, 4)]);
        assert!(!q.is_pending());
    }

    #[test]
    fn a_chunk_that_does_not_match_the_front_is_refused_unsent() {
        let q = Sendfile::new();
        let a = q.push(file(), 0, 10);
        let never = |_: &File, _: u64, _: usize| -> io::Result<usize> { panic!("sent") };
        // Not where the span stands, too long, not a placeholder at all.
        for bad in [&a[2..], &placeholder_buf()[..11], &b"0123456789"[..]] {
            let err = q.send_front(bad, never).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
        // A span the writer never finished, then a new one's start: refused too.
        assert_eq!(q.send_front(&a, |_, _, _| Ok(4)).unwrap(), 4);
        let _b = q.push(file(), 0, 10);
        assert!(q.send_front(&a, never).is_err());
    }

    #[test]
    fn a_span_that_ends_early_is_an_error() {
        let q = Sendfile::new();
        let a = q.push(file(), 0, 10);
        let err = q.send_front(&a, |_, _, _| Ok(0)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
