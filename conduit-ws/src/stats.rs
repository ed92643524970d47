//! [`WsStats`]: process-wide counts of WebSockets (opened by HTTP version, closed by close
//! code, faults, compression), kept in relaxed atomics at open, close and fault only (never per
//! message). [`stats`] reads them; with the `metrics` feature, the `metrics` module exports them
//! to Prometheus.
//!
//! ```
//! let before = conduit_ws::stats();
//! assert!(before.closed_total() <= before.opened_total());
//! ```

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::WsError;

/// The close codes counted one by one; any other code is counted as `other`.
pub const CLOSE_CODES: [u16; 11] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1013,
];

/// A snapshot of the counts since the process started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsStats {
    /// Sockets opened over HTTP/1.1 (an upgraded connection).
    pub opened_http1: u64,
    /// Sockets opened over HTTP/2 (an extended CONNECT stream, RFC 8441).
    pub opened_http2: u64,
    /// Sockets ended, by the close code that ended them (the first Close sent or received;
    /// 1005 for a Close without a code, 1006 when the connection ended without a Close), in
    /// the order of [`CLOSE_CODES`].
    pub closed_by_code: [u64; CLOSE_CODES.len()],
    /// Sockets ended with a close code outside [`CLOSE_CODES`].
    pub closed_other: u64,
    /// Peer faults closed with 1002 (protocol) or 1007 (invalid UTF-8).
    pub protocol_errors: u64,
    /// Frames over the frame limit (closed with 1009).
    pub frame_limit_closes: u64,
    /// Messages over the message limit, inflated or not (closed with 1009).
    pub message_limit_closes: u64,
    /// Sockets closed by the idle timeout (1001).
    pub idle_timeouts: u64,
    /// Sockets that negotiated permessage-deflate.
    pub deflate_negotiated: u64,
}

impl WsStats {
    /// Sockets opened over either HTTP version.
    pub fn opened_total(&self) -> u64 {
        self.opened_http1 + self.opened_http2
    }

    /// Sockets ended, whatever the code.
    pub fn closed_total(&self) -> u64 {
        self.closed_by_code.iter().sum::<u64>() + self.closed_other
    }

    /// Sockets ended with `code`, if it is one of [`CLOSE_CODES`].
    pub fn closed_with(&self, code: u16) -> Option<u64> {
        CLOSE_CODES
            .iter()
            .position(|c| *c == code)
            .map(|i| self.closed_by_code[i])
    }

    /// Sockets open now (opened minus ended).
    pub fn open(&self) -> u64 {
        self.opened_total().saturating_sub(self.closed_total())
    }
}

struct Counters {
    opened_http1: AtomicU64,
    opened_http2: AtomicU64,
    closed_by_code: [AtomicU64; CLOSE_CODES.len()],
    closed_other: AtomicU64,
    protocol_errors: AtomicU64,
    frame_limit_closes: AtomicU64,
    message_limit_closes: AtomicU64,
    idle_timeouts: AtomicU64,
    deflate_negotiated: AtomicU64,
}

static COUNTERS: Counters = Counters {
    opened_http1: AtomicU64::new(0),
    opened_http2: AtomicU64::new(0),
    closed_by_code: [const { AtomicU64::new(0) }; CLOSE_CODES.len()],
    closed_other: AtomicU64::new(0),
    protocol_errors: AtomicU64::new(0),
    frame_limit_closes: AtomicU64::new(0),
    message_limit_closes: AtomicU64::new(0),
    idle_timeouts: AtomicU64::new(0),
    deflate_negotiated: AtomicU64::new(0),
};

/// The counts since the process started.
pub fn stats() -> WsStats {
    let c = &COUNTERS;
    WsStats {
        opened_http1: c.opened_http1.load(Relaxed),
        opened_http2: c.opened_http2.load(Relaxed),
        closed_by_code: std::array::from_fn(|i| c.closed_by_code[i].load(Relaxed)),
        closed_other: c.closed_other.load(Relaxed),
        protocol_errors: c.protocol_errors.load(Relaxed),
        frame_limit_closes: c.frame_limit_closes.load(Relaxed),
        message_limit_closes: c.message_limit_closes.load(Relaxed),
        idle_timeouts: c.idle_timeouts.load(Relaxed),
        deflate_negotiated: c.deflate_negotiated.load(Relaxed),
    }
}

pub(crate) fn opened(http2: bool, deflate: bool) {
    let c = &COUNTERS;
    if http2 {
        c.opened_http2.fetch_add(1, Relaxed);
    } else {
        c.opened_http1.fetch_add(1, Relaxed);
    }
    if deflate {
        c.deflate_negotiated.fetch_add(1, Relaxed);
    }
}

pub(crate) fn closed(code: Option<u16>) {
    let code = code.unwrap_or(1006);
    match CLOSE_CODES.iter().position(|c| *c == code) {
        Some(i) => COUNTERS.closed_by_code[i].fetch_add(1, Relaxed),
        None => COUNTERS.closed_other.fetch_add(1, Relaxed),
    };
}

pub(crate) fn fault(err: &WsError) {
    let c = &COUNTERS;
    let counter = match err {
        WsError::Protocol(_) | WsError::InvalidUtf8 => &c.protocol_errors,
        WsError::TooBig { what: "frame", .. } => &c.frame_limit_closes,
        WsError::TooBig { .. } => &c.message_limit_closes,
        WsError::IdleTimeout => &c.idle_timeouts,
        WsError::Io(_) | WsError::Closed => return,
    };
    counter.fetch_add(1, Relaxed);
}
