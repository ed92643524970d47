//! Loading a resource from the file system (on a blocking thread): its representations (the
//! file and its precompressed variants), validators and prepared header values.
//!
//! # ETag recipe
//!
//! By default a representation's strong ETag is built from its file's metadata, like nginx's
//! (`"mtime-size"`), with the sub-second part of the modification time so that two writes in
//! the same second with the same size still differ:
//!
//! ```text
//! "<mtime seconds, hex>.<mtime nanoseconds, hex>-<size, hex>"        e.g. "6563a1f0.1dcd6500-400"
//! ```
//!
//! A precompressed variant's ETag is the same recipe over the variant's own file, followed by
//! `-` and the coding's token (`-br`, `-zstd`, `-gzip`: the convention of
//! [`conduit_core::headers::etag_with_coding`], which the compression middleware uses too), so
//! no two variants share a tag. With [`ETagMode::ContentHash`] the
//! ETag of a file held by the hot-file cache is the XXH3-64 hash of its bytes (plus the same
//! suffix), e.g. `"c0ffee0123456789"`: identical on every machine behind a load balancer, however
//! the files were copied. Files too big for the cache keep the metadata recipe.

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use bytes::Bytes;
use conduit_core::headers;
use http::{HeaderMap, HeaderValue, header};

use crate::Encoding;
use crate::settings::Settings;

/// How ETags are computed (see the [`load`](self) module docs for the recipes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ETagMode {
    /// From the modification time and size (the default; costs nothing).
    #[default]
    Metadata,
    /// The XXH3-64 hash of the content, for files the hot-file cache holds in memory (others
    /// fall back to [`Metadata`](Self::Metadata)).
    ContentHash,
}

/// One representation: the file itself or one of its precompressed variants.
#[derive(Debug)]
pub(crate) struct Rep {
    pub encoding: Option<Encoding>,
    pub len: u64,
    pub modified_secs: u64,
    pub etag: HeaderValue,
    pub last_modified: HeaderValue,
    pub content_length: HeaderValue,
    /// The headers of a plain 200 for this representation, ready to clone.
    pub ok_headers: HeaderMap,
    /// The content when held in memory; otherwise it is read from `file`.
    pub data: Option<Bytes>,
    /// The open file: when `data` is `None`, and for `data` of at least `SENDFILE_MIN_LEN`.
    pub file: Option<Arc<File>>,
}

/// From this size on, a file the cache holds in memory is sent with `sendfile` where the
/// connection allows it (plain-text HTTP/1.1 on Linux): the kernel then takes the bytes from the
/// page cache instead of copying them from memory. Below it one `writev` of the head and the
/// bytes costs less.
pub(crate) const SENDFILE_MIN_LEN: u64 = if cfg!(target_os = "linux") {
    64 * 1024
} else {
    u64::MAX
};

/// What a file-system stat saw of one path (`None`: absent or not a regular file).
pub(crate) type Stamp = Option<(u64, SystemTime)>;

/// A file ready to serve, with all its representations.
#[derive(Debug)]
pub(crate) struct Resource {
    /// `reps[0]` is the identity representation; then the variants present, in
    /// the order of `Settings::precompressed`.
    pub reps: Vec<Rep>,
    pub encodings: Vec<Encoding>,
    pub content_type: HeaderValue,
    pub cache_control: HeaderValue,
    /// Whether the resource has precompressed variants (→ `Vary: Accept-Encoding` always).
    pub vary: bool,
    /// The paths stat-ed to revalidate, and what they showed at load time.
    pub paths: Vec<PathBuf>,
    pub stamps: Vec<Stamp>,
    /// Bytes held in memory.
    pub mem: u64,
    /// When the resource was last checked against the file system / last served (cache clock).
    pub checked_ms: AtomicU64,
    pub used_ms: AtomicU64,
}

/// The outcome of looking a path up.
#[derive(Debug)]
pub(crate) enum Lookup {
    File(Resource),
    /// A directory asked for without its trailing slash.
    Redirect,
    /// A directory without index file, listing enabled: the listing page.
    Listing(String),
    NotFound,
    Forbidden,
}

/// Stat `path` following symlinks; `None` for anything but a regular file.
fn stamp_of(meta: &Metadata) -> Stamp {
    meta.is_file().then(|| {
        (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        )
    })
}

pub(crate) fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path).ok().as_ref().and_then(stamp_of)
}

/// Paths to revalidate for a file: the file, then one per configured encoding.
fn variant_path(path: &Path, enc: Encoding) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(enc.file_extension().unwrap_or(".unsupported"));
    PathBuf::from(os)
}

/// Whether an I/O error means "no such file" from the client's point of view.
fn is_not_found(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidInput
    ) || matches!(
        e.raw_os_error(),
        Some(36 /* ENAMETOOLONG */ | 40 /* ELOOP */)
    )
}

/// Look `relative` (already made safe by `resolve_path`) up under the root.
pub(crate) fn lookup(
    s: &Settings,
    relative: &str,
    dir_request: bool,
    cacheable_data: bool,
) -> io::Result<Lookup> {
    let mut path = s.root.clone();
    if !relative.is_empty() {
        path.push(relative);
    }
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if is_not_found(&e) => return Ok(Lookup::NotFound),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(Lookup::Forbidden),
        Err(e) => return Err(e),
    };
    if !inside_root(s, &path) {
        tracing::info!(path = %path.display(), "refused: symlink leaves the served root");
        return Ok(Lookup::NotFound);
    }
    if meta.is_dir() {
        if s.fixed {
            return Ok(Lookup::NotFound);
        }
        if !dir_request {
            return Ok(if s.redirect_dirs {
                Lookup::Redirect
            } else {
                Lookup::NotFound
            });
        }
        if let Some(index) = &s.index {
            let index_path = path.join(index);
            match std::fs::metadata(&index_path) {
                Ok(m) if m.is_file() && inside_root(s, &index_path) => {
                    return load_file(s, index_path, cacheable_data);
                }
                _ => {}
            }
        }
        if s.listing {
            return Ok(Lookup::Listing(crate::listing::render(&path, relative, s)?));
        }
        return Ok(Lookup::Forbidden);
    }
    if !meta.is_file() || (dir_request && !s.fixed) {
        return Ok(Lookup::NotFound); // a FIFO, socket or device is never opened; `file.txt/` is 404
    }
    load_file(s, path, cacheable_data)
}

/// Whether `path` (which exists) resolves, symlinks followed, under the canonical root.
fn inside_root(s: &Settings, path: &Path) -> bool {
    if s.follow_symlinks {
        return true;
    }
    match (&s.canonical_root, std::fs::canonicalize(path)) {
        (Some(root), Ok(real)) => real.starts_with(root),
        _ => false,
    }
}

fn load_file(s: &Settings, path: PathBuf, cacheable_data: bool) -> io::Result<Lookup> {
    let mut paths = vec![path.clone()];
    let mut opened = Vec::new();
    let Some(identity) = open(&path)? else {
        return Ok(Lookup::NotFound);
    };
    opened.push((None, identity));
    for &enc in &s.precompressed {
        let vpath = variant_path(&path, enc);
        if let Some(f) = open(&vpath)?.filter(|_| inside_root(s, &vpath)) {
            opened.push((Some(enc), f));
        }
        paths.push(vpath);
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let content_type = s.content_type(&path);
    let cache_control = s.cache_control_for(ext);
    let vary = opened.len() > 1;
    let hold = cacheable_data && opened.iter().all(|(_, (_, m))| m.len() <= s.cache_max_file);
    let mut reps = Vec::with_capacity(opened.len());
    let mut stamps: Vec<Stamp> = vec![None; paths.len()];
    let mut mem = 0;
    for (encoding, (file, meta)) in opened {
        let len = meta.len();
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let slot = match encoding {
            None => 0,
            Some(enc) => 1 + s.precompressed.iter().position(|&e| e == enc).unwrap_or(0),
        };
        stamps[slot] = Some((len, modified));
        let since = modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let data = if hold {
            let mut buf = vec![0; len as usize];
            read_exact_at(&file, &mut buf)?;
            mem += len;
            Some(Bytes::from(buf))
        } else {
            None
        };
        let etag = match (&data, s.etag) {
            (Some(d), crate::ETagMode::ContentHash) => {
                format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(d))
            }
            _ => format!(
                "\"{:x}.{:x}-{:x}\"",
                since.as_secs(),
                since.subsec_nanos(),
                len
            ),
        };
        let etag = HeaderValue::try_from(etag).expect("hex and quotes are a valid header");
        let etag = match encoding {
            Some(enc) => headers::etag_with_coding(&etag, enc).expect("a well-formed tag"),
            None => etag,
        };
        let last_modified = headers::http_date(modified);
        let content_length = HeaderValue::from(len);
        // The same headers, in the same order, as the general path in `serve::respond`.
        let mut ok_headers = HeaderMap::with_capacity(10);
        ok_headers.insert(header::ETAG, etag.clone());
        ok_headers.insert(header::LAST_MODIFIED, last_modified.clone());
        ok_headers.insert(header::CACHE_CONTROL, cache_control.clone());
        if vary {
            ok_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        ok_headers.insert(header::CONTENT_TYPE, content_type.clone());
        ok_headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        ok_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(enc) = encoding {
            ok_headers.insert(header::CONTENT_ENCODING, enc.header_value());
        }
        ok_headers.insert(header::CONTENT_LENGTH, content_length.clone());
        reps.push(Rep {
            encoding,
            len,
            modified_secs: since.as_secs(),
            etag,
            last_modified,
            content_length,
            ok_headers,
            // A big file held in memory keeps its descriptor too, for `sendfile`.
            file: match &data {
                Some(_) if len < SENDFILE_MIN_LEN => None,
                _ => Some(Arc::new(file)),
            },
            data,
        });
    }
    let encodings: Vec<Encoding> = reps.iter().filter_map(|r| r.encoding).collect();
    Ok(Lookup::File(Resource {
        vary,
        encodings,
        reps,
        content_type,
        cache_control,
        paths,
        stamps,
        mem,
        checked_ms: AtomicU64::new(0),
        used_ms: AtomicU64::new(0),
    }))
}

/// Open a regular file and fstat it; `None` if it is absent or not a regular file.
fn open(path: &Path) -> io::Result<Option<(File, Metadata)>> {
    // Stat first: opening a FIFO for reading would block until a writer shows up.
    if stamp(path).is_none() {
        return Ok(None);
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if is_not_found(&e) || e.kind() == io::ErrorKind::PermissionDenied => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    Ok(meta.is_file().then_some((file, meta)))
}

fn read_exact_at(file: &File, buf: &mut [u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, 0)
}

impl Resource {
    /// Whether the files behind this resource still look as they did when it was loaded.
    pub(crate) fn unchanged(&self) -> bool {
        self.paths
            .iter()
            .zip(&self.stamps)
            .all(|(p, &was)| stamp(p) == was)
    }
}
