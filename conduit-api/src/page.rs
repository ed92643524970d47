//! Cursor pagination: [`Pagination`] reads a page request from the query (`?cursor=…&limit=…`),
//! [`Page`] answers it with the items, RFC 8288 `Link` headers (`rel="next"`, `rel="prev"`)
//! and the same links in the body.
//!
//! Cursors are opaque and tamper-evident: a cursor is the app's key (any serde value, such as
//! the last id of a page) and a direction, signed with HMAC-SHA256 under a key the app supplies
//! and bound to the route it was made for. A forged, altered, truncated or foreign cursor is a
//! **400**; so is a `limit` that is not a whole number from 1 to the maximum (never clamped).
//!
//! It is made for keyset pagination: fetch [`PageRequest::fetch_limit`] rows (one more than the
//! page, to learn whether there are more) in the direction of the cursor, and hand them to
//! [`PageRequest::page`], which trims, orders and links them.
//!
//! ```
//! use conduit_api::{Cursor, Page, Pagination};
//! use conduit_core::{Handler, Request, Router, get};
//!
//! // Items are the numbers 1..=100, paged by value.
//! async fn numbers(req: Request) -> Result<Page<u32>, conduit_core::Error> {
//!     let pagination = Pagination::new(b"an app secret of enough bytes!!!").default_limit(10);
//!     let page = pagination.request::<u32>(&req)?;
//!     let n = page.fetch_limit() as u32;
//!     let rows: Vec<u32> = match page.cursor() {
//!         None => (1..=100).take(n as usize).collect(),
//!         Some(Cursor::After(k)) => (k + 1..=100).take(n as usize).collect(),
//!         Some(Cursor::Before(k)) => (1..*k).rev().take(n as usize).collect(),
//!     };
//!     Ok(page.page(rows, |n| *n))
//! }
//!
//! let app = Router::new().route("/numbers", get(numbers));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/numbers").body(Default::default()).unwrap()).await;
//! let link = res.headers()["link"].to_str().unwrap().to_owned();
//! assert!(link.starts_with("</numbers?cursor=") && link.ends_with(r#">; rel="next""#));
//! let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//! let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(body["items"], serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
//!
//! let res = app.call(Request::get("/numbers?cursor=forged").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), 400);
//! let res = app.call(Request::get("/numbers?limit=101").body(Default::default()).unwrap()).await;
//! assert_eq!(res.status(), 400);
//! # });
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use conduit_core::http::{HeaderValue, header};
use conduit_core::{
    Body, BoxError, Error, IntoResponse, OriginalUri, Request, RequestExt, Response,
};
use conduit_stream::JsonArray;
use futures_core::Stream;
use hmac::{Hmac, Mac};
use http_body::Frame;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

type HmacSha256 = Hmac<Sha256>;

/// The bytes of the HMAC-SHA256 tag kept in a cursor (128 bits: forging one is hopeless).
const TAG_LEN: usize = 16;
/// The longest cursor accepted, in characters; a longer one is a 400.
pub const MAX_CURSOR_LEN: usize = 1024;
/// The page size when the request names none, unless set with [`Pagination::default_limit`].
pub const DEFAULT_LIMIT: usize = 20;
/// The largest page size a request may ask for, unless set with [`Pagination::max_limit`].
pub const DEFAULT_MAX_LIMIT: usize = 100;

/// The pagination settings of an app: the cursor signing key, the default and the maximum
/// page size. Cheap to clone (share it as router state).
#[derive(Clone)]
pub struct Pagination {
    key: Arc<[u8]>,
    default_limit: usize,
    max_limit: usize,
}

impl fmt::Debug for Pagination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pagination")
            .field("key", &"<secret>")
            .field("default_limit", &self.default_limit)
            .field("max_limit", &self.max_limit)
            .finish()
    }
}

impl Pagination {
    /// Cursors signed with `key` (keep it secret and stable across restarts and instances,
    /// or cursors handed out earlier stop working; 32 random bytes is a good key). The page
    /// size is [`DEFAULT_LIMIT`] by default, at most [`DEFAULT_MAX_LIMIT`].
    ///
    /// # Panics
    ///
    /// If `key` is empty.
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        let key = key.as_ref();
        assert!(
            !key.is_empty(),
            "conduit Pagination: the cursor key is empty"
        );
        Self {
            key: key.into(),
            default_limit: DEFAULT_LIMIT,
            max_limit: DEFAULT_MAX_LIMIT,
        }
    }

    /// The page size when the request has no `limit`.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 or over the maximum.
    pub fn default_limit(mut self, limit: usize) -> Self {
        assert!(
            limit >= 1 && limit <= self.max_limit,
            "conduit Pagination: default limit {limit} is not in 1..={}",
            self.max_limit
        );
        self.default_limit = limit;
        self
    }

    /// The largest `limit` a request may ask for (a larger one is a 400). Lowers the default
    /// to `limit` if it was above.
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    pub fn max_limit(mut self, limit: usize) -> Self {
        assert!(limit >= 1, "conduit Pagination: the maximum limit is 0");
        self.max_limit = limit;
        self.default_limit = self.default_limit.min(limit);
        self
    }

    /// The configured maximum page size.
    pub fn max(&self) -> usize {
        self.max_limit
    }

    /// The page `req` asks for: its `cursor` (verified and decoded into a key of type `K`) and
    /// `limit` query parameters. Other query parameters (filters) are kept in the links.
    ///
    /// Fails with 400 Bad Request for a cursor that is malformed, altered, signed with another
    /// key or made for another route, for a `limit` that is not a whole number from 1 to the
    /// maximum, and for a `cursor` or `limit` given twice.
    pub fn request<K: DeserializeOwned>(&self, req: &Request) -> Result<PageRequest<K>, Error> {
        let path = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().path(), |o| o.0.path())
            .to_owned();
        let scope = req
            .matched_path()
            .map_or_else(|| path.clone(), |m| m.as_str().to_owned());
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
                .map_err(|e| Error::bad_request(format!("Invalid query string: {e}")))?;
        let mut cursor = None;
        let mut limit = None;
        let mut kept = Vec::new();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "cursor" => &mut cursor,
                "limit" => &mut limit,
                _ => {
                    kept.push((name, value));
                    continue;
                }
            };
            if slot.replace(value).is_some() {
                return Err(Error::bad_request(format!(
                    "Query parameter `{name}` is given more than once"
                )));
            }
        }
        let limit_given = limit.is_some();
        let limit = match limit {
            None => self.default_limit,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=self.max_limit).contains(&n) => n,
                Ok(n) if n > self.max_limit => {
                    return Err(Error::bad_request(format!(
                        "Query parameter `limit` is {n}, over the maximum page size of {}",
                        self.max_limit
                    )));
                }
                _ => {
                    return Err(Error::bad_request(format!(
                        "Query parameter `limit` must be a whole number from 1 to {}",
                        self.max_limit
                    )));
                }
            },
        };
        let cursor = match cursor {
            None => None,
            Some(token) => Some(self.open(&scope, &token)?),
        };
        Ok(PageRequest {
            cursor,
            limit,
            limit_given,
            path,
            scope,
            kept,
            pagination: self.clone(),
        })
    }

    fn mac(&self, scope: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac
    }

    /// The signed token of `cursor` for the route `scope`.
    fn seal<K: Serialize>(&self, scope: &str, cursor: &Cursor<K>) -> String {
        let payload = match cursor {
            Cursor::After(k) => serde_json::to_vec(&("a", k)),
            Cursor::Before(k) => serde_json::to_vec(&("b", k)),
        }
        .expect("a cursor key serializes to JSON");
        let mut mac = self.mac(scope);
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        let mut sealed = payload;
        sealed.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// Verify and decode `token`, a cursor for the route `scope`.
    fn open<K: DeserializeOwned>(&self, scope: &str, token: &str) -> Result<Cursor<K>, Error> {
        let invalid = |why: &str| {
            tracing::debug!(cursor = token, why, "pagination cursor rejected");
            Error::bad_request("Query parameter `cursor` is not a valid cursor for this list")
        };
        if token.len() > MAX_CURSOR_LEN {
            return Err(invalid("too long"));
        }
        let sealed = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid("not base64url"))?;
        if sealed.len() <= TAG_LEN {
            return Err(invalid("too short"));
        }
        let (payload, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let mut mac = self.mac(scope);
        mac.update(payload);
        mac.verify_truncated_left(tag)
            .map_err(|_| invalid("bad signature"))?;
        let (direction, key): (String, K) =
            serde_json::from_slice(payload).map_err(|_| invalid("bad payload"))?;
        match direction.as_str() {
            "a" => Ok(Cursor::After(key)),
            "b" => Ok(Cursor::Before(key)),
            _ => Err(invalid("bad direction")),
        }
    }
}

/// Where a page starts: after or before the item with key `K`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor<K> {
    /// The items after `K` (ascending: `WHERE key > K ORDER BY key LIMIT n`): a `next` link.
    After(K),
    /// The items before `K` (descending: `WHERE key < K ORDER BY key DESC LIMIT n`): a `prev`
    /// link. [`PageRequest::page`] puts them back in ascending order.
    Before(K),
}

/// A verified page request: the cursor (none for the first page) and the page size. Made by
/// [`Pagination::request`].
pub struct PageRequest<K> {
    cursor: Option<Cursor<K>>,
    limit: usize,
    limit_given: bool,
    /// The path the links point to (the request's, as the client sent it).
    path: String,
    /// What cursors are bound to: the route template, else the path.
    scope: String,
    /// The query parameters other than `cursor` and `limit`, kept in the links.
    kept: Vec<(String, String)>,
    pagination: Pagination,
}

impl<K: fmt::Debug> fmt::Debug for PageRequest<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageRequest")
            .field("cursor", &self.cursor)
            .field("limit", &self.limit)
            .field("path", &self.path)
            .finish()
    }
}

impl<K> PageRequest<K> {
    /// The cursor, if the request has one (`None`: the first page).
    pub fn cursor(&self) -> Option<&Cursor<K>> {
        self.cursor.as_ref()
    }

    /// The page size.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many rows to fetch: one more than the page size, so [`page`](Self::page) can tell
    /// whether more follow.
    pub fn fetch_limit(&self) -> usize {
        self.limit + 1
    }
}

impl<K: Serialize + Clone> PageRequest<K> {
    /// The page of `rows`, fetched in the cursor's direction (ascending for none or
    /// [`Cursor::After`], descending for [`Cursor::Before`]), up to
    /// [`fetch_limit`](Self::fetch_limit) of them; `key` gives an item's key. The page holds
    /// at most [`limit`](Self::limit) items in ascending order, with a `next` link if items
    /// follow it and a `prev` link if items precede it.
    pub fn page<T>(self, mut rows: Vec<T>, key: impl Fn(&T) -> K) -> Page<T> {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        if matches!(self.cursor, Some(Cursor::Before(_))) {
            rows.reverse();
        }
        let first = rows.first().map(&key);
        let last = rows.last().map(&key);
        let links = self.links(first, last, more);
        Page { items: rows, links }
    }

    /// The links of a page whose first and last items have keys `first` and `last` (`None`
    /// for an empty page); `more` says whether items lie beyond it in the cursor's direction.
    /// For a page built another way, such as a [`StreamedPage`].
    pub fn links(&self, first: Option<K>, last: Option<K>, more: bool) -> PageLinks {
        let after = |last: Option<K>| more.then(|| last.map(Cursor::After)).flatten();
        let before = |first: Option<K>| more.then(|| first.map(Cursor::Before)).flatten();
        let (next, prev) = match (&self.cursor, first, last) {
            (None, _, last) => (after(last).map(|c| self.link(Some(&c))), None),
            // An empty page after `k`: the page before it ends with `k`, which no cursor
            // names; the client still has the links of the page it came from.
            (Some(Cursor::After(_)), None, _) => (None, None),
            (Some(Cursor::After(_)), Some(first), last) => (
                after(last).map(|c| self.link(Some(&c))),
                Some(self.link(Some(&Cursor::Before(first)))),
            ),
            // Nothing before `k`: the next page starts at `k`, the first item, so it is the
            // first page.
            (Some(Cursor::Before(_)), _, None) => (Some(self.link(None)), None),
            (Some(Cursor::Before(_)), first, Some(last)) => (
                Some(self.link(Some(&Cursor::After(last)))),
                before(first).map(|c| self.link(Some(&c))),
            ),
        };
        PageLinks { next, prev }
    }

    /// The URI (path and query) of the page at `cursor` (`None`: the first page).
    fn link(&self, cursor: Option<&Cursor<K>>) -> String {
        let mut query = form_query(&self.kept);
        if let Some(cursor) = cursor {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("cursor=");
            query.push_str(&self.pagination.seal(&self.scope, cursor));
        }
        if self.limit_given {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("limit=");
            query.push_str(&self.limit.to_string());
        }
        if query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{query}", self.path)
        }
    }
}

fn form_query(pairs: &[(String, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The links of a page: URIs (path and query, relative to the API's origin) of the next and
/// previous pages, absent at either end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PageLinks {
    /// The next page, if items follow this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The previous page, if items precede this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

impl PageLinks {
    /// The RFC 8288 `Link` header value (`<uri>; rel="next", <uri>; rel="prev"`), if any link.
    pub fn header_value(&self) -> Option<HeaderValue> {
        let parts: Vec<String> = [(&self.next, "next"), (&self.prev, "prev")]
            .into_iter()
            .filter_map(|(uri, rel)| uri.as_ref().map(|uri| format!("<{uri}>; rel=\"{rel}\"")))
            .collect();
        if parts.is_empty() {
            return None;
        }
        HeaderValue::from_str(&parts.join(", ")).ok()
    }
}

/// One page of a list: `{"items": [...], "links": {"next": "...", "prev": "..."}}` as
/// `application/json`, with the same links in a `Link` header (RFC 8288).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items, in ascending key order.
    pub items: Vec<T>,
    /// The neighbouring pages.
    pub links: PageLinks,
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self) {
            Ok(json) => page_response(Body::from(json), &self.links),
            Err(e) => Error::internal(e).into_response(),
        }
    }
}

/// A page's response: `body` as `application/json`, with the `Link` header of `links`.
fn page_response(body: Body, links: &PageLinks) -> Response {
    let mut res = Response::new(body);
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(link) = links.header_value() {
        headers.insert(header::LINK, link);
    }
    res
}

/// A page streamed item by item through [`JsonArray`]: the same body and headers as a
/// [`Page`], for pages too large to hold in memory. The links come first (they are in the
/// `Link` header, sent before the body), so the app works out the page's bounds before it
/// streams it (for keyset pagination, a query of the keys alone) and passes
/// [`PageRequest::links`].
///
/// The body is `{"items":[…],"links":{…}}`; an error from the stream aborts the response
/// (see [`JsonArray`]), so a client never takes a truncated page for a whole one.
///
/// ```
/// use conduit_api::{PageLinks, StreamedPage};
/// use conduit_core::IntoResponse;
///
/// let links = PageLinks { next: Some("/items?cursor=abc".into()), prev: None };
/// let items = (0..3).map(Ok::<_, std::convert::Infallible>);
/// let res = StreamedPage::new(tokio_stream::iter(items), links).into_response();
/// assert_eq!(res.headers()["link"], r#"</items?cursor=abc>; rel="next""#);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
/// assert_eq!(body, r#"{"items":[0,1,2],"links":{"next":"/items?cursor=abc"}}"#);
/// # });
/// ```
#[derive(Debug)]
pub struct StreamedPage<S> {
    items: JsonArray<S>,
    links: PageLinks,
}

impl<S> StreamedPage<S> {
    /// A page of the items of `stream` (`Result<T: Serialize, E>`), in order, with `links`.
    pub fn new(stream: S, links: PageLinks) -> Self {
        Self {
            items: JsonArray::new(stream),
            links,
        }
    }
}

impl<S, T, E> IntoResponse for StreamedPage<S>
where
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: Into<BoxError>,
{
    fn into_response(self) -> Response {
        let mut tail = b",\"links\":".to_vec();
        if let Err(e) = serde_json::to_writer(&mut tail, &self.links) {
            return Error::internal(e).into_response();
        }
        tail.push(b'}');
        let body = Enclosed {
            head: Some(Bytes::from_static(b"{\"items\":")),
            inner: self.items.into_body(),
            tail: Some(Bytes::from(tail)),
        };
        page_response(Body::new(body), &self.links)
    }
}

/// A body between two fixed buffers: `head`, the inner body's data, `tail`.
struct Enclosed {
    head: Option<Bytes>,
    inner: Body,
    tail: Option<Bytes>,
}

impl http_body::Body for Enclosed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if self.tail.is_some() {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(frame)) => return Poll::Ready(Some(frame)),
                Poll::Ready(None) => {}
            }
        }
        Poll::Ready(self.tail.take().map(|tail| Ok(Frame::data(tail))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.tail.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conduit_core::http::StatusCode;

    fn request(target: &str) -> Request {
        Request::get(target).body(Body::empty()).unwrap()
    }

    fn pages() -> Pagination {
        Pagination::new(b"unit test key")
            .default_limit(3)
            .max_limit(10)
    }

    /// The cursor in a link.
    fn cursor_of(link: &str) -> Cursor<u32> {
        let token = link
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("cursor="))
            .expect("a cursor");
        pages().open("/items", token).expect("a valid cursor")
    }

    #[test]
    fn first_page_links_next_only_when_more_follow() {
        let page = pages().request::<u32>(&request("/items")).unwrap();
        assert_eq!(page.limit(), 3);
        assert_eq!(page.fetch_limit(), 4);
        let page = page.page(vec![1, 2, 3, 4], |n| *n);
        assert_eq!(page.items, [1, 2, 3]);
        assert_eq!(page.links.prev, None);
        assert_eq!(
            cursor_of(page.links.next.as_deref().unwrap()),
            Cursor::After(3)
        );

        let page = pages().request::<u32>(&request("/items")).unwrap();
        let page = page.page(vec![1, 2, 3], |n| *n);
        assert_eq!(
            page.links,
            PageLinks::default(),
            "exactly one page: no links"
        );
        assert_eq!(page.links.header_value(), None);
    }

    #[test]
    fn pages_after_and_before_a_cursor() {
        let after = pages().seal("/items", &Cursor::After(3u32));
        let page = pages()
            .request::<u32>(&request(&format!("/items?cursor={after}")))
            .unwrap();
        assert_eq!(page.cursor(), Some(&Cursor::After(3)));
        let page = page.page(vec![4, 5], |n| *n);
        assert_eq!(page.links.next, None, "the last page");
        assert_eq!(
            cursor_of(page.links.prev.as_deref().unwrap()),
            Cursor::Before(4)
        );

        // Before: rows come newest first and are put back in order.
        let before = pages().seal("/items", &Cursor::Before(9u32));
        let page = pages()
            .request::<u32>(&request(&format!("/items?cursor={before}&limit=2")))
            .unwrap();
        let page = page.page(vec![8, 7, 6], |n| *n);
        assert_eq!(page.items, [7, 8]);
        assert_eq!(
            cursor_of(page.links.prev.as_deref().unwrap()),
            Cursor::Before(7)
        );
        let next = page.links.next.unwrap();
        assert_eq!(cursor_of(&next), Cursor::After(8));
        assert!(next.ends_with("&limit=2"), "{next}");
    }

    #[test]
    fn empty_pages() {
        // Nothing after 9: no links (the page before ends with 9, which no cursor names).
        let after = pages().seal("/items", &Cursor::After(9u32));
        let page = pages()
            .request::<u32>(&request(&format!("/items?cursor={after}")))
            .unwrap()
            .page(Vec::<u32>::new(), |n| *n);
        assert_eq!(page.links, PageLinks::default());
        // Nothing before 1: the next page is the first page.
        let before = pages().seal("/items", &Cursor::Before(1u32));
        let page = pages()
            .request::<u32>(&request(&format!("/items?q=a+b&cursor={before}")))
            .unwrap()
            .page(Vec::<u32>::new(), |n| *n);
        assert_eq!(page.links.next.as_deref(), Some("/items?q=a+b"));
        assert_eq!(page.links.prev, None);
    }

    #[test]
    fn cursors_are_bound_to_key_route_and_content() {
        let token = pages().seal("/items", &Cursor::After(5u32));
        assert_eq!(
            pages().open::<u32>("/items", &token).unwrap(),
            Cursor::After(5)
        );
        assert!(pages().open::<u32>("/other", &token).is_err());
        assert!(
            Pagination::new(b"other")
                .open::<u32>("/items", &token)
                .is_err()
        );
        // A valid signature over a key of another type is still refused, not misread.
        assert!(pages().open::<String>("/items", &token).is_err());
        let err = pages().open::<u32>("/items", "").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn limits() {
        let p = pages();
        for (query, want) in [("limit=1", Some(1)), ("limit=10", Some(10)), ("", Some(3))] {
            let got = p.request::<u32>(&request(&format!("/items?{query}"))).ok();
            assert_eq!(got.map(|r| r.limit()), want, "{query}");
        }
        for query in [
            "limit=11",
            "limit=0",
            "limit=+1",
            "limit=1.5",
            "limit=1&limit=1",
        ] {
            let err = p
                .request::<u32>(&request(&format!("/items?{query}")))
                .unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{query}");
        }
        assert_eq!(Pagination::new(b"k").max_limit(5).max(), 5);
    }

    #[test]
    #[should_panic(expected = "default limit 11 is not in 1..=10")]
    fn a_default_over_the_maximum_is_refused() {
        let _ = Pagination::new(b"k").max_limit(10).default_limit(11);
    }
}
