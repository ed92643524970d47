//! The content codings of precompressed variants: [`Encoding`] is
//! [`conduit_core::headers::ContentCoding`], negotiated by the same rules as the compression
//! middleware's (RFC 9110 §12.5.3), so one request gets one coding from either.
//!
//! ```
//! use conduit_core::headers::{AcceptEncoding, Negotiated};
//! use conduit_static::Encoding;
//!
//! let available = [Encoding::Brotli, Encoding::Gzip];
//! assert_eq!(AcceptEncoding::parse("gzip, br;q=0.5").negotiate(&available).coding(), Some(Encoding::Gzip));
//! assert_eq!(AcceptEncoding::parse("gzip, br").negotiate(&available).coding(), Some(Encoding::Brotli));
//! assert_eq!(AcceptEncoding::parse("identity").negotiate(&available), Negotiated::Identity);
//! assert_eq!(Encoding::Zstd.file_extension(), Some(".zst"));
//! ```

pub use conduit_core::headers::ContentCoding as Encoding;

/// The codings a precompressed sibling can have, in the shared default preference order
/// (deflate has no customary file extension).
pub(crate) fn precompressible() -> Vec<Encoding> {
    Encoding::PREFERENCE
        .into_iter()
        .filter(|e| e.file_extension().is_some())
        .collect()
}
