#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod openapi;
pub mod page;

pub use openapi::{ApiRoute, ApiRouter, ProblemSchema};
pub use page::{
    Cursor, DEFAULT_LIMIT, DEFAULT_MAX_LIMIT, MAX_CURSOR_LEN, Page, PageLinks, PageRequest,
    Pagination, StreamedPage,
};
/// utoipa, re-exported so an app names the same version conduit-api builds on.
pub use utoipa;

#[doc(hidden)]
pub mod __private {
    pub use paste::paste;
}
