//! Registration, login and logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use weft_telemetry_wire::ErrorBody;

use crate::auth::{AuthUser, Role, password, throttle, token, totp};
use crate::db::consent::Consent;
use crate::db::users::UserRow;
use crate::db::{self};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientAddr};
use crate::state::AppState;

const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_CHARS: usize = 1024;

/// An account as the API shows it.
#[derive(Serialize, ToSchema, Clone, Debug)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub totp_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl TryFrom<&UserRow> for UserView {
    type Error = ApiError;

    fn try_from(row: &UserRow) -> Result<UserView, ApiError> {
        Ok(UserView {
            id: row.id,
            email: row.email.clone(),
            role: Role::parse(&row.role).ok_or_else(|| anyhow::anyhow!("unknown role {:?} in database", row.role))?,
            totp_enabled: row.totp_enabled,
            created_at: row.created_at,
        })
    }
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    /// Initial consent; defaults to usage on, code off.
    #[serde(default)]
    pub consent: Option<Consent>,
}

/// Creates an account with the `user` role.
#[utoipa::path(
    post, path = "/v1/auth/register", tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "Email address taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid email or weak password", body = ErrorBody)
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let email = validate_email(&req.email)?;
    validate_password(&req.password)?;
    let hash = password::hash(req.password).await?;
    let user = db::users::create(&state.pool, &email, &hash, Role::User)
        .await?
        .ok_or_else(|| ApiError::conflict("email_taken", "an account with this email exists"))?;
    if let Some(consent) = req.consent {
        db::consent::set(&state.pool, user.id, consent).await?;
    }
    Ok((StatusCode::CREATED, Json(UserView::try_from(&user)?)))
}

pub(crate) fn validate_email(email: &str) -> ApiResult<String> {
    let email = email.trim();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if valid {
        Ok(email.to_owned())
    } else {
        Err(ApiError::unprocessable("invalid_email", "expected an email address such as ada@example.com"))
    }
}

pub(crate) fn validate_password(password: &str) -> ApiResult<()> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "weak_password",
            format!("a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ))
    }
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The current six-digit code, when two-factor is on.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// A name for this session, e.g. `laptop (vscode)`.
    #[serde(default)]
    pub device: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token; shown once, stored by the server only as a hash.
    pub token: String,
    pub session_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    pub user: UserView,
}

/// Logs in and opens a session (one per device).
///
/// After 5 failures for one account, or 20 from one address, within 15
/// minutes, logins are refused with 429 and `Retry-After`.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong credentials (`invalid_credentials`), code needed (`totp_required`) or wrong code (`invalid_totp`)", body = ErrorBody),
        (status = 429, description = "Too many failures; see `Retry-After`", body = ErrorBody)
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let throttle_config = &state.config.throttle;
    let email = req.email.trim().to_owned();
    throttle::check(&state.pool, throttle_config, &email, &addr).await?;

    let user = db::users::by_email(&state.pool, &email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let password_ok = password::verify(stored, req.password).await?;
    let Some(user) = user.filter(|_| password_ok) else {
        throttle::record_failure(&state.pool, throttle_config, &email, &addr).await?;
        return Err(ApiError::unauthorized("invalid_credentials", "wrong email address or password"));
    };

    if user.totp_enabled {
        let Some(code) = req.totp_code.as_deref() else {
            return Err(ApiError::unauthorized("totp_required", "this account needs a two-factor code (`totp_code`)"));
        };
        let secret = user.totp_secret.as_deref().ok_or_else(|| anyhow::anyhow!("two-factor is on without a secret"))?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let step = totp::verify(secret, code, now, user.totp_last_step);
        let accepted = match step {
            Some(step) => db::users::use_totp_step(&state.pool, user.id, step).await?,
            None => false,
        };
        if !accepted {
            throttle::record_failure(&state.pool, throttle_config, &email, &addr).await?;
            return Err(ApiError::unauthorized("invalid_totp", "wrong or already used two-factor code"));
        }
    }

    throttle::clear_account(&state.pool, &email).await?;
    let new = token::generate()?;
    let expires_at = OffsetDateTime::now_utc() + state.config.session_ttl;
    let device = req.device.unwrap_or_default();
    let device: String = device.chars().take(200).collect();
    let session = db::sessions::create(&state.pool, user.id, &new.hash, &device, expires_at).await?;
    Ok(Json(LoginResponse {
        token: new.token,
        session_id: session.id,
        expires_at: session.expires_at,
        user: UserView::try_from(&user)?,
    }))
}

/// Ends the current session (revokes its token).
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not logged in", body = ErrorBody)
    )
)]
pub async fn logout(State(state): State<AppState>, caller: AuthUser) -> ApiResult<StatusCode> {
    db::sessions::delete(&state.pool, caller.user_id, caller.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
