//! Conditional requests, evaluated in the order of RFC 9110 section 13.2.2:
//! `If-Match` → `If-Unmodified-Since` → `If-None-Match` → `If-Modified-Since`; then the
//! caller handles `Range` with `If-Range` ([`if_range_allows`]). Entity tags and dates are
//! compared by [`conduit_core::headers`], the rules the `ETag` middleware uses too.

use conduit_core::headers::{self, Comparison, EntityTag, EntityTagList};
use http::{HeaderMap, StatusCode, header};

/// The validators of the representation being served.
pub(crate) struct Validators<'a> {
    /// The strong ETag with its quotes, e.g. `"5f3a-400"`.
    pub etag: &'a [u8],
    /// Last modification, whole seconds since the epoch.
    pub modified_secs: u64,
}

/// The outcome of the preconditions for a GET or HEAD: `None` to go on (200 or 206), or
/// `Some(304)` / `Some(412)`.
pub(crate) fn evaluate(headers: &HeaderMap, v: &Validators<'_>) -> Option<StatusCode> {
    let current = EntityTag::parse(v.etag);
    // 1. If-Match (strong comparison); 2. otherwise If-Unmodified-Since.
    if headers.contains_key(header::IF_MATCH) {
        if !matches_any(headers, &header::IF_MATCH, current, Comparison::Strong) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let Some(date) = headers::single_date(headers, &header::IF_UNMODIFIED_SINCE) {
        if v.modified_secs > date {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    }
    // 3. If-None-Match (weak comparison): for GET and HEAD a match is 304;
    // 4. otherwise If-Modified-Since.
    if headers.contains_key(header::IF_NONE_MATCH) {
        if matches_any(headers, &header::IF_NONE_MATCH, current, Comparison::Weak) {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let Some(date) = headers::single_date(headers, &header::IF_MODIFIED_SINCE) {
        if v.modified_secs <= date {
            return Some(StatusCode::NOT_MODIFIED);
        }
    }
    None
}

/// Whether a `Range` may be honoured: true without `If-Range`, or when `If-Range` is the
/// current strong ETag or exactly the `Last-Modified` date.
pub(crate) fn if_range_allows(headers: &HeaderMap, v: &Validators<'_>) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let bytes = value.as_bytes();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        // A weak tag never matches (If-Range needs a strong validator).
        return match (EntityTag::parse(bytes), EntityTag::parse(v.etag)) {
            (Some(sent), Some(current)) => sent.matches(&current, Comparison::Strong),
            _ => false,
        };
    }
    headers::parse_http_date(value) == Some(v.modified_secs)
}

/// Whether the (possibly repeated) header's list matches the current tag; `*` matches any.
/// A malformed list matches nothing (logged).
fn matches_any(
    headers: &HeaderMap,
    name: &header::HeaderName,
    current: Option<EntityTag<'_>>,
    comparison: Comparison,
) -> bool {
    let Some(current) = current else {
        return false;
    };
    match EntityTagList::new(headers.get_all(name)).matches(&current, comparison) {
        Ok(found) => found,
        Err(_) => {
            tracing::debug!(header = %name, "malformed entity-tag list; it matches nothing");
            false
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    const V: Validators<'static> = Validators {
        etag: b"\"abc\"",
        modified_secs: 1_000_000_000, // Sun, 09 Sep 2001 01:46:40 GMT
    };
    const AT: &str = "Sun, 09 Sep 2001 01:46:40 GMT";
    const BEFORE: &str = "Sun, 09 Sep 2001 01:46:39 GMT";

    #[test]
    fn order_and_outcomes() {
        let e = |p: &[(&'static str, &'static str)]| evaluate(&h(p), &V);
        assert_eq!(e(&[]), None);
        assert_eq!(e(&[("if-match", "\"abc\"")]), None);
        assert_eq!(e(&[("if-match", "\"x\", \"abc\"")]), None);
        assert_eq!(e(&[("if-match", "*")]), None);
        assert_eq!(
            e(&[("if-match", "W/\"abc\"")]),
            Some(StatusCode::PRECONDITION_FAILED)
        );
        assert_eq!(
            e(&[("if-match", "\"x\"")]),
            Some(StatusCode::PRECONDITION_FAILED)
        );
        // If-Match present: If-Unmodified-Since is not looked at.
        assert_eq!(
            e(&[("if-match", "\"abc\""), ("if-unmodified-since", BEFORE)]),
            None
        );
        assert_eq!(
            e(&[("if-unmodified-since", BEFORE)]),
            Some(StatusCode::PRECONDITION_FAILED)
        );
        assert_eq!(e(&[("if-unmodified-since", AT)]), None);
        assert_eq!(e(&[("if-unmodified-since", "garbage")]), None);
        assert_eq!(
            e(&[("if-none-match", "W/\"abc\"")]),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert_eq!(e(&[("if-none-match", "*")]), Some(StatusCode::NOT_MODIFIED));
        assert_eq!(e(&[("if-none-match", "\"x\"")]), None);
        // If-None-Match present: If-Modified-Since is not looked at.
        assert_eq!(
            e(&[("if-none-match", "\"x\""), ("if-modified-since", AT)]),
            None
        );
        assert_eq!(
            e(&[("if-modified-since", AT)]),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert_eq!(e(&[("if-modified-since", BEFORE)]), None);
        // 412 before 304.
        assert_eq!(
            e(&[("if-match", "\"x\""), ("if-none-match", "\"abc\"")]),
            Some(StatusCode::PRECONDITION_FAILED)
        );
        assert_eq!(e(&[("if-none-match", "\"abc")]), None); // malformed
    }

    #[test]
    fn if_range() {
        let r = |p: &[(&'static str, &'static str)]| if_range_allows(&h(p), &V);
        assert!(r(&[]));
        assert!(r(&[("if-range", "\"abc\"")]));
        assert!(!r(&[("if-range", "W/\"abc\"")]));
        assert!(!r(&[("if-range", "\"x\"")]));
        assert!(r(&[("if-range", AT)]));
        assert!(!r(&[("if-range", BEFORE)]));
        assert!(!r(&[("if-range", "nonsense")]));
    }
}
