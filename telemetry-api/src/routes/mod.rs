//! HTTP routes. Each handler carries `#[utoipa::path]`; the router is
//! built with `utoipa-axum`, so the OpenAPI document is generated from the
//! very routes that are served.

pub mod account;
pub mod admin;
pub mod docs;
pub mod ingest;
pub mod me;
pub mod research;
pub mod system;
pub mod totp;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::ServiceConfig;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weft telemetry API",
        description = "Collects completion telemetry from Weft editors and answers research queries over it."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, metrics and this document"),
        (name = "accounts", description = "Registration, login and sessions"),
        (name = "me", description = "The caller's own account and data"),
        (name = "admin", description = "Account administration (admin role)"),
        (name = "ingest", description = "Telemetry upload"),
        (name = "research", description = "Queries over telemetry; users see only their own data")
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the handlers refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes and the OpenAPI document that describes them.
fn api_router(config: &ServiceConfig) -> (Router<AppState>, OpenApiDoc) {
    let ingest = OpenApiRouter::new()
        .routes(routes!(ingest::post_events))
        .layer(DefaultBodyLimit::max(config.ingest_body_limit_bytes));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi_json))
        .routes(routes!(docs::docs_page))
        .routes(routes!(account::register))
        .routes(routes!(account::login))
        .routes(routes!(account::logout))
        .routes(routes!(me::me, me::delete_account))
        .routes(routes!(me::set_consent))
        .routes(routes!(me::change_password))
        .routes(routes!(me::list_sessions))
        .routes(routes!(me::revoke_session))
        .routes(routes!(me::export_my_data))
        .routes(routes!(totp::enroll, totp::disable))
        .routes(routes!(totp::confirm))
        .routes(routes!(admin::list_users))
        .routes(routes!(admin::set_role))
        .merge(ingest)
        .routes(routes!(research::acceptance))
        .routes(routes!(research::funnel))
        .routes(routes!(research::latency))
        .routes(routes!(research::quality))
        .routes(routes!(research::calibration))
        .routes(routes!(research::arms))
        .routes(routes!(research::events))
        .split_for_parts()
}

/// The OpenAPI document of the service (what `/openapi.json` serves).
pub fn openapi() -> OpenApiDoc {
    api_router(&ServiceConfig::default()).1
}

/// The whole service: routes, JSON fallbacks, body limits and metrics.
pub fn app(state: AppState) -> Router {
    let (router, _) = api_router(&state.config);
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
