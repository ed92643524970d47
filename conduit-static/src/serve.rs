//! [`ServeDir`] and [`ServeFile`]: the handlers, their configuration, and the dispatch of a
//! request (the response itself is built in `respond`).
//!
//! A request goes: method check (GET/HEAD, else 405 + `Allow`) → [`resolve_path`] (400/404 for
//! unsafe paths) → hot-file cache lookup → on a fresh hit, the response is built on the spot
//! from prepared header values and shared bytes, without a system call; otherwise the resource
//! is loaded (or revalidated) on a blocking thread, then answered the same way.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use conduit_core::{Error, Handler, IntoResponse, Request, Response};
use http::{HeaderValue, Method, StatusCode, header};

use crate::body::BufPool;
use crate::cache::{CacheConfig, CacheStats, Cached, FileCache};
use crate::load::{Lookup, lookup};
use crate::respond::{Head, listing, redirect, respond};
use crate::settings::{DEFAULT_CACHE_CONTROL, Settings};
use crate::{ETagMode, Encoding, resolve_path};

const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD");

#[derive(Debug)]
struct Shared {
    settings: Settings,
    cache: Option<FileCache>,
    pool: Arc<BufPool>,
}

/// Serves the files of a directory: mount it on a router (`router.mount("/static",
/// ServeDir::new("public"))`) or use it as the whole app.
///
/// Defaults: `index.html` for directories, trailing-slash redirects, no listing, dotfiles
/// hidden, symlinks leaving the root refused, precompressed `.br`/`.zst`/`.gz` variants served
/// when present, `Cache-Control: max-age=31536000`, metadata ETags, and a hot-file cache
/// ([`CacheConfig::default`]). Configure it before cloning or serving it: every setter starts
/// a fresh cache.
///
/// ```no_run
/// use conduit_core::Router;
/// use conduit_static::{CacheConfig, ServeDir};
///
/// let assets = ServeDir::new("public")
///     .immutable(true)                        // max-age=31536000, immutable
///     .cache_control_for("html", "no-cache")  // but revalidate HTML on every use
///     .spa_fallback("index.html");            // unknown paths get the app shell
/// let app = Router::new().mount("/assets", assets);
/// ```
#[derive(Debug, Clone)]
pub struct ServeDir {
    shared: Arc<Shared>,
}

impl ServeDir {
    /// Serve the directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let settings = Settings {
            canonical_root: std::fs::canonicalize(&root).ok(),
            root,
            fixed: false,
            index: Some("index.html".into()),
            redirect_dirs: true,
            listing: false,
            spa_fallback: None,
            allow_hidden: false,
            follow_symlinks: false,
            precompressed: crate::encoding::precompressible(),
            etag: ETagMode::Metadata,
            cache_control: HeaderValue::from_static(DEFAULT_CACHE_CONTROL),
            cache_control_ext: Vec::new(),
            cache_max_file: CacheConfig::default().max_file_size,
            chunk_size: 128 * 1024,
        };
        Self::build(settings, Some(CacheConfig::default()))
    }

    fn build(settings: Settings, cache: Option<CacheConfig>) -> Self {
        let mut settings = settings;
        if let Some(c) = &cache {
            settings.cache_max_file = c.max_file_size;
        }
        let pool = BufPool::new(settings.chunk_size, 64);
        Self {
            shared: Arc::new(Shared {
                settings,
                cache: cache.map(FileCache::new),
                pool,
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.shared.settings.clone();
        f(&mut settings);
        let cache = self.shared.cache.as_ref().map(|c| c.config);
        Self::build(settings, cache)
    }

    /// The file served for a directory request (default `index.html`; `None` for none).
    pub fn index(self, name: Option<&str>) -> Self {
        let name = name.map(str::to_owned);
        self.with(|s| s.index = name)
    }

    /// Redirect `/dir` to `/dir/` with 301 (default on); off, such requests get 404.
    pub fn redirect_directories(self, on: bool) -> Self {
        self.with(|s| s.redirect_dirs = on)
    }

    /// List directories that have no index file (default off: they get 403, as in nginx).
    pub fn listing(self, on: bool) -> Self {
        self.with(|s| s.listing = on)
    }

    /// Answer requests for missing files with this file (relative to the root) and 200: the
    /// single-page-app fallback.
    pub fn spa_fallback(self, file: &str) -> Self {
        let file = file.trim_start_matches('/').to_owned();
        self.with(|s| s.spa_fallback = Some(file))
    }

    /// Serve dotfiles and dot-directories (default off: 404).
    pub fn allow_hidden(self, on: bool) -> Self {
        self.with(|s| s.allow_hidden = on)
    }

    /// Follow symlinks that lead outside the root (default off: such files get 404).
    pub fn follow_symlinks(self, on: bool) -> Self {
        self.with(|s| s.follow_symlinks = on)
    }

    /// Which precompressed variants to look for beside each file, in preference order for
    /// clients that weigh them equally (default `[Zstd, Brotli, Gzip]`, the order the
    /// compression middleware prefers too; empty turns it off). Deflate, which has no file
    /// extension, is ignored.
    pub fn precompressed(self, encodings: &[Encoding]) -> Self {
        let mut encodings = encodings.to_vec();
        encodings.retain(|e| e.file_extension().is_some());
        self.with(|s| s.precompressed = encodings)
    }

    /// How ETags are computed (default [`ETagMode::Metadata`]).
    pub fn etag(self, mode: ETagMode) -> Self {
        self.with(|s| s.etag = mode)
    }

    /// The `Cache-Control` of every file (default `max-age=31536000`).
    ///
    /// # Panics
    ///
    /// If `value` is not a valid header value.
    pub fn cache_control(self, value: &str) -> Self {
        let value = HeaderValue::try_from(value).expect("a valid Cache-Control value");
        self.with(|s| s.cache_control = value)
    }

    /// Add `immutable` to the default `Cache-Control` (for fingerprinted asset names):
    /// `max-age=31536000, immutable`.
    pub fn immutable(self, on: bool) -> Self {
        let value = if on {
            "max-age=31536000, immutable"
        } else {
            DEFAULT_CACHE_CONTROL
        };
        self.cache_control(value)
    }

    /// A `Cache-Control` for files with this extension (without the dot, case-insensitive),
    /// e.g. `cache_control_for("html", "no-cache")`.
    ///
    /// # Panics
    ///
    /// If `value` is not a valid header value.
    pub fn cache_control_for(self, extension: &str, value: &str) -> Self {
        let value = HeaderValue::try_from(value).expect("a valid Cache-Control value");
        let ext = extension.trim_start_matches('.').to_owned();
        self.with(|s| {
            s.cache_control_ext
                .retain(|(e, _)| !e.eq_ignore_ascii_case(&ext));
            s.cache_control_ext.push((ext, value));
        })
    }

    /// The size of the chunks large files are read and sent in (default 128 KiB).
    pub fn chunk_size(self, bytes: usize) -> Self {
        let bytes = bytes.max(1024);
        self.with(|s| s.chunk_size = bytes)
    }

    /// Configure the hot-file cache, or turn it off with `None` (every request then stats and
    /// opens its file).
    pub fn cache(self, config: Option<CacheConfig>) -> Self {
        let settings = self.shared.settings.clone();
        Self::build(settings, config)
    }

    /// The hot-file cache's counters (all zero when the cache is off).
    pub fn cache_stats(&self) -> CacheStats {
        self.shared
            .cache
            .as_ref()
            .map(FileCache::stats)
            .unwrap_or_default()
    }
}

/// Serves one file for every request (GET and HEAD), with all of [`ServeDir`]'s semantics:
/// validators, preconditions, ranges, precompressed variants, cache.
///
/// ```no_run
/// use conduit_core::{Router, get};
/// use conduit_static::ServeFile;
///
/// let app = Router::new().route("/", get(ServeFile::new("public/index.html")));
/// ```
#[derive(Debug, Clone)]
pub struct ServeFile {
    dir: ServeDir,
}

impl ServeFile {
    /// Serve the file at `path` (symlinks are followed: you named the file).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let dir = ServeDir::new(path).with(|s| {
            s.fixed = true;
            s.follow_symlinks = true;
            s.allow_hidden = true;
            s.index = None;
        });
        Self { dir }
    }

    /// Configure the underlying settings (`Cache-Control`, ETags, precompressed variants,
    /// cache) with [`ServeDir`]'s setters.
    pub fn configure(self, f: impl FnOnce(ServeDir) -> ServeDir) -> Self {
        Self { dir: f(self.dir) }
    }

    /// The hot-file cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.dir.cache_stats()
    }
}

impl Handler for ServeFile {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<> {
        self.dir.call(req)
    }
}

impl Handler for ServeDir {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<> {
        match fast(&self.shared, &req) {
            Some(res) => ServeFuture::Ready(Some(res)),
            None => ServeFuture::Slow(Box::pin(slow(self.shared.clone(), req))),
        }
    }
}

/// The response future: ready at once for a cache hit or a refusal, boxed when files must be
/// read.
enum ServeFuture {
    Ready(Option<Response>),
    Slow(Pin<Box<dyn Future<Output = Response> + Send>>),
}

impl Future for ServeFuture {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.get_mut() {
            Self::Ready(res) => Poll::Ready(res.take().expect("polled after completion")),
            Self::Slow(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// Refusals and fresh cache hits, answered without leaving the caller's task.
fn fast(shared: &Shared, req: &Request) -> Option<Response> {
    if let Some(res) = check_method(req) {
        return Some(res);
    }
    let s = &shared.settings;
    let path = if s.fixed { "/" } else { req.uri().path() };
    let resolved = match resolve_path(path, s.allow_hidden) {
        Ok(r) => r,
        Err(rej) => return Some(reject(rej, path)),
    };
    let cache = shared.cache.as_ref()?;
    // A path that needed no decoding is its own cache key: no allocation.
    if !matches!(resolved_key(&resolved, path), Key::Raw) {
        return None;
    }
    match cache.get(path) {
        Cached::Fresh(res) => Some(respond(&shared.pool, &Head::of(req), &res)),
        _ => None,
    }
}

enum Key {
    Raw,
    Owned(String),
}

fn resolved_key(resolved: &crate::ResolvedPath<'_>, raw: &str) -> Key {
    let rel = resolved.relative();
    let dir = resolved.is_dir_request() && !rel.is_empty();
    // Raw when raw == "/" + rel + ("/" if dir).
    let same = raw.len() == 1 + rel.len() + usize::from(dir)
        && raw.get(1..1 + rel.len()) == Some(rel)
        && (!dir || raw.ends_with('/'));
    if same {
        Key::Raw
    } else {
        let mut k = String::with_capacity(rel.len() + 2);
        k.push('/');
        k.push_str(rel);
        if dir {
            k.push('/');
        }
        Key::Owned(k)
    }
}

fn check_method(req: &Request) -> Option<Response> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return None;
    }
    let mut res = Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "Method Not Allowed: {} (static files answer GET and HEAD)",
            req.method()
        ),
    )
    .into_response();
    res.headers_mut().insert(header::ALLOW, ALLOW);
    Some(res)
}

#[cold]
fn reject(rej: crate::PathRejection, path: &str) -> Response {
    let status = rej.status();
    let mut shown: String = path.chars().take(200).collect();
    if shown.len() < path.len() {
        shown.push('…');
    }
    tracing::debug!(status = status.as_u16(), path = %shown.escape_debug(), reason = %rej, "static: path refused");
    let message = match status {
        StatusCode::NOT_FOUND => "Not Found".to_owned(),
        _ => format!("Bad Request: {rej}"),
    };
    conduit_core::Problem::with_message(status, message).into_error_response()
}

async fn slow(shared: Arc<Shared>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let req = Head::from_parts(&parts);
    let req = &req;
    let s = &shared.settings;
    let raw = if s.fixed { "/" } else { req.uri.path() };
    let resolved = match resolve_path(raw, s.allow_hidden) {
        Ok(r) => r.into_owned(),
        Err(rej) => return reject(rej, raw),
    };
    let key = match resolved_key(&resolved, raw) {
        Key::Raw => raw.to_owned(),
        Key::Owned(k) => k,
    };
    if let Some(cache) = &shared.cache {
        match cache.get(&key) {
            Cached::Fresh(res) => return respond(&shared.pool, req, &res),
            Cached::Stale(res) => {
                let check = res.clone();
                match tokio::task::spawn_blocking(move || check.unchanged()).await {
                    Ok(true) => {
                        cache.revalidated(&res);
                        return respond(&shared.pool, req, &res);
                    }
                    Ok(false) => cache.remove(&key),
                    Err(e) => return Error::internal(e).into_response(),
                }
            }
            Cached::Absent => {}
        }
        cache.count_miss();
    }
    let dir = resolved.is_dir_request();
    let relative = resolved.relative().to_owned();
    let found = load(&shared, relative, dir).await;
    match found {
        Ok(Lookup::File(res)) => {
            let res = match &shared.cache {
                Some(cache) => cache.insert(&key, res),
                None => Arc::new(res),
            };
            respond(&shared.pool, req, &res)
        }
        Ok(Lookup::Redirect) => redirect(req),
        Ok(Lookup::Listing(html)) => listing(req, html),
        Ok(Lookup::Forbidden) => Error::new(StatusCode::FORBIDDEN, "Forbidden").into_response(),
        Ok(Lookup::NotFound) => match &s.spa_fallback {
            Some(file) => spa(&shared, req, file.clone()).await,
            None => Error::not_found().into_response(),
        },
        Err(e) => e,
    }
}

async fn load(shared: &Arc<Shared>, relative: String, dir: bool) -> Result<Lookup, Response> {
    let sh = shared.clone();
    let cacheable = shared.cache.is_some();
    match tokio::task::spawn_blocking(move || lookup(&sh.settings, &relative, dir, cacheable)).await
    {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(Error::internal(e).into_response()),
        Err(e) => Err(Error::internal(e).into_response()),
    }
}

async fn spa(shared: &Arc<Shared>, req: &Head<'_>, file: String) -> Response {
    // Cached under a key no request path can have (request keys start with `/`).
    let key = format!("spa:{file}");
    if let Some(cache) = &shared.cache {
        if let Cached::Fresh(res) = cache.get(&key) {
            return respond(&shared.pool, req, &res);
        }
    }
    match load(shared, file, false).await {
        Ok(Lookup::File(res)) => {
            let res = match &shared.cache {
                Some(cache) => cache.insert(&key, res),
                None => Arc::new(res),
            };
            respond(&shared.pool, req, &res)
        }
        Ok(_) => Error::not_found().into_response(),
        Err(e) => e,
    }
}
