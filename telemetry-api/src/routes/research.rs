//! Research queries. Researchers and admins query everyone's data (or one
//! user's with `user_id`); users get the same queries over their own data.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use weft_telemetry_wire::ErrorBody;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::queries::acceptance::{self, AcceptanceRow};
use crate::queries::arms::{self, ArmRow};
use crate::queries::calibration::{self, CalibrationRow};
use crate::queries::export::{self, ExportParams, ExportedEvent};
use crate::queries::funnel::{self, Funnel};
use crate::queries::latency::{self, LatencyRow};
use crate::queries::quality::{self, QualityRow};
use crate::queries::{ResearchFilter, Scope};
use crate::state::AppState;

/// Acceptance rate by model × language × editor × day, with Wilson 95%
/// confidence intervals.
#[utoipa::path(
    get, path = "/v1/research/acceptance", tag = "research",
    security(("bearer" = [])),
    params(ResearchFilter),
    responses(
        (status = 200, body = Vec<AcceptanceRow>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A user asked for someone else's data", body = ErrorBody)
    )
)]
pub async fn acceptance(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(filter): ApiQuery<ResearchFilter>,
) -> ApiResult<Json<Vec<AcceptanceRow>>> {
    let scope = Scope::for_caller(&caller, filter.user_id)?;
    Ok(Json(acceptance::run(&state.pool, scope, &filter).await?))
}

/// Funnel: requested → shown → accepted → unchanged (edit similarity ≥
/// 0.67) at 30, 120, 300 and 600 seconds.
#[utoipa::path(
    get, path = "/v1/research/funnel", tag = "research",
    security(("bearer" = [])),
    params(ResearchFilter),
    responses(
        (status = 200, body = Funnel),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)
    )
)]
pub async fn funnel(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(filter): ApiQuery<ResearchFilter>,
) -> ApiResult<Json<Funnel>> {
    let scope = Scope::for_caller(&caller, filter.user_id)?;
    Ok(Json(funnel::run(&state.pool, scope, &filter).await?))
}

/// Latency percentiles (p50/p95/p99) per model: total, queue, prefill,
/// decode.
#[utoipa::path(
    get, path = "/v1/research/latency", tag = "research",
    security(("bearer" = [])),
    params(ResearchFilter),
    responses(
        (status = 200, body = Vec<LatencyRow>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)
    )
)]
pub async fn latency(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(filter): ApiQuery<ResearchFilter>,
) -> ApiResult<Json<Vec<LatencyRow>>> {
    let scope = Scope::for_caller(&caller, filter.user_id)?;
    Ok(Json(latency::run(&state.pool, scope, &filter).await?))
}

/// Exact match and edit similarity of completions against ground truth,
/// per model, delay and accepted/rejected.
#[utoipa::path(
    get, path = "/v1/research/quality", tag = "research",
    security(("bearer" = [])),
    params(ResearchFilter),
    responses(
        (status = 200, body = Vec<QualityRow>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)
    )
)]
pub async fn quality(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(filter): ApiQuery<ResearchFilter>,
) -> ApiResult<Json<Vec<QualityRow>>> {
    let scope = Scope::for_caller(&caller, filter.user_id)?;
    Ok(Json(quality::run(&state.pool, scope, &filter).await?))
}

/// Calibration of confidence (mean token probability) against acceptance
/// per model: Brier score and reliability bins of width 0.1, over shown or
/// accepted generations.
#[utoipa::path(
    get, path = "/v1/research/calibration", tag = "research",
    security(("bearer" = [])),
    params(ResearchFilter),
    responses(
        (status = 200, body = Vec<CalibrationRow>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)
    )
)]
pub async fn calibration(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(filter): ApiQuery<ResearchFilter>,
) -> ApiResult<Json<Vec<CalibrationRow>>> {
    let scope = Scope::for_caller(&caller, filter.user_id)?;
    Ok(Json(calibration::run(&state.pool, scope, &filter).await?))
}

/// A/B study arms side by side: users, requested, shown, accepted,
/// acceptance rate with its Wilson 95% interval, median latency. Arms are
/// named by the clients' requests (`study_arm`).
#[utoipa::path(
    get, path = "/v1/research/arms", tag = "research",
    security(("bearer" = [])),
    params(ResearchFilter),
    responses(
        (status = 200, body = Vec<ArmRow>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)
    )
)]
pub async fn arms(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(filter): ApiQuery<ResearchFilter>,
) -> ApiResult<Json<Vec<ArmRow>>> {
    let scope = Scope::for_caller(&caller, filter.user_id)?;
    Ok(Json(arms::run(&state.pool, scope, &filter).await?))
}

/// Raw events with filters, streamed as JSON (an array), JSON lines or CSV.
/// Users appear as pseudonyms (`u_…`, stable per deployment); source text
/// only of users who consent to sharing code.
#[utoipa::path(
    get, path = "/v1/research/events", tag = "research",
    security(("bearer" = [])),
    params(ExportParams),
    responses(
        (status = 200, description = "Events, oldest first", content(
            (Vec<ExportedEvent> = "application/json"),
            (String = "application/jsonl"),
            (String = "text/csv")
        )),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> ApiResult<Response> {
    let scope = Scope::for_caller(&caller, params.user_id)?;
    let limit = params.limit().ok_or_else(|| {
        ApiError::bad_request("invalid_query", format!("`limit` must be 1 to {}", export::MAX_EXPORT_LIMIT))
    })?;
    let key = crate::db::keys::pseudonym_key(&state.pool).await?;
    let format = params.format;
    let body = Body::from_stream(export::stream(state.pool.clone(), scope, params, limit, key));
    let disposition = format!("attachment; filename=\"{}\"", format.file_name());
    Ok(([(header::CONTENT_TYPE, format.content_type().to_owned()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response())
}
