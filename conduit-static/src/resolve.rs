//! Path resolution: a request path (still percent-encoded) to a safe path relative to the root.
//!
//! The path is split on `/` **first** and each segment percent-decoded **once**, so an encoded
//! separator (`%2F`, `%5C`) can never create a new segment. A segment is refused (400) when,
//! once decoded, it is `.` or `..`, contains `/`, `\`, NUL or a drive prefix (`C:`), or is not
//! UTF-8; a dotfile segment (`.env`, `.git`) is refused (404) unless dotfiles are allowed.
//! Empty segments (`a//b`) are skipped, as nginx merges slashes. What comes out is a list of
//! plain names joined by `/`: joined to the root it can only name something under the root
//! (symlinks are checked separately, against the canonical root).
//!
//! ```
//! use conduit_static::{PathRejection, resolve_path};
//!
//! let ok = resolve_path("/css/site%20main.css", false).unwrap();
//! assert_eq!(ok.relative(), "css/site main.css");
//! assert!(!ok.is_dir_request());
//! assert!(resolve_path("/docs/", false).unwrap().is_dir_request());
//!
//! assert_eq!(resolve_path("/a/%2e%2e/%2e%2e/etc/passwd", false), Err(PathRejection::DotSegment));
//! assert_eq!(resolve_path("/a%2fb", false), Err(PathRejection::EncodedSeparator));
//! assert_eq!(resolve_path("/.env", false), Err(PathRejection::Hidden));
//! ```

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;
use percent_encoding::percent_decode_str;

/// A request path that passed [`resolve_path`]: plain names joined by `/`, relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath<'a> {
    relative: Cow<'a, str>,
    dir: bool,
}

impl ResolvedPath<'_> {
    /// The decoded path relative to the root (`""` for the root itself), segments joined by `/`.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// Whether the request path ended with `/` (a directory was asked for).
    pub fn is_dir_request(&self) -> bool {
        self.dir
    }

    /// The segments of the path.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.relative.split('/').filter(|s| !s.is_empty())
    }

    pub(crate) fn into_owned(self) -> ResolvedPath<'static> {
        ResolvedPath {
            relative: Cow::Owned(self.relative.into_owned()),
            dir: self.dir,
        }
    }
}

/// Why a request path was refused. Client faults only: 400, or 404 for hidden files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathRejection {
    /// The path does not start with `/`.
    NotAbsolute,
    /// A `.` or `..` segment (encoded or not).
    DotSegment,
    /// `%2F` or `%5C` inside a segment, or a literal backslash.
    EncodedSeparator,
    /// A NUL byte (`%00`).
    Nul,
    /// A Windows drive or stream component (`C:`, `file::$DATA`).
    Drive,
    /// A segment that is not UTF-8 once decoded.
    NotUtf8,
    /// A dotfile or dot-directory while they are hidden (the default).
    Hidden,
}

impl PathRejection {
    /// The status this rejection answers with: 404 for hidden files, 400 otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Hidden => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for PathRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => "path does not start with /",
            Self::DotSegment => "path has a . or .. segment",
            Self::EncodedSeparator => "path has a backslash or an encoded separator",
            Self::Nul => "path has a NUL byte",
            Self::Drive => "path has a drive or stream component",
            Self::NotUtf8 => "path is not UTF-8 once percent-decoded",
            Self::Hidden => "path names a hidden file",
        })
    }
}

impl std::error::Error for PathRejection {}

/// Resolve a request path (percent-encoded, as in the URI, without the query) to a path
/// relative to the served root. See the [module docs](self) for the rules.
///
/// Allocation-free for paths that need no decoding and have no empty segments.
pub fn resolve_path(path: &str, allow_hidden: bool) -> Result<ResolvedPath<'_>, PathRejection> {
    let rest = path.strip_prefix('/').ok_or(PathRejection::NotAbsolute)?;
    let dir = rest.is_empty() || rest.ends_with('/');
    let trimmed = rest.strip_suffix('/').unwrap_or(rest);
    // Fast path: nothing to decode and no empty segments: the input is the answer.
    let plain = !trimmed.contains('%')
        && !trimmed.contains("//")
        && !trimmed.starts_with('/')
        && !trimmed.ends_with('/');
    if plain {
        if !trimmed.is_empty() {
            for seg in trimmed.split('/') {
                check_segment(seg, allow_hidden)?;
            }
        }
        return Ok(ResolvedPath {
            relative: Cow::Borrowed(trimmed),
            dir,
        });
    }
    let mut out = String::with_capacity(trimmed.len());
    for raw in trimmed.split('/') {
        if raw.is_empty() {
            continue;
        }
        let bytes: Cow<'_, [u8]> = percent_decode_str(raw).into();
        let seg = std::str::from_utf8(&bytes).map_err(|_| {
            if bytes.contains(&0) {
                PathRejection::Nul
            } else {
                PathRejection::NotUtf8
            }
        })?;
        if seg.contains('/') {
            return Err(PathRejection::EncodedSeparator);
        }
        check_segment(seg, allow_hidden)?;
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(seg);
    }
    Ok(ResolvedPath {
        relative: Cow::Owned(out),
        dir,
    })
}

fn check_segment(seg: &str, allow_hidden: bool) -> Result<(), PathRejection> {
    if seg == "." || seg == ".." {
        return Err(PathRejection::DotSegment);
    }
    if seg.contains('\0') {
        return Err(PathRejection::Nul);
    }
    if seg.contains('\\') {
        return Err(PathRejection::EncodedSeparator);
    }
    // `C:`, `c:foo`, and NTFS streams (`file::$DATA`): harmless on Unix, refused everywhere so
    // a tree served from Windows behaves the same.
    let b = seg.as_bytes();
    if (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') || seg.contains("::") {
        return Err(PathRejection::Drive);
    }
    if seg.starts_with('.') && !allow_hidden {
        return Err(PathRejection::Hidden);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_decoded() {
        let r = resolve_path("/a/b.txt", false).unwrap();
        assert_eq!(r.relative(), "a/b.txt");
        assert!(matches!(r.relative, Cow::Borrowed(_)));
        let r = resolve_path("/", false).unwrap();
        assert_eq!(r.relative(), "");
        assert!(r.is_dir_request());
        let r = resolve_path("/a//", false).unwrap(); // found by tests/fuzz_resolver.rs
        assert_eq!((r.relative(), r.is_dir_request()), ("a", true));
        let r = resolve_path("//a///b/", false).unwrap();
        assert_eq!(r.relative(), "a/b");
        assert!(r.is_dir_request());
        assert_eq!(
            resolve_path("/caf%C3%A9.txt", false).unwrap().relative(),
            "café.txt"
        );
        assert_eq!(
            resolve_path("/%252e%252e", false).unwrap().relative(),
            "%2e%2e"
        );
    }

    #[test]
    fn refusals() {
        use PathRejection::*;
        for (p, want) in [
            ("a", NotAbsolute),
            ("/..", DotSegment),
            ("/a/./b", DotSegment),
            ("/%2e%2E/x", DotSegment),
            ("/a%2F..%2Fb", EncodedSeparator),
            ("/a\\b", EncodedSeparator),
            ("/a%5cb", EncodedSeparator),
            ("/a%00b", Nul),
            ("/C:/x", Drive),
            ("/x::$DATA", Drive),
            ("/%ff", NotUtf8),
            ("/.git/config", Hidden),
        ] {
            assert_eq!(resolve_path(p, false), Err(want), "{p}");
        }
        assert!(resolve_path("/.well-known/x", true).is_ok());
    }
}
