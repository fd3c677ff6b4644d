//! Export of raw events with filters, streamed as JSON, JSON lines or CSV.
//!
//! Exports are for analysis outside the service, so they carry no account
//! ids: each user appears as a pseudonym, `u_` plus the first 96 bits of
//! HMAC-SHA256 over the user id with a per-deployment key
//! ([`crate::db::keys::pseudonym_key`]), stable across exports. Source
//! text (`prefix`, `suffix`) is left out of the events of users who do not
//! consent to sharing `code` now, even if they did when the events were
//! sent. Rows are read with a cursor and written as they come, in chunks,
//! so an export of 100,000 events never sits in memory.

use axum::body::Bytes;
use futures_util::{Stream, TryStreamExt};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::Scope;

/// The most events one export returns.
pub const MAX_EXPORT_LIMIT: i64 = 100_000;
const DEFAULT_EXPORT_LIMIT: i64 = 10_000;

#[derive(Deserialize, ToSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One JSON array.
    #[default]
    Json,
    /// One JSON object per line.
    Jsonl,
    Csv,
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Json => "application/json",
            ExportFormat::Jsonl => "application/jsonl; charset=utf-8",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Json => "events.json",
            ExportFormat::Jsonl => "events.jsonl",
            ExportFormat::Csv => "events.csv",
        }
    }
}

/// Query parameters of the export.
#[derive(Deserialize, IntoParams, Clone, Debug, Default)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Only this user's events. Users may name only themselves.
    pub user_id: Option<Uuid>,
    /// Events at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<OffsetDateTime>,
    /// Events before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<OffsetDateTime>,
    /// Only events about this model.
    pub model: Option<String>,
    /// Only events of completions in this language.
    pub language: Option<String>,
    /// Only this event kind, e.g. `accepted`.
    pub kind: Option<String>,
    /// `json` (default), `jsonl` or `csv`.
    #[serde(default)]
    pub format: ExportFormat,
    /// At most this many events (default 10,000, at most 100,000), oldest
    /// first.
    pub limit: Option<i64>,
}

impl ExportParams {
    /// The limit, or `None` when it is out of range.
    pub fn limit(&self) -> Option<i64> {
        let limit = self.limit.unwrap_or(DEFAULT_EXPORT_LIMIT);
        (1..=MAX_EXPORT_LIMIT).contains(&limit).then_some(limit)
    }
}

/// One exported event.
#[derive(Serialize, ToSchema, Clone, Debug)]
pub struct ExportedEvent {
    pub id: Uuid,
    /// The user's pseudonym, `u_` and 24 hex digits.
    pub user: String,
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
    /// The event's `data`, without source text unless the user consents.
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    user_id: Uuid,
    kind: String,
    occurred_at: OffsetDateTime,
    received_at: OffsetDateTime,
    session_id: Option<Uuid>,
    completion_id: Option<Uuid>,
    model: Option<String>,
    language: Option<String>,
    editor: String,
    editor_version: String,
    plugin_version: String,
    os: String,
    data: serde_json::Value,
}

const SQL: &str = "
select e.event_id as id, e.user_id, e.kind, e.occurred_at, e.received_at, e.session_id,
       e.completion_id, e.model, e.language, e.editor, e.editor_version, e.plugin_version, e.os,
       case when coalesce((select c.granted from consents c
                           where c.user_id = e.user_id and c.category = 'code'), false)
            then e.payload else e.payload - 'prefix' - 'suffix' end as data
from events e
where ($1::uuid is null or e.user_id = $1)
  and ($2::timestamptz is null or e.occurred_at >= $2)
  and ($3::timestamptz is null or e.occurred_at < $3)
  and ($4::text is null or e.model = $4)
  and ($5::text is null or e.language = $5 or exists (
      select 1 from events r
      where r.kind = 'completion_requested' and r.user_id = e.user_id
        and r.completion_id = e.completion_id and r.language = $5))
  and ($6::text is null or e.kind = $6)
order by e.occurred_at, e.event_id
limit $7";

/// Bytes buffered before a chunk goes out.
const CHUNK_BYTES: usize = 64 * 1024;

/// The pseudonym of a user under `key`.
pub fn pseudonym(key: &[u8], user_id: Uuid) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(user_id.as_bytes());
    format!("u_{}", hex::encode(&mac.finalize().into_bytes()[..12]))
}

/// Streams the export: a task reads the rows with a cursor and sends
/// encoded chunks; the body ends early (an aborted response) if the
/// database fails half-way.
pub fn stream(
    pool: PgPool,
    scope: Scope,
    params: ExportParams,
    limit: i64,
    key: Vec<u8>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let format = params.format;
        let mut rows = sqlx::query_as::<_, Row>(SQL)
            .bind(scope.0)
            .bind(params.from)
            .bind(params.to)
            .bind(params.model.as_deref())
            .bind(params.language.as_deref())
            .bind(params.kind.as_deref())
            .bind(limit)
            .fetch(&pool);
        let mut buffer = Vec::with_capacity(CHUNK_BYTES * 2);
        match format {
            ExportFormat::Json => buffer.push(b'['),
            ExportFormat::Jsonl => {}
            ExportFormat::Csv => buffer.extend_from_slice(CSV_HEADER.as_bytes()),
        }
        let mut first = true;
        loop {
            let row = match rows.try_next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(err) => {
                    tracing::error!("event export failed: {err}");
                    let _ = tx.send(Err(std::io::Error::other("the export failed; see the service log"))).await;
                    return;
                }
            };
            let event = exported(row, &key);
            match format {
                ExportFormat::Json => {
                    if !first {
                        buffer.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut buffer, &event);
                }
                ExportFormat::Jsonl => {
                    let _ = serde_json::to_writer(&mut buffer, &event);
                    buffer.push(b'\n');
                }
                ExportFormat::Csv => push_csv_row(&mut buffer, &event),
            }
            first = false;
            if buffer.len() >= CHUNK_BYTES && tx.send(Ok(Bytes::from(std::mem::take(&mut buffer)))).await.is_err() {
                return; // The client went away.
            }
        }
        if format == ExportFormat::Json {
            buffer.push(b']');
        }
        if !buffer.is_empty() {
            let _ = tx.send(Ok(Bytes::from(buffer))).await;
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

fn exported(row: Row, key: &[u8]) -> ExportedEvent {
    ExportedEvent {
        id: row.id,
        user: pseudonym(key, row.user_id),
        kind: row.kind,
        occurred_at: row.occurred_at,
        received_at: row.received_at,
        session_id: row.session_id,
        completion_id: row.completion_id,
        model: row.model,
        language: row.language,
        editor: row.editor,
        editor_version: row.editor_version,
        plugin_version: row.plugin_version,
        os: row.os,
        data: row.data,
    }
}

const CSV_HEADER: &str = "id,user,kind,occurred_at,received_at,session_id,completion_id,model,language,\
     editor,editor_version,plugin_version,os,data\r\n";

/// One CSV row; `data` is the event's JSON. Fields are quoted when they
/// hold a comma, quote or line break (RFC 4180).
fn push_csv_row(out: &mut Vec<u8>, e: &ExportedEvent) {
    let rfc3339 = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let fields = [
        e.id.to_string(),
        e.user.clone(),
        e.kind.clone(),
        rfc3339(e.occurred_at),
        rfc3339(e.received_at),
        e.session_id.map(|u| u.to_string()).unwrap_or_default(),
        e.completion_id.map(|u| u.to_string()).unwrap_or_default(),
        e.model.clone().unwrap_or_default(),
        e.language.clone().unwrap_or_default(),
        e.editor.clone(),
        e.editor_version.clone(),
        e.plugin_version.clone(),
        e.os.clone(),
        e.data.to_string(),
    ];
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_csv_field(&mut line, field);
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pseudonyms_are_stable_per_key_and_hide_the_id() {
        let id = uuid::Uuid::new_v4();
        let a = super::pseudonym(b"key one", id);
        assert_eq!(a, super::pseudonym(b"key one", id));
        assert_ne!(a, super::pseudonym(b"key two", id));
        assert_eq!(a.len(), 2 + 24);
        assert!(!a.contains(&id.simple().to_string()[..8]));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut out = String::new();
        super::push_csv_field(&mut out, "plain");
        out.push(',');
        super::push_csv_field(&mut out, r#"{"a":"b,c"}"#);
        assert_eq!(out, r#"plain,"{""a"":""b,c""}""#);
    }
}
