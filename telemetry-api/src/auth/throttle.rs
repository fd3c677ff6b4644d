//! Login throttling: after too many failures within a window, per account
//! or per client address, logins are refused with 429 and `Retry-After`
//! until the oldest failure leaves the window. Failures live in Postgres so
//! that every instance of the service sees them.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::config::ThrottleConfig;
use crate::error::ApiError;

/// Refuses with 429 when `email` or `addr` has used up its failures.
pub async fn check(pool: &PgPool, config: &ThrottleConfig, email: &str, addr: &str) -> Result<(), ApiError> {
    let since = OffsetDateTime::now_utc() - config.window;
    // The n-th most recent failure within the window, where n is the limit:
    // once it leaves the window, fewer than n remain and logins resume.
    let by_account: Option<OffsetDateTime> = sqlx::query_scalar(
        "select failed_at from login_failures \
         where lower(email) = lower($1) and failed_at > $2 \
         order by failed_at desc offset $3 - 1 limit 1",
    )
    .bind(email)
    .bind(since)
    .bind(config.max_failures_per_account)
    .fetch_optional(pool)
    .await?;
    let by_addr: Option<OffsetDateTime> = sqlx::query_scalar(
        "select failed_at from login_failures \
         where ip = $1 and failed_at > $2 \
         order by failed_at desc offset $3 - 1 limit 1",
    )
    .bind(addr)
    .bind(since)
    .bind(config.max_failures_per_address)
    .fetch_optional(pool)
    .await?;
    match by_account.max(by_addr) {
        None => Ok(()),
        Some(nth) => {
            let free_at = nth + config.window;
            let secs = (free_at - OffsetDateTime::now_utc()).whole_seconds().max(1);
            Err(ApiError::TooManyRequests { retry_after_secs: secs as u64 })
        }
    }
}

/// Counts one failed login, and forgets failures older than the window.
pub async fn record_failure(
    pool: &PgPool,
    config: &ThrottleConfig,
    email: &str,
    addr: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into login_failures (email, ip) values ($1, $2)").bind(email).bind(addr).execute(pool).await?;
    sqlx::query("delete from login_failures where failed_at < $1")
        .bind(OffsetDateTime::now_utc() - config.window)
        .execute(pool)
        .await?;
    Ok(())
}

/// A successful login forgives the account's failures (not the address's).
pub async fn clear_account(pool: &PgPool, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from login_failures where lower(email) = lower($1)").bind(email).execute(pool).await?;
    Ok(())
}
