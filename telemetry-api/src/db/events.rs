//! The append-only `events` table.

use std::collections::HashSet;

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use weft_telemetry_wire::ClientInfo;

/// One event ready to insert: envelope columns plus the normalised `data`
/// already serialised to JSON text.
pub struct NewEvent {
    pub id: Uuid,
    pub kind: &'static str,
    pub occurred_at: OffsetDateTime,
    pub session_id: Option<Uuid>,
    pub completion_id: Option<Uuid>,
    pub model: Option<String>,
    pub language: Option<String>,
    pub payload_json: String,
}

/// Inserts a batch in one statement (`UNNEST` of column arrays). Events
/// whose id exists already are skipped; returns the ids actually inserted.
pub async fn insert_batch(
    pool: &PgPool,
    user_id: Uuid,
    client: &ClientInfo,
    events: Vec<NewEvent>,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut occurred = Vec::with_capacity(n);
    let mut sessions = Vec::with_capacity(n);
    let mut completions = Vec::with_capacity(n);
    let mut models = Vec::with_capacity(n);
    let mut languages = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for e in events {
        ids.push(e.id);
        kinds.push(e.kind);
        occurred.push(e.occurred_at);
        sessions.push(e.session_id);
        completions.push(e.completion_id);
        models.push(e.model);
        languages.push(e.language);
        payloads.push(e.payload_json);
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "insert into events (event_id, user_id, kind, occurred_at, session_id, completion_id, \
                             model, language, payload, editor, editor_version, plugin_version, os) \
         select e.id, $1, e.kind, e.occurred_at, e.session_id, e.completion_id, \
                e.model, e.language, e.payload::jsonb, $10, $11, $12, $13 \
         from unnest($2::uuid[], $3::text[], $4::timestamptz[], $5::uuid[], $6::uuid[], \
                     $7::text[], $8::text[], $9::text[]) \
              as e(id, kind, occurred_at, session_id, completion_id, model, language, payload) \
         on conflict (event_id) do nothing \
         returning event_id",
    )
    .bind(user_id)
    .bind(ids)
    .bind(kinds)
    .bind(occurred)
    .bind(sessions)
    .bind(completions)
    .bind(models)
    .bind(languages)
    .bind(payloads)
    .bind(&client.editor)
    .bind(&client.editor_version)
    .bind(&client.plugin_version)
    .bind(&client.os)
    .fetch_all(pool)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// A stored event as exports show it.
#[derive(sqlx::FromRow, Serialize, ToSchema, Clone, Debug)]
pub struct StoredEvent {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    pub session_id: Option<Uuid>,
    pub completion_id: Option<Uuid>,
    pub model: Option<String>,
    pub language: Option<String>,
    pub editor: String,
    pub editor_version: String,
    pub plugin_version: String,
    pub os: String,
    /// The event's `data`, as stored.
    pub data: serde_json::Value,
}

/// The columns of [`StoredEvent`] from `events e`.
pub const STORED_EVENT_COLUMNS: &str = "e.event_id as id, e.user_id, e.kind, e.occurred_at, \
     e.received_at, e.session_id, e.completion_id, e.model, e.language, e.editor, \
     e.editor_version, e.plugin_version, e.os, e.payload as data";

/// Every event of one user, oldest first (for "export my data").
pub async fn all_of_user(pool: &PgPool, user_id: Uuid) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {STORED_EVENT_COLUMNS} from events e where e.user_id = $1 \
         order by e.occurred_at, e.event_id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await
}
