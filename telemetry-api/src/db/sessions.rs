//! The `sessions` table: one row per logged-in device.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// The caller behind a token.
#[derive(sqlx::FromRow, Clone, Debug)]
pub struct AuthenticatedSession {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    pub last_seen_at: OffsetDateTime,
}

pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    token_hash: &[u8],
    device: &str,
    expires_at: OffsetDateTime,
) -> Result<SessionRow, sqlx::Error> {
    sqlx::query_as(
        "insert into sessions (user_id, token_hash, device, expires_at) values ($1, $2, $3, $4) \
         returning id, user_id, device, created_at, last_seen_at, expires_at",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(device)
    .bind(expires_at)
    .fetch_one(pool)
    .await
}

/// Looks a token hash up; refreshes `last_seen_at` at most once a minute.
pub async fn authenticate(pool: &PgPool, token_hash: &[u8]) -> Result<Option<AuthenticatedSession>, sqlx::Error> {
    let found: Option<AuthenticatedSession> = sqlx::query_as(
        "select s.id as session_id, s.user_id, u.role, s.last_seen_at \
         from sessions s join users u on u.id = s.user_id \
         where s.token_hash = $1 and s.expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    if let Some(session) = &found {
        if OffsetDateTime::now_utc() - session.last_seen_at > time::Duration::minutes(1) {
            sqlx::query("update sessions set last_seen_at = now() where id = $1")
                .bind(session.session_id)
                .execute(pool)
                .await?;
        }
    }
    Ok(found)
}

/// The user's unexpired sessions, newest first.
pub async fn list(pool: &PgPool, user_id: Uuid) -> Result<Vec<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, user_id, device, created_at, last_seen_at, expires_at from sessions \
         where user_id = $1 and expires_at > now() order by created_at desc, id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// Revokes one of the user's sessions; false when the user has no such
/// session (including when it belongs to someone else).
pub async fn delete(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("delete from sessions where id = $1 and user_id = $2").bind(id).bind(user_id).execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every session of the user except `keep`.
pub async fn delete_others(pool: &PgPool, user_id: Uuid, keep: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("delete from sessions where user_id = $1 and id <> $2").bind(user_id).bind(keep).execute(pool).await?;
    Ok(())
}
