//! Typed request data over real sockets: `req.path::<T>()`, typed headers, the validation hook
//! and `read_json` (the body first, then the state and path). Tables of good and bad inputs;
//! every bad one is answered with a problem naming the parameter, header or pointer.

mod common;

use common::*;
use conduit::typed_headers::{Authorization, authorization::Bearer};
use conduit::validate::{Validate, ValidationErrors};
use conduit::{Error, ErrorRenderer, Json, Problem, Request, RequestExt, Router, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize)]
struct TodoPath {
    team: String,
    id: u32,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Open,
    Done,
}

#[derive(Deserialize, Serialize)]
struct NewTodo {
    title: String,
    #[serde(default)]
    tags: Vec<String>,
    priority: u8,
}

impl Validate for NewTodo {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.title.trim().is_empty() {
            errors.add_field("title", "must not be empty");
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.is_empty() || tag.len() > 8 {
                errors.add(format!("/tags/{i}"), "must be 1 to 8 bytes");
            }
        }
        if !(1..=5).contains(&self.priority) {
            errors.add_field("priority", "must be between 1 and 5");
        }
        errors.into_result()
    }
}

#[derive(Deserialize)]
struct Paging {
    limit: u32,
}

impl Validate for Paging {
    fn validate(&self) -> Result<(), ValidationErrors> {
        if self.limit == 0 || self.limit > 100 {
            return Err(ValidationErrors::new().with("/limit", "must be between 1 and 100"));
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Store(&'static str);

fn app() -> Router {
    Router::new()
        .route(
            "/teams/{team}/todos/{id}",
            get(|req: Request| async move {
                let TodoPath { team, id } = req.path()?;
                Ok::<_, Error>(format!("{team}/{id}"))
            }),
        )
        .route(
            "/pair/{a}/{b}",
            get(|req: Request| async move {
                let (a, b): (u8, bool) = req.path()?;
                Ok::<_, Error>(format!("{a} {b}"))
            }),
        )
        .route(
            "/kind/{kind}",
            get(|req: Request| async move { req.path::<Kind>().map(|k| format!("{k:?}")) }),
        )
        .route(
            "/todos",
            post(|req: Request| async move { req.valid_json::<NewTodo>().await.map(Json) }),
        )
        .route(
            "/todos/{id}",
            put(|mut req: Request| async move {
                let todo: NewTodo = req.read_json::<NewTodo>().await?.validated()?;
                let id: u32 = req.path()?;
                let store = req.state::<Store>()?;
                Ok::<_, Error>(format!("{} {id} {}", store.0, todo.title))
            }),
        )
        .route(
            "/form",
            post(|req: Request| async move { req.valid_form::<NewTodo>().await.map(|t| t.title) }),
        )
        .route(
            "/list",
            get(|req: Request| async move { req.valid_query::<Paging>().map(|p| p.limit.to_string()) }),
        )
        .route(
            "/me",
            get(|req: Request| async move {
                let auth = req.typed_header::<Authorization<Bearer>>()?;
                Ok::<_, Error>(format!("token {}", auth.token()))
            }),
        )
        .state(Store("main"))
}

enum Want {
    /// 200 with this body.
    Ok(&'static str),
    /// This status, and the problem's `errors` member.
    Problem(u16, Value),
}

struct Row {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    want: Want,
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
const FORM: &[(&str, &str)] = &[("content-type", "application/x-www-form-urlencoded")];

fn row(method: &'static str, path: &'static str, want: Want) -> Row {
    Row {
        method,
        path,
        headers: &[],
        body: "",
        want,
    }
}

fn param(name: &str, detail: &str) -> Value {
    json!([{"parameter": name, "detail": detail}])
}

fn table() -> Vec<Row> {
    use Want::*;
    vec![
        // req.path::<T>(): a struct, a tuple, an enum.
        row("GET", "/teams/red%20team/todos/7", Ok("red team/7")),
        row("GET", "/teams/red/todos/4294967295", Ok("red/4294967295")),
        row(
            "GET",
            "/teams/red/todos/x",
            Problem(400, param("id", "`x` is not a valid u32")),
        ),
        row(
            "GET",
            "/teams/red/todos/-1",
            Problem(400, param("id", "`-1` is not a valid u32")),
        ),
        row(
            "GET",
            "/teams/red/todos/4294967296",
            Problem(400, param("id", "`4294967296` is not a valid u32")),
        ),
        row("GET", "/pair/255/true", Ok("255 true")),
        row(
            "GET",
            "/pair/256/true",
            Problem(400, param("a", "`256` is not a valid u8")),
        ),
        row(
            "GET",
            "/pair/1/yes",
            Problem(400, param("b", "`yes` is not a valid bool")),
        ),
        row("GET", "/kind/done", Ok("Done")),
        row(
            "GET",
            "/kind/late",
            Problem(
                400,
                param("kind", "unknown variant `late`, expected `open` or `done`"),
            ),
        ),
        // valid_query: shape errors are 400 naming the parameter, validation errors 422.
        row("GET", "/list?limit=10", Ok("10")),
        row(
            "GET",
            "/list?limit=ten",
            Problem(400, param("limit", "invalid digit found in string")),
        ),
        row(
            "GET",
            "/list",
            Problem(400, param("limit", "missing field `limit`")),
        ),
        row(
            "GET",
            "/list?limit=1000",
            Problem(
                422,
                json!([{"pointer": "/limit", "detail": "must be between 1 and 100"}]),
            ),
        ),
        // valid_json: shape errors and every validation error, by pointer.
        Row {
            headers: JSON,
            body: r#"{"title":"milk","tags":["food"],"priority":2}"#,
            ..row(
                "POST",
                "/todos",
                Ok(r#"{"title":"milk","tags":["food"],"priority":2}"#),
            )
        },
        Row {
            headers: JSON,
            body: r#"{"title":" ","tags":["ok","","much too long"],"priority":9}"#,
            ..row(
                "POST",
                "/todos",
                Problem(
                    422,
                    json!([
                        {"pointer": "/title", "detail": "must not be empty"},
                        {"pointer": "/tags/1", "detail": "must be 1 to 8 bytes"},
                        {"pointer": "/tags/2", "detail": "must be 1 to 8 bytes"},
                        {"pointer": "/priority", "detail": "must be between 1 and 5"},
                    ]),
                ),
            )
        },
        Row {
            headers: JSON,
            body: r#"{"title":"a","priority":300}"#,
            ..row(
                "POST",
                "/todos",
                Problem(
                    422,
                    json!([{"pointer": "/priority", "detail": "invalid value: integer `300`, expected u8"}]),
                ),
            )
        },
        Row {
            headers: JSON,
            body: r#"{"priority":1}"#,
            ..row(
                "POST",
                "/todos",
                Problem(
                    422,
                    json!([{"pointer": "/title", "detail": "missing field `title`"}]),
                ),
            )
        },
        // read_json: the body first, then the path and the state.
        Row {
            headers: JSON,
            body: r#"{"title":"bread","priority":1}"#,
            ..row("PUT", "/todos/3", Ok("main 3 bread"))
        },
        Row {
            headers: JSON,
            body: r#"{"title":"","priority":1}"#,
            ..row(
                "PUT",
                "/todos/3",
                Problem(
                    422,
                    json!([{"pointer": "/title", "detail": "must not be empty"}]),
                ),
            )
        },
        Row {
            headers: JSON,
            body: r#"{"title":"bread","priority":1}"#,
            ..row(
                "PUT",
                "/todos/three",
                Problem(400, param("id", "`three` is not a valid u32")),
            )
        },
        // valid_form
        Row {
            headers: FORM,
            body: "title=tea&priority=3",
            ..row("POST", "/form", Ok("tea"))
        },
        Row {
            headers: FORM,
            body: "title=tea&priority=high",
            ..row(
                "POST",
                "/form",
                Problem(
                    422,
                    json!([{"pointer": "/priority", "detail": "invalid digit found in string"}]),
                ),
            )
        },
        Row {
            headers: FORM,
            body: "title=&priority=0",
            ..row(
                "POST",
                "/form",
                Problem(
                    422,
                    json!([
                        {"pointer": "/title", "detail": "must not be empty"},
                        {"pointer": "/priority", "detail": "must be between 1 and 5"},
                    ]),
                ),
            )
        },
        // typed headers
        Row {
            headers: &[("authorization", "Bearer abc.def")],
            ..row("GET", "/me", Ok("token abc.def"))
        },
        row(
            "GET",
            "/me",
            Problem(
                400,
                json!([{"header": "authorization", "detail": "missing"}]),
            ),
        ),
        Row {
            headers: &[("authorization", "Basic")],
            ..row(
                "GET",
                "/me",
                Problem(
                    400,
                    json!([{"header": "authorization", "detail": "malformed"}]),
                ),
            )
        },
    ]
}

#[tokio::test]
async fn typed_request_data_good_and_bad_inputs() {
    let server = start(config().errors(ErrorRenderer::problem_json()), app()).await;
    let mut client = h1_client(server.addr).await;
    for r in table() {
        let mut req = request(r.method, r.path);
        for (k, v) in r.headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                r.body.as_bytes(),
            )))
            .unwrap();
        let reply = send(&mut client, req).await;
        let name = format!("{} {} {}", r.method, r.path, r.body);
        match r.want {
            Want::Ok(body) => {
                assert_eq!(reply.status, 200, "{name}: {}", reply.text());
                assert_eq!(reply.text(), body, "{name}");
            }
            Want::Problem(status, errors) => {
                assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.text());
                assert_eq!(
                    reply.header("content-type"),
                    Some("application/problem+json"),
                    "{name}"
                );
                let problem: Problem = serde_json::from_slice(&reply.body).unwrap();
                assert_eq!(problem.extension("errors"), Some(&errors), "{name}");
            }
        }
    }
}

#[tokio::test]
async fn validation_errors_as_plain_text_list_every_field() {
    let server = start(config(), app()).await;
    let req = body_req(
        "POST",
        "/todos",
        "application/json",
        r#"{"title":"","tags":[""],"priority":1}"#,
    );
    let reply = fetch(server.addr, req).await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.text(),
        "Validation failed:\n/title: must not be empty\n/tags/0: must be 1 to 8 bytes"
    );
}
