//! Who is calling: roles, bearer-token sessions, passwords, TOTP and login
//! throttling.

pub mod password;
pub mod throttle;
pub mod token;
pub mod totp;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

/// What an account may do. Ordered: each role can do what the previous can.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sends telemetry; reads and exports only their own data.
    User,
    /// Also runs research queries over everyone's data.
    Researcher,
    /// Also lists accounts and changes roles.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::User, Role::Researcher, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Researcher => "researcher",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An authenticated caller: a valid, unexpired bearer token.
#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
}

impl AuthUser {
    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden("forbidden", format!("this needs the {} role", role.as_str())))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized("unauthenticated", "missing `Authorization: Bearer <token>` header"));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("unauthenticated", "expected a Bearer token"))?;
        let session = db::sessions::authenticate(&state.pool, &token::hash(token))
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "the token is unknown, revoked or expired"))?;
        let role =
            Role::parse(&session.role).ok_or_else(|| anyhow::anyhow!("unknown role {:?} in database", session.role))?;
        Ok(AuthUser { user_id: session.user_id, session_id: session.session_id, role })
    }
}
