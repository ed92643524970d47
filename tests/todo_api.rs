//! The `todo_api` example as a user runs it: the real binary on a free port with a fresh
//! SQLite file, every route over a real socket with hyper's client, pagination by its links,
//! problem+json errors, the OpenAPI document, then schemathesis against the document with its
//! default checks. Needs the example built (`cargo build --examples`, which `cargo test`,
//! `cargo nextest run` and `scripts/test.sh` do).
//!
//! schemathesis is `$CONDUIT_SCHEMATHESIS`, else the one scripts/test.sh installs in the
//! virtual environment at `target/py-venv` (`target/py-venv/bin/pip install schemathesis`).
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The example on a free port.
struct TodoApi {
    addr: SocketAddr,
    process: ExampleProcess,
}

impl TodoApi {
    /// Start the example on a free port (with `envs` set) and wait until it accepts.
    async fn start(envs: &[(&str, &str)]) -> Self {
        let addr = free_addr();
        let mut process = ExampleProcess::spawn("todo_api", |cmd| {
            cmd.env("ADDR", addr.to_string())
                .env_remove("DATABASE_PATH")
                .env_remove("CURSOR_KEY")
                .envs(envs.iter().copied());
        });
        process.wait_listening(addr, Duration::from_secs(30)).await;
        Self { addr, process }
    }

    /// SIGTERM, a clean exit, and everything it logged.
    async fn stop(self) -> String {
        let (status, output) = self.process.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "todo_api exited with {status}:\n{output}");
        output
    }
}

async fn send_json(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Reply {
    fetch(
        addr,
        body_req(method, path, "application/json", body.to_string()),
    )
    .await
}

fn json_of(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// A problem+json answer with `status`; its `detail`.
fn problem(r: &Reply, status: u16) -> String {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let body = json_of(r);
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string(), "{body}");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_route_over_the_wire() {
    let api = TodoApi::start(&[]).await;
    let addr = api.addr;

    // POST /todos
    let r = send_json(addr, "POST", "/todos", &json!({"title": "milk"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("location"), Some("/todos/1"));
    assert_eq!(
        json_of(&r),
        json!({"id": 1, "title": "milk", "completed": false})
    );
    let r = send_json(
        addr,
        "POST",
        "/todos",
        &json!({"title": "eggs", "completed": true}),
    )
    .await;
    assert_eq!(json_of(&r)["id"], 2);

    // GET /todos/{id}
    let r = get(addr, "/todos/2").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        json_of(&r),
        json!({"id": 2, "title": "eggs", "completed": true})
    );

    // PUT replaces, PATCH changes the fields given.
    let r = send_json(
        addr,
        "PUT",
        "/todos/1",
        &json!({"title": "oat milk", "completed": false}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_of(&r)["title"], "oat milk");
    let r = send_json(addr, "PATCH", "/todos/1", &json!({"completed": true})).await;
    assert_eq!(
        json_of(&r),
        json!({"id": 1, "title": "oat milk", "completed": true})
    );
    let r = send_json(addr, "PATCH", "/todos/1", &json!({"title": null})).await;
    assert_eq!(
        json_of(&r)["title"],
        "oat milk",
        "null leaves a field as it is"
    );

    // DELETE
    let r = send_to(addr, "DELETE", "/todos/2", &[]).await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());

    // Errors, each as problem+json.
    assert!(problem(&get(addr, "/todos/2").await, 404).contains("No todo with id 2"));
    problem(&send_to(addr, "DELETE", "/todos/2", &[]).await, 404);
    problem(
        &send_json(
            addr,
            "PUT",
            "/todos/99",
            &json!({"title": "x", "completed": true}),
        )
        .await,
        404,
    );
    problem(
        &send_json(addr, "PATCH", "/todos/99", &json!({"completed": true})).await,
        404,
    );
    assert!(problem(&get(addr, "/todos/x").await, 400).contains("id"));
    problem(&get(addr, "/todos/99999999999999999999").await, 400);
    problem(
        &send_json(addr, "POST", "/todos", &json!({"title": ""})).await,
        422,
    );
    problem(
        &send_json(addr, "POST", "/todos", &json!({"title": "x".repeat(201)})).await,
        422,
    );
    send_json(addr, "POST", "/todos", &json!({"title": "é".repeat(200)}))
        .await
        .status
        .is_success()
        .then_some(())
        .expect("200 characters are allowed, whatever their bytes");
    problem(
        &send_json(addr, "POST", "/todos", &json!({"completed": true})).await,
        422,
    );
    problem(
        &send_json(addr, "POST", "/todos", &json!(["milk", false])).await,
        422,
    );
    problem(
        &send_json(addr, "PUT", "/todos/1", &json!({"title": "no completed"})).await,
        422,
    );
    problem(
        &fetch(
            addr,
            body_req("POST", "/todos", "application/json", "{\"title\":"),
        )
        .await,
        400,
    );
    problem(
        &fetch(addr, body_req("POST", "/todos", "text/plain", "milk")).await,
        415,
    );
    problem(&get(addr, "/nowhere").await, 404);
    let r = send_to(addr, "PUT", "/todos", &[]).await;
    problem(&r, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));

    let log = api.stop().await;
    assert!(log.contains("todo_api listening"), "{log}");
}

#[tokio::test]
async fn list_pages_by_signed_cursors() {
    let dir = TempDir::new("todo-api-pages");
    let db = dir.path().join("todos.sqlite");
    let envs = [
        ("CURSOR_KEY", "a key for this test only"),
        ("DATABASE_PATH", db.to_str().unwrap()),
    ];
    let api = TodoApi::start(&envs).await;
    let addr = api.addr;
    for i in 1..=25 {
        let r = send_json(
            addr,
            "POST",
            "/todos",
            &json!({"title": format!("todo {i}")}),
        )
        .await;
        assert_eq!(r.status, 201);
    }

    // The default page size is 20: a first page and a next link.
    let r = get(addr, "/todos").await;
    assert_eq!(r.status, 200);
    let body = json_of(&r);
    assert_eq!(body["items"].as_array().unwrap().len(), 20);
    assert!(body["links"].get("prev").is_none());

    // Forward by `next`, in the Link header and the body alike.
    let mut target = "/todos?limit=10".to_owned();
    let mut ids = Vec::new();
    let mut pages = Vec::new();
    loop {
        let r = get(addr, &target).await;
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let body = json_of(&r);
        let link = r.header("link").unwrap_or_default().to_owned();
        for rel in ["next", "prev"] {
            match body["links"][rel].as_str() {
                Some(uri) => assert!(link.contains(&format!("<{uri}>; rel=\"{rel}\"")), "{link}"),
                None => assert!(!link.contains(&format!("rel=\"{rel}\""))),
            }
        }
        ids.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_i64().unwrap()),
        );
        pages.push(body.clone());
        match body["links"]["next"].as_str() {
            Some(next) => target = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(ids, (1..=25).collect::<Vec<i64>>());
    assert_eq!(pages.len(), 3);

    // Back by `prev` from the last page.
    let prev = pages[2]["links"]["prev"].as_str().unwrap().to_owned();
    let r = get(addr, &prev).await;
    assert_eq!(json_of(&r)["items"], pages[1]["items"]);

    // A forged cursor, a cursor cut short, a limit over the maximum (100): 400 problems.
    let next = pages[0]["links"]["next"].as_str().unwrap();
    let cursor = next
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("cursor="))
        .unwrap();
    let mut forged = cursor.to_owned().into_bytes();
    forged[2] = if forged[2] == b'x' { b'y' } else { b'x' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(problem(&get(addr, &format!("/todos?cursor={forged}")).await, 400).contains("cursor"));
    problem(
        &get(addr, &format!("/todos?cursor={}", &cursor[1..])).await,
        400,
    );
    assert!(
        problem(&get(addr, "/todos?limit=101").await, 400).contains("maximum page size of 100")
    );
    problem(&get(addr, "/todos?limit=0").await, 400);
    assert_eq!(get(addr, "/todos?limit=100").await.status, 200);

    // The same key after a restart on the same database: the cursors handed out still work.
    api.stop().await;
    let api = TodoApi::start(&envs).await;
    let r = get(api.addr, next).await;
    assert_eq!(json_of(&r)["items"], pages[1]["items"]);
    api.stop().await;
}

#[tokio::test]
async fn the_document_describes_every_route() {
    let dir = TempDir::new("todo-api-doc");
    let db = dir.path().join("todos.sqlite");
    let api = TodoApi::start(&[("DATABASE_PATH", db.to_str().unwrap())]).await;
    let r = get(api.addr, "/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = json_of(&r);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push(format!("{} {path}", method.to_uppercase()));
            assert_eq!(
                op["responses"]["default"]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path}"
            );
        }
    }
    ops.sort();
    assert_eq!(
        ops,
        [
            "DELETE /todos/{id}",
            "GET /docs",
            "GET /openapi.json",
            "GET /todos",
            "GET /todos/{id}",
            "PATCH /todos/{id}",
            "POST /todos",
            "PUT /todos/{id}",
        ]
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in ["Todo", "NewTodo", "TodoInput", "TodoPatch", "Problem"] {
        assert!(schemas.contains_key(name), "{name}");
    }
    // The list answers a page of todos (utoipa names the generic `Page_Todo`).
    let page = &doc["paths"]["/todos"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        ["$ref"];
    let page = &schemas[page.as_str().unwrap().rsplit('/').next().unwrap()];
    assert_eq!(page["required"], json!(["items", "links"]));
    assert_eq!(
        page["properties"]["items"]["items"]["required"],
        json!(["id", "title", "completed"])
    );
    assert!(db.is_file(), "the database is at DATABASE_PATH");
    api.stop().await;
}

#[tokio::test]
async fn a_fresh_database_in_a_temporary_folder_removed_on_exit() {
    let api = TodoApi::start(&[]).await;
    let r = send_json(api.addr, "POST", "/todos", &json!({"title": "x"})).await;
    assert_eq!(r.status, 201);
    let log = api.stop().await;
    let path = log
        .lines()
        .find(|l| l.contains("database ready"))
        .and_then(|l| l.split("path=").nth(1))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("no database path logged:\n{log}"));
    assert!(path.starts_with(std::env::temp_dir()), "{}", path.display());
    assert!(
        !path.parent().unwrap().exists(),
        "the folder is removed on exit"
    );
}

fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("CONDUIT_SCHEMATHESIS") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-venv/bin/schemathesis");
    assert!(
        venv.exists(),
        "no schemathesis: run scripts/test.sh (it installs it in target/py-venv), or set \
         CONDUIT_SCHEMATHESIS"
    );
    venv
}

/// schemathesis, with every default check (no 5xx, documented status codes, content types,
/// headers and bodies matching the schemas, invalid data rejected, valid data accepted,
/// unsupported methods answered 405, ...), bounded by examples/todo_api/schemathesis.toml.
#[tokio::test]
async fn schemathesis_finds_no_issue() {
    let api = TodoApi::start(&[]).await;
    let config =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/todo_api/schemathesis.toml");
    let work = TempDir::new("schemathesis");
    let run = tokio::process::Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://{}/openapi.json", api.addr))
        .args(["--workers", "1", "--no-color"])
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("schemathesis finishes within 3 minutes")
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{report}");
    assert!(report.contains("No issues found"), "{report}");
    assert!(report.contains("7 selected / 7 total"), "{report}");
    api.stop().await;
}
