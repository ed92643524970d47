//! Entity tags (RFC 9110 §8.8.3) and the lists of them in `If-Match` / `If-None-Match`
//! (§13.1.1, §13.1.2), with the strong and weak comparison (§8.8.3.2).
//!
//! An encoded variant of a representation has its own tag: the coding's token appended
//! inside the quotes (`"abc"` → `"abc-gzip"`, `W/"abc"` → `W/"abc-gzip"`). The compression
//! middleware and the static file server's precompressed files use this one convention, so the
//! same bytes get the same validator from either.
//!
//! ```
//! use conduit_core::headers::{Comparison, ContentCoding, EntityTag, etag_with_coding};
//!
//! let strong = EntityTag::parse(b"\"abc\"").unwrap();
//! let weak = EntityTag::parse(b"W/\"abc\"").unwrap();
//! assert!(strong.matches(&weak, Comparison::Weak));
//! assert!(!strong.matches(&weak, Comparison::Strong));
//!
//! let tag = conduit_core::http::HeaderValue::from_static("\"abc\"");
//! assert_eq!(etag_with_coding(&tag, ContentCoding::Gzip).unwrap(), "\"abc-gzip\"");
//! ```

use http::header::HeaderValue;

use super::coding::ContentCoding;

/// One entity tag: `"opaque"` or `W/"opaque"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityTag<'a> {
    weak: bool,
    /// The opaque tag between the quotes.
    opaque: &'a [u8],
}

/// How two tags are compared (RFC 9110 §8.8.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Both strong and their opaque tags equal: `If-Match`, `If-Range`.
    Strong,
    /// Opaque tags equal, `W/` ignored: `If-None-Match`.
    Weak,
}

fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

impl<'a> EntityTag<'a> {
    /// A strong tag from its opaque part (no quotes); `None` if it holds a quote or a control
    /// character.
    pub fn strong(opaque: &'a [u8]) -> Option<Self> {
        opaque.iter().all(|&b| is_etagc(b)).then_some(Self {
            weak: false,
            opaque,
        })
    }

    /// Parse exactly one tag (surrounding whitespace allowed).
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        match Self::parse_prefix(trim(bytes))? {
            (tag, []) => Some(tag),
            _ => None,
        }
    }

    /// A tag at the start of `s`, and the rest.
    fn parse_prefix(s: &'a [u8]) -> Option<(Self, &'a [u8])> {
        let (weak, s) = match s.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let s = s.strip_prefix(b"\"")?;
        let end = s.iter().position(|&b| b == b'"')?;
        let opaque = &s[..end];
        if !opaque.iter().all(|&b| is_etagc(b)) {
            return None;
        }
        Some((Self { weak, opaque }, &s[end + 1..]))
    }

    /// Whether the tag is weak (`W/`).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque tag, without quotes.
    pub fn opaque(&self) -> &'a [u8] {
        self.opaque
    }

    /// Compare two tags.
    pub fn matches(&self, other: &EntityTag<'_>, comparison: Comparison) -> bool {
        self.opaque == other.opaque
            && (comparison == Comparison::Weak || (!self.weak && !other.weak))
    }

    /// The tag of the unencoded representation when this one names `coding`'s variant
    /// (`"abc-gzip"` → `"abc"`).
    pub fn without_coding(&self, coding: ContentCoding) -> Option<EntityTag<'a>> {
        let base = self
            .opaque
            .strip_suffix(coding.as_str().as_bytes())?
            .strip_suffix(b"-")?;
        Some(EntityTag {
            weak: self.weak,
            opaque: base,
        })
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The field lines of an `If-Match` or `If-None-Match`: `*` or a list of tags. Made from
/// any iterator of the header's values (`headers.get_all(IF_NONE_MATCH)`, or a slice of
/// values kept from a request).
#[derive(Debug)]
pub struct EntityTagList<I> {
    lines: I,
}

/// A tag list that does not parse (`If-None-Match: abc`). The caller treats the condition as
/// absent (a full response, logged), or, for `If-Match`, as false.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedTagList;

impl<'a, I: Iterator<Item = &'a HeaderValue>> EntityTagList<I> {
    /// The lines of one header.
    pub fn new(lines: impl IntoIterator<Item = &'a HeaderValue, IntoIter = I>) -> Self {
        Self {
            lines: lines.into_iter(),
        }
    }

    /// Whether the list holds a tag matching `current` (or `*`, which matches any current
    /// representation). The whole list is checked for syntax first: a malformed list matches
    /// nothing, even where an earlier element would have.
    pub fn matches(
        self,
        current: &EntityTag<'_>,
        comparison: Comparison,
    ) -> Result<bool, MalformedTagList> {
        let mut found = false;
        self.for_each(|tag| {
            found |= tag.is_none_or(|t| t.matches(current, comparison));
        })?;
        Ok(found)
    }

    /// Call `f` with every element: `None` for `*`, `Some(tag)` otherwise.
    pub fn for_each(
        self,
        mut f: impl FnMut(Option<EntityTag<'a>>),
    ) -> Result<(), MalformedTagList> {
        for line in self.lines {
            let mut s = trim(line.as_bytes());
            // `*` stands alone (`If-None-Match = "*" / #entity-tag`).
            if s == b"*" {
                f(None);
                continue;
            }
            let mut elements = 0;
            loop {
                while let [b' ' | b'\t' | b',', rest @ ..] = s {
                    s = rest;
                }
                if s.is_empty() {
                    break;
                }
                let (tag, rest) = EntityTag::parse_prefix(s).ok_or(MalformedTagList)?;
                f(Some(tag));
                elements += 1;
                // After an element: whitespace, then a comma or the end.
                let rest = trim_start(rest);
                if !rest.is_empty() && rest[0] != b',' {
                    return Err(MalformedTagList);
                }
                s = rest;
            }
            if elements == 0 {
                return Err(MalformedTagList); // at least one element (`1#entity-tag`)
            }
        }
        Ok(())
    }
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// The `ETag` of `coding`'s variant of the representation tagged `etag`: the token appended
/// inside the quotes (`"abc"` → `"abc-gzip"`). `None` when `etag` is not a well-formed tag.
pub fn etag_with_coding(etag: &HeaderValue, coding: ContentCoding) -> Option<HeaderValue> {
    let tag = EntityTag::parse(etag.as_bytes())?;
    let mut out = Vec::with_capacity(etag.len() + 8);
    if tag.is_weak() {
        out.extend_from_slice(b"W/");
    }
    out.push(b'"');
    out.extend_from_slice(tag.opaque());
    out.push(b'-');
    out.extend_from_slice(coding.as_str().as_bytes());
    out.push(b'"');
    HeaderValue::from_bytes(&out).ok()
}
