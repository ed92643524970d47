//! [`WsError`]: why a WebSocket ended, or why a message could not be sent.
//!
//! Each fault the peer commits maps to the close code conduit sent before the error was
//! returned ([`WsError::close_code`]):
//!
//! ```
//! use conduit_ws::{CloseCode, WsError};
//!
//! assert_eq!(WsError::Protocol("unmasked client frame").close_code(), Some(CloseCode::PROTOCOL));
//! assert_eq!(WsError::InvalidUtf8.close_code(), Some(CloseCode::INVALID_PAYLOAD));
//! assert_eq!(WsError::Closed.close_code(), None);
//! ```

use std::fmt;
use std::io;

use crate::message::CloseCode;

/// An error of a WebSocket: a peer fault (after which conduit has sent the matching Close
/// frame and closed the connection), an I/O error, or a send after the close.
#[derive(Debug)]
#[non_exhaustive]
pub enum WsError {
    /// The connection failed (reset, broken pipe, ...).
    Io(io::Error),
    /// The peer broke RFC 6455 (unmasked frame, bad opcode, reserved bits, a fragmented or
    /// oversized control frame, a continuation without a start, ...): closed with 1002.
    Protocol(&'static str),
    /// A text message or close reason was not UTF-8: closed with 1007.
    InvalidUtf8,
    /// A frame or message was larger than its limit: closed with 1009.
    TooBig {
        /// `"frame"` or `"message"`.
        what: &'static str,
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// Nothing arrived within the idle timeout (keep-alive pings unanswered): closed with 1001.
    IdleTimeout,
    /// The socket is closed (or closing): nothing more can be sent.
    Closed,
}

impl WsError {
    /// The close code conduit sent the peer because of this error, if it sent one.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            WsError::Protocol(_) => Some(CloseCode::PROTOCOL),
            WsError::InvalidUtf8 => Some(CloseCode::INVALID_PAYLOAD),
            WsError::TooBig { .. } => Some(CloseCode::TOO_BIG),
            WsError::IdleTimeout => Some(CloseCode::AWAY),
            WsError::Io(_) | WsError::Closed => None,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Io(e) => write!(f, "WebSocket I/O error: {e}"),
            WsError::Protocol(why) => write!(f, "WebSocket protocol error: {why}"),
            WsError::InvalidUtf8 => f.write_str("WebSocket text is not valid UTF-8"),
            WsError::TooBig { what, limit } => {
                write!(
                    f,
                    "WebSocket {what} is larger than the limit of {limit} bytes"
                )
            }
            WsError::IdleTimeout => f.write_str("WebSocket idle timeout"),
            WsError::Closed => f.write_str("WebSocket is closed"),
        }
    }
}

impl std::error::Error for WsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WsError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for WsError {
    fn from(e: io::Error) -> Self {
        WsError::Io(e)
    }
}
