//! [`ApiRouter`]: routes registered together with their OpenAPI operations, so the document and
//! the routes cannot drift apart.
//!
//! A handler is documented with utoipa's `#[utoipa::path(...)]` (method, path, parameters,
//! request body, responses) and registered with [`routes!`](crate::routes): the router takes
//! the route's path and methods **from the attribute**, serves the handler there and adds the
//! operation to the document. Every operation therefore is served, and every route is
//! documented. Schemas named by the operations (`#[derive(ToSchema)]`) are collected into
//! `components.schemas`. Every operation gets a `default` response: an RFC 9457 problem
//! (`application/problem+json`, the [`Problem`](ProblemSchema) schema) unless it documents
//! its own `default`, and the router answers its errors (404, 405, rejections, every
//! `conduit_core::Error` a handler returns) as problem+json unless told otherwise
//! ([`ApiRouter::errors`]). [`ApiRouter::serve_openapi`] serves the document (itself
//! documented as an operation) and returns the finished [`Router`].
//!
//! ```
//! use conduit_api::{ApiRouter, routes};
//! use conduit_core::{Handler, Json, Request, RequestExt};
//! use serde::Serialize;
//! use utoipa::{OpenApi, ToSchema};
//!
//! #[derive(Serialize, ToSchema)]
//! struct Greeting { text: String }
//!
//! /// Greet someone.
//! #[utoipa::path(get, path = "/hello/{name}",
//!     params(("name" = String, Path, description = "who to greet")),
//!     responses((status = 200, description = "the greeting", body = Greeting)))]
//! async fn hello(req: Request) -> Result<Json<Greeting>, conduit_core::Error> {
//!     let name: String = req.path()?;
//!     Ok(Json(Greeting { text: format!("hello {name}") }))
//! }
//!
//! #[derive(OpenApi)]
//! #[openapi(info(title = "Greeter", version = "1.0.0"))]
//! struct Doc;
//!
//! let api = ApiRouter::new(Doc::openapi()).routes(routes!(hello));
//! let doc = api.openapi().clone();
//! let app = api.serve_openapi("/openapi.json");
//!
//! assert!(doc.paths.paths.contains_key("/hello/{name}"));
//! assert!(doc.components.as_ref().unwrap().schemas.contains_key("Greeting"));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = app.call(Request::get("/hello/ann").body(Default::default()).unwrap()).await;
//! let body = conduit_core::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, r#"{"text":"hello ann"}"#);
//! let res = app.call(Request::get("/openapi.json").body(Default::default()).unwrap()).await;
//! assert_eq!(res.headers()["content-type"], "application/json");
//! # });
//! ```

use std::fmt;

use bytes::Bytes;
use conduit_core::http::{HeaderValue, Method, header};
use conduit_core::{
    BoxHandler, ErrorRenderer, Handler, MethodRouter, Middleware, PROBLEM_JSON, Request, Response,
    Router,
};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder};
use utoipa::openapi::schema::{Components, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

/// A schema and its name, as utoipa collects them.
type NamedSchema = (String, RefOr<Schema>);

/// One documented route: the operation of a `#[utoipa::path]` handler, the schemas it names,
/// and the handler itself. Made by [`routes!`](crate::routes); given to [`ApiRouter::routes`].
pub struct ApiRoute {
    path: String,
    methods: Vec<HttpMethod>,
    operation: Operation,
    schemas: Vec<NamedSchema>,
    handler: BoxHandler,
}

impl fmt::Debug for ApiRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiRoute")
            .field("path", &self.path)
            .field("methods", &self.methods())
            .field("operation_id", &self.operation.operation_id)
            .finish()
    }
}

impl ApiRoute {
    /// The route of `handler`, described by `P` (the `__path_<handler>` type that
    /// `#[utoipa::path]` generates). [`routes!`](crate::routes) names `P` for you.
    pub fn new<P, H>(handler: H) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences,
        H: Handler,
    {
        let mut schemas = Vec::new();
        P::schemas(&mut schemas);
        Self {
            path: P::path(),
            methods: P::methods(),
            operation: P::operation(),
            schemas,
            handler: BoxHandler::new(handler),
        }
    }

    /// The path template, as the `#[utoipa::path]` attribute gives it (`/todos/{id}`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The HTTP methods the route is served (and documented) at.
    pub fn methods(&self) -> Vec<Method> {
        self.methods.iter().map(http_method).collect()
    }
}

/// The documented routes of handlers annotated with `#[utoipa::path]`, for
/// [`ApiRouter::routes`]: `routes!(create_todo, list_todos, todos::get_todo)`.
///
/// Each handler must be a function annotated with `#[utoipa::path(...)]` taking a
/// [`Request`](conduit_core::Request) (conduit's one handler shape); the macro pairs it with the
/// `__path_<name>` type the attribute generates beside it.
#[macro_export]
macro_rules! routes {
    ($($tokens:tt)+) => {
        $crate::__routes!([] [] $($tokens)+)
    };
}

/// The token muncher behind [`routes!`]: collects each handler's path segments, then pairs the
/// handler with its `__path_<name>` type.
#[doc(hidden)]
#[macro_export]
macro_rules! __routes {
    ([$($done:expr,)*] [$($segment:ident)*] $name:ident :: $($rest:tt)+) => {
        $crate::__routes!([$($done,)*] [$($segment)* $name] $($rest)+)
    };
    ([$($done:expr,)*] [$($segment:ident)*] $name:ident $(, $($rest:tt)*)?) => {
        $crate::__routes!(
            [$($done,)* $crate::__private::paste! {
                $crate::ApiRoute::new::<$($segment ::)* [<__path_ $name>], _>($($segment ::)* $name)
            },]
            []
            $($($rest)*)?
        )
    };
    ([$($done:expr,)*] []) => {
        [$($done),*]
    };
}

/// A [`Router`] that documents what it serves: routes come with their utoipa operations
/// (see the [module docs](self)).
///
/// Build it from the document's header (`info`, `servers`, `tags`, … — typically
/// `#[derive(OpenApi)]`'s `Doc::openapi()`), add routes with [`routes`](Self::routes), share
/// state with [`state`](Self::state), wrap routes with [`layer`](Self::layer), and finish with
/// [`serve_openapi`](Self::serve_openapi) (or [`into_parts`](Self::into_parts)).
///
/// # Panics
///
/// Building panics, like [`Router::route`], on a route whose path is invalid or whose method is
/// already registered at that path: two operations for one route is a programming error.
#[derive(Clone)]
pub struct ApiRouter {
    router: Router,
    openapi: OpenApi,
    /// Where [`serve_openapi`](Self::serve_openapi) serves the HTML page, if anywhere.
    page: Option<String>,
    /// How the router's errors are answered (problem+json unless set).
    errors: ErrorRenderer,
}

impl fmt::Debug for ApiRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiRouter")
            .field("router", &self.router)
            .field(
                "paths",
                &self.openapi.paths.paths.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ApiRouter {
    /// An empty router whose document starts as `openapi`. Paths already in `openapi` are
    /// dropped: the document lists served routes only. The `Problem` schema is added to its
    /// components.
    pub fn new(mut openapi: OpenApi) -> Self {
        openapi.paths.paths.clear();
        let components = openapi.components.get_or_insert_with(Components::new);
        components
            .schemas
            .insert(ProblemSchema::name().into_owned(), ProblemSchema::schema());
        Self {
            router: Router::new(),
            openapi,
            page: None,
            errors: ErrorRenderer::problem_json(),
        }
    }

    /// Serve and document each of `routes` (from [`routes!`](crate::routes)).
    ///
    /// # Panics
    ///
    /// As [`Router::route`]: on an invalid path or a method registered twice at one path.
    pub fn routes(mut self, routes: impl IntoIterator<Item = ApiRoute>) -> Self {
        for route in routes {
            self = self.route(route);
        }
        self
    }

    fn route(mut self, route: ApiRoute) -> Self {
        let ApiRoute {
            path,
            methods,
            mut operation,
            schemas,
            handler,
        } = route;
        assert!(
            !methods.is_empty(),
            "conduit ApiRouter: the operation at `{path}` names no HTTP method"
        );
        let mut served = MethodRouter::new();
        for method in &methods {
            served = served.on(http_method(method), handler.clone());
        }
        self.router = self.router.route(&path, served);
        document_problem(&mut operation);
        self.openapi
            .paths
            .add_path_operation(&path, methods, operation);
        let components = self.openapi.components.get_or_insert_with(Components::new);
        components.schemas.extend(schemas);
        self
    }

    /// Serve `api` under `prefix` ([`Router::nest`]) and take its operations into this
    /// document with the prefix on their paths (`/v1` + `/todos/{id}` is `/v1/todos/{id}`; its
    /// `/` is `/v1`), and its schemas. `api`'s own document header (info, tags, servers) is
    /// not taken. A parameter in `prefix` (`/users/{user}`) must be documented by each of
    /// `api`'s operations, as it is served to them.
    ///
    /// # Panics
    ///
    /// As [`Router::nest`]: on an invalid prefix or one that conflicts with a route.
    pub fn nest(mut self, prefix: &str, api: ApiRouter) -> Self {
        let ApiRouter {
            router, openapi, ..
        } = api;
        self.router = self.router.nest(prefix, router);
        let base = prefix.trim_end_matches('/');
        for (path, item) in openapi.paths.paths {
            let path = if path == "/" && !base.is_empty() {
                base.to_owned()
            } else {
                format!("{base}{path}")
            };
            match self.openapi.paths.paths.get_mut(&path) {
                Some(existing) => existing.merge_operations(item),
                None => {
                    self.openapi.paths.paths.insert(path, item);
                }
            }
        }
        if let Some(components) = openapi.components {
            self.openapi
                .components
                .get_or_insert_with(Components::new)
                .schemas
                .extend(components.schemas);
        }
        self
    }

    /// Also serve, at `path`, an HTML page that renders the document: every operation with its
    /// parameters, request body and responses, and every schema. The page is self-contained
    /// (the document, its script and its styles are inline: nothing is fetched, so it works
    /// offline); served by [`serve_openapi`](Self::serve_openapi) and documented like any
    /// route (operation `getApiDocs`).
    pub fn docs_page(mut self, path: &str) -> Self {
        self.page = Some(path.to_owned());
        self
    }

    /// How this router answers errors — its 404 and 405, request-data rejections and every
    /// `conduit_core::Error` its handlers return (see [`Router::errors`]). The default is
    /// [`ErrorRenderer::problem_json`], which is what the document promises (every operation's
    /// `default` response is problem+json); [`ErrorRenderer::negotiate`] keeps that promise
    /// to clients that accept JSON and answers others in plain text. A nested `ApiRouter`'s
    /// errors are answered by the router it is nested in.
    pub fn errors(mut self, renderer: ErrorRenderer) -> Self {
        self.errors = renderer;
        self
    }

    /// Share `value` with every handler (see [`Router::state`]).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.router = self.router.state(value);
        self
    }

    /// Wrap every route registered so far in `middleware` (see [`Router::layer`]).
    pub fn layer<M: Middleware<BoxHandler>>(mut self, middleware: M) -> Self {
        self.router = self.router.layer(middleware);
        self
    }

    /// The document as it stands: the served routes' operations and their schemas.
    pub fn openapi(&self) -> &OpenApi {
        &self.openapi
    }

    /// The router (with the [error renderer](Self::errors)) and the document, for an app that
    /// serves the document its own way. Routes added to the router after this are not
    /// documented.
    pub fn into_parts(self) -> (Router, OpenApi) {
        (self.router.errors(self.errors), self.openapi)
    }

    /// Serve the document at `path` (as `application/json`, rendered once) and the
    /// [`docs_page`](Self::docs_page) if one is set, document those routes too (operations
    /// `getOpenApi` and `getApiDocs`), and return the finished router, its errors answered by
    /// the [error renderer](Self::errors).
    ///
    /// # Panics
    ///
    /// If `path` is already routed or invalid (as [`Router::route`]), or the document does not
    /// serialize (it always does for documents built by utoipa).
    pub fn serve_openapi(mut self, path: &str) -> Router {
        self.document_get(
            path,
            "getOpenApi",
            "This API's OpenAPI 3.1 document",
            "application/json",
            Object::with_type(Type::Object),
        );
        if let Some(page) = self.page.clone() {
            self.document_get(
                &page,
                "getApiDocs",
                "This API's documentation, as a web page",
                "text/html",
                Object::with_type(Type::String),
            );
        }
        let json = self
            .openapi
            .to_json()
            .expect("conduit ApiRouter: the OpenAPI document serializes");
        let mut router = self.router;
        if let Some(page) = &self.page {
            // Inside <script>, `<` is escaped so no `</script>` or `<!--` in a description
            // can end the element early; JSON reads `\u003c` back as `<`.
            let html = PAGE.replace("__OPENAPI__", &json.replace('<', "\\u003c"));
            router = router.route(
                page,
                constant(Bytes::from(html), "text/html; charset=utf-8"),
            );
        }
        router
            .route(path, constant(Bytes::from(json), "application/json"))
            .errors(self.errors)
    }

    /// Document `GET path` answering 200 with `content_type` of `schema`.
    fn document_get(
        &mut self,
        path: &str,
        id: &str,
        summary: &str,
        content_type: &str,
        schema: Object,
    ) {
        let mut operation = OperationBuilder::new()
            .operation_id(Some(id))
            .summary(Some(summary))
            .response(
                "200",
                ResponseBuilder::new().description(summary).content(
                    content_type,
                    ContentBuilder::new().schema(Some(schema)).build(),
                ),
            )
            .build();
        document_problem(&mut operation);
        self.openapi
            .paths
            .add_path_operation(path, vec![HttpMethod::Get], operation);
    }
}

/// The documentation page; `__OPENAPI__` is replaced by the document.
const PAGE: &str = include_str!("docs/page.html");

/// `GET` answered with `body` as `content_type`.
fn constant(body: Bytes, content_type: &'static str) -> MethodRouter {
    MethodRouter::new().on(Method::GET, move |_req: Request| {
        let body = body.clone();
        async move {
            let mut res = Response::new(body.into());
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            res
        }
    })
}

/// Give `operation` the problem+json `default` response unless it has its own.
fn document_problem(operation: &mut Operation) {
    operation
        .responses
        .responses
        .entry("default".to_owned())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description("An error, as RFC 9457 problem details")
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(ProblemSchema::name())))
                        .build(),
                )
                .build()
                .into()
        });
}

fn http_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// The OpenAPI schema of RFC 9457 problem details, named `Problem` in the document: `type`,
/// `title`, `status`, `detail`, `instance`, and any extension member (such as `errors`, the
/// list of invalid fields of a 422). It describes the body of every error response.
#[derive(Debug)]
pub struct ProblemSchema;

impl PartialSchema for ProblemSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("RFC 9457 problem details"))
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("A URI reference identifying the problem type")),
            )
            .property(
                "title",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("A short summary of the problem type")),
            )
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(100))
                    .maximum(Some(599))
                    .description(Some("The HTTP status code")),
            )
            .property(
                "detail",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("What went wrong with this request")),
            )
            .property(
                "instance",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("A URI reference identifying this occurrence")),
            )
            .build()
            .into()
    }
}

impl ToSchema for ProblemSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Problem".into()
    }
}
