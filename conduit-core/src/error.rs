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

use http::{HeaderName, HeaderValue, StatusCode, header};

use crate::{Body, IntoResponse, Problem, Response};

/// A type-erased error, as used for body streams.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error that becomes a response with its own status code.
///
/// The message is sent to the client as `text/plain`; the source (if any) is only logged.
/// The response also carries the error's [`Problem`] (RFC 9457) in its extensions, so the
/// app's [`ErrorRenderer`](crate::ErrorRenderer) can answer it as `application/problem+json`
/// or in the app's own format instead. Extension members (`with_extension`), a problem
/// `type` and headers that belong to the error (`with_header`) travel with it.
/// Server errors (5xx) are logged at `error` level with their source, when they become a
/// response. Client errors (4xx) are logged at `debug` only: the request's one line at `info`
/// is the access log's (the `Logging` middleware of conduit-middleware), and a client fault
/// (a scanner's 404, a malformed body) is no news for the operator. Enable `debug` for the
/// `conduit_core::error` target to see why each 4xx was answered.
pub struct Error {
    status: StatusCode,
    message: Cow<'static, str>,
    source: Option<BoxError>,
    /// Problem members beyond status and message (type, title, extensions, headers), if any.
    problem: Option<Box<Problem>>,
}

impl Error {
    /// An error with `status` and a client-visible `message`.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            source: None,
            problem: None,
        }
    }

    fn problem_mut(&mut self) -> &mut Problem {
        let status = self.status;
        self.problem
            .get_or_insert_with(|| Box::new(Problem::new(status)))
    }

    /// Add (or replace) an extension member of the error's [`Problem`] (e.g. `errors`, the
    /// list of invalid fields of a 422). A standard member's name is ignored.
    #[must_use]
    pub fn with_extension(
        mut self,
        name: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.problem_mut().insert_extension(name, value);
        self
    }

    /// Set the `type` URI of the error's [`Problem`] (`about:blank` unless set).
    #[must_use]
    pub fn with_type(mut self, type_uri: impl Into<Cow<'static, str>>) -> Self {
        let problem = self.take_problem();
        self.problem = Some(Box::new(problem.with_type(type_uri)));
        self
    }

    /// Set the `title` of the error's [`Problem`] (the status's reason phrase unless set).
    #[must_use]
    pub fn with_title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        let problem = self.take_problem();
        self.problem = Some(Box::new(problem.with_title(title)));
        self
    }

    fn take_problem(&mut self) -> Problem {
        match self.problem.take() {
            Some(p) => *p,
            None => Problem::new(self.status),
        }
    }

    /// Add a response header that belongs to the error (`Allow`, `Retry-After`,
    /// `WWW-Authenticate`): sent with the response however the error is rendered.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.problem_mut().headers_mut().append(name, value);
        self
    }

    /// The [`Problem`] this error answers with: its status, its message as `detail` (left out
    /// when it only repeats the title), and the members and headers added to it. The source
    /// is never part of it.
    pub fn to_problem(&self) -> Problem {
        problem_with(self.status, &self.message, self.problem.as_deref().cloned())
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
            .field("problem", &self.problem)
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
        let problem = problem_with(self.status, &self.message, self.problem.map(|p| *p));
        let mut res = Response::new(Body::from(self.message));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        for (name, value) in problem.headers() {
            headers.append(name, value.clone());
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res.extensions_mut().insert(problem);
        res
    }
}

/// `problem` (or a bare one for `status`) with `message` as its detail, unless the message only
/// repeats the title.
// A `&Cow`: cloning a borrowed message (most are `&'static str`) copies no bytes.
#[allow(clippy::ptr_arg)]
fn problem_with(
    status: StatusCode,
    message: &Cow<'static, str>,
    problem: Option<Problem>,
) -> Problem {
    let problem = problem.unwrap_or_else(|| Problem::new(status));
    if message == problem.title() {
        problem
    } else {
        problem.with_detail(message.clone())
    }
}

/// An error that answers with `problem`: its status, and its `detail` (else its title) as the
/// message. Unlike [`Problem`]'s own [`IntoResponse`] (always problem+json), the error goes
/// through the app's [`ErrorRenderer`](crate::ErrorRenderer).
impl From<Problem> for Error {
    fn from(problem: Problem) -> Self {
        let message = problem.text().to_owned();
        let mut problem = problem;
        let status = problem.status();
        // The message carries the detail; the kept problem must not repeat it.
        if problem.detail().is_some() {
            problem = problem.without_detail();
        }
        Self {
            status,
            message: message.into(),
            source: None,
            problem: Some(Box::new(problem)),
        }
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
