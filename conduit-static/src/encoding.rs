//! Precompressed variants and `Accept-Encoding` negotiation (q-values honoured).
//!
//! ```
//! use conduit_static::Encoding;
//!
//! let available = [Encoding::Gzip, Encoding::Brotli];
//! assert_eq!(Encoding::negotiate("gzip, br;q=0.5", &available), Some(Encoding::Gzip));
//! assert_eq!(Encoding::negotiate("gzip, br", &available), Some(Encoding::Brotli)); // tie: br first
//! assert_eq!(Encoding::negotiate("br;q=0, *;q=0.1", &available), Some(Encoding::Gzip));
//! assert_eq!(Encoding::negotiate("identity", &available), None);
//! ```

use http::HeaderValue;

/// A content coding a precompressed file can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `br`, file suffix `.br`.
    Brotli,
    /// `zstd`, file suffix `.zst`.
    Zstd,
    /// `gzip`, file suffix `.gz`.
    Gzip,
}

impl Encoding {
    /// All codings, in the order preferred when the client weighs them equally.
    pub const ALL: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }

    /// The suffix of the precompressed file (`.br`, `.zst`, `.gz`).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Brotli => ".br",
            Self::Zstd => ".zst",
            Self::Gzip => ".gz",
        }
    }

    pub(crate) fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }

    fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("br") {
            Some(Self::Brotli)
        } else if token.eq_ignore_ascii_case("zstd") {
            Some(Self::Zstd)
        } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            Some(Self::Gzip)
        } else {
            None
        }
    }

    /// The coding to serve among `available` for this `Accept-Encoding` value, or `None` for
    /// the identity file. The highest q-value wins; equal q-values prefer `br`, `zstd`, `gzip`,
    /// then identity. `q=0` refuses a coding; `*` covers codings not named. A coding is only
    /// chosen if its q-value is at least the identity's (so `identity;q=1, gzip;q=0.5` gets
    /// the identity file; unnamed, the identity ranks last). Malformed elements are skipped.
    pub fn negotiate(accept: &str, available: &[Encoding]) -> Option<Encoding> {
        if available.is_empty() {
            return None;
        }
        // q-values in thousandths, None = not mentioned.
        let mut q = [None::<u16>; 3];
        let mut star = None::<u16>;
        let mut identity = None::<u16>;
        for element in accept.split(',') {
            let mut parts = element.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let mut weight = Some(1000);
            for param in parts {
                let param = param.trim();
                if let Some(v) = param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="))
                {
                    weight = parse_q(v.trim());
                }
            }
            let Some(weight) = weight else { continue };
            if token == "*" {
                star = Some(weight);
            } else if token.eq_ignore_ascii_case("identity") {
                identity = Some(weight);
            } else if let Some(enc) = Self::from_token(token) {
                let slot = &mut q[enc as usize];
                *slot = Some(slot.map_or(weight, |old: u16| old.max(weight)));
            }
        }
        // Identity is acceptable unless refused (RFC 9110 12.5.3) but, unnamed, ranks below any
        // acceptable coding. Refused, the caller still serves it (as nginx does) rather than 406.
        let identity_q = identity.or(star).unwrap_or(1);
        let mut best: Option<(Encoding, u16)> = None;
        for enc in Self::ALL {
            if !available.contains(&enc) {
                continue;
            }
            let w = q[enc as usize].or(star).unwrap_or(0);
            if w == 0 || w < identity_q {
                continue;
            }
            if best.is_none_or(|(_, bw)| w > bw) {
                best = Some((enc, w));
            }
        }
        best.map(|(e, _)| e)
    }
}

/// `0`, `0.5`, `1`, `1.000` → thousandths; anything else → None.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    #[test]
    fn negotiation() {
        let all = [Brotli, Zstd, Gzip];
        assert_eq!(Encoding::negotiate("", &all), None);
        assert_eq!(Encoding::negotiate("gzip", &all), Some(Gzip));
        assert_eq!(Encoding::negotiate("x-gzip", &all), Some(Gzip));
        assert_eq!(Encoding::negotiate("GZIP, ZSTD", &all), Some(Zstd));
        assert_eq!(
            Encoding::negotiate("gzip;q=0.8, zstd;q=0.9", &all),
            Some(Zstd)
        );
        assert_eq!(
            Encoding::negotiate("gzip;q=1.0, br;q=0.999", &all),
            Some(Gzip)
        );
        assert_eq!(Encoding::negotiate("*", &all), Some(Brotli));
        assert_eq!(Encoding::negotiate("*;q=0", &all), None);
        assert_eq!(Encoding::negotiate("br;q=0", &[Brotli]), None);
        assert_eq!(Encoding::negotiate("gzip;q=2", &all), None); // malformed: skipped
        assert_eq!(Encoding::negotiate("gzip;q=0.5, identity", &all), None);
        assert_eq!(
            Encoding::negotiate("gzip;q=0.5, identity;q=0", &all),
            Some(Gzip)
        );
        assert_eq!(Encoding::negotiate("br", &[Gzip]), None);
        assert_eq!(Encoding::negotiate(" gzip ; q=0.3 ,,", &[Gzip]), Some(Gzip));
    }
}
