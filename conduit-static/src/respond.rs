//! Responding for a resource once it is found: which representation, preconditions (304,
//! 412), ranges (206, 416, `multipart/byteranges`), and the few other answers that are not a
//! file (a directory's redirect, its listing).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use conduit_core::headers::AcceptEncoding;
use conduit_core::{Body, OriginalUri, Request, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::body::{BufPool, FileBody, HeldBody, Part};
use crate::load::{Rep, Resource};
use crate::precond::{self, Validators};
use crate::range::{self, RangeRequest};
use conduit_core::sendfile::SendfileGrant;

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");
const ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const X_CONTENT_TYPE_OPTIONS: header::HeaderName = header::X_CONTENT_TYPE_OPTIONS;

/// What the response logic needs of the request (a `Request` is not `Sync`, so the slow path
/// keeps only these across its awaits).
pub(crate) struct Head<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub uri: &'a http::Uri,
    pub extensions: &'a http::Extensions,
}

impl<'a> Head<'a> {
    pub(crate) fn of(req: &'a Request) -> Self {
        Self {
            method: req.method(),
            headers: req.headers(),
            uri: req.uri(),
            extensions: req.extensions(),
        }
    }

    pub(crate) fn from_parts(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            headers: &parts.headers,
            uri: &parts.uri,
            extensions: &parts.extensions,
        }
    }
}

pub(crate) fn redirect(req: &Head<'_>) -> Response {
    let uri = req
        .extensions
        .get::<OriginalUri>()
        .map_or(req.uri, |o| &o.0);
    // Collapse leading slashes: `//evil.example/` would be a redirect to another host.
    let path = format!("/{}/", uri.path().trim_start_matches('/'));
    let location = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::MOVED_PERMANENTLY;
    // Explicit, so that HEAD and GET carry the same headers.
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    if let Ok(v) = HeaderValue::try_from(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

pub(crate) fn listing(req: &Head<'_>, html: String) -> Response {
    let len = html.len();
    let body = if *req.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(html)
    };
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HTML);
    h.insert(header::CACHE_CONTROL, NO_CACHE);
    h.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    res
}

/// The response for a found resource: representation choice, preconditions, ranges.
pub(crate) fn respond(pool: &Arc<BufPool>, req: &Head<'_>, res: &Resource) -> Response {
    let headers = req.headers;
    let head = *req.method == Method::HEAD;
    // One pass over the request headers instead of a lookup per header that matters.
    let mut conditional = false;
    let mut range_header = None;
    let mut accept_encoding = None;
    for (name, value) in headers {
        if name == header::IF_MATCH
            || name == header::IF_NONE_MATCH
            || name == header::IF_MODIFIED_SINCE
            || name == header::IF_UNMODIFIED_SINCE
        {
            conditional = true;
        } else if name == header::RANGE {
            range_header = Some(value);
        } else if name == header::ACCEPT_ENCODING {
            accept_encoding = Some(value);
        }
    }
    let rep = if res.vary {
        let chosen = accept_encoding
            .and_then(|v| v.to_str().ok())
            .and_then(|ae| AcceptEncoding::parse(ae).negotiate(&res.encodings).coding());
        res.reps
            .iter()
            .find(|r| r.encoding == chosen)
            .unwrap_or(&res.reps[0])
    } else {
        &res.reps[0]
    };
    if !conditional && (head || range_header.is_none()) {
        // The common case: a plain 200 from prepared headers.
        let body = if head {
            Body::empty()
        } else {
            whole_body(pool, rep)
        };
        return finish(StatusCode::OK, rep.ok_headers.clone(), body);
    }
    let v = Validators {
        etag: rep.etag.as_bytes(),
        modified_secs: rep.modified_secs,
    };
    let mut h = HeaderMap::with_capacity(12);
    h.insert(header::ETAG, rep.etag.clone());
    h.insert(header::LAST_MODIFIED, rep.last_modified.clone());
    h.insert(header::CACHE_CONTROL, res.cache_control.clone());
    if res.vary {
        h.insert(header::VARY, ACCEPT_ENCODING);
    }
    if let Some(status) = conditional
        .then(|| precond::evaluate(headers, &v))
        .flatten()
    {
        if status == StatusCode::PRECONDITION_FAILED {
            tracing::debug!(
                status = 412,
                path = req.uri.path(),
                "static: precondition failed"
            );
        }
        return finish(status, h, Body::empty());
    }
    h.insert(header::CONTENT_TYPE, res.content_type.clone());
    h.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    h.insert(header::ACCEPT_RANGES, BYTES);
    if let Some(enc) = rep.encoding {
        h.insert(header::CONTENT_ENCODING, enc.header_value());
    }
    // RFC 9110 14.2: Range is only defined for GET.
    if let (false, Some(range)) = (head, range_header) {
        if precond::if_range_allows(headers, &v) {
            match range::parse(range.as_bytes(), rep.len) {
                RangeRequest::Full => {}
                RangeRequest::Unsatisfiable => {
                    tracing::debug!(
                        status = 416,
                        path = req.uri.path(),
                        "static: range not satisfiable"
                    );
                    h.remove(header::CONTENT_TYPE);
                    h.insert(header::CONTENT_RANGE, unsatisfied(rep.len));
                    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                    return finish(StatusCode::RANGE_NOT_SATISFIABLE, h, Body::empty());
                }
                RangeRequest::Ranges(ranges) => {
                    return partial(pool, h, res, rep, ranges);
                }
            }
        }
    }
    h.insert(header::CONTENT_LENGTH, rep.content_length.clone());
    let body = if head {
        Body::empty()
    } else {
        whole_body(pool, rep)
    };
    finish(StatusCode::OK, h, body)
}

fn whole_body(pool: &Arc<BufPool>, rep: &Rep) -> Body {
    match &rep.data {
        Some(data) => held_body(rep, data.clone(), 0),
        None => file_body(
            pool,
            rep,
            vec![Part::File {
                offset: 0,
                len: rep.len,
            }],
        ),
    }
}

fn finish(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    if status.is_client_error() {
        // 412 and 416 keep their empty body here and their validators or `Content-Range`
        // whatever the app's error renderer writes as the body.
        conduit_core::attach_problem(&mut res, conduit_core::Problem::new(status));
    }
    res
}

/// `data` (the file's bytes from `offset`, held in memory); from the file with `sendfile` where
/// the connection allows it, if the cache kept the file open for that.
fn held_body(rep: &Rep, data: Bytes, offset: u64) -> Body {
    match &rep.file {
        Some(file) => {
            let grant = SendfileGrant::new();
            let read = HeldBody::new(data.clone(), file.clone(), offset, grant.clone());
            Body::file_held(data, read, grant)
        }
        None => Body::from(data),
    }
}

fn file_body(pool: &Arc<BufPool>, rep: &Rep, parts: Vec<Part>) -> Body {
    match &rep.file {
        Some(file) => {
            let grant = SendfileGrant::new();
            let read = FileBody::new(file.clone(), parts, pool.clone(), grant.clone());
            Body::file(read, grant)
        }
        None => Body::empty(), // unreachable: a rep has its data or its file
    }
}

fn unsatisfied(len: u64) -> HeaderValue {
    HeaderValue::try_from(format!("bytes */{len}")).expect("digits are a valid header")
}

fn content_range(r: &std::ops::Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{len}", r.start, r.end - 1)
}

/// 206: one range as is, several as `multipart/byteranges`.
fn partial(
    pool: &Arc<BufPool>,
    mut h: HeaderMap,
    res: &Resource,
    rep: &Rep,
    ranges: Vec<std::ops::Range<u64>>,
) -> Response {
    if let [r] = ranges.as_slice() {
        let len = r.end - r.start;
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::try_from(content_range(r, rep.len)).expect("valid header"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        let body = match &rep.data {
            Some(data) => held_body(rep, data.slice(r.start as usize..r.end as usize), r.start),
            None => file_body(
                pool,
                rep,
                vec![Part::File {
                    offset: r.start,
                    len,
                }],
            ),
        };
        return finish(StatusCode::PARTIAL_CONTENT, h, body);
    }
    let boundary = boundary(rep);
    let content_type = res
        .content_type
        .to_str()
        .unwrap_or("application/octet-stream");
    let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
    for r in &ranges {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            content_range(r, rep.len)
        );
        parts.push(Part::Bytes(Bytes::from(head)));
        parts.push(Part::File {
            offset: r.start,
            len: r.end - r.start,
        });
    }
    parts.push(Part::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    let total: u64 = parts
        .iter()
        .map(|p| match p {
            Part::Bytes(b) => b.len() as u64,
            Part::File { len, .. } => *len,
        })
        .sum();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::try_from(format!("multipart/byteranges; boundary={boundary}"))
            .expect("valid header"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    let body = match &rep.data {
        Some(data) => {
            let mut out = BytesMut::with_capacity(total as usize);
            for p in &parts {
                match p {
                    Part::Bytes(b) => out.extend_from_slice(b),
                    Part::File { offset, len } => {
                        out.extend_from_slice(&data[*offset as usize..(*offset + *len) as usize])
                    }
                }
            }
            Body::from(out.freeze())
        }
        None => file_body(pool, rep, parts),
    };
    finish(StatusCode::PARTIAL_CONTENT, h, body)
}

/// A multipart boundary that differs per response (a counter, hashed with the ETag).
fn boundary(rep: &Rep) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut seed = rep.etag.as_bytes().to_vec();
    seed.extend_from_slice(&n.to_le_bytes());
    format!("conduit-{:016x}", xxhash_rust::xxh3::xxh3_64(&seed))
}
