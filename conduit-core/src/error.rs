//! [`Error`]: a failure that knows the HTTP status it should answer with.
//!
//! Handlers cannot fail in conduit: an error is just another response. `Error` carries the
//! status, a message that is safe to show the client, and an optional source for the logs.
//!
//! ```
//! use conduit_core::{Error, IntoResponse, http::StatusCode};
//!
//! let err = Error::new(StatusCode::NOT_FOUND, "no such user");
//! assert_eq!(err.status(), StatusCode::NOT_FOUND);
//! let res = err.into_response();
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! ```

use std::borrow::Cow;
use std::fmt;

use http::{HeaderValue, StatusCode, header};

use crate::{Body, IntoResponse, Response};

/// A type-erased error, as used for body streams.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error that becomes a response with its own status code.
///
/// The message is sent to the client as `text/plain`; the source (if any) is only logged.
/// Server errors (5xx) are logged at `error` level with their source, when they become a
/// response. Client errors (4xx) are logged at `debug` only: the request's one line at `info`
/// is the access log's (the `Logging` middleware of conduit-middleware), and a client fault
/// (a scanner's 404, a malformed body) is no news for the operator. Enable `debug` for the
/// `conduit_core::error` target to see why each 4xx was answered.
pub struct Error {
    status: StatusCode,
    message: Cow<'static, str>,
    source: Option<BoxError>,
}

impl Error {
    /// An error with `status` and a client-visible `message`.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause (logged, never sent to the client).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }

    /// 500 Internal Server Error; `source` is logged, the client sees a generic message.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").with_source(source)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The client-visible message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Find a conduit `Error` inside a boxed error (e.g. from a request body stream).
    pub fn from_boxed(err: BoxError) -> Self {
        match err.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => {
                Self::bad_request("Bad Request: could not read the request body").with_source(other)
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("status", &self.status)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), error = %self, "request rejected");
        }
        let mut res = Response::new(Body::from(self.message));
        *res.status_mut() = self.status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}

impl From<StatusCode> for Error {
    fn from(status: StatusCode) -> Self {
        Self::new(status, status.canonical_reason().unwrap_or("Error"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Self::internal(err)
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::internal(err)
    }
}

/// The text of a panic payload: the `&str` or `String` that `panic!` carries, or a fixed
/// phrase for any other payload. For logs only: a panic message never reaches a client.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
/// assert_eq!(conduit_core::panic_message(&*payload), "boom 1");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
