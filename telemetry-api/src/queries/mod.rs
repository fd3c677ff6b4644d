//! Research queries over the event log.
//!
//! Every query takes a [`Scope`]: a user sees only their own data, while
//! researchers and admins see everyone's (or one user's, when they ask).
//! The scope is enforced in the SQL itself, as
//! `($1::uuid is null or user_id = $1)` with `$1` bound to the caller's id
//! for plain users, and every join between events also matches on
//! `user_id`, so one user's completion ids can never pick up another's
//! events.

pub mod acceptance;
pub mod arms;
pub mod calibration;
pub mod export;
pub mod funnel;
pub mod latency;
pub mod quality;
pub mod stats;

use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::{AuthUser, Role};
use crate::error::ApiError;

/// Whose data a query may read: `Some(id)` one user's, `None` everyone's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope(pub Option<Uuid>);

impl Scope {
    /// Users are confined to themselves (asking for someone else is a 403);
    /// researchers and admins see all, or the one user they name.
    pub fn for_caller(caller: &AuthUser, requested: Option<Uuid>) -> Result<Scope, ApiError> {
        if caller.role >= Role::Researcher {
            return Ok(Scope(requested));
        }
        match requested {
            Some(id) if id != caller.user_id => {
                Err(ApiError::forbidden("forbidden", "users can query only their own data"))
            }
            _ => Ok(Scope(Some(caller.user_id))),
        }
    }
}

/// Filters shared by the research queries.
#[derive(Deserialize, IntoParams, Clone, Debug, Default)]
#[into_params(parameter_in = Query)]
pub struct ResearchFilter {
    /// Only this user's data. Users may name only themselves.
    pub user_id: Option<Uuid>,
    /// Events at or after this time (RFC 3339, e.g. `2025-03-01T00:00:00Z`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<OffsetDateTime>,
    /// Events before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<OffsetDateTime>,
    /// Only this model.
    pub model: Option<String>,
    /// Only completions in this language (LSP language id).
    pub language: Option<String>,
}
