//! Exact match and edit similarity of completions against ground truth.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::stats::edit_similarity;
use super::{ResearchFilter, Scope};

/// Quality of one model's completions, compared with what the document
/// held `after_secs` later, for accepted or for rejected completions.
#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct QualityRow {
    pub model: String,
    pub after_secs: i32,
    pub accepted: bool,
    pub snapshots: i64,
    /// Share of snapshots equal to the completion text.
    pub exact_match: f64,
    /// Mean of `1 - levenshtein / max(len)`.
    pub edit_similarity: f64,
}

const SQL: &str = "
select gt.model, (gt.payload ->> 'after_secs')::integer, (gt.payload ->> 'accepted')::boolean,
       gen.text, gt.payload ->> 'text'
from events gt
join lateral (
    select g.payload ->> 'text' as text from events g
    where g.kind = 'completion_generated' and g.user_id = gt.user_id
      and g.completion_id = gt.completion_id and g.model = gt.model
    order by g.occurred_at limit 1
) gen on true
where gt.kind = 'ground_truth'
  and ($1::uuid is null or gt.user_id = $1)
  and ($2::timestamptz is null or gt.occurred_at >= $2)
  and ($3::timestamptz is null or gt.occurred_at < $3)
  and ($4::text is null or gt.model = $4)
  and ($5::text is null or exists (
      select 1 from events r
      where r.kind = 'completion_requested' and r.user_id = gt.user_id
        and r.completion_id = gt.completion_id and r.language = $5))";

type Row = (Option<String>, Option<i32>, Option<bool>, Option<String>, Option<String>);

#[derive(Default)]
struct Sums {
    n: i64,
    exact: i64,
    similarity: f64,
}

pub async fn run(pool: &PgPool, scope: Scope, filter: &ResearchFilter) -> Result<Vec<QualityRow>, sqlx::Error> {
    let mut groups: BTreeMap<(String, i32, bool), Sums> = BTreeMap::new();
    let mut rows = sqlx::query_as::<_, Row>(SQL)
        .bind(scope.0)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.model.as_deref())
        .bind(filter.language.as_deref())
        .fetch(pool);
    while let Some((model, after_secs, accepted, generated, truth)) = rows.try_next().await? {
        let (Some(model), Some(after_secs), Some(accepted)) = (model, after_secs, accepted) else {
            continue;
        };
        let generated = generated.unwrap_or_default();
        let truth = truth.unwrap_or_default();
        let sums = groups.entry((model, after_secs, accepted)).or_default();
        sums.n += 1;
        sums.exact += i64::from(generated == truth);
        sums.similarity += edit_similarity(&generated, &truth);
    }
    Ok(groups
        .into_iter()
        .map(|((model, after_secs, accepted), s)| QualityRow {
            model,
            after_secs,
            accepted,
            snapshots: s.n,
            exact_match: s.exact as f64 / s.n as f64,
            edit_similarity: s.similarity / s.n as f64,
        })
        .collect())
}
