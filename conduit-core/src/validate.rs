//! [`Validate`]: the app's own checks on request data, answered as a 422 problem that lists
//! every invalid field with its JSON pointer.
//!
//! Deserializing checks the shape of the data (a missing field, a string where a number
//! goes); `Validate` checks what only the app knows (a name must not be empty, a date must be
//! in the future). [`RequestExt::valid_json`](crate::RequestExt::valid_json),
//! [`valid_form`](crate::RequestExt::valid_form) and
//! [`valid_query`](crate::RequestExt::valid_query) run it after deserializing; any value can
//! run it with [`Validate::validated`].
//!
//! The failure is a 422 Unprocessable Entity whose [`Problem`](crate::Problem) carries
//! `errors: [{"pointer": "/name", "detail": "..."}, ...]` (the member RFC 9457's example uses),
//! one entry per invalid field; its plain-text rendering lists them one a line.
//!
//! ```
//! use conduit_core::validate::{Validate, ValidationErrors};
//! use conduit_core::{Handler, Json, Request, RequestExt, Router, post};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct NewTodo { title: String, tags: Vec<String> }
//!
//! impl Validate for NewTodo {
//!     fn validate(&self) -> Result<(), ValidationErrors> {
//!         let mut errors = ValidationErrors::new();
//!         if self.title.trim().is_empty() {
//!             errors.add_field("title", "must not be empty");
//!         }
//!         for (i, tag) in self.tags.iter().enumerate() {
//!             if tag.len() > 10 {
//!                 errors.add(format!("/tags/{i}"), "at most 10 bytes");
//!             }
//!         }
//!         errors.into_result()
//!     }
//! }
//!
//! let app = Router::new().route("/todos", post(|req: Request| async move {
//!     let todo: NewTodo = req.valid_json().await?;
//!     Ok::<_, conduit_core::Error>(Json(todo.title))
//! }));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let req = Request::post("/todos")
//!     .header("content-type", "application/json")
//!     .body(r#"{"title":" ","tags":["ok","much too long"]}"#.into())
//!     .unwrap();
//! let res = app.call(req).await;
//! assert_eq!(res.status(), 422);
//! let problem = res.extensions().get::<conduit_core::Problem>().unwrap();
//! assert_eq!(problem.extension("errors").unwrap(), &serde_json::json!([
//!     {"pointer": "/title", "detail": "must not be empty"},
//!     {"pointer": "/tags/1", "detail": "at most 10 bytes"},
//! ]));
//! # });
//! ```

use std::fmt;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The app's checks on a value that deserialized; see the [module docs](self).
pub trait Validate {
    /// `Ok` when the value is valid, else every invalid field with its JSON pointer.
    fn validate(&self) -> Result<(), ValidationErrors>;

    /// The value itself when it is valid, else a 422 [`Error`] listing the invalid fields.
    fn validated(self) -> Result<Self, Error>
    where
        Self: Sized,
    {
        match self.validate() {
            Ok(()) => Ok(self),
            Err(errors) => Err(errors.into()),
        }
    }
}

/// One invalid field: its JSON pointer (RFC 6901: `/items/0/name`, `""` for the whole
/// document) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where the field is, as a JSON pointer.
    pub pointer: String,
    /// What is wrong with it, for a person.
    pub detail: String,
}

/// Every invalid field of a value; empty when it is valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// No errors (yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that the field at `pointer` (a JSON pointer such as `/items/0/name`) is invalid.
    pub fn add(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.errors.push(FieldError {
            pointer: pointer.into(),
            detail: detail.into(),
        });
    }

    /// Record that the top-level field `name` is invalid (its pointer is `/name`, escaped).
    pub fn add_field(&mut self, name: &str, detail: impl Into<String>) {
        self.add(pointer([name]), detail);
    }

    /// [`add`](Self::add), as a builder.
    #[must_use]
    pub fn with(mut self, pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        self.add(pointer, detail);
        self
    }

    /// Whether no field is invalid.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many fields are invalid.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The invalid fields, in the order they were added.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &FieldError> {
        self.errors.iter()
    }

    /// `Ok(())` when empty, else `Err(self)`: the end of a `validate` method.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let pointer = if e.pointer.is_empty() {
                "(document)"
            } else {
                &e.pointer
            };
            write!(f, "{pointer}: {}", e.detail)?;
        }
        Ok(())
    }
}

/// A 422 Unprocessable Entity whose problem lists the fields (`errors`) and whose text is
/// `Validation failed:` and one `pointer: detail` a line.
impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        unprocessable(format!("Validation failed:\n{errors}"), &errors.errors)
    }
}

/// A 422 with `message` as its text and `errors` as the problem's `errors` member.
pub(crate) fn unprocessable(message: String, errors: &[FieldError]) -> Error {
    let list = serde_json::to_value(errors).unwrap_or_default();
    Error::new(StatusCode::UNPROCESSABLE_ENTITY, message).with_extension("errors", list)
}

/// The JSON pointer (RFC 6901) of a path of member names and array indexes: `~` is written
/// `~0` and `/` is written `~1`.
///
/// ```
/// use conduit_core::validate::pointer;
///
/// assert_eq!(pointer(["items", "0", "name"]), "/items/0/name");
/// assert_eq!(pointer(["a/b", "m~n"]), "/a~1b/m~0n");
/// assert_eq!(pointer::<[&str; 0]>([]), "");
/// ```
pub fn pointer<I>(segments: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        for c in segment.as_ref().chars() {
            match c {
                '~' => out.push_str("~0"),
                '/' => out.push_str("~1"),
                c => out.push(c),
            }
        }
    }
    out
}

/// Where a deserializer failed, as the segments of a pointer: the path serde_path_to_error
/// tracked, and for a missing field, that field's name (serde reports it on the enclosing
/// object).
pub(crate) fn error_segments(path: &serde_path_to_error::Path, message: &str) -> Vec<String> {
    use serde_path_to_error::Segment;
    let mut segments: Vec<String> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    if let Some((name, _)) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        segments.push(name.to_owned());
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_build_display_and_convert() {
        assert_eq!(ValidationErrors::new().into_result(), Ok(()));
        let mut errors = ValidationErrors::new().with("/a/0", "bad");
        errors.add_field("x/y", "worse");
        errors.add("", "whole");
        assert_eq!(errors.len(), 3);
        assert_eq!(
            errors.to_string(),
            "/a/0: bad\n/x~1y: worse\n(document): whole"
        );
        let err = Error::from(errors);
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem = err.to_problem();
        assert_eq!(
            problem.extension("errors").unwrap(),
            &serde_json::json!([
                {"pointer": "/a/0", "detail": "bad"},
                {"pointer": "/x~1y", "detail": "worse"},
                {"pointer": "", "detail": "whole"},
            ])
        );
    }
}
