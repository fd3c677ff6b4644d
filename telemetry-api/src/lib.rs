//! The Weft telemetry service: an axum HTTP API over Postgres (sqlx) that
//! collects completion telemetry from Weft editors and answers research
//! queries over it.
//!
//! # Design
//!
//! * **One append-only event log.** Every telemetry event, whatever its
//!   kind, is one row of `events`, keyed by its client-generated UUID.
//!   Ingest is `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT (event_id)
//!   DO NOTHING`: one statement per batch, and a retried batch adds nothing
//!   twice. A trigger refuses updates; rows leave only with their account.
//!   Typed views (`completion_requests`, `generations`, ...) are derived
//!   from the log, and the columns queries filter on (`kind`, `model`,
//!   `language`, `completion_id`, `editor`) are copied out of the JSON at
//!   ingest.
//! * **The wire crate is the contract.** Event types live in
//!   `weft-telemetry-wire`, shared with the LSP client, which must not link
//!   axum or sqlx. This crate adds only storage and HTTP around them.
//! * **Per-event validation.** A batch is parsed as an envelope holding raw
//!   JSON events; each event is then parsed and validated on its own, so
//!   one bad event is reported and the rest are stored ([`ingest`]).
//! * **Ownership in SQL.** Queries for a plain user bind their id into the
//!   SQL (`where user_id = $1`), never filter afterwards ([`queries`]).
//! * **Secrets.** Passwords are Argon2id (19 MiB, t=2, p=1) hashed on a
//!   blocking thread; bearer tokens are 256 random bits stored only as
//!   SHA-256 hashes; TOTP is RFC 6238 ([`auth`]).
//! * **One error type.** [`error::ApiError`] maps to 400/401/403/404/409/
//!   413/422/429/500 with a JSON body; a 500 logs its cause and shows none.
//! * **Generated API document.** Handlers carry `#[utoipa::path]` and the
//!   router is built with `utoipa-axum`, so `/openapi.json` is generated
//!   from the routes; the committed copy is checked by a test.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod metrics;
pub mod queries;
pub mod routes;
pub mod state;

pub use config::ServiceConfig;
pub use routes::{app, openapi};
pub use state::AppState;

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Serves the app on `listener` until `shutdown` resolves, with the peer
/// address available for login throttling.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
