//! HTTP dates (RFC 9110 §5.6.7) in validators: `Last-Modified`, `If-Modified-Since`,
//! `If-Unmodified-Since`, `If-Range`. Compared in whole seconds, the resolution of the format.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use conduit_core::headers::{http_date, parse_http_date};
//!
//! let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
//! let v = http_date(t);
//! assert_eq!(v, "Sun, 09 Sep 2001 01:46:40 GMT");
//! assert_eq!(parse_http_date(&v), Some(1_000_000_000));
//! ```

use std::time::SystemTime;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// `t` as an IMF-fixdate header value.
pub fn http_date(t: SystemTime) -> HeaderValue {
    HeaderValue::try_from(httpdate::fmt_http_date(t)).expect("an HTTP date is a valid header value")
}

/// A date header value (any of the three formats RFC 9110 requires a recipient to accept) as
/// whole seconds since the Unix epoch; `None` if it is not a date or before 1970.
pub fn parse_http_date(value: &HeaderValue) -> Option<u64> {
    let date = httpdate::parse_http_date(value.to_str().ok()?).ok()?;
    unix_secs(date)
}

/// The date in the one `name` line of `headers`; `None` when absent, invalid, or sent more
/// than once (RFC 9110 §13.1.3: such a condition is ignored).
pub fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let mut all = headers.get_all(name).iter();
    let value = all.next()?;
    if all.next().is_some() {
        return None;
    }
    parse_http_date(value)
}

/// Whole seconds since the Unix epoch; `None` before it.
pub fn unix_secs(t: SystemTime) -> Option<u64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}
