//! The document and the routes cannot drift apart: over a real socket, every operation in the
//! served `/openapi.json` is answered by its handler, every other method on a documented path
//! is a 405, an undocumented path is a 404, and every route registered is in the document.
//! Every operation documents the problem+json `default`; schemas come from `ToSchema`.

use std::collections::BTreeSet;

use conduit_api::{ApiRoute, ApiRouter, routes};
use conduit_core::http::StatusCode;
use conduit_core::{IntoResponse, Json, Request, RequestExt, Response};
use conduit_test_support::{body_req, config, fetch, get, send_to, start};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

#[derive(Serialize, Deserialize, ToSchema)]
struct Pet {
    id: u64,
    name: String,
}

#[derive(Serialize, ToSchema)]
struct Owner {
    name: String,
    pets: Vec<Pet>,
}

/// Handlers in a module of their own: `routes!` takes paths too.
mod pets {
    use super::*;

    /// All pets.
    #[utoipa::path(get, path = "/pets", responses((status = 200, body = [Pet])))]
    pub async fn list(_req: Request) -> Json<Vec<Pet>> {
        Json(vec![Pet {
            id: 1,
            name: "rex".into(),
        }])
    }

    /// Add a pet.
    #[utoipa::path(post, path = "/pets", request_body = Pet,
        responses((status = 201, body = Pet)))]
    pub async fn create(req: Request) -> Response {
        match req.json::<Pet>().await {
            Ok(pet) => (StatusCode::CREATED, Json(pet)).into_response(),
            Err(e) => e.into_response(),
        }
    }

    /// One pet.
    #[utoipa::path(get, path = "/pets/{id}", params(("id" = u64, Path)),
        responses((status = 200, body = Pet)))]
    pub async fn one(req: Request) -> Json<Pet> {
        Json(Pet {
            id: req.param("id").and_then(|id| id.parse().ok()).unwrap_or(0),
            name: "rex".into(),
        })
    }

    /// Remove a pet; documents its own `default` response.
    #[utoipa::path(delete, path = "/pets/{id}", params(("id" = u64, Path)),
        responses((status = 204), (status = "default", description = "plain text", body = String,
            content_type = "text/plain")))]
    pub async fn remove(_req: Request) -> StatusCode {
        StatusCode::NO_CONTENT
    }
}

/// An owner's pet: two parameters.
#[utoipa::path(get, path = "/owners/{owner}/pets/{pet}",
    params(("owner" = String, Path), ("pet" = u64, Path)),
    responses((status = 200, body = Owner)))]
async fn owner_pet(req: Request) -> Json<Owner> {
    Json(Owner {
        name: req.param("owner").unwrap_or_default().to_owned(),
        pets: vec![],
    })
}

#[derive(OpenApi)]
#[openapi(info(title = "pets", version = "0.1.0"))]
struct Doc;

fn registered() -> Vec<ApiRoute> {
    routes!(pets::list, pets::create, pets::one, pets::remove, owner_pet,).into()
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(path, method)` of every operation in `doc`.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                ops.insert((path.clone(), method.clone()));
            }
        }
    }
    ops
}

/// A concrete path for a template: each `{param}` becomes `7`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "7" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The app on a real server (serving until the test's runtime ends) and its document.
async fn served_document() -> (std::net::SocketAddr, Value) {
    let app = ApiRouter::new(Doc::openapi())
        .routes(registered())
        .serve_openapi("/openapi.json");
    let srv = start(config(), app).await;
    let res = get(srv.addr, "/openapi.json").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let doc: Value = serde_json::from_slice(&res.body).expect("the document is JSON");
    (srv.addr, doc)
}

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else_is() {
    let (addr, doc) = served_document().await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);

    // Registered (what the router serves) == documented, the document's own route included.
    let mut expected: BTreeSet<(String, String)> = registered()
        .iter()
        .flat_map(|r| {
            r.methods()
                .into_iter()
                .map(|m| (r.path().to_owned(), m.as_str().to_ascii_lowercase()))
        })
        .collect();
    expected.insert(("/openapi.json".into(), "get".into()));
    assert_eq!(ops, expected);
    assert_eq!(ops.len(), 6);

    for path in doc["paths"].as_object().unwrap().keys() {
        let target = concrete(path);
        for method in METHODS {
            let res = if method == "post" {
                fetch(
                    addr,
                    body_req(
                        "POST",
                        &target,
                        "application/json",
                        r#"{"id":2,"name":"tom"}"#,
                    ),
                )
                .await
            } else {
                send_to(addr, &method.to_ascii_uppercase(), &target, &[]).await
            };
            if ops.contains(&(path.clone(), method.to_owned())) {
                assert!(
                    res.status.is_success(),
                    "{method} {target} is documented but answered {}",
                    res.status
                );
            } else {
                assert_eq!(
                    res.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {target} is not documented but answered {}",
                    res.status
                );
                // As the document promises: errors are problem+json.
                assert_eq!(res.header("content-type"), Some("application/problem+json"));
            }
        }
    }
    for undocumented in ["/", "/pet", "/pets/7/toys", "/owners/ann/pets"] {
        let res = get(addr, undocumented).await;
        assert_eq!(res.status, 404, "{undocumented}");
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
    }
    // A handler's own rejection too (415: the body is not JSON).
    let res = fetch(addr, body_req("POST", "/pets", "text/plain", "rex")).await;
    assert_eq!(res.status, 415);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
}

#[tokio::test]
async fn every_operation_documents_problem_json_and_schemas_come_from_to_schema() {
    let (_addr, doc) = served_document().await;
    let problem_ref = "#/components/schemas/Problem";
    for (path, method) in operations(&doc) {
        let default = &doc["paths"][&path][&method]["responses"]["default"];
        if (path.as_str(), method.as_str()) == ("/pets/{id}", "delete") {
            // An operation's own `default` is kept.
            assert!(default["content"]["text/plain"].is_object(), "{default}");
            continue;
        }
        assert_eq!(
            default["content"]["application/problem+json"]["schema"]["$ref"], problem_ref,
            "{method} {path}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let problem = &schemas["Problem"];
    for member in ["type", "title", "status", "detail", "instance"] {
        assert!(
            problem["properties"][member].is_object(),
            "Problem.{member}"
        );
    }
    assert_eq!(schemas["Pet"]["properties"]["name"]["type"], "string");
    // Owner names Pet: the nested schema is collected too.
    assert_eq!(
        schemas["Owner"]["properties"]["pets"]["items"]["$ref"],
        "#/components/schemas/Pet"
    );
    assert_eq!(
        doc["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Pet"
    );
}

#[test]
#[should_panic(expected = "already has a handler for GET")]
fn an_operation_registered_twice_is_refused() {
    let _ = ApiRouter::new(Doc::openapi()).routes(routes!(pets::list, pets::list));
}

#[tokio::test]
async fn a_nested_api_is_served_and_documented_under_its_prefix() {
    let v1 = ApiRouter::new(Doc::openapi()).routes(routes!(pets::list, pets::one));
    let app = ApiRouter::new(Doc::openapi())
        .routes(routes!(owner_pet))
        .nest("/v1", v1)
        .serve_openapi("/openapi.json");
    let srv = start(config(), app).await;
    let doc: Value = serde_json::from_slice(&get(srv.addr, "/openapi.json").await.body).unwrap();
    let ops = operations(&doc);
    let want: BTreeSet<(String, String)> = [
        ("/openapi.json", "get"),
        ("/owners/{owner}/pets/{pet}", "get"),
        ("/v1/pets", "get"),
        ("/v1/pets/{id}", "get"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), m.to_owned()))
    .collect();
    assert_eq!(ops, want);
    assert!(doc["components"]["schemas"]["Pet"].is_object());
    assert_eq!(get(srv.addr, "/v1/pets").await.status, 200);
    assert_eq!(get(srv.addr, "/v1/pets/7").await.status, 200);
    assert_eq!(get(srv.addr, "/pets").await.status, 404);
    assert_eq!(send_to(srv.addr, "POST", "/v1/pets", &[]).await.status, 405);
}

#[tokio::test]
async fn the_error_rendering_can_be_chosen() {
    let app = ApiRouter::new(Doc::openapi())
        .routes(routes!(pets::list))
        .errors(conduit_core::ErrorRenderer::negotiate())
        .serve_openapi("/openapi.json");
    let srv = start(config(), app).await;
    let res = send_to(
        srv.addr,
        "GET",
        "/nowhere",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let res = send_to(srv.addr, "GET", "/nowhere", &[("accept", "text/plain")]).await;
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[test]
fn into_parts_gives_the_router_and_the_document() {
    let (_router, doc) = ApiRouter::new(Doc::openapi())
        .routes(routes!(owner_pet))
        .into_parts();
    let paths: Vec<&String> = doc.paths.paths.keys().collect();
    assert_eq!(paths, ["/owners/{owner}/pets/{pet}"]);
}
