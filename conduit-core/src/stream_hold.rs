//! [`StreamHold`]: keeps a connection counted as busy while a stream a handler took over is
//! open.
//!
//! Over HTTP/2 an extended CONNECT (RFC 8441, a WebSocket) turns one stream into a tunnel that
//! outlives its response: the response body is gone as soon as the `200` is sent, yet the
//! stream is in use. The server puts a `StreamHold` in the extensions of such a request;
//! whoever takes the stream over (`conduit-ws`) removes it and keeps it for as long as the
//! stream is open, so the server does not count the connection as idle and close it under
//! the tunnel. A request whose hold nobody takes releases it when the request is dropped.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use conduit_core::StreamHold;
//!
//! struct Released(Arc<AtomicBool>);
//! impl Drop for Released {
//!     fn drop(&mut self) {
//!         self.0.store(true, Ordering::SeqCst);
//!     }
//! }
//!
//! let released = Arc::new(AtomicBool::new(false));
//! let hold = StreamHold::new(Released(released.clone()));
//! let copy = hold.clone();
//! drop(hold);
//! assert!(!released.load(Ordering::SeqCst));
//! drop(copy); // the last clone releases the stream
//! assert!(released.load(Ordering::SeqCst));
//! ```

use std::fmt;
use std::sync::Arc;

/// A token that keeps an HTTP/2 stream counted as open until its last clone is dropped.
#[derive(Clone)]
pub struct StreamHold(#[allow(dead_code)] Arc<dyn Send + Sync>);

impl StreamHold {
    /// A hold that drops `guard` when its last clone is dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        StreamHold(Arc::new(guard))
    }
}

impl fmt::Debug for StreamHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamHold").finish_non_exhaustive()
    }
}
