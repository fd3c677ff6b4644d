//! The caller's own account: profile, consent, password, sessions, export
//! and deletion. Every query here is keyed by the caller's own user id.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use weft_telemetry_wire::ErrorBody;

use super::account::{UserView, validate_password};
use crate::auth::{AuthUser, password};
use crate::db::consent::Consent;
use crate::db::events::StoredEvent;
use crate::db::sessions::SessionRow;
use crate::db::users::UserRow;
use crate::db::{self};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub user: UserView,
    pub consent: Consent,
}

/// Loads the caller's row; a token whose user vanished is a 401.
pub(crate) async fn load_self(state: &AppState, caller: &AuthUser) -> ApiResult<UserRow> {
    db::users::by_id(&state.pool, caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_token", "the account no longer exists"))
}

/// The caller's account and consent.
#[utoipa::path(
    get, path = "/v1/me", tag = "me",
    security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody))
)]
pub async fn me(State(state): State<AppState>, caller: AuthUser) -> ApiResult<Json<Me>> {
    let user = load_self(&state, &caller).await?;
    let consent = db::consent::get(&state.pool, caller.user_id).await?;
    Ok(Json(Me { user: UserView::try_from(&user)?, consent }))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordConfirmation {
    pub password: String,
}

/// Deletes the caller's account and, with it, every session, consent
/// record and event of theirs.
#[utoipa::path(
    delete, path = "/v1/me", tag = "me",
    security(("bearer" = [])),
    request_body = PasswordConfirmation,
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Wrong password", body = ErrorBody)
    )
)]
pub async fn delete_account(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(req): ApiJson<PasswordConfirmation>,
) -> ApiResult<StatusCode> {
    let user = load_self(&state, &caller).await?;
    check_password(&user, req.password).await?;
    db::users::delete(&state.pool, caller.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn check_password(user: &UserRow, password: String) -> ApiResult<()> {
    if password::verify(Some(user.password_hash.clone()), password).await? {
        Ok(())
    } else {
        Err(ApiError::forbidden("wrong_password", "the password is wrong"))
    }
}

/// Sets the caller's consent per category.
#[utoipa::path(
    put, path = "/v1/me/consent", tag = "me",
    security(("bearer" = [])),
    request_body = Consent,
    responses((status = 200, body = Consent), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn set_consent(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(consent): ApiJson<Consent>,
) -> ApiResult<Json<Consent>> {
    db::consent::set(&state.pool, caller.user_id, consent).await?;
    Ok(Json(consent))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    /// At least 10 characters.
    pub new_password: String,
}

/// Changes the password and revokes every other session.
#[utoipa::path(
    put, path = "/v1/me/password", tag = "me",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Wrong current password", body = ErrorBody),
        (status = 422, description = "Weak new password", body = ErrorBody)
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let user = load_self(&state, &caller).await?;
    validate_password(&req.new_password)?;
    check_password(&user, req.current_password).await?;
    let hash = password::hash(req.new_password).await?;
    db::users::set_password(&state.pool, caller.user_id, &hash).await?;
    db::sessions::delete_others(&state.pool, caller.user_id, caller.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A logged-in device.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub device: String,
    /// True for the session making this request.
    pub current: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

fn session_view(row: SessionRow, caller: &AuthUser) -> SessionView {
    SessionView {
        current: row.id == caller.session_id,
        id: row.id,
        device: row.device,
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
        expires_at: row.expires_at,
    }
}

/// The caller's active sessions, newest first.
#[utoipa::path(
    get, path = "/v1/me/sessions", tag = "me",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionView>), (status = 401, body = ErrorBody))
)]
pub async fn list_sessions(State(state): State<AppState>, caller: AuthUser) -> ApiResult<Json<Vec<SessionView>>> {
    let rows = db::sessions::list(&state.pool, caller.user_id).await?;
    Ok(Json(rows.into_iter().map(|row| session_view(row, &caller)).collect()))
}

/// Revokes one of the caller's sessions (another device, or this one).
#[utoipa::path(
    delete, path = "/v1/me/sessions/{id}", tag = "me",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session of yours", body = ErrorBody)
    )
)]
pub async fn revoke_session(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    if db::sessions::delete(&state.pool, caller.user_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such session".to_owned()))
    }
}

/// Everything the service holds about the caller.
#[derive(Serialize, ToSchema)]
pub struct DataExport {
    pub user: UserView,
    pub consent: Consent,
    pub sessions: Vec<SessionView>,
    pub events: Vec<StoredEvent>,
}

/// Exports all of the caller's data as JSON.
#[utoipa::path(
    get, path = "/v1/me/export", tag = "me",
    security(("bearer" = [])),
    responses((status = 200, body = DataExport), (status = 401, body = ErrorBody))
)]
pub async fn export_my_data(State(state): State<AppState>, caller: AuthUser) -> ApiResult<Json<DataExport>> {
    let user = load_self(&state, &caller).await?;
    let consent = db::consent::get(&state.pool, caller.user_id).await?;
    let sessions = db::sessions::list(&state.pool, caller.user_id).await?;
    let events = db::events::all_of_user(&state.pool, caller.user_id).await?;
    Ok(Json(DataExport {
        user: UserView::try_from(&user)?,
        consent,
        sessions: sessions.into_iter().map(|row| session_view(row, &caller)).collect(),
        events,
    }))
}
