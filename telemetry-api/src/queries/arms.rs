//! A/B study arms: the funnel and acceptance rate of each arm, side by side.
//!
//! A completion belongs to the arm its request names (`study_arm`);
//! requests without one are left out.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::stats::wilson_interval;
use super::{ResearchFilter, Scope};

#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct ArmRow {
    pub arm: String,
    /// Distinct users in the arm.
    pub users: i64,
    pub requested: i64,
    pub shown: i64,
    /// Accepted fully or in part, among the shown.
    pub accepted: i64,
    /// `accepted / shown`, with its Wilson 95% interval.
    pub acceptance_rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Median total latency of the arm's generations, in milliseconds.
    pub median_latency_ms: Option<f64>,
}

const SQL: &str = "
with requests as (
    select distinct on (user_id, completion_id) user_id, completion_id, payload ->> 'study_arm' as arm
    from events
    where kind = 'completion_requested' and payload ? 'study_arm'
      and ($1::uuid is null or user_id = $1)
      and ($2::timestamptz is null or occurred_at >= $2)
      and ($3::timestamptz is null or occurred_at < $3)
      and ($5::text is null or language = $5)
    order by user_id, completion_id, occurred_at
),
outcomes as (
    select r.arm, r.user_id,
           exists (select 1 from events s where s.kind = 'shown' and s.user_id = r.user_id
                   and s.completion_id = r.completion_id and ($4::text is null or s.model = $4)) as shown,
           exists (select 1 from events a where a.kind in ('accepted', 'partially_accepted')
                   and a.user_id = r.user_id and a.completion_id = r.completion_id
                   and ($4::text is null or a.model = $4)) as accepted
    from requests r
),
latency as (
    select r.arm,
           percentile_cont(0.5) within group (order by g.queue_ms + g.prefill_ms + g.decode_ms) as median
    from requests r
    join generations g on g.user_id = r.user_id and g.completion_id = r.completion_id
    where ($4::text is null or g.model = $4)
    group by r.arm
)
select o.arm, count(distinct o.user_id), count(*),
       count(*) filter (where o.shown),
       count(*) filter (where o.shown and o.accepted),
       max(l.median)
from outcomes o left join latency l on l.arm = o.arm
group by o.arm
order by o.arm";

type Row = (String, i64, i64, i64, i64, Option<f64>);

pub async fn run(pool: &PgPool, scope: Scope, filter: &ResearchFilter) -> Result<Vec<ArmRow>, sqlx::Error> {
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
        .map(|(arm, users, requested, shown, accepted, median_latency_ms)| {
            let (ci_low, ci_high) = wilson_interval(accepted as u64, shown as u64);
            ArmRow {
                arm,
                users,
                requested,
                shown,
                accepted,
                acceptance_rate: if shown > 0 { accepted as f64 / shown as f64 } else { 0.0 },
                ci_low,
                ci_high,
                median_latency_ms,
            }
        })
        .collect())
}
