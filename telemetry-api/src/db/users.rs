//! The `users` table.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Role;

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, email, password_hash, role, totp_secret, totp_enabled, totp_last_step, created_at";

/// Inserts a user; `None` when the email address is taken.
pub async fn create(
    pool: &PgPool,
    email: &str,
    password_hash: &str,
    role: Role,
) -> Result<Option<UserRow>, sqlx::Error> {
    let result = sqlx::query_as(&format!(
        "insert into users (email, password_hash, role) values ($1, $2, $3) returning {COLUMNS}"
    ))
    .bind(email)
    .bind(password_hash)
    .bind(role.as_str())
    .fetch_one(pool)
    .await;
    match result {
        Ok(user) => Ok(Some(user)),
        Err(err) if super::is_unique_violation(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("select {COLUMNS} from users where lower(email) = lower($1)"))
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("select {COLUMNS} from users where id = $1")).bind(id).fetch_optional(pool).await
}

pub async fn list(pool: &PgPool) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("select {COLUMNS} from users order by created_at, id")).fetch_all(pool).await
}

/// Changes a role; `None` when there is no such user.
pub async fn set_role(pool: &PgPool, id: Uuid, role: Role) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("update users set role = $2 where id = $1 returning {COLUMNS}"))
        .bind(id)
        .bind(role.as_str())
        .fetch_optional(pool)
        .await
}

/// Sets the role by email (for the `set-role` command).
pub async fn set_role_by_email(pool: &PgPool, email: &str, role: Role) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("update users set role = $2 where lower(email) = lower($1)")
        .bind(email)
        .bind(role.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_password(pool: &PgPool, id: Uuid, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update users set password_hash = $2 where id = $1").bind(id).bind(hash).execute(pool).await?;
    Ok(())
}

/// Deletes the user; sessions, consent and events go with it (cascade).
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("delete from users where id = $1").bind(id).execute(pool).await?;
    Ok(())
}

/// Stores a pending TOTP secret (enrolled, not yet confirmed).
pub async fn set_totp_secret(pool: &PgPool, id: Uuid, secret: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update users set totp_secret = $2, totp_enabled = false, totp_last_step = null \
         where id = $1",
    )
    .bind(id)
    .bind(secret)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_totp_enabled(pool: &PgPool, id: Uuid, enabled: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update users set totp_enabled = $2, \
         totp_secret = case when $2 then totp_secret else null end where id = $1",
    )
    .bind(id)
    .bind(enabled)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that the code of `step` was used. False when that step (or a
/// later one) was used already, by a concurrent request say.
pub async fn use_totp_step(pool: &PgPool, id: Uuid, step: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update users set totp_last_step = $2 \
         where id = $1 and (totp_last_step is null or totp_last_step < $2)",
    )
    .bind(id)
    .bind(step)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
