//! The `consents` table: one flag per user and category.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

/// The account's consent. Without a stored choice, usage telemetry is on
/// (the user installed a telemetry-enabled build and registered) and source
/// text is off (opt-in).
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consent {
    /// Any telemetry at all.
    pub usage: bool,
    /// Source text (`prefix`, `suffix` of completion requests).
    pub code: bool,
}

impl Default for Consent {
    fn default() -> Consent {
        Consent { usage: true, code: false }
    }
}

pub async fn get(pool: &PgPool, user_id: Uuid) -> Result<Consent, sqlx::Error> {
    let rows: Vec<(String, bool)> = sqlx::query_as("select category, granted from consents where user_id = $1")
        .bind(user_id)
        .fetch_all(pool)
        .await?;
    let mut consent = Consent::default();
    for (category, granted) in rows {
        match category.as_str() {
            "usage" => consent.usage = granted,
            "code" => consent.code = granted,
            _ => {}
        }
    }
    Ok(consent)
}

pub async fn set(pool: &PgPool, user_id: Uuid, consent: Consent) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into consents (user_id, category, granted) \
         select $1, c, g from unnest(array['usage', 'code'], array[$2, $3]) as t(c, g) \
         on conflict (user_id, category) do update set granted = excluded.granted, updated_at = now()",
    )
    .bind(user_id)
    .bind(consent.usage)
    .bind(consent.code)
    .execute(pool)
    .await?;
    Ok(())
}
