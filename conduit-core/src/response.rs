//! [`IntoResponse`]: what a handler may return, and the [`Json`] and [`Html`] wrappers.
//!
//! ```
//! use conduit_core::{IntoResponse, Json, http::StatusCode};
//!
//! let res = (StatusCode::CREATED, Json(serde_json::json!({"id": 7}))).into_response();
//! assert_eq!(res.status(), StatusCode::CREATED);
//! assert_eq!(res.headers()["content-type"], "application/json");
//!
//! let res = Err::<&str, _>(StatusCode::FORBIDDEN).into_response();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! ```

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::{Body, Error, Response};

/// Something that can be turned into a [`Response`].
pub trait IntoResponse {
    /// Build the response.
    fn into_response(self) -> Response;
}

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const OCTETS: HeaderValue = HeaderValue::from_static("application/octet-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

#[inline]
fn with_type(body: Body, content_type: HeaderValue) -> Response {
    let mut res = Response::new(body);
    res.headers_mut().insert(header::CONTENT_TYPE, content_type);
    res
}

impl IntoResponse for Response {
    #[inline]
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Body {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(Body::empty())
    }
}

impl IntoResponse for &'static str {
    #[inline]
    fn into_response(self) -> Response {
        with_type(Body::from(self), TEXT)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        with_type(Body::from(self), TEXT)
    }
}

impl IntoResponse for Cow<'static, str> {
    fn into_response(self) -> Response {
        with_type(Body::from(self), TEXT)
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        with_type(Body::from(self), OCTETS)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        with_type(Body::from(self), OCTETS)
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response {
        with_type(Body::from(self), OCTETS)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = self;
        res
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let mut res = self.1.into_response();
        *res.status_mut() = self.0;
        res
    }
}

impl<T: IntoResponse> IntoResponse for (HeaderMap, T) {
    fn into_response(self) -> Response {
        let mut res = self.1.into_response();
        res.headers_mut().extend(self.0);
        res
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, HeaderMap, T) {
    fn into_response(self) -> Response {
        let mut res = (self.1, self.2).into_response();
        *res.status_mut() = self.0;
        res
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(v) => v.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

/// A JSON response (`application/json`), or — with `Request::json` — a JSON request body.
///
/// Serialization failures answer 500 and are logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(v) => with_type(Body::from(v), JSON),
            Err(e) => Error::internal(e).into_response(),
        }
    }
}

/// An HTML response (`text/html; charset=utf-8`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Html<T>(pub T);

impl<T: Into<Body>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        with_type(self.0.into(), HTML)
    }
}

/// A response turned into the answer to a `HEAD` request: same status and headers, no body.
/// The body's exact size becomes `Content-Length` unless the response already has one (never
/// for 1xx, 204 and 304). The router applies it when GET answers HEAD; the server applies it to
/// every HEAD response, since HTTP/2 would otherwise send the body as DATA frames.
///
/// ```
/// use conduit_core::{IntoResponse, head_response};
///
/// let res = head_response("hello".into_response());
/// assert_eq!(res.headers()["content-length"], "5");
/// assert_eq!(res.body().as_bytes(), Some(&b""[..]));
/// ```
pub fn head_response(res: Response) -> Response {
    use http_body::Body as _;
    if res.body().is_end_stream() {
        return res; // nothing to strip (and applying it twice must not invent a length)
    }
    let (mut parts, body) = res.into_parts();
    let status = parts.status;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if !bodiless && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        if let Some(len) = body.size_hint().exact() {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    Response::from_parts(parts, Body::empty())
}
