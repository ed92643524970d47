//! `Accept` (RFC 9110 §12.5.1): how much a client wants a media type, and whether it prefers
//! JSON to plain text (the choice an [`ErrorRenderer::negotiate`](crate::ErrorRenderer::negotiate)
//! makes for an error body).
//!
//! ```
//! use conduit_core::http::{HeaderMap, HeaderValue, header::ACCEPT};
//! use conduit_core::headers::{media_quality, prefers_json};
//!
//! let mut h = HeaderMap::new();
//! h.insert(ACCEPT, HeaderValue::from_static("text/*;q=0.5, application/json"));
//! assert_eq!(media_quality(&h, "text/plain"), 500);
//! assert_eq!(media_quality(&h, "application/json"), 1000);
//! assert!(prefers_json(&h));
//!
//! h.insert(ACCEPT, HeaderValue::from_static("*/*"));
//! assert!(!prefers_json(&h)); // a wildcard names no format: plain text stays the default
//! ```

use http::HeaderMap;
use http::header::ACCEPT;

use super::{QValue, quality_items};

/// The media types that count as JSON for [`prefers_json`].
const JSON_TYPES: [&str; 2] = ["application/problem+json", "application/json"];

/// The weight the request's `Accept` gives `media` (a lowercase `type/subtype`): the `q` of the
/// most specific range that matches it (`type/subtype`, then `type/*`, then `*/*`), `0` when
/// none does. No `Accept` field means any type, `q=1`. Malformed elements are skipped.
pub fn media_quality(headers: &HeaderMap, media: &str) -> QValue {
    let mut fields = headers.get_all(ACCEPT).iter().peekable();
    if fields.peek().is_none() {
        return super::Q_MAX;
    }
    let ty = media.split('/').next().unwrap_or(media);
    // (specificity, q): 3 exact, 2 type/*, 1 */*.
    let mut best: (u8, QValue) = (0, 0);
    for value in fields.filter_map(|v| v.to_str().ok()) {
        for item in quality_items(value) {
            let Some(q) = item.q else { continue };
            let range = item.token;
            let specificity = if range.eq_ignore_ascii_case(media) {
                3
            } else if range
                .strip_suffix("/*")
                .is_some_and(|t| t.eq_ignore_ascii_case(ty))
            {
                2
            } else if range == "*/*" {
                1
            } else {
                continue;
            };
            if specificity > best.0 || (specificity == best.0 && q > best.1) {
                best = (specificity, q);
            }
        }
    }
    best.1
}

/// Whether the request asks for JSON rather than plain text: `Accept` names
/// `application/problem+json` or `application/json` itself (a wildcard does not count) with a
/// weight above zero and at least that of `text/plain`.
pub fn prefers_json(headers: &HeaderMap) -> bool {
    let mut json: QValue = 0;
    for value in headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for item in quality_items(value) {
            if let Some(q) = item.q {
                if JSON_TYPES
                    .iter()
                    .any(|t| item.token.eq_ignore_ascii_case(t))
                {
                    json = json.max(q);
                }
            }
        }
    }
    json > 0 && json >= media_quality(headers, "text/plain")
}
