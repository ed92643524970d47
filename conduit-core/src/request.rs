//! [`RequestExt`]: reading path parameters, the query, router state and the body of a
//! [`Request`].
//!
//! Every helper fails with an [`Error`] that carries the right status for the client's fault
//! (400, 413, 415, 422) and is logged when it becomes a response, so a handler can use `?` or
//! return the `Result` as is.
//!
//! | helper | fails with |
//! | --- | --- |
//! | [`query`](RequestExt::query) | 400 if the query string does not fit `T` |
//! | [`state`](RequestExt::state) | 500 if no [`Router::state`](crate::Router::state) of type `T` |
//! | [`bytes`](RequestExt::bytes), [`bytes_limited`](RequestExt::bytes_limited) | 413 over the limit (the server's [`BodyLimit`], else [`DEFAULT_BODY_LIMIT`]), 400 (or the body's own status) if reading fails |
//! | [`text`](RequestExt::text) | as `bytes`, and 400 if not UTF-8 |
//! | [`json`](RequestExt::json) | as `bytes`, 415 unless `Content-Type` is `application/json` or `application/*+json`, 400 for malformed JSON, 422 if the JSON does not fit `T` |
//! | [`form`](RequestExt::form) | as `bytes`, 415 unless `Content-Type` is `application/x-www-form-urlencoded`, 422 if the form does not fit `T` |
//!
//! ```
//! use conduit_core::{Handler, Json, Request, RequestExt, Router, post};
//! use conduit_core::http::StatusCode;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Page { page: u32 }
//!
//! #[derive(Deserialize, serde::Serialize)]
//! struct NewUser { name: String }
//!
//! let app = Router::new().route("/teams/{team}/users", post(|req: Request| async move {
//!     let team = req.param("team").unwrap_or_default().to_owned();
//!     let Page { page } = req.query()?;
//!     let user: NewUser = req.json().await?;
//!     Ok::<_, conduit_core::Error>(format!("{} joins {team} (page {page})", user.name))
//! }));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let req = Request::post("/teams/red/users?page=2")
//!     .header("content-type", "application/json")
//!     .body(r#"{"name":"ana"}"#.into())
//!     .unwrap();
//! let res = app.call(req).await;
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, "ana joins red (page 2)");
//!
//! let req = Request::post("/teams/red/users?page=2")
//!     .header("content-type", "text/plain")
//!     .body(r#"{"name":"ana"}"#.into())
//!     .unwrap();
//! assert_eq!(app.call(req).await.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
//! # });
//! ```

use std::future::Future;

use bytes::Bytes;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::{ConnectInfo, Error, MatchedPath, PathParams, Request};

/// The most bytes the body helpers read when the request carries no [`BodyLimit`] (a request
/// not built by the server) and no [`bytes_limited`](RequestExt::bytes_limited) says otherwise:
/// 2 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The body limit the server already enforces on this request (`Config::max_body_bytes`), as a
/// request extension. The body helpers read up to it, so the server's setting is the one knob:
/// raising `max_body_bytes` raises what `req.json()` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

static NO_PARAMS: PathParams = PathParams::new();

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Request {}
}

/// Helpers to read a [`Request`]: path parameters, query, state and body.
///
/// Implemented for [`Request`] only. The body helpers consume the request and return a
/// `Send` future, so they can be awaited in any handler. Each fails with an [`Error`] whose
/// status names the client's fault:
///
/// | helper | fails with |
/// | --- | --- |
/// | [`query`](Self::query) | 400 if the query string does not fit `T` |
/// | [`state`](Self::state) | 500 if no [`Router::state`](crate::Router::state) of type `T` |
/// | [`bytes`](Self::bytes), [`bytes_limited`](Self::bytes_limited) | 413 over the limit (the server's [`BodyLimit`], else [`DEFAULT_BODY_LIMIT`]), 400 (or the body's own status) if reading fails |
/// | [`text`](Self::text) | as `bytes`, and 400 if not UTF-8 |
/// | [`json`](Self::json) | as `bytes`, 415 unless `Content-Type` is `application/json` or `application/*+json`, 400 for malformed JSON, 422 if the JSON does not fit `T` |
/// | [`form`](Self::form) | as `bytes`, 415 unless `Content-Type` is `application/x-www-form-urlencoded`, 422 if the form does not fit `T` |
pub trait RequestExt: sealed::Sealed + Sized {
    /// The percent-decoded value of the path parameter `name`, if the route has one.
    fn param(&self, name: &str) -> Option<&str>;

    /// All path parameters of the matched route (empty if it has none).
    fn params(&self) -> &PathParams;

    /// The connection the request arrived on (peer and local address, TLS ALPN and SNI), put
    /// in every request by the server; `None` for a request the server did not read.
    fn connect_info(&self) -> Option<&ConnectInfo>;

    /// The template of the route that matched (`/users/{id}`), set by the
    /// [`Router`](crate::Router) before it calls the route's handler (see [`MatchedPath`]);
    /// `None` outside a router.
    fn matched_path(&self) -> Option<&str>;

    /// Deserialize the query string (`?a=1&b=x`; none is the same as empty) into `T`.
    ///
    /// Fails with 400 Bad Request naming the problem.
    fn query<T: DeserializeOwned>(&self) -> Result<T, Error>;

    /// The value of type `T` registered with [`Router::state`](crate::Router::state).
    ///
    /// Fails with 500 Internal Server Error (a server bug, logged with the type's name; the
    /// client sees a generic message) if no such state is registered.
    fn state<T: Clone + Send + Sync + 'static>(&self) -> Result<&T, Error>;

    /// The whole body, up to the request's [`BodyLimit`] (set by the server from
    /// `Config::max_body_bytes`), else [`DEFAULT_BODY_LIMIT`] bytes (413 Payload Too Large beyond).
    fn bytes(self) -> impl Future<Output = Result<Bytes, Error>> + Send;

    /// The whole body, up to `limit` bytes (413 Payload Too Large beyond).
    fn bytes_limited(self, limit: usize) -> impl Future<Output = Result<Bytes, Error>> + Send;

    /// The body as UTF-8 text (400 Bad Request if it is not UTF-8).
    fn text(self) -> impl Future<Output = Result<String, Error>> + Send;

    /// The body as JSON, deserialized into `T`.
    ///
    /// The `Content-Type` must be `application/json` or `application/*+json` (parameters such
    /// as `charset` allowed), else 415 Unsupported Media Type. Malformed or truncated JSON is
    /// 400 Bad Request; well-formed JSON that does not fit `T` (missing field, wrong type) is
    /// 422 Unprocessable Entity.
    fn json<T: DeserializeOwned>(self) -> impl Future<Output = Result<T, Error>> + Send;

    /// The body as an HTML form (`application/x-www-form-urlencoded`), deserialized into `T`.
    ///
    /// Any other `Content-Type` is 415 Unsupported Media Type. A form that does not fit `T` is
    /// 422 Unprocessable Entity (like JSON data errors: any byte string parses as a form, so
    /// every failure is about the data).
    fn form<T: DeserializeOwned>(self) -> impl Future<Output = Result<T, Error>> + Send;
}

impl RequestExt for Request {
    #[inline]
    fn param(&self, name: &str) -> Option<&str> {
        self.extensions().get::<PathParams>()?.get(name)
    }

    #[inline]
    fn params(&self) -> &PathParams {
        self.extensions().get::<PathParams>().unwrap_or(&NO_PARAMS)
    }

    #[inline]
    fn connect_info(&self) -> Option<&ConnectInfo> {
        self.extensions().get::<ConnectInfo>()
    }

    #[inline]
    fn matched_path(&self) -> Option<&str> {
        self.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
    }

    fn query<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_urlencoded::from_str(self.uri().query().unwrap_or(""))
            .map_err(|e| Error::bad_request(format!("Invalid query string: {e}")))
    }

    fn state<T: Clone + Send + Sync + 'static>(&self) -> Result<&T, Error> {
        self.extensions().get::<T>().ok_or_else(|| {
            Error::internal(format!(
                "state of type `{}` is not registered with Router::state",
                std::any::type_name::<T>()
            ))
        })
    }

    fn bytes(self) -> impl Future<Output = Result<Bytes, Error>> + Send {
        let limit = self
            .extensions()
            .get::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        self.bytes_limited(limit)
    }

    fn bytes_limited(self, limit: usize) -> impl Future<Output = Result<Bytes, Error>> + Send {
        crate::to_bytes(self.into_body(), limit)
    }

    fn text(self) -> impl Future<Output = Result<String, Error>> + Send {
        let bytes = self.bytes();
        async move {
            String::from_utf8(Vec::from(bytes.await?))
                .map_err(|e| Error::bad_request("Request body is not valid UTF-8").with_source(e))
        }
    }

    fn json<T: DeserializeOwned>(self) -> impl Future<Output = Result<T, Error>> + Send {
        let accepted = if is_json(&self) {
            Ok(self.bytes())
        } else {
            Err(unsupported_media_type("application/json"))
        };
        async move {
            let bytes = accepted?.await?;
            serde_json::from_slice(&bytes).map_err(|e| {
                use serde_json::error::Category;
                match e.classify() {
                    Category::Data => Error::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("JSON body does not match the expected shape: {e}"),
                    ),
                    Category::Syntax | Category::Eof | Category::Io => {
                        Error::bad_request(format!("Malformed JSON body: {e}"))
                    }
                }
            })
        }
    }

    fn form<T: DeserializeOwned>(self) -> impl Future<Output = Result<T, Error>> + Send {
        let accepted = if is_form(&self) {
            Ok(self.bytes())
        } else {
            Err(unsupported_media_type("application/x-www-form-urlencoded"))
        };
        async move {
            let bytes = accepted?.await?;
            serde_urlencoded::from_bytes(&bytes).map_err(|e| {
                Error::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("Form body does not match the expected shape: {e}"),
                )
            })
        }
    }
}

fn unsupported_media_type(expected: &str) -> Error {
    Error::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Expected a request with `Content-Type: {expected}`"),
    )
}

/// The `type/subtype` of the request's `Content-Type`, without parameters.
fn media_type(req: &Request) -> Option<(&str, &str)> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim();
    let (ty, subtype) = essence.split_once('/')?;
    Some((ty.trim(), subtype.trim()))
}

fn is_json(req: &Request) -> bool {
    let Some((ty, subtype)) = media_type(req) else {
        return false;
    };
    let sub = subtype.as_bytes();
    ty.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || (sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case(b"+json")))
}

fn is_form(req: &Request) -> bool {
    media_type(req).is_some_and(|(ty, subtype)| {
        ty.eq_ignore_ascii_case("application")
            && subtype.eq_ignore_ascii_case("x-www-form-urlencoded")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Body;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct User {
        name: String,
        age: u8,
    }

    fn with_body(content_type: Option<&str>, body: impl Into<Body>) -> Request {
        let mut builder = Request::post("/");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(body.into()).unwrap()
    }

    fn status<T: std::fmt::Debug>(r: Result<T, Error>) -> StatusCode {
        r.unwrap_err().status()
    }

    #[test]
    fn params_without_router_are_empty() {
        let req = Request::get("/").body(Body::empty()).unwrap();
        assert!(req.params().is_empty());
        assert_eq!(req.param("id"), None);
        let mut req = req;
        let mut p = PathParams::new();
        p.push("id", "7");
        req.extensions_mut().insert(p);
        assert_eq!(req.param("id"), Some("7"));
        assert_eq!(req.params().len(), 1);
    }

    #[test]
    fn query() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Q {
            page: u32,
            q: Option<String>,
        }
        let req = Request::get("/?page=3&q=a%20b+c")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            req.query::<Q>().unwrap(),
            Q {
                page: 3,
                q: Some("a b c".into())
            }
        );
        let req = Request::get("/").body(Body::empty()).unwrap();
        let err = req.query::<Q>().unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.message().contains("page"), "{}", err.message());
        let req = Request::get("/?page=x").body(Body::empty()).unwrap();
        assert_eq!(status(req.query::<Q>()), StatusCode::BAD_REQUEST);
        #[derive(Debug, Deserialize)]
        struct Opt {
            #[allow(dead_code)]
            page: Option<u32>,
        }
        assert!(
            Request::get("/")
                .body(Body::empty())
                .unwrap()
                .query::<Opt>()
                .is_ok()
        );
    }

    #[test]
    fn state() {
        #[derive(Clone, Debug, PartialEq)]
        struct Db(u8);
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        let err = req.state::<Db>().unwrap_err();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            err.to_string()
                .contains("Db` is not registered with Router::state"),
            "{err}"
        );
        req.extensions_mut().insert(Db(1));
        assert_eq!(req.state::<Db>().unwrap(), &Db(1));
    }

    #[tokio::test]
    async fn bytes_and_limits() {
        assert_eq!(with_body(None, "abc").bytes().await.unwrap(), "abc");
        assert_eq!(
            with_body(None, "abcd").bytes_limited(4).await.unwrap(),
            "abcd"
        );
        assert_eq!(
            status(with_body(None, "abcde").bytes_limited(4).await),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let big = vec![b'a'; DEFAULT_BODY_LIMIT + 1];
        assert_eq!(
            status(with_body(None, big).bytes().await),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // A stream without a declared size is cut off at the limit too.
        let chunks = Body::new(http_body_util::StreamBody::new(ChunkStream(3)));
        assert_eq!(
            status(with_body(None, chunks).bytes_limited(10).await),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let chunks = Body::new(http_body_util::StreamBody::new(ChunkStream(2)));
        assert_eq!(
            with_body(None, chunks).bytes_limited(10).await.unwrap(),
            "xxxxxxxx"
        );
    }

    /// `n` frames of 4 bytes, with no size hint.
    struct ChunkStream(usize);
    impl futures_core::Stream for ChunkStream {
        type Item = Result<http_body::Frame<Bytes>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 == 0 {
                return std::task::Poll::Ready(None);
            }
            self.0 -= 1;
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                b"xxxx",
            )))))
        }
    }

    #[tokio::test]
    async fn text() {
        assert_eq!(with_body(None, "héllo").text().await.unwrap(), "héllo");
        assert_eq!(
            status(with_body(None, vec![0xff, 0xfe]).text().await),
            StatusCode::BAD_REQUEST
        );
        let big = vec![b'a'; DEFAULT_BODY_LIMIT + 1];
        assert_eq!(
            status(with_body(None, big).text().await),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn json() {
        let ok = r#"{"name":"ana","age":30}"#;
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/ld+json",
        ] {
            let user: User = with_body(Some(ct), ok).json().await.unwrap();
            assert_eq!(
                user,
                User {
                    name: "ana".into(),
                    age: 30
                },
                "{ct}"
            );
        }
        for ct in [
            None,
            Some("text/plain"),
            Some("application/jsonx"),
            Some("application/+json"),
            Some("json"),
        ] {
            assert_eq!(
                status(with_body(ct, ok).json::<User>().await),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{ct:?}"
            );
        }
        let json = Some("application/json");
        assert_eq!(
            status(with_body(json, r#"{"name":"#).json::<User>().await),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(with_body(json, "{nope}").json::<User>().await),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(with_body(json, "").json::<User>().await),
            StatusCode::BAD_REQUEST
        );
        let err = with_body(json, r#"{"name":"ana"}"#)
            .json::<User>()
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.message().contains("missing field `age`"),
            "{}",
            err.message()
        );
        assert_eq!(
            status(
                with_body(json, r#"{"name":"ana","age":300}"#)
                    .json::<User>()
                    .await
            ),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let big = format!(r#"{{"name":"{}","age":1}}"#, "a".repeat(DEFAULT_BODY_LIMIT));
        assert_eq!(
            status(with_body(json, big).json::<User>().await),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn form() {
        let form = Some("application/x-www-form-urlencoded");
        let user: User = with_body(form, "name=ana+b&age=30").form().await.unwrap();
        assert_eq!(
            user,
            User {
                name: "ana b".into(),
                age: 30
            }
        );
        let user: User = with_body(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            "age=1&name=x",
        )
        .form()
        .await
        .unwrap();
        assert_eq!(user.age, 1);
        assert_eq!(
            status(with_body(None, "name=a&age=1").form::<User>().await),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            status(
                with_body(Some("multipart/form-data"), "x")
                    .form::<User>()
                    .await
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            status(with_body(form, "name=ana").form::<User>().await),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(with_body(form, "name=ana&age=old").form::<User>().await),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let big = vec![b'a'; DEFAULT_BODY_LIMIT + 1];
        assert_eq!(
            status(with_body(form, big).form::<User>().await),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn body_futures_are_send_and_static() {
        fn assert_send_static<F: Future + Send + 'static>(f: F) -> F {
            f
        }
        let fut = assert_send_static(with_body(Some("application/json"), "1").json::<u32>());
        assert_eq!(fut.await.unwrap(), 1);
    }
}
