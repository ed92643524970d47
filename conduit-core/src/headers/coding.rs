//! Content codings (RFC 9110 §8.4.1) and `Accept-Encoding` negotiation (§12.5.3).
//!
//! ```
//! use conduit_core::headers::{AcceptEncoding, ContentCoding, Negotiated};
//!
//! let available = ContentCoding::PREFERENCE;
//! let ae = AcceptEncoding::parse("gzip, br;q=0.5");
//! assert_eq!(ae.negotiate(&available), Negotiated::Encode(ContentCoding::Gzip));
//! // Equal weights: the server's preference decides.
//! assert_eq!(AcceptEncoding::parse("gzip, br").negotiate(&available), Negotiated::Encode(ContentCoding::Brotli));
//! // The client refuses identity: a coding is required.
//! assert_eq!(AcceptEncoding::parse("gzip, identity;q=0").negotiate(&available), Negotiated::Required(ContentCoding::Gzip));
//! // Nothing acceptable: the response goes out without a coding (RFC 9110 §12.5.3), never 406.
//! assert_eq!(AcceptEncoding::parse("*;q=0").negotiate(&available), Negotiated::Identity);
//! ```

use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::quality::{QValue, quality_items};

/// A content coding conduit produces (compression, precompressed files) or decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentCoding {
    /// `gzip` (also accepted as `x-gzip`), file extension `.gz`.
    Gzip,
    /// `deflate`: the zlib format (RFC 9110 §8.4.1.2); no precompressed file extension.
    Deflate,
    /// `br`: Brotli, file extension `.br`.
    Brotli,
    /// `zstd`: Zstandard, file extension `.zst`.
    Zstd,
}

impl ContentCoding {
    /// The order in which codings the client weighs equally are chosen, by default, by both
    /// the compression middleware and the static file server: zstd (cheapest to produce and to
    /// decode at a given ratio), br, gzip, deflate.
    pub const PREFERENCE: [ContentCoding; 4] =
        [Self::Zstd, Self::Brotli, Self::Gzip, Self::Deflate];

    /// The token in `Content-Encoding` and `Accept-Encoding`; also the suffix its entity tags
    /// get (see [`etag_with_coding`](super::etag_with_coding)).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// The `Content-Encoding` value.
    pub const fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }

    /// The extension of a precompressed sibling file (`.gz`, `.br`, `.zst`); `None` for
    /// deflate, which has no customary one.
    pub const fn file_extension(self) -> Option<&'static str> {
        match self {
            Self::Gzip => Some(".gz"),
            Self::Brotli => Some(".br"),
            Self::Zstd => Some(".zst"),
            Self::Deflate => None,
        }
    }

    /// Parse a coding token (case-insensitive, surrounding whitespace ignored; `x-gzip` is
    /// `gzip`, RFC 9110 §8.4.1.3).
    pub fn from_token(token: &str) -> Option<Self> {
        let t = token.trim();
        if t.eq_ignore_ascii_case("gzip") || t.eq_ignore_ascii_case("x-gzip") {
            Some(Self::Gzip)
        } else if t.eq_ignore_ascii_case("deflate") {
            Some(Self::Deflate)
        } else if t.eq_ignore_ascii_case("br") {
            Some(Self::Brotli)
        } else if t.eq_ignore_ascii_case("zstd") {
            Some(Self::Zstd)
        } else {
            None
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// What the client's `Accept-Encoding` allows among the codings a response can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiated {
    /// Send this coding (identity would be acceptable too, so a body not worth compressing
    /// may still go out as is).
    Encode(ContentCoding),
    /// Send this coding: the client refuses identity (`identity;q=0`, or `*;q=0` without an
    /// `identity` entry), so even a body not worth compressing is encoded.
    Required(ContentCoding),
    /// Send the body without a coding. This is also the answer when the client refuses
    /// identity and accepts none of the available codings: RFC 9110 §12.5.3 asks for a
    /// response without a coding then, not a 406 (RFC 7231 moved away from 406 on purpose).
    Identity,
}

impl Negotiated {
    /// The coding to send, if any.
    pub const fn coding(self) -> Option<ContentCoding> {
        match self {
            Self::Encode(c) | Self::Required(c) => Some(c),
            Self::Identity => None,
        }
    }
}

/// The weights of a request's `Accept-Encoding` (every field line of it), ready to negotiate.
///
/// Rules (RFC 9110 §12.5.3): no header means identity (any coding would be allowed, but a
/// client that did not ask may not decode one); an empty value allows only identity; a listed
/// coding is acceptable unless `q=0`; `*` weighs every coding not listed; identity is
/// acceptable unless refused by `identity;q=0` or by `*;q=0` without an `identity` entry, and,
/// when not named, ranks below every acceptable coding; a named identity wins over codings
/// of strictly lower weight. A coding listed twice keeps its higher weight. Malformed
/// elements are skipped (logged at debug), never an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    listed: [Option<QValue>; 4],
    star: Option<QValue>,
    identity: Option<QValue>,
}

impl AcceptEncoding {
    /// Every `Accept-Encoding` line of the request.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut ae = Self::default();
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            match value.to_str() {
                Ok(v) => ae.add(v),
                Err(_) => tracing::debug!("Accept-Encoding is not visible ASCII; ignored"),
            }
        }
        ae
    }

    /// One field value.
    pub fn parse(value: &str) -> Self {
        let mut ae = Self::default();
        ae.add(value);
        ae
    }

    fn add(&mut self, value: &str) {
        for item in quality_items(value) {
            let Some(q) = item.q else {
                tracing::debug!(
                    entry = item.token,
                    "malformed Accept-Encoding entry; ignored"
                );
                continue;
            };
            if item.token == "*" {
                self.star = Some(q);
            } else if item.token.eq_ignore_ascii_case("identity") {
                self.identity = Some(q);
            } else if let Some(coding) = ContentCoding::from_token(item.token) {
                let slot = &mut self.listed[coding.index()];
                *slot = Some(slot.map_or(q, |old| old.max(q)));
            }
        }
    }

    /// The weight the client gives `coding` (0 when it is neither listed nor covered by `*`).
    pub fn weight(&self, coding: ContentCoding) -> QValue {
        self.listed[coding.index()].or(self.star).unwrap_or(0)
    }

    /// Whether the client refuses a response without a coding.
    pub fn refuses_identity(&self) -> bool {
        self.identity.or(self.star.filter(|&q| q == 0)) == Some(0)
    }

    /// The coding to send among `available`, listed in the server's order of preference
    /// (which breaks ties between equal weights).
    pub fn negotiate(&self, available: &[ContentCoding]) -> Negotiated {
        let mut best: Option<(ContentCoding, QValue)> = None;
        for &coding in available {
            let q = self.weight(coding);
            if q > 0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((coding, q));
            }
        }
        match (best, self.identity) {
            (None, _) => Negotiated::Identity,
            // A named identity that outweighs the best coding wins (`identity, gzip;q=0.5`).
            (Some((_, q)), Some(identity)) if identity > q => Negotiated::Identity,
            (Some((coding, _)), _) if self.refuses_identity() => Negotiated::Required(coding),
            (Some((coding, _)), _) => Negotiated::Encode(coding),
        }
    }
}
