//! The funnel requested → shown → accepted → unchanged after 30, 120, 300
//! and 600 seconds.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;
use weft_telemetry_wire::SNAPSHOT_DELAYS_SECS;

use super::stats::{UNCHANGED_SIMILARITY, char_prefix, edit_similarity};
use super::{ResearchFilter, Scope};

#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct Funnel {
    /// Completions requested (distinct completion ids).
    pub requested: i64,
    /// Of those, completions shown.
    pub shown: i64,
    /// Of those, completions accepted fully or partially.
    pub accepted: i64,
    /// One stage per snapshot delay.
    pub unchanged: Vec<UnchangedStage>,
}

/// Accepted completions still (nearly) as accepted after `after_secs`.
#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct UnchangedStage {
    pub after_secs: u32,
    /// Accepted completions with a ground-truth snapshot at this delay.
    pub snapshots: i64,
    /// Of those, snapshots with edit similarity ≥ 0.67 to the accepted text.
    pub unchanged: i64,
}

/// The requests in scope: `$1` scope, `$2`/`$3` time range on the request,
/// `$4` model (a generation by it exists), `$5` language.
const REQUESTS_CTE: &str = "
with req as (
    select distinct r.user_id, r.completion_id
    from events r
    where r.kind = 'completion_requested'
      and ($1::uuid is null or r.user_id = $1)
      and ($2::timestamptz is null or r.occurred_at >= $2)
      and ($3::timestamptz is null or r.occurred_at < $3)
      and ($5::text is null or r.language = $5)
      and ($4::text is null or exists (
          select 1 from events g
          where g.kind = 'completion_generated' and g.user_id = r.user_id
            and g.completion_id = r.completion_id and g.model = $4))
),
later as (
    select e.user_id, e.completion_id, e.kind, e.model, e.occurred_at, e.payload
    from events e join req using (user_id, completion_id)
    where e.kind in ('shown', 'accepted', 'partially_accepted')
      and ($4::text is null or e.model = $4)
)";

const COUNTS: &str = "
select (select count(*) from req),
       (select count(distinct (user_id, completion_id)) from later where kind = 'shown'),
       (select count(distinct (user_id, completion_id)) from later where kind <> 'shown')";

/// Per accepted completion: the accepted text (generation, cut to the
/// accepted length for partial acceptances) and each later snapshot.
const SNAPSHOTS: &str = "
, acc as (
    select distinct on (user_id, completion_id) user_id, completion_id, model,
           (payload ->> 'accepted_chars')::integer as accepted_chars
    from later
    where kind <> 'shown'
    order by user_id, completion_id, (kind = 'accepted') desc, occurred_at
)
select acc.completion_id, acc.accepted_chars, gen.text,
       (gt.payload ->> 'after_secs')::integer, gt.payload ->> 'text'
from acc
join lateral (
    select g.payload ->> 'text' as text from events g
    where g.kind = 'completion_generated' and g.user_id = acc.user_id
      and g.completion_id = acc.completion_id and g.model = acc.model
    order by g.occurred_at limit 1
) gen on true
join events gt
  on gt.kind = 'ground_truth' and gt.user_id = acc.user_id
 and gt.completion_id = acc.completion_id and gt.model = acc.model
 and (gt.payload ->> 'accepted')::boolean
order by gt.occurred_at";

type SnapshotRow = (Uuid, Option<i32>, Option<String>, Option<i32>, Option<String>);

pub async fn run(pool: &PgPool, scope: Scope, filter: &ResearchFilter) -> Result<Funnel, sqlx::Error> {
    let (requested, shown, accepted): (i64, i64, i64) = sqlx::query_as(&format!("{REQUESTS_CTE}{COUNTS}"))
        .bind(scope.0)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.model.as_deref())
        .bind(filter.language.as_deref())
        .fetch_one(pool)
        .await?;

    // First snapshot per (completion, delay) → unchanged?
    let mut verdicts: HashMap<(Uuid, i32), bool> = HashMap::new();
    let sql = format!("{REQUESTS_CTE}{SNAPSHOTS}");
    let mut rows = sqlx::query_as::<_, SnapshotRow>(&sql)
        .bind(scope.0)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.model.as_deref())
        .bind(filter.language.as_deref())
        .fetch(pool);
    while let Some((completion_id, accepted_chars, generated, after_secs, truth)) = rows.try_next().await? {
        let Some(after_secs) = after_secs else {
            continue;
        };
        let generated = generated.unwrap_or_default();
        let accepted_text = match accepted_chars {
            Some(n) => char_prefix(&generated, n.max(0) as usize),
            None => &generated,
        };
        let truth = truth.unwrap_or_default();
        verdicts
            .entry((completion_id, after_secs))
            .or_insert_with(|| edit_similarity(accepted_text, &truth) >= UNCHANGED_SIMILARITY);
    }

    let unchanged = SNAPSHOT_DELAYS_SECS
        .iter()
        .map(|&delay| {
            let at_delay = verdicts.iter().filter(|((_, secs), _)| *secs as u32 == delay);
            UnchangedStage {
                after_secs: delay,
                snapshots: at_delay.clone().count() as i64,
                unchanged: at_delay.filter(|(_, unchanged)| **unchanged).count() as i64,
            }
        })
        .collect();
    Ok(Funnel { requested, shown, accepted, unchanged })
}
