//! Two-factor enrolment: enrol (get a secret), confirm with a code, and
//! from then on logins need a code. Disabling needs a code too.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use weft_telemetry_wire::ErrorBody;

use super::me::load_self;
use crate::auth::{AuthUser, totp};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// Base32 secret for manual entry.
    pub secret: String,
    /// `otpauth://` URL for a QR code.
    pub otpauth_url: String,
}

#[derive(Deserialize, ToSchema)]
pub struct TotpCode {
    /// Six digits from the authenticator app.
    pub code: String,
}

/// Starts two-factor enrolment; replaces any unconfirmed secret.
#[utoipa::path(
    post, path = "/v1/me/totp", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, body = TotpEnrollment),
        (status = 401, body = ErrorBody),
        (status = 409, description = "Two-factor is on already", body = ErrorBody)
    )
)]
pub async fn enroll(State(state): State<AppState>, caller: AuthUser) -> ApiResult<Json<TotpEnrollment>> {
    let user = load_self(&state, &caller).await?;
    if user.totp_enabled {
        return Err(ApiError::conflict("totp_enabled", "two-factor is on already"));
    }
    let secret = totp::generate_secret()?;
    db::users::set_totp_secret(&state.pool, user.id, &secret).await?;
    Ok(Json(TotpEnrollment {
        secret: totp::base32(&secret),
        otpauth_url: totp::otpauth_url("Weft", &user.email, &secret),
    }))
}

/// Confirms enrolment with a current code; two-factor is on from now.
#[utoipa::path(
    post, path = "/v1/me/totp/confirm", tag = "me",
    security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 204, description = "Two-factor is on"),
        (status = 401, body = ErrorBody),
        (status = 409, description = "Not enrolled, or on already", body = ErrorBody),
        (status = 422, description = "Wrong code", body = ErrorBody)
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(req): ApiJson<TotpCode>,
) -> ApiResult<StatusCode> {
    let user = load_self(&state, &caller).await?;
    let secret = match (&user.totp_secret, user.totp_enabled) {
        (Some(secret), false) => secret,
        (_, true) => {
            return Err(ApiError::conflict("totp_enabled", "two-factor is on already"));
        }
        (None, false) => {
            return Err(ApiError::conflict("totp_not_enrolled", "enrol first (POST /v1/me/totp)"));
        }
    };
    check_code(&state, user.id, secret, &req.code, user.totp_last_step).await?;
    db::users::set_totp_enabled(&state.pool, user.id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns two-factor off; needs a current code.
#[utoipa::path(
    delete, path = "/v1/me/totp", tag = "me",
    security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 204, description = "Two-factor is off"),
        (status = 401, body = ErrorBody),
        (status = 409, description = "Two-factor is off already", body = ErrorBody),
        (status = 422, description = "Wrong code", body = ErrorBody)
    )
)]
pub async fn disable(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(req): ApiJson<TotpCode>,
) -> ApiResult<StatusCode> {
    let user = load_self(&state, &caller).await?;
    let Some(secret) = user.totp_secret.as_deref().filter(|_| user.totp_enabled) else {
        return Err(ApiError::conflict("totp_disabled", "two-factor is off already"));
    };
    check_code(&state, user.id, secret, &req.code, user.totp_last_step).await?;
    db::users::set_totp_enabled(&state.pool, user.id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn check_code(
    state: &AppState,
    user_id: uuid::Uuid,
    secret: &[u8],
    code: &str,
    last_step: Option<i64>,
) -> ApiResult<()> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let ok = match totp::verify(secret, code, now, last_step) {
        Some(step) => db::users::use_totp_step(&state.pool, user_id, step).await?,
        None => false,
    };
    if ok { Ok(()) } else { Err(ApiError::unprocessable("invalid_totp", "wrong or already used two-factor code")) }
}
