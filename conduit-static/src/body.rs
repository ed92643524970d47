//! Streaming a file (or ranges of it) in bounded chunks, off the async workers.
//!
//! Each chunk is read with `pread` (`FileExt::read_at`, so one open file serves any number of
//! concurrent downloads) inside `spawn_blocking`, into a buffer from a small pool. The chunk is
//! handed to hyper as [`Bytes`] that *own* the pooled buffer: once hyper has written it and
//! dropped it, the buffer goes back to the pool. A download therefore holds at most two chunks
//! (one being written, one being read), whatever the file size, and a busy server reuses the
//! same few buffers instead of allocating and zeroing a new one per chunk.
//!
//! Where the server allows it (plain-text HTTP/1.1, see [`conduit_core::sendfile`]), a span of
//! the file whose pages are already in the page cache is not read at all: it goes to the
//! connection as a placeholder that the connection sends with `sendfile`. A span that is not
//! cached is read as above, on a blocking thread, so `sendfile` never waits for the disk on an
//! async worker.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use conduit_core::sendfile::{self, SendfileGrant};
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

/// A pool of equally sized read buffers.
#[derive(Debug)]
pub(crate) struct BufPool {
    size: usize,
    keep: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    pub(crate) fn new(size: usize, keep: usize) -> Arc<Self> {
        Arc::new(Self {
            size,
            keep,
            free: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> Vec<u8> {
        let pooled = self.free.lock().map(|mut f| f.pop()).unwrap_or(None);
        pooled.unwrap_or_else(|| vec![0; self.size])
    }

    fn give(&self, buf: Vec<u8>) {
        if let Ok(mut free) = self.free.lock() {
            if free.len() < self.keep {
                free.push(buf);
            }
        }
    }
}

/// The owner of a chunk's bytes: returns its buffer to the pool when hyper drops the chunk.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<BufPool>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

/// One piece of a response body: bytes in memory (multipart headers) or a span of the file.
#[derive(Debug, Clone)]
pub(crate) enum Part {
    Bytes(Bytes),
    File { offset: u64, len: u64 },
}

/// A response body read from an open file in bounded chunks.
pub(crate) struct FileBody {
    file: Arc<File>,
    parts: VecDeque<Part>,
    remaining: u64,
    pool: Arc<BufPool>,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
    grant: SendfileGrant,
}

impl FileBody {
    /// A body of `parts`; once the server gives `grant`, cached spans go out with `sendfile`.
    pub(crate) fn new(
        file: Arc<File>,
        mut parts: Vec<Part>,
        pool: Arc<BufPool>,
        grant: SendfileGrant,
    ) -> Self {
        // An empty span would read 0 bytes, which means "the file shrank".
        parts.retain(|p| !matches!(p, Part::File { len: 0, .. }));
        let remaining = parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len() as u64,
                Part::File { len, .. } => *len,
            })
            .sum();
        Self {
            file,
            parts: parts.into(),
            remaining,
            pool,
            pending: None,
            grant,
        }
    }

    /// `n` bytes of the front file span are on their way.
    fn consumed(&mut self, n: u64) {
        if let Some(Part::File { offset, len }) = self.parts.front_mut() {
            *offset += n;
            *len -= n;
            if *len == 0 {
                self.parts.pop_front();
            }
        }
        self.remaining -= n;
    }

    /// A span of the file handed to the connection for `sendfile`, if it may and the span's
    /// pages are cached (so the kernel copies them to the socket without waiting for a disk).
    fn by_reference(&self, offset: u64, len: u64) -> Option<Bytes> {
        let queue = self.grant.get()?;
        let len = len.min(sendfile::MAX_CHUNK as u64) as usize;
        is_cached(&self.file, offset, len).then(|| queue.push(self.file.clone(), offset, len))
    }
}

/// Whether the first and last byte of a span are in the page cache: a read that must not
/// wait (`RWF_NOWAIT`) finds them. Pages are read ahead in order, so a span cached at both ends
/// is cached in between as a rule; when it is not, `sendfile` waits for the rest, as nginx's
/// does.
#[cfg(target_os = "linux")]
fn is_cached(file: &File, offset: u64, len: usize) -> bool {
    use rustix::io::{ReadWriteFlags, preadv2};
    let mut byte = [0u8; 1];
    [offset, offset + len as u64 - 1].into_iter().all(|at| {
        let mut bufs = [io::IoSliceMut::new(&mut byte)];
        matches!(preadv2(file, &mut bufs, at, ReadWriteFlags::NOWAIT), Ok(1))
    })
}

#[cfg(not(target_os = "linux"))]
fn is_cached(_: &File, _: u64, _: usize) -> bool {
    false
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(pending) = &mut this.pending {
                let joined = ready!(Pin::new(pending).poll(cx));
                this.pending = None;
                let chunk = match joined {
                    Ok(Ok(chunk)) => chunk,
                    Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Err(e) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                };
                if chunk.is_empty() {
                    // The file shrank under us: end the response as broken, never pad it.
                    return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
                }
                this.consumed(chunk.len() as u64);
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            match this.parts.front() {
                None => return Poll::Ready(None),
                Some(Part::Bytes(_)) => {
                    let Some(Part::Bytes(b)) = this.parts.pop_front() else {
                        unreachable!("checked above")
                    };
                    this.remaining -= b.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Some(&Part::File { offset, len }) => {
                    if let Some(chunk) = this.by_reference(offset, len) {
                        this.consumed(chunk.len() as u64);
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    let file = this.file.clone();
                    let pool = this.pool.clone();
                    let want = len.min(pool.size as u64) as usize;
                    this.pending = Some(tokio::task::spawn_blocking(move || {
                        let mut buf = pool.take();
                        let n = read_at_most(&file, &mut buf[..want], offset)?;
                        Ok(Bytes::from_owner(Chunk { buf, len: n, pool }))
                    }));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A span of a file the hot-file cache holds in memory, with the file kept open: on a
/// connection that sends files with `sendfile`, the span goes out from the page cache (no copy
/// through user space); everywhere else, and for any part not in the page cache, the memory's
/// bytes are sent as they are.
pub(crate) struct HeldBody {
    data: Bytes,
    file: Arc<File>,
    offset: u64,
    grant: SendfileGrant,
}

impl HeldBody {
    /// `data`, which is the file's bytes from `offset`.
    pub(crate) fn new(data: Bytes, file: Arc<File>, offset: u64, grant: SendfileGrant) -> Self {
        Self {
            data,
            file,
            offset,
            grant,
        }
    }
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.data.is_empty() {
            return Poll::Ready(None);
        }
        if let Some(queue) = this.grant.get() {
            let len = this.data.len().min(sendfile::MAX_CHUNK);
            if is_cached(&this.file, this.offset, len) {
                let chunk = queue.push(this.file.clone(), this.offset, len);
                bytes::Buf::advance(&mut this.data, len);
                this.offset += len as u64;
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
        }
        let data = std::mem::take(&mut this.data);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

/// `pread` until `buf` is full or the end of the file.
fn read_at_most(file: &File, buf: &mut [u8], mut offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.abort(); // a blocking read cannot be interrupted, but its result is unwanted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    /// Reading a file chunk by chunk, dropping each chunk as a server would after writing it,
    /// reuses one buffer: memory per download does not grow with the file.
    #[tokio::test]
    async fn chunks_reuse_pooled_buffers() {
        let path = std::env::temp_dir().join(format!("conduit-static-pool-{}", std::process::id()));
        let content: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let pool = BufPool::new(64 * 1024, 8);
        let parts = vec![
            Part::Bytes(Bytes::from_static(b"head")),
            Part::File {
                offset: 0,
                len: content.len() as u64,
            },
        ];
        let mut body = FileBody::new(file, parts, pool.clone(), SendfileGrant::new());
        assert_eq!(body.size_hint().exact(), Some(4 + content.len() as u64));
        let mut got = Vec::new();
        let mut frames = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= 64 * 1024);
            got.extend_from_slice(&data);
            frames += 1;
            drop(data); // back to the pool
        }
        assert!(body.is_end_stream());
        assert_eq!(&got[..4], b"head");
        assert!(got[4..] == content[..]);
        assert_eq!(frames, 1 + content.len().div_ceil(64 * 1024));
        assert_eq!(
            pool.free.lock().unwrap().len(),
            1,
            "one buffer served every chunk"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
