//! A JSON API for todos on SQLite, described by an OpenAPI 3.1 document that the router
//! collects from the handlers, with cursor pagination and RFC 9457 problem details for every
//! error.
//!
//! ```text
//! cargo run --example todo_api                 # listens on $ADDR (default 127.0.0.1:8080)
//! curl -X POST localhost:8080/todos -H 'content-type: application/json' -d '{"title":"milk"}'
//! curl 'localhost:8080/todos?limit=10'         # a page; its `links.next` / `Link` header
//! curl localhost:8080/todos/1
//! curl -X PATCH localhost:8080/todos/1 -H 'content-type: application/json' -d '{"completed":true}'
//! curl -X DELETE localhost:8080/todos/1
//! curl localhost:8080/openapi.json             # the document
//! ```
//!
//! `http://localhost:8080/docs` renders the document in a browser (a self-contained page).
//!
//! The database is a fresh file in a new temporary folder (removed on exit) unless
//! `DATABASE_PATH` names one. Cursors are signed with `CURSOR_KEY` (set it to the same secret
//! on every instance; without it a random key is drawn, and cursors last as long as the
//! process).

use std::path::PathBuf;

use conduit::http::{HeaderValue, StatusCode, header};
use conduit::server::pool::{Pool, PoolConfig, SqliteManager};
use conduit::validate::{Validate, ValidationErrors};
use conduit::{Body, Config, Error, IntoResponse, Json, Request, RequestExt, Response, Server};
use conduit_api::{ApiRouter, Cursor, Page, Pagination, routes};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use utoipa::{OpenApi, ToSchema};

type Db = Pool<SqliteManager>;

/// What every handler shares.
#[derive(Clone)]
struct App {
    db: Db,
    pages: Pagination,
}

/// The longest title, in characters.
const MAX_TITLE: usize = 200;

/// A todo.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
struct Todo {
    /// Its id, given by the server.
    id: i64,
    /// What to do.
    title: String,
    /// Whether it is done.
    completed: bool,
}

/// A new todo (`POST /todos`).
#[derive(Debug, Deserialize, ToSchema)]
struct NewTodo {
    /// What to do (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    /// Whether it is done already (default: no).
    #[serde(default)]
    completed: bool,
}

/// A todo's new state (`PUT /todos/{id}`): every field.
#[derive(Debug, Deserialize, ToSchema)]
struct TodoInput {
    /// What to do (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    /// Whether it is done.
    completed: bool,
}

/// The fields to change (`PATCH /todos/{id}`); absent or `null` ones stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
struct TodoPatch {
    /// What to do (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    title: Option<String>,
    /// Whether it is done.
    completed: Option<bool>,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "conduit todo API",
    version = "1.0.0",
    description = "The todo_api example of conduit: todos on SQLite, paginated with signed cursors."
))]
struct Doc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let (db_path, _temp) = match std::env::var_os("DATABASE_PATH") {
        Some(path) => (PathBuf::from(path), None),
        None => {
            let dir = TempFolder::new()?;
            (dir.0.join("todos.sqlite"), Some(dir))
        }
    };
    let manager = SqliteManager::new(&deadpool_sqlite::Config::new(&db_path));
    let db = Pool::new(manager, PoolConfig::default())?;
    create_schema(&db).await?;
    tracing::info!(path = %db_path.display(), "database ready");

    let key = match std::env::var("CURSOR_KEY") {
        Ok(key) if !key.is_empty() => key.into_bytes(),
        _ => rand::random::<[u8; 32]>().to_vec(),
    };
    let pages = Pagination::new(key).default_limit(20).max_limit(100);

    let server = Server::bind(Config::from_env_addr("127.0.0.1:8080")).await?;
    db.close_on_shutdown(&server);
    tracing::info!(addr = %server.local_addr(), "todo_api listening");
    server.serve(app(App { db, pages })).await?;
    Ok(())
}

/// The routes, documented; the document at `/openapi.json`, rendered at `/docs`.
fn app(state: App) -> conduit::Router {
    ApiRouter::new(Doc::openapi())
        .routes(routes!(
            create_todo,
            list_todos,
            get_todo,
            replace_todo,
            update_todo,
            delete_todo
        ))
        .state(state)
        .docs_page("/docs")
        .serve_openapi("/openapi.json")
}

/// A folder of its own under the system's temporary folder, removed on drop.
struct TempFolder(PathBuf);

impl TempFolder {
    fn new() -> std::io::Result<Self> {
        let name = format!(
            "conduit-todo-api-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn create_schema(db: &Db) -> Result<(), Box<dyn std::error::Error>> {
    let conn = db.get().await?;
    conn.interact(|c| {
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS todos (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 title TEXT NOT NULL,
                 completed INTEGER NOT NULL DEFAULT 0);",
        )
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(())
}

// ---- helpers ----------------------------------------------------------------------------

/// Run `f` on a pooled connection: 503 if the pool has none, 500 if SQLite fails.
async fn with_conn<T, F>(db: &Db, f: F) -> Result<T, Error>
where
    F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let conn = db.get().await.map_err(|e| {
        tracing::warn!(error = %e, "database unavailable");
        Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable",
        )
    })?;
    conn.interact(f)
        .await
        .map_err(|e| Error::internal(e.to_string()))?
        .map_err(Error::internal)
}

/// The request's JSON body as `T`, checked by `T`'s [`Validate`] (a 422 listing each invalid
/// field by JSON pointer). The body must be a JSON object: serde would also build a struct
/// from an array of its fields (`["milk", true]`), which this API does not document. The
/// request stays usable (its state and path parameters).
async fn json_object<T: DeserializeOwned + Validate>(req: &mut Request) -> Result<T, Error> {
    let body: serde_json::Value = req.read_json().await?;
    if !body.is_object() {
        return Err(ValidationErrors::new()
            .with("", "the JSON body must be an object")
            .into());
    }
    // Through the request helpers again, for their 422 with the pointer of a misfit field.
    let mut again = Request::new(Body::from(body.to_string()));
    again.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    again.valid_json().await
}

/// A title has 1 to [`MAX_TITLE`] characters.
fn check_title(errors: &mut ValidationErrors, title: &str) {
    let chars = title.chars().count();
    if chars == 0 || chars > MAX_TITLE {
        errors.add_field(
            "title",
            format!("must have 1 to {MAX_TITLE} characters, not {chars}"),
        );
    }
}

impl Validate for NewTodo {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_title(&mut errors, &self.title);
        errors.into_result()
    }
}

impl Validate for TodoInput {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_title(&mut errors, &self.title);
        errors.into_result()
    }
}

impl Validate for TodoPatch {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(title) = &self.title {
            check_title(&mut errors, title);
        }
        errors.into_result()
    }
}

fn todo_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Todo> {
    Ok(Todo {
        id: row.get(0)?,
        title: row.get(1)?,
        completed: row.get(2)?,
    })
}

fn not_found(id: i64) -> Error {
    Error::new(StatusCode::NOT_FOUND, format!("No todo with id {id}"))
}

// ---- handlers ----------------------------------------------------------------------------
//
// Each returns `Result<_, Error>`: the router answers every error (these, its own 404 and 405,
// and the request helpers' 400/413/415/422) as problem+json.

/// Create a todo.
#[utoipa::path(post, path = "/todos", tag = "todos",
    request_body = NewTodo,
    responses(
        (status = 201, description = "The todo, created", body = Todo,
            headers(("location" = String, description = "The todo's URI"))),
    ))]
async fn create_todo(mut req: Request) -> Result<Response, Error> {
    let new: NewTodo = json_object(&mut req).await?;
    let todo = with_conn(&req.state::<App>()?.db, move |c| {
        c.query_row(
            "INSERT INTO todos (title, completed) VALUES (?1, ?2)
             RETURNING id, title, completed",
            (&new.title, new.completed),
            todo_of,
        )
    })
    .await?;
    let location =
        HeaderValue::from_str(&format!("/todos/{}", todo.id)).map_err(Error::internal)?;
    let mut res = (StatusCode::CREATED, Json(todo)).into_response();
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}

/// List todos by id, a page at a time.
///
/// Follow `links.next` / `links.prev` (also in the `Link` header) for the neighbouring pages.
#[utoipa::path(get, path = "/todos", tag = "todos",
    params(
        ("cursor" = Option<String>, Query,
            description = "A page's cursor, from the `links` of another page (opaque, signed)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100,
            description = "Todos per page (default 20)"),
    ),
    responses(
        (status = 200, description = "A page of todos", body = Page<Todo>,
            headers(("link" = String, description = "RFC 8288 links to the next and previous pages"))),
    ))]
async fn list_todos(req: Request) -> Result<Page<Todo>, Error> {
    let app = req.state::<App>()?;
    let page = app.pages.request::<i64>(&req)?;
    let n = page.fetch_limit() as i64;
    let (sql, key) = match page.cursor() {
        None => (
            "SELECT id, title, completed FROM todos ORDER BY id LIMIT ?2",
            0,
        ),
        Some(Cursor::After(k)) => (
            "SELECT id, title, completed FROM todos WHERE id > ?1 ORDER BY id LIMIT ?2",
            *k,
        ),
        Some(Cursor::Before(k)) => (
            "SELECT id, title, completed FROM todos WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            *k,
        ),
    };
    let rows = with_conn(&app.db, move |c| {
        let mut stmt = c.prepare_cached(sql)?;
        let rows = stmt.query_map((key, n), todo_of)?;
        rows.collect::<rusqlite::Result<Vec<Todo>>>()
    })
    .await?;
    Ok(page.page(rows, |t| t.id))
}

/// One todo.
#[utoipa::path(get, path = "/todos/{id}", tag = "todos",
    params(("id" = i64, Path, description = "The todo's id")),
    responses((status = 200, description = "The todo", body = Todo)))]
async fn get_todo(req: Request) -> Result<Json<Todo>, Error> {
    let id: i64 = req.path()?;
    let todo = with_conn(&req.state::<App>()?.db, move |c| {
        let mut stmt = c.prepare_cached("SELECT id, title, completed FROM todos WHERE id = ?1")?;
        let mut rows = stmt.query([id])?;
        rows.next()?.map(todo_of).transpose()
    })
    .await?;
    Ok(Json(todo.ok_or_else(|| not_found(id))?))
}

/// Replace a todo.
#[utoipa::path(put, path = "/todos/{id}", tag = "todos",
    params(("id" = i64, Path, description = "The todo's id")),
    request_body = TodoInput,
    responses((status = 200, description = "The todo, replaced", body = Todo)))]
async fn replace_todo(mut req: Request) -> Result<Json<Todo>, Error> {
    let id: i64 = req.path()?;
    let input: TodoInput = json_object(&mut req).await?;
    let db = &req.state::<App>()?.db;
    store(db, id, Some(input.title), Some(input.completed)).await
}

/// Change some fields of a todo.
#[utoipa::path(patch, path = "/todos/{id}", tag = "todos",
    params(("id" = i64, Path, description = "The todo's id")),
    request_body = TodoPatch,
    responses((status = 200, description = "The todo, changed", body = Todo)))]
async fn update_todo(mut req: Request) -> Result<Json<Todo>, Error> {
    let id: i64 = req.path()?;
    let patch: TodoPatch = json_object(&mut req).await?;
    let db = &req.state::<App>()?.db;
    store(db, id, patch.title, patch.completed).await
}

/// Write the given fields of todo `id`; the todo as it is now.
async fn store(
    db: &Db,
    id: i64,
    title: Option<String>,
    completed: Option<bool>,
) -> Result<Json<Todo>, Error> {
    let todo = with_conn(db, move |c| {
        c.query_row(
            "UPDATE todos SET title = coalesce(?2, title), completed = coalesce(?3, completed)
             WHERE id = ?1 RETURNING id, title, completed",
            (id, title, completed),
            todo_of,
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
    })
    .await?;
    Ok(Json(todo.ok_or_else(|| not_found(id))?))
}

/// Delete a todo.
#[utoipa::path(delete, path = "/todos/{id}", tag = "todos",
    params(("id" = i64, Path, description = "The todo's id")),
    responses((status = 204, description = "The todo, deleted")))]
async fn delete_todo(req: Request) -> Result<StatusCode, Error> {
    let id: i64 = req.path()?;
    let deleted = with_conn(&req.state::<App>()?.db, move |c| {
        c.execute("DELETE FROM todos WHERE id = ?1", [id])
    })
    .await?;
    if deleted == 0 {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}
