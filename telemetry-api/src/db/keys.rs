//! The `service_keys` table: per-deployment secrets, made on first use.

use sqlx::PgPool;

/// The key of pseudonymous user ids: 32 random bytes, the same for every
/// instance and restart of one deployment (so that exports can be joined),
/// unknown outside its database.
pub async fn pseudonym_key(pool: &PgPool) -> anyhow::Result<Vec<u8>> {
    let mut fresh = [0u8; 32];
    getrandom::getrandom(&mut fresh).map_err(|err| anyhow::anyhow!("OS random number generator failed: {err}"))?;
    sqlx::query("insert into service_keys (name, key) values ('pseudonym', $1) on conflict (name) do nothing")
        .bind(&fresh[..])
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar("select key from service_keys where name = 'pseudonym'").fetch_one(pool).await?)
}
