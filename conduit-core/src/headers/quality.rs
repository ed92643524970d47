//! Quality values (RFC 9110 §12.4.2) and the weighted lists that carry them
//! (`Accept-Encoding`, `Accept`, `Accept-Language`, `TE`).
//!
//! ```
//! use conduit_core::headers::{QualityItem, parse_qvalue, quality_items};
//!
//! assert_eq!(parse_qvalue("0.5"), Some(500));
//! assert_eq!(parse_qvalue("1.000"), Some(1000));
//! assert_eq!(parse_qvalue("1.5"), None);
//!
//! let items: Vec<_> = quality_items("gzip;q=0.8, br").collect();
//! assert_eq!(items, [QualityItem { token: "gzip", q: Some(800) }, QualityItem { token: "br", q: Some(1000) }]);
//! ```

/// A quality value in thousandths: `q=0.5` is `500`, `q=1` is [`Q_MAX`].
pub type QValue = u16;

/// The largest quality value, `q=1`.
pub const Q_MAX: QValue = 1000;

/// Parse a `qvalue`: `0`, `0.` and up to three digits, `1`, or `1.` and up to three zeros.
/// Anything else (`1.5`, `.5`, `0.1234`, `-1`) is `None`.
pub fn parse_qvalue(s: &str) -> Option<QValue> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: QValue = 0;
    for b in frac.bytes().chain(std::iter::repeat(b'0')).take(3) {
        thousandths = thousandths * 10 + QValue::from(b - b'0');
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(Q_MAX),
        _ => None,
    }
}

/// One element of a weighted list: its token and its weight, `None` when the element's
/// parameters are malformed (a `q` that is not a qvalue, a parameter without `=`). Callers
/// skip malformed elements: a bad element never turns the whole field into an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualityItem<'a> {
    /// The token (`gzip`, `*`, `text/html`), trimmed; never empty.
    pub token: &'a str,
    /// Its weight in thousandths, `Some(1000)` when no `q` is given.
    pub q: Option<QValue>,
}

/// The elements of one weighted-list field value, empty elements skipped (RFC 9110 §5.6.1
/// allows them). Parameters other than `q` are ignored.
pub fn quality_items(value: &str) -> impl Iterator<Item = QualityItem<'_>> {
    value.split(',').filter_map(|element| {
        let mut parts = element.split(';');
        let token = parts.next().unwrap_or("").trim();
        if token.is_empty() {
            return None;
        }
        let mut q = Some(Q_MAX);
        for param in parts {
            let Some((name, v)) = param.split_once('=') else {
                q = None;
                break;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                q = parse_qvalue(v);
            }
        }
        Some(QualityItem { token, q })
    })
}
