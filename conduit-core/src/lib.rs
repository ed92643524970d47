#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The `headers` crate, whose types [`RequestExt::typed_header`] parses (feature
/// `typed-headers`).
#[cfg(feature = "typed-headers")]
pub use ::headers as typed_headers;
pub use bytes;
pub use http;

mod body;
mod connect_info;
mod context;
mod error;
mod handler;
pub mod headers;
mod middleware;
mod path_de;
pub mod problem;
pub mod render;
mod request;
mod response;
mod router;
pub mod sendfile;
mod shutdown;
mod stream_hold;
#[cfg(feature = "tower")]
pub mod tower;
pub mod validate;

pub use body::{Body, BodyWrapper, WrappedBody, to_bytes};
pub use connect_info::ConnectInfo;
#[doc(hidden)]
#[doc(hidden)]
pub use context::with_connection;
pub use error::{BoxError, Error, panic_message};
pub use handler::{BoxFuture, BoxHandler, Handler};
pub use middleware::{FromFn, FromFnHandler, HandlerExt, Middleware, Next, from_fn};
pub use problem::{PROBLEM_JSON, Problem};
pub use render::{ErrorRenderer, RenderErrors, Rendering, attach_problem};
pub use request::{BodyLimit, DEFAULT_BODY_LIMIT, RequestExt};
pub use response::{Html, IntoResponse, Json, head_response};
pub use router::{
    MatchedPath, MethodRouter, OriginalUri, PathParams, RecordMatchedPath, Router, any, delete,
    get, head, options, patch, post, put,
};
pub use shutdown::ShutdownSignal;
pub use stream_hold::StreamHold;

/// An HTTP request with a conduit [`Body`].
pub type Request<B = Body> = http::Request<B>;
/// An HTTP response with a conduit [`Body`].
pub type Response<B = Body> = http::Response<B>;
