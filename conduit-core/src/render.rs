//! [`ErrorRenderer`]: one choice, for the whole app, of how the framework's errors look.
//!
//! Every error conduit writes — the router's 404 and 405, the body and request-data
//! rejections (400, 413, 415, 422), timeouts, rate limits, CORS refusals, static files' 4xx,
//! recovery's 500, readiness and draining 503s, the server's own 400s — is a plain-text
//! response that also carries a [`Problem`] (RFC 9457) describing it in its extensions. An
//! `ErrorRenderer` re-renders such responses where it is installed, and leaves every other
//! response alone:
//!
//! | renderer | an error becomes |
//! | --- | --- |
//! | [`text`](ErrorRenderer::text) | the plain-text body as written (the default without a renderer) |
//! | [`problem_json`](ErrorRenderer::problem_json) | `application/problem+json` |
//! | [`negotiate`](ErrorRenderer::negotiate) | problem+json when `Accept` names `application/problem+json` or `application/json` at least as highly as `text/plain` ([`headers::prefers_json`](crate::headers::prefers_json)), else plain text |
//! | [`custom`](ErrorRenderer::custom) | whatever the app's function makes of the [`Problem`] |
//!
//! Install it once: on the server (`Config::errors`, which reaches every response, the
//! server's own included), on a [`Router`](crate::Router::errors) (its routes, 404 and 405), or
//! around any handler as middleware (`handler.with(renderer)`). The innermost renderer wins:
//! it takes the problem out of the response once it has rendered it.
//!
//! The status, and the headers the error's response carries (`Allow`, `Retry-After`,
//! `RateLimit-*`, `WWW-Authenticate`, CORS headers, a request id, a 412's validators, a 416's
//! `Content-Range`), are kept; only the body and its `Content-Type`, `Content-Length` and
//! `Content-Encoding` change. A response to `HEAD` keeps its empty body. A successful response
//! costs one look into its (usually empty) extensions: no allocation.
//!
//! ```
//! use conduit_core::{ErrorRenderer, Handler, Request, Router, get};
//! use conduit_core::http::StatusCode;
//!
//! let app = Router::new()
//!     .route("/", get(|_req: Request| async { "hi" }))
//!     .errors(ErrorRenderer::negotiate());
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let req = Request::get("/missing").header("accept", "application/json").body(Default::default()).unwrap();
//! let res = app.call(req).await;
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! assert_eq!(res.headers()["content-type"], "application/problem+json");
//! let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, r#"{"type":"about:blank","title":"Not Found","status":404}"#);
//!
//! let res = app.call(Request::get("/missing").body(Default::default()).unwrap()).await;
//! assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
//! let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, "Not Found");
//! # });
//! ```
//!
//! A framework error built outside [`Error`](crate::Error) attaches its problem with
//! [`attach_problem`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use http::{HeaderValue, Method, header};

use crate::{Handler, Middleware, Problem, Request, Response, head_response};

type CustomFn = dyn Fn(Problem) -> Response + Send + Sync;

/// How the framework's errors are answered; see the [module docs](self).
#[derive(Clone)]
pub struct ErrorRenderer {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Text,
    ProblemJson,
    Negotiate,
    Custom(Arc<CustomFn>),
}

impl fmt::Debug for ErrorRenderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Text => "text",
            Kind::ProblemJson => "problem_json",
            Kind::Negotiate => "negotiate",
            Kind::Custom(_) => "custom",
        };
        f.debug_tuple("ErrorRenderer").field(&kind).finish()
    }
}

impl Default for ErrorRenderer {
    /// [`text`](Self::text).
    fn default() -> Self {
        Self::text()
    }
}

impl ErrorRenderer {
    /// Plain text, as the framework writes it (`text/plain; charset=utf-8`). Installing it
    /// only matters to keep an outer renderer from re-rendering.
    pub fn text() -> Self {
        Self { kind: Kind::Text }
    }

    /// RFC 9457 `application/problem+json` for every error.
    pub fn problem_json() -> Self {
        Self {
            kind: Kind::ProblemJson,
        }
    }

    /// problem+json for clients whose `Accept` names `application/problem+json` or
    /// `application/json` at least as highly as `text/plain`; plain text for the others
    /// (browsers, curl's `*/*`, no `Accept`). The response gets `Vary: Accept`.
    pub fn negotiate() -> Self {
        Self {
            kind: Kind::Negotiate,
        }
    }

    /// The app's own function from the error's [`Problem`] to a response. Headers of the
    /// framework's response (`Allow`, `Retry-After`, ...) that the function's response does
    /// not set are added to it, and so are the problem's own [`headers`](Problem::headers).
    ///
    /// ```
    /// use conduit_core::{ErrorRenderer, Handler, Html, IntoResponse, Request, Router};
    ///
    /// let app = Router::new().errors(ErrorRenderer::custom(|problem| {
    ///     let page = format!("<h1>{}</h1>", problem.title());
    ///     (problem.status(), Html(page)).into_response()
    /// }));
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let res = app.call(Request::get("/nope").body(Default::default()).unwrap()).await;
    /// assert_eq!(res.status(), 404);
    /// assert_eq!(res.body().as_bytes(), Some(&b"<h1>Not Found</h1>"[..]));
    /// # });
    /// ```
    pub fn custom<F>(render: F) -> Self
    where
        F: Fn(Problem) -> Response + Send + Sync + 'static,
    {
        Self {
            kind: Kind::Custom(Arc::new(render)),
        }
    }

    /// What this renderer will do with the response to `req`, decided before the request is
    /// handed on (the handler consumes it). For `text`, `problem_json` and `negotiate` this
    /// copies nothing; for `custom` it clones one `Arc`.
    #[inline]
    pub fn for_request<B>(&self, req: &http::Request<B>) -> Rendering {
        let format = match &self.kind {
            Kind::Text => Format::Text,
            Kind::ProblemJson => Format::Json { vary: false },
            Kind::Negotiate => {
                if crate::headers::prefers_json(req.headers()) {
                    Format::Json { vary: true }
                } else {
                    Format::TextVary
                }
            }
            Kind::Custom(f) => Format::Custom(f.clone()),
        };
        Rendering {
            format,
            head: req.method() == Method::HEAD,
        }
    }
}

/// An [`ErrorRenderer`]'s decision for one request; [`render`](Self::render) applies it to the
/// response.
pub struct Rendering {
    format: Format,
    head: bool,
}

enum Format {
    Text,
    /// Text, with `Vary: Accept` (a negotiated choice).
    TextVary,
    Json {
        vary: bool,
    },
    Custom(Arc<CustomFn>),
}

impl fmt::Debug for Rendering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.format {
            Format::Text => "text",
            Format::TextVary => "text (negotiated)",
            Format::Json { .. } => "problem_json",
            Format::Custom(_) => "custom",
        };
        f.debug_struct("Rendering")
            .field("format", &format)
            .field("head", &self.head)
            .finish()
    }
}

impl Rendering {
    /// Re-render `res` if it is a framework error (it carries a [`Problem`]); any other
    /// response is returned as it is.
    #[inline]
    pub fn render(self, mut res: Response) -> Response {
        if res.extensions().get::<Problem>().is_none() {
            return res;
        }
        let Some(problem) = res.extensions_mut().remove::<Problem>() else {
            return res;
        };
        self.render_problem(problem, res)
    }

    #[cold]
    fn render_problem(self, problem: Problem, res: Response) -> Response {
        let vary = matches!(self.format, Format::TextVary | Format::Json { vary: true });
        let mut out = match self.format {
            Format::Text | Format::TextVary => res,
            Format::Json { .. } => {
                let json = problem.to_json_response();
                let (mut parts, _) = res.into_parts();
                drop_body_headers(&mut parts.headers);
                let (json_parts, body) = json.into_parts();
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    json_parts.headers[header::CONTENT_TYPE].clone(),
                );
                Response::from_parts(parts, body)
            }
            Format::Custom(f) => {
                let (mut parts, _) = res.into_parts();
                drop_body_headers(&mut parts.headers);
                let extra = problem.headers().clone();
                let mut custom = f(problem);
                let headers = custom.headers_mut();
                for source in [&parts.headers, &extra] {
                    for name in source.keys() {
                        if !headers.contains_key(name) {
                            for value in source.get_all(name) {
                                headers.append(name.clone(), value.clone());
                            }
                        }
                    }
                }
                custom.extensions_mut().extend(parts.extensions);
                custom
            }
        };
        if vary {
            crate::headers::add_vary(out.headers_mut(), HeaderValue::from_static("accept"));
        }
        if self.head {
            out = head_response(out);
        }
        out
    }
}

/// Drop the headers that described the body being replaced.
fn drop_body_headers(headers: &mut http::HeaderMap) {
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
    ] {
        headers.remove(name);
    }
}

/// Mark `res` as a framework error described by `problem`, so an [`ErrorRenderer`] can
/// re-render it. The response's own body stays the plain-text rendering; the problem's
/// [`headers`](Problem::headers) should already be on the response.
///
/// ```
/// use conduit_core::{ErrorRenderer, IntoResponse, Problem, Request, attach_problem};
/// use conduit_core::http::StatusCode;
///
/// let mut res = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
/// attach_problem(&mut res, Problem::new(StatusCode::TOO_MANY_REQUESTS).with_detail("slow down"));
///
/// let req = Request::get("/").header("accept", "application/problem+json").body(conduit_core::Body::empty()).unwrap();
/// let res = ErrorRenderer::negotiate().for_request(&req).render(res);
/// assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(res.headers()["content-type"], "application/problem+json");
/// ```
pub fn attach_problem(res: &mut Response, problem: Problem) {
    res.extensions_mut().insert(problem);
}

/// A handler wrapped by an [`ErrorRenderer`] used as middleware (`handler.with(renderer)`).
#[derive(Clone, Debug)]
pub struct RenderErrors<H> {
    inner: H,
    renderer: ErrorRenderer,
}

impl<H: Handler> Middleware<H> for ErrorRenderer {
    type Output = RenderErrors<H>;

    fn wrap(&self, inner: H) -> Self::Output {
        RenderErrors {
            inner,
            renderer: self.clone(),
        }
    }
}

impl<H: Handler> Handler for RenderErrors<H> {
    fn call(&self, req: Request) -> impl Future<Output = Response> + Send + use<H> {
        let rendering = self.renderer.for_request(&req);
        let fut = self.inner.call(req);
        async move { rendering.render(fut.await) }
    }
}

impl<H> RenderErrors<H> {
    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, Error, IntoResponse};
    use http::{HeaderValue, StatusCode};

    fn req(method: &str, accept: Option<&str>) -> Request {
        let mut b = Request::builder().method(method).uri("/");
        if let Some(a) = accept {
            b = b.header(header::ACCEPT, a);
        }
        b.body(Body::empty()).unwrap()
    }

    fn error_response() -> Response {
        let mut res = Error::new(StatusCode::METHOD_NOT_ALLOWED, "no DELETE here")
            .with_header(header::ALLOW, HeaderValue::from_static("GET"))
            .with_extension("hint", "try GET")
            .into_response();
        res.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("abc"));
        res
    }

    #[test]
    fn success_is_untouched_by_every_renderer() {
        for r in [
            ErrorRenderer::text(),
            ErrorRenderer::problem_json(),
            ErrorRenderer::negotiate(),
            ErrorRenderer::custom(|_| StatusCode::IM_A_TEAPOT.into_response()),
        ] {
            let res = r
                .for_request(&req("GET", Some("application/json")))
                .render("ok".into_response());
            assert_eq!(res.status(), StatusCode::OK, "{r:?}");
            assert_eq!(res.body().as_bytes(), Some(&b"ok"[..]), "{r:?}");
            assert_eq!(res.headers().get(header::VARY), None, "{r:?}");
        }
    }

    #[test]
    fn text_keeps_the_bytes_and_takes_the_problem_out() {
        let res = ErrorRenderer::text()
            .for_request(&req("GET", None))
            .render(error_response());
        assert_eq!(res.body().as_bytes(), Some(&b"no DELETE here"[..]));
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        assert!(res.extensions().get::<Problem>().is_none());
        // An outer renderer now leaves it alone: the innermost wins.
        let res = ErrorRenderer::problem_json()
            .for_request(&req("GET", None))
            .render(res);
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    }

    #[test]
    fn problem_json_keeps_status_and_headers() {
        let res = ErrorRenderer::problem_json()
            .for_request(&req("DELETE", None))
            .render(error_response());
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(res.headers()["allow"], "GET");
        assert_eq!(res.headers()["x-request-id"], "abc");
        let body: serde_json::Value =
            serde_json::from_slice(res.body().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "about:blank", "title": "Method Not Allowed", "status": 405,
                "detail": "no DELETE here", "hint": "try GET",
            })
        );
    }

    #[test]
    fn head_stays_bodiless_with_the_json_length() {
        let res = ErrorRenderer::problem_json()
            .for_request(&req("HEAD", None))
            .render(error_response());
        assert_eq!(res.body().as_bytes(), Some(&b""[..]));
        let full = ErrorRenderer::problem_json()
            .for_request(&req("GET", None))
            .render(error_response());
        let len = full.body().as_bytes().unwrap().len();
        assert_eq!(res.headers()["content-length"], len.to_string());
    }

    #[test]
    fn custom_gets_the_problem_and_missing_headers_are_added() {
        let r = ErrorRenderer::custom(|p: Problem| {
            let mut res = format!("E{}: {}", p.status().as_u16(), p.text()).into_response();
            *res.status_mut() = p.status();
            res.headers_mut()
                .insert("x-request-id", HeaderValue::from_static("mine"));
            res
        });
        let res = r.for_request(&req("DELETE", None)).render(error_response());
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.body().as_bytes(), Some(&b"E405: no DELETE here"[..]));
        assert_eq!(res.headers()["allow"], "GET");
        assert_eq!(res.headers()["x-request-id"], "mine");
    }

    #[tokio::test]
    async fn a_router_renders_what_its_nested_routers_answer_unless_they_chose() {
        use crate::{Handler, Router, get};
        let plain = Router::new().route("/x", get(|_req: Request| async { "x" }));
        let chosen = plain.clone().errors(ErrorRenderer::text());
        let app = Router::new()
            .nest("/plain", plain)
            .nest("/chosen", chosen)
            .errors(ErrorRenderer::problem_json());
        let call = |path: &'static str| app.call(Request::get(path).body(Body::empty()).unwrap());
        let res = call("/plain/nope").await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let res = call("/chosen/nope").await;
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        let res = call("/plain/x").await;
        assert_eq!(res.body().as_bytes(), Some(&b"x"[..]));
    }

    #[test]
    fn negotiate_varies_on_accept() {
        let r = ErrorRenderer::negotiate();
        let json = r
            .for_request(&req("GET", Some("application/problem+json")))
            .render(error_response());
        assert_eq!(json.headers()["content-type"], "application/problem+json");
        assert_eq!(json.headers()["vary"], "accept");
        let text = r
            .for_request(&req("GET", Some("text/html")))
            .render(error_response());
        assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(text.headers()["vary"], "accept");
    }
}
