//! Export of raw events with filters, as JSON or CSV.

use serde::Deserialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::Scope;
use crate::db::events::{STORED_EVENT_COLUMNS, StoredEvent};

/// The most events one export returns.
pub const MAX_EXPORT_LIMIT: i64 = 100_000;
const DEFAULT_EXPORT_LIMIT: i64 = 10_000;

#[derive(Deserialize, ToSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    #[default]
    Json,
    Csv,
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
    /// `json` (default) or `csv`.
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

pub async fn run(
    pool: &PgPool,
    scope: Scope,
    params: &ExportParams,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {STORED_EVENT_COLUMNS} from events e
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
         limit $7"
    ))
    .bind(scope.0)
    .bind(params.from)
    .bind(params.to)
    .bind(params.model.as_deref())
    .bind(params.language.as_deref())
    .bind(params.kind.as_deref())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// CSV with a header row; `data` is the event's JSON. Fields are quoted
/// when they hold a comma, quote or line break (RFC 4180).
pub fn to_csv(events: &[StoredEvent]) -> String {
    let mut out = String::from(
        "id,user_id,kind,occurred_at,received_at,session_id,completion_id,model,language,\
         editor,editor_version,plugin_version,os,data\r\n",
    );
    let rfc3339 = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    for e in events {
        let fields = [
            e.id.to_string(),
            e.user_id.to_string(),
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
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_csv_field(&mut out, field);
        }
        out.push_str("\r\n");
    }
    out
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
    fn csv_fields_are_quoted_when_needed() {
        let mut out = String::new();
        super::push_csv_field(&mut out, "plain");
        out.push(',');
        super::push_csv_field(&mut out, r#"{"a":"b,c"}"#);
        assert_eq!(out, r#"plain,"{""a"":""b,c""}""#);
    }
}
