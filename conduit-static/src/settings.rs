//! [`Settings`]: everything that decides how files are found and answered, shared by the
//! handlers, the loader and the directory listing.

use std::path::{Path, PathBuf};

use http::HeaderValue;

use crate::{ETagMode, Encoding};

/// A year. No `public`: a response to a request without `Authorization` is cacheable by
/// shared caches anyway (RFC 9111 §3), so the token only adds bytes.
pub(crate) const DEFAULT_CACHE_CONTROL: &str = "max-age=31536000";

/// Everything that decides how files are found and answered.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub root: PathBuf,
    pub canonical_root: Option<PathBuf>,
    /// ServeFile: `root` is the file, whatever the request path.
    pub fixed: bool,
    pub index: Option<String>,
    pub redirect_dirs: bool,
    pub listing: bool,
    pub spa_fallback: Option<String>,
    pub allow_hidden: bool,
    pub follow_symlinks: bool,
    pub precompressed: Vec<Encoding>,
    pub etag: ETagMode,
    pub cache_control: HeaderValue,
    pub cache_control_ext: Vec<(String, HeaderValue)>,
    pub cache_max_file: u64,
    pub chunk_size: usize,
}

impl Settings {
    pub(crate) fn content_type(&self, path: &Path) -> HeaderValue {
        let mime = mime_guess::from_path(path)
            .first_raw()
            .unwrap_or("application/octet-stream");
        let textual = mime.starts_with("text/")
            || matches!(
                mime,
                "application/javascript"
                    | "application/json"
                    | "application/xml"
                    | "application/xhtml+xml"
                    | "application/manifest+json"
                    | "image/svg+xml"
            );
        if textual {
            HeaderValue::try_from(format!("{mime}; charset=utf-8"))
        } else {
            HeaderValue::try_from(mime)
        }
        .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    }

    pub(crate) fn cache_control_for(&self, ext: &str) -> HeaderValue {
        self.cache_control_ext
            .iter()
            .find(|(e, _)| e.eq_ignore_ascii_case(ext))
            .map_or_else(|| self.cache_control.clone(), |(_, v)| v.clone())
    }
}
