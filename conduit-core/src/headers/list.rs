//! Comma-separated token lists in response headers (`Vary`, `Cache-Control`, `Connection`),
//! and what a `304 Not Modified` keeps of its 200's headers.
//!
//! ```
//! use conduit_core::http::{HeaderMap, HeaderValue, header::VARY};
//! use conduit_core::headers::{add_vary, has_token};
//!
//! let mut h = HeaderMap::new();
//! h.insert(VARY, HeaderValue::from_static("Origin"));
//! add_vary(&mut h, HeaderValue::from_static("accept-encoding"));
//! add_vary(&mut h, HeaderValue::from_static("accept-encoding")); // once only
//! assert!(has_token(&h, &VARY, "Accept-Encoding"));
//! assert_eq!(h.get_all(VARY).iter().count(), 2);
//! ```

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Whether one field value, a comma-separated list, holds `token` (case-insensitive).
pub fn value_has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// Whether any `name` line holds `token` (case-insensitive).
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| value_has_token(v, token))
}

/// Add `field` (a lowercase header name, e.g. `accept-encoding`) to `Vary` unless it, or `*`,
/// is already there.
pub fn add_vary(headers: &mut HeaderMap, field: HeaderValue) {
    if !headers.contains_key(header::VARY) {
        headers.insert(header::VARY, field);
        return;
    }
    let token = field.to_str().unwrap_or("");
    if has_token(headers, &header::VARY, token) || has_token(headers, &header::VARY, "*") {
        return;
    }
    headers.append(header::VARY, field);
}

/// Turn a 200's headers into its 304's (RFC 9110 §15.4.5): drop the metadata of the body a
/// 304 does not carry (`Content-Type`, `Content-Length`, `Content-Encoding`,
/// `Content-Language`, `Content-Range`, `Transfer-Encoding`, `Accept-Ranges`) and keep the
/// rest, which includes every field the RFC requires a 304 to repeat (`Cache-Control`,
/// `Content-Location`, `Date`, `ETag`, `Expires`, `Vary`) and `Last-Modified`.
pub fn strip_for_not_modified(headers: &mut HeaderMap) {
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::CONTENT_LANGUAGE,
        header::CONTENT_RANGE,
        header::TRANSFER_ENCODING,
        header::ACCEPT_RANGES,
    ] {
        headers.remove(name);
    }
}
