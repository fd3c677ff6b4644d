//! Acceptance rate by model × language × editor × day.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::stats::wilson_interval;
use super::{ResearchFilter, Scope};

/// One cell: completions shown and accepted (fully or partially), with
/// the Wilson 95% interval of the rate.
#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct AcceptanceRow {
    pub model: String,
    /// `unknown` when the request event is missing.
    pub language: String,
    pub editor: String,
    /// UTC day of display, `YYYY-MM-DD`.
    pub day: String,
    pub shown: i64,
    pub accepted: i64,
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

const SQL: &str = "
with shown as (
    select distinct on (user_id, completion_id, model) user_id, completion_id, model, editor, occurred_at
    from events
    where kind = 'shown'
      and ($1::uuid is null or user_id = $1)
      and ($2::timestamptz is null or occurred_at >= $2)
      and ($3::timestamptz is null or occurred_at < $3)
      and ($4::text is null or model = $4)
    order by user_id, completion_id, model, occurred_at
),
accepted as (
    select distinct user_id, completion_id, model
    from events
    where kind in ('accepted', 'partially_accepted') and ($1::uuid is null or user_id = $1)
),
requests as (
    select distinct on (user_id, completion_id) user_id, completion_id, language
    from events
    where kind = 'completion_requested' and ($1::uuid is null or user_id = $1)
    order by user_id, completion_id, occurred_at
)
select s.model,
       coalesce(r.language, 'unknown') as language,
       s.editor,
       to_char(s.occurred_at at time zone 'UTC', 'YYYY-MM-DD') as day,
       count(*) as shown,
       count(a.completion_id) as accepted
from shown s
left join requests r on r.user_id = s.user_id and r.completion_id = s.completion_id
left join accepted a
       on a.user_id = s.user_id and a.completion_id = s.completion_id and a.model = s.model
where ($5::text is null or r.language = $5)
group by 1, 2, 3, 4
order by 4, 1, 2, 3";

pub async fn run(pool: &PgPool, scope: Scope, filter: &ResearchFilter) -> Result<Vec<AcceptanceRow>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(SQL)
        .bind(scope.0)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.model.as_deref())
        .bind(filter.language.as_deref())
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(model, language, editor, day, shown, accepted)| {
            let (ci_low, ci_high) = wilson_interval(accepted as u64, shown as u64);
            AcceptanceRow {
                model,
                language,
                editor,
                day,
                shown,
                accepted,
                rate: if shown == 0 { 0.0 } else { accepted as f64 / shown as f64 },
                ci_low,
                ci_high,
            }
        })
        .collect())
}
