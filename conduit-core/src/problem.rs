//! [`Problem`]: an RFC 9457 problem details object, answered as `application/problem+json`.
//!
//! A problem has the five members the RFC defines — `type` (a URI, `about:blank` unless set),
//! `title`, `status`, `detail` and `instance` — and any number of extension members (a JSON
//! object's other keys). It can also carry response headers that belong to the error (`Allow`
//! for a 405, `Retry-After` for a 429 or 503): they are sent with the problem, never in its body.
//!
//! ```
//! use conduit_core::{IntoResponse, Problem, http::StatusCode};
//! use serde_json::json;
//!
//! let problem = Problem::new(StatusCode::FORBIDDEN)
//!     .with_type("https://example.com/probs/out-of-credit")
//!     .with_title("You do not have enough credit.")
//!     .with_detail("Your current balance is 30, but that costs 50.")
//!     .with_instance("/account/12345/msgs/abc")
//!     .with_extension("balance", 30);
//!
//! let res = problem.into_response();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert_eq!(res.headers()["content-type"], "application/problem+json");
//! let body: serde_json::Value = serde_json::from_slice(res.body().as_bytes().unwrap()).unwrap();
//! assert_eq!(body, json!({
//!     "type": "https://example.com/probs/out-of-credit",
//!     "title": "You do not have enough credit.",
//!     "status": 403,
//!     "detail": "Your current balance is 30, but that costs 50.",
//!     "instance": "/account/12345/msgs/abc",
//!     "balance": 30,
//! }));
//! ```
//!
//! A conduit [`Error`] converts into a problem with its status and its client-visible message
//! as `detail` (its source stays in the logs):
//!
//! ```
//! use conduit_core::{Error, Problem, http::StatusCode};
//!
//! let err = Error::bad_request("page must be a number")
//!     .with_source(std::io::Error::other("secret internals"));
//! let problem = Problem::from(err);
//! assert_eq!(problem.status(), StatusCode::BAD_REQUEST);
//! assert_eq!(problem.title(), "Bad Request");
//! assert_eq!(problem.detail(), Some("page must be a number"));
//! assert!(!serde_json::to_string(&problem).unwrap().contains("secret"));
//! ```

use std::borrow::Cow;
use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{Body, Error, IntoResponse, Response};

/// The media type of a problem details body: `application/problem+json`.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `type` of a problem that has no more specific type (RFC 9457 section 4.2.1): its
/// `title` is the status's reason phrase.
pub const ABOUT_BLANK: &str = "about:blank";

/// The member names RFC 9457 defines; an extension member cannot take one of them.
const RESERVED: [&str; 5] = ["type", "title", "status", "detail", "instance"];

/// An RFC 9457 problem details object.
///
/// Built with [`Problem::new`] and the `with_*` methods; answered as
/// `application/problem+json` by [`IntoResponse`]. Extension members whose name is one of
/// the five standard members (`type`, `title`, `status`, `detail`, `instance`) are ignored,
/// so an extension cannot contradict the problem's own members.
///
/// [`headers`](Self::headers) are response headers that belong to the error (`Allow`,
/// `Retry-After`, `WWW-Authenticate`, ...): they are sent with the response whichever way the
/// problem is rendered, and never appear in the JSON body.
#[derive(Clone, PartialEq)]
pub struct Problem {
    status: StatusCode,
    type_uri: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Option<Cow<'static, str>>,
    instance: Option<Cow<'static, str>>,
    extensions: Map<String, Value>,
    headers: HeaderMap,
}

impl Problem {
    /// A problem with `status`, type `about:blank` and the status's reason phrase as title
    /// (`"Error"` for a status without one).
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            type_uri: Cow::Borrowed(ABOUT_BLANK),
            title: Cow::Borrowed(status.canonical_reason().unwrap_or("Error")),
            detail: None,
            instance: None,
            extensions: Map::new(),
            headers: HeaderMap::new(),
        }
    }

    /// A problem for a framework error whose plain-text body is `message`: `message` becomes
    /// the `detail`, unless it only repeats the title (the status's reason phrase).
    pub fn with_message(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        let problem = Self::new(status);
        let message = message.into();
        if message == problem.title() {
            problem
        } else {
            problem.with_detail(message)
        }
    }

    /// Set the `type`: a URI reference that identifies the kind of problem.
    #[must_use]
    pub fn with_type(mut self, type_uri: impl Into<Cow<'static, str>>) -> Self {
        self.type_uri = type_uri.into();
        self
    }

    /// Set the `title`: a short, human-readable summary of the kind of problem.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.title = title.into();
        self
    }

    /// Set the `detail`: a human-readable explanation of this occurrence of the problem.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The same problem without its `detail`.
    #[must_use]
    pub fn without_detail(mut self) -> Self {
        self.detail = None;
        self
    }

    /// Set the `instance`: a URI reference that identifies this occurrence of the problem.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<Cow<'static, str>>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Add (or replace) the extension member `name`. A standard member's name is ignored.
    #[must_use]
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert_extension(name, value);
        self
    }

    /// Add a response header that belongs to this error (`Allow`, `Retry-After`, ...). It is
    /// appended, so a header may be given several times.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Add (or replace) the extension member `name`, in place. A standard member's name is
    /// ignored.
    pub fn insert_extension(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        if !RESERVED.contains(&name.as_str()) {
            self.extensions.insert(name, value.into());
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `type` URI (`about:blank` unless set).
    pub fn type_uri(&self) -> &str {
        &self.type_uri
    }

    /// The `title`.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The `detail`, if set.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The `instance`, if set.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// The extension members.
    pub fn extensions(&self) -> &Map<String, Value> {
        &self.extensions
    }

    /// The extension member `name`, if present.
    pub fn extension(&self, name: &str) -> Option<&Value> {
        self.extensions.get(name)
    }

    /// The response headers that belong to this error.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers that belong to this error, to change in place.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The one-line text a plain-text rendering shows: the `detail`, else the `title`.
    pub fn text(&self) -> &str {
        self.detail.as_deref().unwrap_or(&self.title)
    }

    /// The problem as an `application/problem+json` response: its status, its headers and its
    /// JSON body (the same as [`IntoResponse`], without consuming the problem).
    pub fn to_json_response(&self) -> Response {
        // A map of strings and JSON values always serializes; the fallback keeps this total.
        let body = serde_json::to_vec(self).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"about:blank","status":{}}}"#,
                self.status.as_u16()
            )
            .into_bytes()
        });
        self.response_with(Body::from(body), PROBLEM_JSON)
    }

    /// The problem as a `text/plain; charset=utf-8` response: its status, its headers and
    /// [`text`](Self::text) as the body.
    pub fn to_text_response(&self) -> Response {
        self.response_with(
            Body::from(self.text().to_owned()),
            "text/plain; charset=utf-8",
        )
    }

    /// The response a framework error answers with when no
    /// [`ErrorRenderer`](crate::ErrorRenderer) says otherwise: [`to_text_response`](Self::to_text_response),
    /// carrying the problem in its extensions so that a renderer can re-render it. Nothing is
    /// logged (the caller logs what it knows).
    ///
    /// ```
    /// use conduit_core::{Problem, http::StatusCode};
    ///
    /// let res = Problem::new(StatusCode::TOO_MANY_REQUESTS).into_error_response();
    /// assert_eq!(res.body().as_bytes(), Some(&b"Too Many Requests"[..]));
    /// assert!(res.extensions().get::<Problem>().is_some());
    /// ```
    pub fn into_error_response(self) -> Response {
        let mut res = self.to_text_response();
        res.extensions_mut().insert(self);
        res
    }

    fn response_with(&self, body: Body, content_type: &'static str) -> Response {
        let mut res = Response::new(body);
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Problem")
            .field("status", &self.status)
            .field("type", &self.type_uri)
            .field("title", &self.title)
            .field("detail", &self.detail)
            .field("instance", &self.instance)
            .field("extensions", &self.extensions)
            .field("headers", &self.headers)
            .finish()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let standard =
            3 + usize::from(self.detail.is_some()) + usize::from(self.instance.is_some());
        let mut map = serializer.serialize_map(Some(standard + self.extensions.len()))?;
        map.serialize_entry("type", &self.type_uri)?;
        map.serialize_entry("title", &self.title)?;
        map.serialize_entry("status", &self.status.as_u16())?;
        if let Some(detail) = &self.detail {
            map.serialize_entry("detail", detail)?;
        }
        if let Some(instance) = &self.instance {
            map.serialize_entry("instance", instance)?;
        }
        for (name, value) in &self.extensions {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Reads a problem details body (a client of a conduit API, or a test): `status` is required
/// and must be a valid HTTP status; a missing `type` is `about:blank` and a missing `title` is
/// the status's reason phrase. Headers are not part of the body, so they are empty.
impl<'de> Deserialize<'de> for Problem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            type_uri: Option<String>,
            title: Option<String>,
            status: u16,
            detail: Option<String>,
            instance: Option<String>,
            #[serde(flatten)]
            extensions: Map<String, Value>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let status = StatusCode::from_u16(raw.status).map_err(serde::de::Error::custom)?;
        let mut problem = Problem::new(status);
        if let Some(type_uri) = raw.type_uri {
            problem.type_uri = type_uri.into();
        }
        if let Some(title) = raw.title {
            problem.title = title.into();
        }
        problem.detail = raw.detail.map(Cow::Owned);
        problem.instance = raw.instance.map(Cow::Owned);
        problem.extensions = raw.extensions;
        Ok(problem)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), problem = %self, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), problem = %self, "request rejected");
        }
        self.to_json_response()
    }
}

impl From<StatusCode> for Problem {
    fn from(status: StatusCode) -> Self {
        Self::new(status)
    }
}

/// The error's status and its client-visible message as `detail` (left out when it only
/// repeats the title); the source is never part of the problem.
impl From<Error> for Problem {
    fn from(err: Error) -> Self {
        Problem::from(&err)
    }
}

impl From<&Error> for Problem {
    fn from(err: &Error) -> Self {
        err.to_problem()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body_json(res: &Response) -> Value {
        serde_json::from_slice(res.body().as_bytes().expect("full body")).unwrap()
    }

    #[test]
    fn defaults_are_about_blank_with_the_reason_phrase() {
        let p = Problem::new(StatusCode::NOT_FOUND);
        assert_eq!(p.type_uri(), "about:blank");
        assert_eq!(p.title(), "Not Found");
        assert_eq!(p.detail(), None);
        assert_eq!(p.instance(), None);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"type": "about:blank", "title": "Not Found", "status": 404})
        );
        let odd = Problem::new(StatusCode::from_u16(599).unwrap());
        assert_eq!(odd.title(), "Error");
    }

    #[test]
    fn members_serialize_in_rfc_order_with_extensions_after() {
        let p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY)
            .with_detail("2 invalid fields")
            .with_instance("/todos")
            .with_extension("errors", json!([{"pointer": "/name", "detail": "empty"}]));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"2 invalid fields","instance":"/todos","errors":[{"detail":"empty","pointer":"/name"}]}"#
        );
    }

    #[test]
    fn extensions_cannot_override_standard_members() {
        let mut p = Problem::new(StatusCode::BAD_REQUEST)
            .with_extension("status", 200)
            .with_extension("type", "x")
            .with_extension("limit", 10);
        p.insert_extension("detail", "sneaky");
        assert_eq!(p.extensions().len(), 1);
        assert_eq!(p.extension("limit"), Some(&json!(10)));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["status"], 400);
        assert_eq!(v["type"], "about:blank");
        assert!(v.get("detail").is_none());
    }

    #[test]
    fn into_response_is_problem_json_with_status_and_headers() {
        let res = Problem::new(StatusCode::METHOD_NOT_ALLOWED)
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
            .into_response();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["content-type"], PROBLEM_JSON);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
        assert_eq!(
            body_json(&res),
            json!({"type": "about:blank", "title": "Method Not Allowed", "status": 405})
        );
    }

    #[test]
    fn headers_may_repeat_and_stay_out_of_the_body() {
        let p = Problem::new(StatusCode::UNAUTHORIZED)
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"a\""),
            )
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        let res = p.to_json_response();
        assert_eq!(
            res.headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .count(),
            2
        );
        assert!(!serde_json::to_string(&p).unwrap().contains("realm"));
    }

    #[test]
    fn text_response_shows_detail_else_title() {
        let res = Problem::new(StatusCode::NOT_FOUND).to_text_response();
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(res.body().as_bytes(), Some(&b"Not Found"[..]));
        let res = Problem::new(StatusCode::BAD_REQUEST)
            .with_detail("bad page")
            .to_text_response();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.body().as_bytes(), Some(&b"bad page"[..]));
    }

    #[test]
    fn from_error_keeps_status_and_message_never_the_source() {
        let err = Error::new(StatusCode::CONFLICT, "name taken")
            .with_source(std::io::Error::other("/srv/app/db.sqlite: locked"));
        let p = Problem::from(err);
        assert_eq!(p.status(), StatusCode::CONFLICT);
        assert_eq!(p.title(), "Conflict");
        assert_eq!(p.detail(), Some("name taken"));
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("/srv"), "{json}");

        // A message that only repeats the reason phrase is not repeated as `detail`.
        let p = Problem::from(Error::not_found());
        assert_eq!(p.detail(), None);
        let p = Problem::from(Error::internal(std::io::Error::other("disk on fire")));
        assert_eq!(p.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(p.detail(), None);
        assert!(!serde_json::to_string(&p).unwrap().contains("fire"));
    }

    #[test]
    fn deserializes_what_it_serializes() {
        let p = Problem::new(StatusCode::TOO_MANY_REQUESTS)
            .with_type("https://example.com/probs/slow-down")
            .with_title("Slow down")
            .with_detail("try again in 3 seconds")
            .with_instance("/x")
            .with_extension("retry_after", 3);
        let back: Problem = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let minimal: Problem = serde_json::from_str(r#"{"status":404}"#).unwrap();
        assert_eq!(minimal, Problem::new(StatusCode::NOT_FOUND));
        assert!(serde_json::from_str::<Problem>(r#"{"status":1000}"#).is_err());
        assert!(serde_json::from_str::<Problem>(r#"{"title":"x"}"#).is_err());
    }
}
