//! A browsable API page, rendered on the server from the OpenAPI document.
//! Plain HTML with inline CSS and no scripts, so it works offline.

use std::fmt::Write as _;

use axum::response::Html;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::{RefOr, Required};

/// Browsable list of the endpoints.
#[utoipa::path(
    get, path = "/docs", tag = "system",
    responses((status = 200, description = "HTML page", body = String, content_type = "text/html"))
)]
pub async fn docs_page() -> Html<String> {
    Html(render(&super::openapi()))
}

const METHODS: [(HttpMethod, &str); 5] = [
    (HttpMethod::Get, "GET"),
    (HttpMethod::Post, "POST"),
    (HttpMethod::Put, "PUT"),
    (HttpMethod::Patch, "PATCH"),
    (HttpMethod::Delete, "DELETE"),
];

fn operation<'a>(item: &'a utoipa::openapi::PathItem, method: &HttpMethod) -> Option<&'a Operation> {
    match method {
        HttpMethod::Get => item.get.as_ref(),
        HttpMethod::Post => item.post.as_ref(),
        HttpMethod::Put => item.put.as_ref(),
        HttpMethod::Patch => item.patch.as_ref(),
        HttpMethod::Delete => item.delete.as_ref(),
        _ => None,
    }
}

/// Renders the page.
pub fn render(api: &utoipa::openapi::OpenApi) -> String {
    let mut out = String::new();
    let title = escape(&api.info.title);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}}\
         code{{background:#f4f4f4;padding:0 .2rem}}.m{{font-weight:bold;font-family:monospace}}</style></head><body>\
         <h1>{title} <small>{}</small></h1>",
        escape(&api.info.version)
    );
    if let Some(description) = &api.info.description {
        let _ = write!(out, "<p>{}</p>", escape(description));
    }
    out.push_str(
        "<p>Machine-readable: <a href=\"/openapi.json\"><code>/openapi.json</code></a>. \
         Authenticated endpoints take <code>Authorization: Bearer &lt;token&gt;</code> \
         from <code>POST /v1/auth/login</code>.</p>\
         <table><tr><th>Method</th><th>Path</th><th>What</th><th>Auth</th><th>Parameters</th><th>Responses</th></tr>",
    );
    for (path, item) in &api.paths.paths {
        for (method, name) in &METHODS {
            let Some(op) = operation(item, method) else {
                continue;
            };
            let what = op.summary.as_deref().or(op.description.as_deref()).unwrap_or("");
            let auth = if op.security.as_ref().is_some_and(|s| !s.is_empty()) { "bearer" } else { "none" };
            let params = op
                .parameters
                .iter()
                .flatten()
                .map(|p| {
                    let required = matches!(p.required, Required::True);
                    format!("<code>{}</code>{}", escape(&p.name), if required { "*" } else { "" })
                })
                .collect::<Vec<_>>()
                .join(" ");
            let body = op
                .request_body
                .as_ref()
                .and_then(|b| b.content.values().next())
                .and_then(|c| c.schema.as_ref())
                .map(|s| match s {
                    RefOr::Ref(r) => {
                        format!(" body: <code>{}</code>", escape(r.ref_location.rsplit('/').next().unwrap_or("")))
                    }
                    RefOr::T(_) => " body".to_owned(),
                })
                .unwrap_or_default();
            let responses = op.responses.responses.keys().map(|code| escape(code)).collect::<Vec<_>>().join(" ");
            let _ = write!(
                out,
                "<tr><td class=\"m\">{name}</td><td><code>{}</code></td><td>{}</td><td>{auth}</td>\
                 <td>{params}{body}</td><td>{responses}</td></tr>",
                escape(path),
                escape(what),
            );
        }
    }
    out.push_str("</table>");
    if let Some(components) = &api.components {
        out.push_str("<h2>Schemas</h2><p>");
        let names: Vec<String> =
            components.schemas.keys().map(|name| format!("<code>{}</code>", escape(name))).collect();
        out.push_str(&names.join(" "));
        out.push_str("</p>");
    }
    out.push_str("</body></html>");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
