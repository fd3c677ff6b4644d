//! Account administration: admins list accounts and change roles.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;
use weft_telemetry_wire::ErrorBody;

use super::account::UserView;
use crate::auth::{AuthUser, Role};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// Every account, oldest first.
#[utoipa::path(
    get, path = "/v1/admin/users", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<UserView>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody)
    )
)]
pub async fn list_users(State(state): State<AppState>, caller: AuthUser) -> ApiResult<Json<Vec<UserView>>> {
    caller.require(Role::Admin)?;
    let users = db::users::list(&state.pool).await?;
    Ok(Json(users.iter().map(UserView::try_from).collect::<Result<_, _>>()?))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleChange {
    pub role: Role,
}

/// Changes an account's role. Admins cannot change their own (so that the
/// last admin cannot lock everyone out).
#[utoipa::path(
    put, path = "/v1/admin/users/{id}/role", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = RoleChange,
    responses(
        (status = 200, body = UserView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Own role", body = ErrorBody),
        (status = 422, description = "Unknown role", body = ErrorBody)
    )
)]
pub async fn set_role(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<RoleChange>,
) -> ApiResult<Json<UserView>> {
    caller.require(Role::Admin)?;
    if id == caller.user_id {
        return Err(ApiError::conflict("own_role", "admins cannot change their own role"));
    }
    let user = db::users::set_role(&state.pool, id, req.role)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such user".to_owned()))?;
    Ok(Json(UserView::try_from(&user)?))
}
