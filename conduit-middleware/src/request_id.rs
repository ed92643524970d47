//! [`RequestId`]: give every request an id, reachable from the request and echoed on the
//! response.
//!
//! An incoming `X-Request-Id` (the header name is configurable) is reused when it is sane: 1 to
//! 128 bytes of visible ASCII. Otherwise (missing, empty, too long, spaces or control bytes,
//! non-ASCII) a fresh id is generated: 128 random bits as 32 lowercase hex digits
//! (`3f9a1c2e7b4d5a60c41d09e8a7b2f153`), as unguessable as a UUID v4 (whose 122 random bits
//! tower-http's ids carry). The bits come from a per-thread ChaCha12 generator seeded, and
//! every 64 KiB of output reseeded, from the operating system ([`rand::rng`]): no lock, no
//! syscall per request, and nothing in an id tells how many came before it. The id is
//! stored as a [`RequestIdValue`] request extension (read it with
//! [`RequestIdExt::request_id`]) and set on the response under the same header name.
//!
//! ```
//! use conduit_core::{Handler, HandlerExt, Request};
//! use conduit_middleware::{RequestId, RequestIdExt};
//!
//! let app = (|req: Request| async move { req.request_id().unwrap_or_default().to_owned() })
//!     .with(RequestId::new());
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let req = Request::get("/").header("x-request-id", "abc-123").body(Default::default()).unwrap();
//! let res = app.call(req).await;
//! assert_eq!(res.headers()["x-request-id"], "abc-123");
//!
//! let req = Request::get("/").header("x-request-id", "bad id").body(Default::default()).unwrap();
//! let res = app.call(req).await;
//! assert_ne!(res.headers()["x-request-id"], "bad id");
//! # });
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use conduit_core::http::header::HeaderName;
use conduit_core::http::{HeaderValue, Request as HttpRequest};
use conduit_core::{Handler, Middleware, Request, Response};
use rand::Rng as _;

/// The default header: `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id that is reused.
pub const MAX_LEN: usize = 128;

/// The middleware: reuse or generate a request id (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct RequestId {
    pub(crate) header: HeaderName,
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestId {
    /// Use `X-Request-Id`.
    pub fn new() -> Self {
        Self {
            header: X_REQUEST_ID,
        }
    }

    /// Read and write the id under `header` instead (e.g. `x-correlation-id`).
    #[must_use]
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }
}

impl<H: Handler> Middleware<H> for RequestId {
    type Output = RequestIdHandler<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        RequestIdHandler {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The handler built by [`RequestId`].
#[derive(Clone)]
pub struct RequestIdHandler<H> {
    inner: H,
    header: HeaderName,
}

impl<H> fmt::Debug for RequestIdHandler<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIdHandler")
            .field("header", &self.header)
            .finish()
    }
}

/// The request's id, as a request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestIdValue(HeaderValue);

impl RequestIdValue {
    /// The id (always visible ASCII).
    pub fn as_str(&self) -> &str {
        // Only sane (visible ASCII) or generated values are ever stored.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Display for RequestIdValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `req.request_id()`: the id [`RequestId`] gave the request.
pub trait RequestIdExt {
    /// The request's id, if a [`RequestId`] middleware is on the way.
    fn request_id(&self) -> Option<&str>;
}

impl<B> RequestIdExt for HttpRequest<B> {
    #[inline]
    fn request_id(&self) -> Option<&str> {
        self.extensions()
            .get::<RequestIdValue>()
            .map(RequestIdValue::as_str)
    }
}

/// Whether an incoming id is reused: 1 to [`MAX_LEN`] bytes of visible ASCII.
pub fn is_sane(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= MAX_LEN && value.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Ids are made 32 at a time, into per-thread chunks of this many bytes: one call into the
/// generator (512 bytes of ChaCha12 output in one go), one hex pass (a loop the compiler
/// vectorises) and one allocation per 32 ids instead of per id. A chunk is freed when the last
/// id cut from it is dropped.
const CHUNK: usize = 32 * GENERATED;

/// The length of the ids [`generate`] makes: 32 hex digits, 128 bits.
const GENERATED: usize = 32;

/// This thread's ids made and not yet handed out: `chunk[next..]`.
struct Ids {
    chunk: Bytes,
    next: usize,
}

thread_local! {
    static IDS: RefCell<Ids> = const {
        RefCell::new(Ids {
            chunk: Bytes::new(),
            next: 0,
        })
    };
}

/// A fresh id: 128 bits from the thread's CSPRNG as 32 lowercase hex digits.
///
/// Fixed width (32 bytes): validating it as a header value (which `HeaderValue` does for every
/// new value) takes exactly one pass of its 32-byte vector loop.
pub fn generate() -> HeaderValue {
    let id = IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        if ids.next == ids.chunk.len() {
            ids.chunk = fresh_ids();
            ids.next = 0;
        }
        let at = ids.next;
        ids.next = at + GENERATED;
        ids.chunk.slice(at..at + GENERATED)
    });
    HeaderValue::from_maybe_shared(id).expect("hex digits are valid")
}

/// The next [`CHUNK`] bytes of ids: random bytes from [`rand::rng`], in hex.
#[inline(never)]
fn fresh_ids() -> Bytes {
    let mut random = [0u8; CHUNK / 2];
    rand::rng().fill_bytes(&mut random);
    let mut hex = vec![0u8; CHUNK];
    for (digits, &byte) in hex.chunks_exact_mut(2).zip(&random) {
        digits[0] = hex_digit(byte >> 4);
        digits[1] = hex_digit(byte & 0xf);
    }
    // Owned: each id's clone and drop is one atomic add on the owner's count.
    Bytes::from_owner(hex)
}

/// `n` (0-15) as a lowercase hex digit.
#[inline(always)]
fn hex_digit(n: u8) -> u8 {
    n + if n > 9 { b'a' - 10 } else { b'0' }
}

impl<H: Handler> Handler for RequestIdHandler<H> {
    fn call(&self, mut req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let id = assign(&self.header, &mut req);
        // The id is lent to the thread while the inner future is polled (see [`current`]), so
        // inner layers log it without each keeping a copy per request.
        WithRequestId {
            inner: self.inner.call(req),
            id: Some(id),
            header: self.header.clone(),
        }
    }
}

/// The request's id under `header` (reused when sane, else generated and the header
/// replaced), stored as a [`RequestIdValue`] extension.
pub(crate) fn assign(header: &HeaderName, req: &mut Request) -> RequestIdValue {
    let incoming = req.headers().get(header).cloned();
    assign_incoming(header, incoming, req)
}

/// [`assign`], given the request's first value under `header` (found by the caller, e.g. in
/// the one pass [`Stack`](crate::Stack) makes over the request's headers).
pub(crate) fn assign_incoming(
    header: &HeaderName,
    incoming: Option<HeaderValue>,
    req: &mut Request,
) -> RequestIdValue {
    let id = match incoming {
        Some(v) if is_sane(v.as_bytes()) => v,
        Some(v) => {
            let fresh = generate();
            tracing::debug!(
                %header,
                len = v.len(),
                replaced_by = ?fresh,
                "request id: incoming value is not 1-128 visible ASCII bytes; generated a new one"
            );
            req.headers_mut().insert(header.clone(), fresh.clone());
            fresh
        }
        None => generate(),
    };
    let id = RequestIdValue(id);
    req.extensions_mut().insert(id.clone());
    id
}

/// Echo the id on the response. (Always inlined: one call less per request.)
#[inline(always)]
pub(crate) fn echo(header: &HeaderName, id: RequestIdValue, res: &mut Response) {
    res.headers_mut().insert(header.clone(), id.0);
}

thread_local! {
    // `ManuallyDrop`: a slot without drop glue needs no per-access destructor registration
    // check. Nothing leaks: a `Lent` guard always puts back what it found, which is `None` once
    // no request is being polled.
    static CURRENT: ManuallyDrop<Cell<Option<RequestIdValue>>> =
        const { ManuallyDrop::new(Cell::new(None)) };
}

/// The id of the request whose handler is running on this thread, when a [`RequestId`]
/// middleware is polling it: what inner middleware ([`Recovery`](crate::Recovery),
/// [`Timeout`](crate::Timeout)) put in their rare log lines, and what a handler can log without
/// holding the request. `None` outside a `RequestId` (and in tasks the handler spawns: they
/// are polled elsewhere; read [`RequestIdExt::request_id`] before spawning).
///
/// ```
/// use conduit_core::{Handler, HandlerExt, Request};
/// use conduit_middleware::{RequestId, request_id};
///
/// let app = (|_req: Request| async { request_id::current().unwrap().to_string() })
///     .with(RequestId::new());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let req = Request::get("/").header("x-request-id", "abc-123").body(Default::default()).unwrap();
/// let res = app.call(req).await;
/// let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
/// assert_eq!(body, "abc-123");
/// # });
/// assert!(request_id::current().is_none());
/// ```
pub fn current() -> Option<RequestIdValue> {
    CURRENT.with(|slot| {
        let id = slot.take();
        let copy = id.clone();
        slot.set(id);
        copy
    })
}

/// Moves an id into [`CURRENT`] for the guard's life and back out on drop (also on unwind),
/// restoring whatever an outer `RequestId` had lent: the slot and the thread's cell swap
/// contents, twice (while lent, the slot holds the outer id).
pub(crate) struct Lent<'a> {
    slot: &'a Cell<Option<RequestIdValue>>,
}

impl<'a> Lent<'a> {
    #[inline]
    pub(crate) fn new(slot: &'a mut Option<RequestIdValue>) -> Self {
        let slot = Cell::from_mut(slot);
        CURRENT.with(|c| c.swap(slot));
        Self { slot }
    }
}

impl Drop for Lent<'_> {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| c.swap(self.slot));
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestIdHandler`]: polls the handler with the id lent to the thread,
    /// then echoes the id on the response.
    struct WithRequestId<F> {
        #[pin]
        inner: F,
        id: Option<RequestIdValue>,
        header: HeaderName,
    }
}

impl<F: Future<Output = Response>> Future for WithRequestId<F> {
    type Output = Response;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        let mut out = {
            let _lent = Lent::new(this.id);
            this.inner.poll(cx)
        };
        if let Poll::Ready(res) = &mut out
            && let Some(id) = this.id.take()
        {
            echo(this.header, id, res);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanity() {
        assert!(is_sane(b"abc-123_~!"));
        assert!(is_sane(&[b'a'; 128]));
        assert!(!is_sane(&[b'a'; 129]));
        assert!(!is_sane(b""));
        assert!(!is_sane(b"a b"));
        assert!(!is_sane(b"a\tb"));
        assert!(!is_sane("é".as_bytes()));
    }

    #[test]
    fn generated_ids_are_32_lowercase_hex_digits() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(is_sane(id.as_bytes()));
            assert_eq!(id.len(), GENERATED);
            assert!(
                id.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{id:?}"
            );
        }
    }

    #[test]
    fn consecutive_ids_share_no_counter() {
        // A counter in any part of the id would make consecutive ids agree on most of their
        // leading digits, or differ by one; 128 random bits agree on about 2 of 32 digits.
        let ids: Vec<u128> = (0..10_000)
            .map(|_| u128::from_str_radix(generate().to_str().unwrap(), 16).unwrap())
            .collect();
        let mut same_digits = 0u32;
        for w in ids.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert_ne!(b.wrapping_sub(a), 1, "{a:032x} then {b:032x}");
            same_digits += (0..32)
                .filter(|i| (a >> (4 * i)) & 0xf == (b >> (4 * i)) & 0xf)
                .count() as u32;
            // Neither 64-bit half counts up.
            assert_ne!((b >> 64).wrapping_sub(a >> 64), 1);
            assert_ne!((b as u64).wrapping_sub(a as u64), 1);
        }
        let mean = f64::from(same_digits) / (ids.len() - 1) as f64;
        assert!(
            (1.5..2.5).contains(&mean),
            "digits shared on average: {mean}"
        );
        // Every bit position takes both values, in about half the ids.
        for bit in 0..128 {
            let ones = ids.iter().filter(|v| (*v >> bit) & 1 == 1).count();
            assert!((4_500..5_500).contains(&ones), "bit {bit}: {ones} of 10000");
        }
    }

    #[test]
    fn hex_digits() {
        let all: Vec<u8> = (0..16).map(hex_digit).collect();
        assert_eq!(all, b"0123456789abcdef");
    }

    #[test]
    fn ids_cut_across_chunks_stay_distinct() {
        // Enough ids to span several per-thread chunks, kept alive while new ones are cut.
        let ids: Vec<HeaderValue> = (0..4 * CHUNK / GENERATED).map(|_| generate()).collect();
        let unique: std::collections::HashSet<&[u8]> = ids.iter().map(|v| v.as_bytes()).collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            assert!(is_sane(id.as_bytes()));
            assert_eq!(id.len(), GENERATED);
        }
    }
}
