//! The documentation page: self-contained (nothing to fetch), documented like any route, and
//! rendered by a real browser (headless Chromium, installed by `scripts/test.sh`) into every
//! operation and schema, with text from the document shown as text, never as markup.

use std::time::Duration;

use conduit_api::{ApiRouter, routes};
use conduit_core::{Json, Request};
use conduit_test_support::{config, dump_dom, get, start};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(Serialize, ToSchema)]
struct Gadget {
    id: u32,
}

/// List gadgets.
///
/// A description with markup that must stay text: </script><b id="injected">bold</b>
#[utoipa::path(get, path = "/gadgets",
    params(("limit" = Option<u32>, Query, description = "how many")),
    responses((status = 200, description = "the gadgets", body = [Gadget])))]
async fn list_gadgets(_req: Request) -> Json<Vec<Gadget>> {
    Json(vec![Gadget { id: 1 }])
}

/// Add a gadget.
#[utoipa::path(post, path = "/gadgets", request_body = Gadget,
    responses((status = 201, description = "added", body = Gadget)))]
async fn add_gadget(_req: Request) -> Json<Gadget> {
    Json(Gadget { id: 2 })
}

#[derive(OpenApi)]
#[openapi(info(title = "Gadget <API>", version = "2.0.0"))]
struct Doc;

#[tokio::test]
async fn the_page_is_self_contained_and_renders_every_operation() {
    let app = ApiRouter::new(Doc::openapi())
        .routes(routes!(list_gadgets, add_gadget))
        .docs_page("/docs")
        .serve_openapi("/openapi.json");
    let srv = start(config(), app).await;

    let res = get(srv.addr, "/docs").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let html = res.text();
    for fetches in [
        "src=",
        "href=",
        "@import",
        "url(",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(
            !html.contains(fetches),
            "the page must fetch nothing: {fetches}"
        );
    }
    assert_eq!(
        html.matches("</script>").count(),
        2,
        "the document cannot close its element"
    );

    let doc: serde_json::Value =
        serde_json::from_slice(&get(srv.addr, "/openapi.json").await.body).unwrap();
    assert_eq!(doc["paths"]["/docs"]["get"]["operationId"], "getApiDocs");

    // A real browser renders it (the script runs before the DOM is dumped).
    let dom = dump_dom(
        &format!("http://{}/docs", srv.addr),
        Duration::from_secs(60),
    )
    .await;
    assert!(dom.contains("<h1>Gadget &lt;API&gt;</h1>"), "{dom}");
    assert!(
        dom.contains("<title>Gadget &lt;API&gt; documentation</title>"),
        "{dom}"
    );
    for id in [
        "list_gadgets",
        "add_gadget",
        "getOpenApi",
        "getApiDocs",
        "schema-Gadget",
        "schema-Problem",
    ] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "no section {id}: {dom}"
        );
    }
    assert!(dom.contains("<code>/gadgets</code>"));
    assert!(dom.contains("<td>how many</td>"), "the parameter table");
    assert!(
        dom.contains("application/problem+json Problem"),
        "the default response"
    );
    assert!(
        dom.contains("application/json Gadget"),
        "the request body or response"
    );
    assert!(
        dom.contains("&lt;/script&gt;&lt;b id=\"injected\"&gt;bold&lt;/b&gt;"),
        "markup in the document is text: {dom}"
    );
    assert!(!dom.contains("<b id=\"injected\">"));
}
