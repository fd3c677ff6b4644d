//! The committed `openapi.json` matches the routes, and the docs page
//! lists them.

use std::path::Path;

use sqlx::PgPool;
use weft_telemetry_api::routes::system::openapi_text;

use crate::common::TestApp;

/// Fails when `telemetry-api/openapi.json` drifts from the routes;
/// `UPDATE_OPENAPI=1 cargo test -p weft-telemetry-api openapi` rewrites it.
#[test]
fn committed_openapi_document_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = openapi_text();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; run `UPDATE_OPENAPI=1 cargo test -p weft-telemetry-api openapi` and commit it",
        path.display()
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn served_document_and_docs_page_cover_every_route(pool: PgPool) {
    let app = TestApp::new(pool);
    let served = app.get("/openapi.json").send().await;
    assert_eq!(served.headers["content-type"], "application/json");
    assert_eq!(served.text(), openapi_text());

    let spec = served.json();
    let page = app.get("/docs").send().await;
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text();
    assert!(!html.contains("<script"), "the page works offline, without scripts");
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    for (path, item) in paths {
        assert!(html.contains(&format!("<code>{path}</code>")), "{path} missing from /docs");
        // Every documented route is served: only a route that does not
        // exist answers `no such route`.
        for method in item.as_object().unwrap().keys() {
            let method: axum::http::Method = method.to_uppercase().parse().unwrap();
            let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
            let resp = app.request(method.clone(), concrete).send().await;
            let unrouted = resp.status == 404 && resp.text().contains("no such route");
            assert!(!unrouted, "{method} {path} is documented but not routed");
        }
    }
}
