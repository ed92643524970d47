//! [`RequestExt`]: reading path parameters (as text or typed), the query, headers, router
//! state and the body of a [`Request`], with optional validation.
//!
//! Every helper fails with an [`Error`] that carries the right status for the client's fault
//! (400, 413, 415, 422) and is logged when it becomes a response, so a handler can use `?` or
//! return the `Result` as is.
//!
//! | helper | fails with |
//! | --- | --- |
//! | [`path`](RequestExt::path) | 400 naming the path parameter that does not fit `T` |
//! | [`query`](RequestExt::query) | 400 if the query string does not fit `T` (naming the parameter) |
//! | [`state`](RequestExt::state) | 500 if no [`Router::state`](crate::Router::state) of type `T` |
//! | [`bytes`](RequestExt::bytes), [`bytes_limited`](RequestExt::bytes_limited) | 413 over the limit (the server's [`BodyLimit`], else [`DEFAULT_BODY_LIMIT`]), 400 (or the body's own status) if reading fails |
//! | [`text`](RequestExt::text) | as `bytes`, and 400 if not UTF-8 |
//! | [`json`](RequestExt::json) | as `bytes`, 415 unless `Content-Type` is `application/json` or `application/*+json`, 400 for malformed JSON, 422 if the JSON does not fit `T` |
//! | [`form`](RequestExt::form) | as `bytes`, 415 unless `Content-Type` is `application/x-www-form-urlencoded`, 422 if the form does not fit `T` |
//! | [`valid_json`](RequestExt::valid_json), [`valid_form`](RequestExt::valid_form), [`valid_query`](RequestExt::valid_query) | as `json`, `form`, `query`, and 422 listing every field the app's [`Validate`] refuses |
//! | [`read_json`](RequestExt::read_json), [`read_form`](RequestExt::read_form) | as `json` and `form`, leaving the request (headers, state, parameters) in place |
//! | `typed_header`, `typed_header_opt` (feature `typed-headers`) | 400 naming the header when it is missing (for `typed_header`) or malformed |
//!
//! Every failure is an [`Error`] carrying its [`Problem`](crate::Problem): plain text unless the
//! app installs an [`ErrorRenderer`](crate::ErrorRenderer), RFC 9457 problem+json with it. A
//! 422 lists the invalid fields by JSON pointer (`errors: [{"pointer": "/items/0/qty",
//! "detail": ...}]`); a bad path or query parameter or header is named in the same member
//! (`{"parameter": "id", ...}`, `{"header": "authorization", ...}`).
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

use crate::validate::{FieldError, Validate, error_segments, pointer, unprocessable};
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
/// | [`query`](Self::query) | 400 if the query string does not fit `T` (naming the parameter) |
/// | [`state`](Self::state) | 500 if no [`Router::state`](crate::Router::state) of type `T` |
/// | [`bytes`](Self::bytes), [`bytes_limited`](Self::bytes_limited) | 413 over the limit (the server's [`BodyLimit`], else [`DEFAULT_BODY_LIMIT`]), 400 (or the body's own status) if reading fails |
/// | [`text`](Self::text) | as `bytes`, and 400 if not UTF-8 |
/// | [`json`](Self::json) | as `bytes`, 415 unless `Content-Type` is `application/json` or `application/*+json`, 400 for malformed JSON, 422 if the JSON does not fit `T` |
/// | [`form`](Self::form) | as `bytes`, 415 unless `Content-Type` is `application/x-www-form-urlencoded`, 422 if the form does not fit `T` |
/// | [`path`](Self::path) | 400 naming the path parameter that does not fit `T` |
/// | [`valid_json`](Self::valid_json), [`valid_form`](Self::valid_form), [`valid_query`](Self::valid_query) | as `json`, `form`, `query`, and 422 listing every field the app's [`Validate`] refuses |
/// | [`read_json`](Self::read_json), [`read_form`](Self::read_form) | as `json` and `form`, leaving the request in place |
pub trait RequestExt: sealed::Sealed + Sized {
    /// The percent-decoded value of the path parameter `name`, if the route has one.
    fn param(&self, name: &str) -> Option<&str>;

    /// All path parameters of the matched route (empty if it has none).
    fn params(&self) -> &PathParams;

    /// The connection the request arrived on (peer and local address, TLS ALPN and SNI), as
    /// an owned copy (a few words and, for TLS, an `Arc` count); `None` for a request the
    /// server did not read.
    ///
    /// A plain `ConnectInfo` extension comes first: one inserted by hand (a test), by a
    /// middleware that knows better (a PROXY-protocol peer), or by a request carried to
    /// another task. Otherwise it is the connection of the request the current task is serving:
    /// the server keeps it beside the request, not in its extensions, so that an app that
    /// never asks pays nothing for it (see "The request's context" in ARCHITECTURE.md). It is
    /// current while the handler (and the middleware around it) runs: its call and every poll
    /// of its future. A task the handler spawns, or a streamed response body polled after the
    /// handler returned, reads it in the handler and takes the copy along, or inserts it
    /// first: `if let Some(info) = req.connect_info() { req.extensions_mut().insert(info); }`.
    fn connect_info(&self) -> Option<ConnectInfo>;

    /// The template of the route that matched (`/users/{id}`), set by the
    /// [`Router`](crate::Router) around the route's handler (see [`MatchedPath`]); `None`
    /// outside a router. An owned copy (an `Arc` count).
    ///
    /// Like [`connect_info`](Self::connect_info), the router keeps it beside the request,
    /// visible to the code that runs on the request's behalf in the task that serves it; a
    /// plain `MatchedPath` extension (a request carried to another task) is the fallback.
    fn matched_path(&self) -> Option<MatchedPath>;

    /// The path parameters deserialized into `T`: a struct or map (by name), a tuple (in
    /// route order), or a single value when the route has one parameter. Each value is
    /// parsed from its text (`u64`, `bool`, a unit-variant enum, a newtype, ...).
    ///
    /// Fails with 400 Bad Request naming the parameter (the problem's
    /// `errors: [{"parameter", "detail"}]`). A route whose parameters do not fit `T` at all
    /// (a tuple of the wrong length) is a server bug: 500.
    ///
    /// ```
    /// use conduit_core::{Handler, Request, RequestExt, Router, get};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct Item { team: String, id: u64 }
    ///
    /// let app = Router::new()
    ///     .route("/teams/{team}/items/{id}", get(|req: Request| async move {
    ///         let Item { team, id } = req.path()?;
    ///         Ok::<_, conduit_core::Error>(format!("{team} #{id}"))
    ///     }))
    ///     .route("/n/{n}", get(|req: Request| async move {
    ///         req.path::<u8>().map(|n| (n * 2).to_string())
    ///     }));
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let res = app.call(Request::get("/teams/red/items/7").body(Default::default()).unwrap()).await;
    /// assert_eq!(res.body().as_bytes(), Some(&b"red #7"[..]));
    /// let res = app.call(Request::get("/n/300").body(Default::default()).unwrap()).await;
    /// assert_eq!(res.status(), 400);
    /// assert_eq!(res.body().as_bytes(), Some(&b"Invalid path parameter `n`: `300` is not a valid u8"[..]));
    /// # });
    /// ```
    fn path<T: DeserializeOwned>(&self) -> Result<T, Error>;

    /// Deserialize the query string (`?a=1&b=x`; none is the same as empty) into `T`.
    ///
    /// Fails with 400 Bad Request naming the problem (and, in the problem, the parameter:
    /// `errors: [{"parameter", "detail"}]`).
    fn query<T: DeserializeOwned>(&self) -> Result<T, Error>;

    /// [`query`](Self::query), then the app's [`Validate`] checks: their failures are a 422
    /// listing every invalid parameter by pointer (`/page`).
    fn valid_query<T: DeserializeOwned + Validate>(&self) -> Result<T, Error> {
        self.query::<T>()?.validated()
    }

    /// The header `H` (a [`headers::Header`](::headers::Header), e.g. `headers::Authorization<Bearer>`,
    /// `headers::IfMatch`, `headers::UserAgent`), parsed. Feature `typed-headers`.
    ///
    /// Fails with 400 Bad Request naming the header when it is missing or malformed (the
    /// problem's `errors: [{"header", "detail"}]`); see
    /// [`typed_header_opt`](Self::typed_header_opt) for an optional one.
    #[cfg(feature = "typed-headers")]
    fn typed_header<H: ::headers::Header>(&self) -> Result<H, Error> {
        self.typed_header_opt::<H>()?
            .ok_or_else(|| header_error(H::name(), "missing"))
    }

    /// The header `H` if the request has it, parsed; 400 Bad Request naming the header when
    /// it is there but malformed. Feature `typed-headers`.
    #[cfg(feature = "typed-headers")]
    fn typed_header_opt<H: ::headers::Header>(&self) -> Result<Option<H>, Error>;

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

    /// [`json`](Self::json), then the app's [`Validate`] checks: their failures are a 422
    /// listing every invalid field by JSON pointer.
    fn valid_json<T: DeserializeOwned + Validate>(
        self,
    ) -> impl Future<Output = Result<T, Error>> + Send {
        let json = self.json::<T>();
        async move { json.await?.validated() }
    }

    /// [`form`](Self::form), then the app's [`Validate`] checks (a 422 listing every invalid
    /// field by pointer, `/name`).
    fn valid_form<T: DeserializeOwned + Validate>(
        self,
    ) -> impl Future<Output = Result<T, Error>> + Send {
        let form = self.form::<T>();
        async move { form.await?.validated() }
    }

    /// [`json`](Self::json) without consuming the request: the body is taken out (an empty
    /// one is left) and the request's headers, extensions, path parameters and state stay, so
    /// a handler can read the body first and its state and parameters after, without cloning
    /// them out beforehand. The future does not borrow the request.
    ///
    /// ```
    /// use conduit_core::{Handler, Request, RequestExt, Router, put};
    /// use serde::Deserialize;
    ///
    /// #[derive(Clone)]
    /// struct Db(&'static str);
    /// #[derive(Deserialize)]
    /// struct Patch { title: String }
    ///
    /// let app = Router::new()
    ///     .route("/todos/{id}", put(|mut req: Request| async move {
    ///         let patch: Patch = req.read_json().await?;
    ///         let id: u64 = req.path()?;
    ///         let db = req.state::<Db>()?;
    ///         Ok::<_, conduit_core::Error>(format!("{} {id}: {}", db.0, patch.title))
    ///     }))
    ///     .state(Db("main"));
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let req = Request::put("/todos/3")
    ///     .header("content-type", "application/json")
    ///     .body(r#"{"title":"milk"}"#.into())
    ///     .unwrap();
    /// let res = app.call(req).await;
    /// assert_eq!(res.body().as_bytes(), Some(&b"main 3: milk"[..]));
    /// # });
    /// ```
    fn read_json<T: DeserializeOwned>(
        &mut self,
    ) -> impl Future<Output = Result<T, Error>> + Send + use<T, Self>;

    /// [`form`](Self::form) without consuming the request, like [`read_json`](Self::read_json).
    fn read_form<T: DeserializeOwned>(
        &mut self,
    ) -> impl Future<Output = Result<T, Error>> + Send + use<T, Self>;
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
    fn connect_info(&self) -> Option<ConnectInfo> {
        crate::context::connect_info(self)
    }

    #[inline]
    fn matched_path(&self) -> Option<MatchedPath> {
        crate::context::matched_path(self)
    }

    fn path<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let params = crate::path_de::unique(self.params());
        T::deserialize(crate::path_de::ParamsDeserializer { params }).map_err(|e| match e.param {
            Some(name) => {
                let err =
                    Error::bad_request(format!("Invalid path parameter `{name}`: {}", e.message));
                with_named_errors(err, "parameter", &name, &e.message)
            }
            // Not about one value: the route's parameters cannot fit `T` (a server bug).
            None => Error::internal(format!(
                "path parameters of `{}` do not fit `{}`: {}",
                self.matched_path()
                    .as_ref()
                    .map_or("?", MatchedPath::as_str),
                std::any::type_name::<T>(),
                e.message
            )),
        })
    }

    fn query<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let query = self.uri().query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map_err(|e| {
            let message = e.inner().to_string();
            let err = Error::bad_request(format!("Invalid query string: {message}"));
            let segments = error_segments(e.path(), &message);
            match segments.first() {
                Some(name) => with_named_errors(err, "parameter", name, &message),
                None => err,
            }
        })
    }

    #[cfg(feature = "typed-headers")]
    fn typed_header_opt<H: ::headers::Header>(&self) -> Result<Option<H>, Error> {
        let mut values = self.headers().get_all(H::name()).iter().peekable();
        if values.peek().is_none() {
            return Ok(None);
        }
        H::decode(&mut values)
            .map(Some)
            .map_err(|_| header_error(H::name(), "malformed"))
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

    fn json<T: DeserializeOwned>(mut self) -> impl Future<Output = Result<T, Error>> + Send {
        // The future owns the body alone; the rest of the request is dropped here.
        self.read_json()
    }

    fn form<T: DeserializeOwned>(mut self) -> impl Future<Output = Result<T, Error>> + Send {
        self.read_form()
    }

    fn read_json<T: DeserializeOwned>(
        &mut self,
    ) -> impl Future<Output = Result<T, Error>> + Send + use<T> {
        let accepted = if is_json(self) {
            Ok(take_body(self))
        } else {
            Err(unsupported_media_type("application/json"))
        };
        async move { parse_json(&accepted?.await?) }
    }

    fn read_form<T: DeserializeOwned>(
        &mut self,
    ) -> impl Future<Output = Result<T, Error>> + Send + use<T> {
        let accepted = if is_form(self) {
            Ok(take_body(self))
        } else {
            Err(unsupported_media_type("application/x-www-form-urlencoded"))
        };
        async move { parse_form(&accepted?.await?) }
    }
}

/// The body of `req`, read up to its limit, leaving an empty body in its place. The future
/// does not borrow the request.
fn take_body(req: &mut Request) -> impl Future<Output = Result<Bytes, Error>> + Send + use<> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    crate::to_bytes(std::mem::take(req.body_mut()), limit)
}

/// `bytes` as JSON: 400 if malformed, 422 (with the field's pointer) if it does not fit `T`.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    use serde_json::error::Category;
    let malformed = |e: &serde_json::Error| Error::bad_request(format!("Malformed JSON body: {e}"));
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        match inner.classify() {
            Category::Data => {
                let detail = without_position(inner);
                let pointer = pointer(error_segments(e.path(), &detail));
                unprocessable(
                    format!("JSON body does not match the expected shape: {inner}"),
                    &[FieldError { pointer, detail }],
                )
            }
            Category::Syntax | Category::Eof | Category::Io => malformed(inner),
        }
    })?;
    // Trailing characters after the value (what `serde_json::from_slice` checks too).
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// `bytes` as a form: 422 (with the field's pointer) if it does not fit `T`.
fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let detail = e.inner().to_string();
        let pointer = pointer(error_segments(e.path(), &detail));
        unprocessable(
            format!("Form body does not match the expected shape: {detail}"),
            &[FieldError { pointer, detail }],
        )
    })
}

/// serde_json's message without its ` at line L column C` (the pointer says where).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// `err` with `errors: [{<kind>: name, "detail": detail}]` in its problem.
fn with_named_errors(err: Error, kind: &str, name: &str, detail: &str) -> Error {
    let mut entry = serde_json::Map::new();
    entry.insert(kind.to_owned(), name.into());
    entry.insert("detail".to_owned(), detail.into());
    err.with_extension("errors", serde_json::Value::Array(vec![entry.into()]))
}

#[cfg(feature = "typed-headers")]
fn header_error(name: &http::HeaderName, what: &str) -> Error {
    let err = Error::bad_request(format!("Bad Request: {what} `{name}` header"));
    with_named_errors(err, "header", name.as_str(), what)
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

    fn errors_of(err: &Error) -> serde_json::Value {
        err.to_problem()
            .extension("errors")
            .cloned()
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn json_and_form_data_errors_carry_the_pointer() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Item {
            name: String,
            qty: u8,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        #[serde(deny_unknown_fields)]
        struct Order {
            items: Vec<Item>,
            note: Option<String>,
        }
        let json = Some("application/json");
        let table: &[(&str, &str, &str)] = &[
            (
                r#"{"items":[{"name":"a","qty":1},{"name":"b","qty":300}]}"#,
                "/items/1/qty",
                "invalid value: integer `300`, expected u8",
            ),
            (
                r#"{"items":[{"name":"a"}]}"#,
                "/items/0/qty",
                "missing field `qty`",
            ),
            (r#"{"note":"x"}"#, "/items", "missing field `items`"),
            (
                r#"{"items":[],"extra":1}"#,
                "/extra",
                "unknown field `extra`, expected `items` or `note`",
            ),
            (
                r#"{"items":"no"}"#,
                "/items",
                "invalid type: string \"no\", expected a sequence",
            ),
            (
                r#""str""#,
                "",
                "invalid type: string \"str\", expected struct Order",
            ),
        ];
        for (body, pointer, detail) in table {
            let err = with_body(json, *body).json::<Order>().await.unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(
                errors_of(&err),
                serde_json::json!([{"pointer": pointer, "detail": detail}]),
                "{body}"
            );
        }
        // Syntax errors stay 400, trailing characters included.
        for body in [r#"{"items":[}"#, r#"{"items":[]} x"#] {
            let err = with_body(json, body).json::<Order>().await.unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body}");
        }
        let form = Some("application/x-www-form-urlencoded");
        let err = with_body(form, "name=ana&age=old")
            .form::<User>()
            .await
            .unwrap_err();
        assert_eq!(errors_of(&err)[0]["pointer"], "/age");
        let err = with_body(form, "name=ana")
            .form::<User>()
            .await
            .unwrap_err();
        assert_eq!(errors_of(&err)[0]["pointer"], "/age");
        assert_eq!(
            err.message(),
            "Form body does not match the expected shape: missing field `age`"
        );
    }

    #[test]
    fn query_errors_name_the_parameter() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Q {
            page: u32,
        }
        let req = Request::get("/?page=x").body(Body::empty()).unwrap();
        let err = req.query::<Q>().unwrap_err();
        assert_eq!(
            err.message(),
            "Invalid query string: invalid digit found in string"
        );
        assert_eq!(
            errors_of(&err),
            serde_json::json!([{"parameter": "page", "detail": "invalid digit found in string"}])
        );
        let req = Request::get("/").body(Body::empty()).unwrap();
        let err = req.query::<Q>().unwrap_err();
        assert_eq!(errors_of(&err)[0]["parameter"], "page");
    }

    #[test]
    fn path_deserializes_structs_tuples_and_single_values() {
        fn req_with(params: &[(&str, &str)]) -> Request {
            let mut p = PathParams::new();
            for (k, v) in params {
                p.push(k, v);
            }
            let mut req = Request::get("/").body(Body::empty()).unwrap();
            req.extensions_mut().insert(p);
            req
        }
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Kind {
            Open,
            Done,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct P {
            team: String,
            id: u64,
            kind: Kind,
            flag: Option<bool>,
        }
        let req = req_with(&[
            ("team", "a b"),
            ("id", "7"),
            ("kind", "done"),
            ("flag", "true"),
        ]);
        assert_eq!(
            req.path::<P>().unwrap(),
            P {
                team: "a b".into(),
                id: 7,
                kind: Kind::Done,
                flag: Some(true)
            }
        );
        assert_eq!(req.path::<(String, u64, Kind, bool)>().unwrap().1, 7);
        assert_eq!(
            req.path::<std::collections::HashMap<String, String>>()
                .unwrap()["id"],
            "7"
        );
        assert_eq!(req_with(&[("id", "-3")]).path::<i32>().unwrap(), -3);
        assert_eq!(req_with(&[("id", "x")]).path::<String>().unwrap(), "x");
        // Nested routers may repeat a name: the innermost value wins.
        assert_eq!(
            req_with(&[("id", "1"), ("id", "2")]).path::<u8>().unwrap(),
            2
        );

        let bad: &[(&[(&str, &str)], &str)] = &[
            (&[("team", "a"), ("id", "x"), ("kind", "open")], "id"),
            (&[("team", "a"), ("id", "1"), ("kind", "late")], "kind"),
            (&[("team", "a"), ("kind", "open")], "id"),
            (
                &[
                    ("team", "a"),
                    ("id", "1"),
                    ("kind", "open"),
                    ("flag", "maybe"),
                ],
                "flag",
            ),
        ];
        for (params, name) in bad {
            let err = req_with(params).path::<P>().unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{params:?}");
            assert_eq!(errors_of(&err)[0]["parameter"], *name, "{params:?}");
            assert!(
                err.message().contains(&format!("`{name}`")),
                "{}",
                err.message()
            );
        }
        let err = req_with(&[("n", "256")]).path::<u8>().unwrap_err();
        assert_eq!(
            err.message(),
            "Invalid path parameter `n`: `256` is not a valid u8"
        );
        // The route cannot fit the type: a server bug, not the client's fault.
        let err = req_with(&[("a", "1"), ("b", "2")])
            .path::<u8>()
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let err = req_with(&[("a", "1")]).path::<(u8, u8)>().unwrap_err();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn read_json_leaves_the_request_in_place() {
        #[derive(Clone)]
        struct Db(u8);
        let mut req = with_body(Some("application/json"), r#"{"name":"ana","age":3}"#);
        req.extensions_mut().insert(Db(9));
        let user: User = req.read_json().await.unwrap();
        assert_eq!(user.age, 3);
        assert_eq!(req.state::<Db>().unwrap().0, 9);
        assert_eq!(req.headers()["content-type"], "application/json");
        let mut req = with_body(Some("text/plain"), "{}");
        assert_eq!(
            status(req.read_json::<User>().await),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let mut req = with_body(Some("application/x-www-form-urlencoded"), "name=a&age=1");
        let user: User = req.read_form().await.unwrap();
        assert_eq!(user.name, "a");
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
