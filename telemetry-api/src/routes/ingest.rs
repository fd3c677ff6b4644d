//! `POST /v1/events`: idempotent batch upload.

use axum::Json;
use axum::extract::State;
use time::OffsetDateTime;
use weft_telemetry_wire::{Batch, ErrorBody, EventStatus, IngestResponse};

use crate::auth::AuthUser;
use crate::db;
use crate::error::ApiResult;
use crate::extract::RawBody;
use crate::ingest;
use crate::state::AppState;

/// Uploads up to 1,000 events. Each event is parsed on its own: the answer
/// lists each as `accepted`, `duplicate` (its id was stored before; retries
/// are safe) or `rejected` with a reason. Source text is dropped unless the
/// account and the batch both consent to `code`.
#[utoipa::path(
    post, path = "/v1/events", tag = "ingest",
    security(("bearer" = [])),
    request_body = Batch,
    responses(
        (status = 200, description = "Batch processed; see per-event results", body = IngestResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Usage telemetry not consented (`consent_required`)", body = ErrorBody),
        (status = 413, description = "Over 1,000 events or over the body limit", body = ErrorBody),
        (status = 422, description = "Not a batch", body = ErrorBody)
    )
)]
pub async fn post_events(
    State(state): State<AppState>,
    caller: AuthUser,
    RawBody(body): RawBody,
) -> ApiResult<Json<IngestResponse>> {
    let consent = db::consent::get(&state.pool, caller.user_id).await?;
    let mut prepared = ingest::prepare(&body, consent, OffsetDateTime::now_utc())?;
    drop(body);
    let rows = prepared.take_rows();
    let inserted = db::events::insert_batch(&state.pool, caller.user_id, &prepared.client, rows).await?;
    let response = prepared.settle(&inserted);
    let metrics = &state.metrics;
    metrics.count_events(EventStatus::Accepted, u64::from(response.accepted));
    metrics.count_events(EventStatus::Duplicate, u64::from(response.duplicates));
    metrics.count_events(EventStatus::Rejected, u64::from(response.rejected));
    Ok(Json(response))
}
