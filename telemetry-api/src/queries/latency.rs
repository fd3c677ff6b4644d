//! Latency percentiles per model (`percentile_cont`).

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{ResearchFilter, Scope};

#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct LatencyRow {
    pub model: String,
    pub generations: i64,
    /// Queue + prefill + decode.
    pub total_ms: Percentiles,
    pub queue_ms: Percentiles,
    pub prefill_ms: Percentiles,
    pub decode_ms: Percentiles,
}

/// Continuous percentiles, in milliseconds.
#[derive(Serialize, ToSchema, Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    fn from_array(values: Option<Vec<f64>>) -> Percentiles {
        let v = values.unwrap_or_default();
        let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
        Percentiles { p50: at(0), p95: at(1), p99: at(2) }
    }
}

const SQL: &str = "
select g.model, count(*) as generations,
       percentile_cont(array[0.5, 0.95, 0.99]::float8[])
           within group (order by g.queue_ms + g.prefill_ms + g.decode_ms),
       percentile_cont(array[0.5, 0.95, 0.99]::float8[]) within group (order by g.queue_ms),
       percentile_cont(array[0.5, 0.95, 0.99]::float8[]) within group (order by g.prefill_ms),
       percentile_cont(array[0.5, 0.95, 0.99]::float8[]) within group (order by g.decode_ms)
from generations g
where ($1::uuid is null or g.user_id = $1)
  and ($2::timestamptz is null or g.occurred_at >= $2)
  and ($3::timestamptz is null or g.occurred_at < $3)
  and ($4::text is null or g.model = $4)
  and ($5::text is null or exists (
      select 1 from completion_requests r
      where r.user_id = g.user_id and r.completion_id = g.completion_id and r.language = $5))
group by g.model
order by g.model";

type Row = (String, i64, Option<Vec<f64>>, Option<Vec<f64>>, Option<Vec<f64>>, Option<Vec<f64>>);

pub async fn run(pool: &PgPool, scope: Scope, filter: &ResearchFilter) -> Result<Vec<LatencyRow>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(SQL)
        .bind(scope.0)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.model.as_deref())
        .bind(filter.language.as_deref())
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(model, generations, total, queue, prefill, decode)| LatencyRow {
            model,
            generations,
            total_ms: Percentiles::from_array(total),
            queue_ms: Percentiles::from_array(queue),
            prefill_ms: Percentiles::from_array(prefill),
            decode_ms: Percentiles::from_array(decode),
        })
        .collect())
}
