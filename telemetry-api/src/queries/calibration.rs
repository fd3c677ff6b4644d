//! Calibration of the models' confidence against acceptance: reliability
//! bins and the Brier score.
//!
//! A generation counts when it has a confidence (mean token probability)
//! and was shown or accepted; its outcome is 1 when it was accepted, fully
//! or in part, else 0. A well-calibrated model's completions shown with
//! confidence 0.7 are accepted 70% of the time.

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{ResearchFilter, Scope};

/// Reliability bins per model: confidence in `[i/10, (i+1)/10)`, the last
/// bin closed.
pub const BINS: usize = 10;

#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct CalibrationRow {
    pub model: String,
    pub generations: i64,
    /// Mean of `(confidence - accepted)²`; 0 is perfect, 0.25 is what a
    /// constant 0.5 scores on balanced outcomes.
    pub brier_score: f64,
    /// Over all generations; above `acceptance_rate` means over-confident.
    pub mean_confidence: f64,
    pub acceptance_rate: f64,
    /// Only bins that hold generations.
    pub bins: Vec<ReliabilityBin>,
}

#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub struct ReliabilityBin {
    /// Inclusive lower bound of the bin's confidence.
    pub lower: f64,
    pub upper: f64,
    pub generations: i64,
    pub mean_confidence: f64,
    pub acceptance_rate: f64,
}

const SQL: &str = "
select g.model, (g.payload ->> 'confidence')::float8,
       exists (
           select 1 from events o
           where o.kind in ('accepted', 'partially_accepted') and o.user_id = g.user_id
             and o.completion_id = g.completion_id and o.model = g.model)
from events g
where g.kind = 'completion_generated'
  and g.payload ? 'confidence'
  and exists (
      select 1 from events s
      where s.kind in ('shown', 'accepted', 'partially_accepted') and s.user_id = g.user_id
        and s.completion_id = g.completion_id and s.model = g.model)
  and ($1::uuid is null or g.user_id = $1)
  and ($2::timestamptz is null or g.occurred_at >= $2)
  and ($3::timestamptz is null or g.occurred_at < $3)
  and ($4::text is null or g.model = $4)
  and ($5::text is null or exists (
      select 1 from events r
      where r.kind = 'completion_requested' and r.user_id = g.user_id
        and r.completion_id = g.completion_id and r.language = $5))
order by g.model";

#[derive(Default)]
struct Sums {
    n: i64,
    confidence: f64,
    accepted: f64,
}

impl Sums {
    fn add(&mut self, confidence: f64, accepted: f64) {
        self.n += 1;
        self.confidence += confidence;
        self.accepted += accepted;
    }
}

#[derive(Default)]
struct ModelSums {
    all: Sums,
    squared_error: f64,
    bins: [Sums; BINS],
}

pub async fn run(pool: &PgPool, scope: Scope, filter: &ResearchFilter) -> Result<Vec<CalibrationRow>, sqlx::Error> {
    let mut models: Vec<(String, ModelSums)> = Vec::new();
    let mut rows = sqlx::query_as::<_, (Option<String>, Option<f64>, bool)>(SQL)
        .bind(scope.0)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.model.as_deref())
        .bind(filter.language.as_deref())
        .fetch(pool);
    while let Some((model, confidence, accepted)) = rows.try_next().await? {
        let (Some(model), Some(confidence)) = (model, confidence) else { continue };
        if !(0.0..=1.0).contains(&confidence) {
            continue;
        }
        if models.last().is_none_or(|(m, _)| *m != model) {
            models.push((model, ModelSums::default()));
        }
        let (_, sums) = models.last_mut().expect("pushed above");
        let outcome = if accepted { 1.0 } else { 0.0 };
        sums.all.add(confidence, outcome);
        sums.squared_error += (confidence - outcome).powi(2);
        let bin = ((confidence * BINS as f64) as usize).min(BINS - 1);
        sums.bins[bin].add(confidence, outcome);
    }
    Ok(models
        .into_iter()
        .map(|(model, s)| {
            let n = s.all.n as f64;
            CalibrationRow {
                model,
                generations: s.all.n,
                brier_score: s.squared_error / n,
                mean_confidence: s.all.confidence / n,
                acceptance_rate: s.all.accepted / n,
                bins: s
                    .bins
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.n > 0)
                    .map(|(i, b)| ReliabilityBin {
                        lower: i as f64 / BINS as f64,
                        upper: (i + 1) as f64 / BINS as f64,
                        generations: b.n,
                        mean_confidence: b.confidence / b.n as f64,
                        acceptance_rate: b.accepted / b.n as f64,
                    })
                    .collect(),
            }
        })
        .collect())
}
