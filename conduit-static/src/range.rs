//! `Range: bytes=...` parsing (RFC 9110 section 14.1.2).
//!
//! A malformed header is ignored (the full file is served, as the RFC allows); a well-formed
//! one none of whose ranges overlaps the file is unsatisfiable (416). Requests for too many
//! ranges (more than [`MAX_RANGES`]) or ranges adding up to more than the file are answered
//! with the whole file: a server may ignore `Range`, and that is cheaper than a response
//! bigger than the file.

use std::ops::Range;

/// The most ranges served as `multipart/byteranges`; more and the whole file is sent.
pub const MAX_RANGES: usize = 32;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// Ignore the header: serve the whole representation (200).
    Full,
    /// These byte ranges (each non-empty and within the file), in the client's order.
    Ranges(Vec<Range<u64>>),
    /// Well-formed but no range overlaps the file (416).
    Unsatisfiable,
}

pub(crate) fn parse(header: &[u8], len: u64) -> RangeRequest {
    let Ok(header) = std::str::from_utf8(header) else {
        return RangeRequest::Full;
    };
    let Some(spec) = header
        .trim()
        .strip_prefix("bytes=")
        .or_else(|| header.trim().strip_prefix("BYTES="))
    else {
        return RangeRequest::Full; // another unit: ignored
    };
    let mut ranges = Vec::new();
    let mut any = false;
    let mut total: u64 = 0;
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        any = true;
        let Some((first, last)) = part.split_once('-') else {
            return RangeRequest::Full;
        };
        let (first, last) = (first.trim(), last.trim());
        let range = if first.is_empty() {
            // suffix: the last N bytes
            let Some(n) = parse_u64(last) else {
                return RangeRequest::Full;
            };
            if n == 0 || len == 0 {
                continue; // unsatisfiable on its own
            }
            len.saturating_sub(n)..len
        } else {
            let Some(start) = parse_u64(first) else {
                return RangeRequest::Full;
            };
            let end = if last.is_empty() {
                len
            } else {
                let Some(last) = parse_u64(last) else {
                    return RangeRequest::Full;
                };
                if last < start {
                    return RangeRequest::Full; // invalid range-spec: ignore the header
                }
                last.saturating_add(1).min(len)
            };
            if start >= len {
                continue;
            }
            start..end
        };
        total = total.saturating_add(range.end - range.start);
        ranges.push(range);
        if ranges.len() > MAX_RANGES || total > len {
            return RangeRequest::Full;
        }
    }
    if !any {
        return RangeRequest::Full;
    }
    if ranges.is_empty() {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Ranges(ranges)
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::*;
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn parsing() {
        let r = |h: &str| parse(h.as_bytes(), 100);
        assert_eq!(r("bytes=0-9"), Ranges(vec![0..10]));
        assert_eq!(r("bytes=90-"), Ranges(vec![90..100]));
        assert_eq!(r("bytes=-10"), Ranges(vec![90..100]));
        assert_eq!(r("bytes=-1000"), Ranges(vec![0..100]));
        assert_eq!(r("bytes=95-200"), Ranges(vec![95..100]));
        assert_eq!(r("bytes=0-0, 5-9"), Ranges(vec![0..1, 5..10]));
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=200-300, 100-"), Unsatisfiable);
        assert_eq!(r("bytes=5-1"), Full);
        assert_eq!(r("bytes=a-b"), Full);
        assert_eq!(r("bytes="), Full);
        assert_eq!(r("items=0-1"), Full);
        assert_eq!(r("bytes=0-60,40-99"), Full); // more than the file
        assert_eq!(r("bytes=+1-2"), Full);
        assert_eq!(parse(b"bytes=0-", 0), Unsatisfiable);
        let many = (0..40)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(r(&format!("bytes={many}")), Full);
    }
}
