//! The HTTP rules every conduit crate shares, written once: content codings and
//! `Accept-Encoding` negotiation, quality values, entity tags and their comparison, HTTP
//! dates, token lists such as `Vary`, what a `304` keeps, and the weight `Accept` gives a
//! media type.
//!
//! The compression middleware, request decompression, the ETag middleware and the static
//! file server all use these functions, so one request gets one answer from each of them:
//! the same coding, and the same validators for the same bytes.
//!
//! ```
//! use conduit_core::headers::{AcceptEncoding, Comparison, ContentCoding, EntityTag, Negotiated};
//!
//! let ae = AcceptEncoding::parse("gzip;q=1.0, identity; q=0.5, *;q=0");
//! assert_eq!(ae.negotiate(&[ContentCoding::Brotli, ContentCoding::Gzip]), Negotiated::Encode(ContentCoding::Gzip));
//!
//! let held = EntityTag::parse(b"\"abc-gzip\"").unwrap();
//! let base = held.without_coding(ContentCoding::Gzip).unwrap();
//! assert!(base.matches(&EntityTag::strong(b"abc").unwrap(), Comparison::Strong));
//! ```

mod accept;
mod coding;
mod date;
mod etag;
mod list;
mod quality;
#[cfg(test)]
mod tests;

pub use accept::{media_quality, prefers_json};
pub use coding::{AcceptEncoding, ContentCoding, Negotiated};
pub use date::{http_date, parse_http_date, single_date, unix_secs};
pub use etag::{Comparison, EntityTag, EntityTagList, MalformedTagList, etag_with_coding};
pub use list::{add_vary, has_token, strip_for_not_modified, value_has_token};
pub use quality::{Q_MAX, QValue, QualityItem, parse_qvalue, quality_items};
