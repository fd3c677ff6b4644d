//! Postgres access: the pool, the embedded migrations and one module per
//! table. Every query is a runtime query (`sqlx::query*` with binds), so
//! that building needs no database.

pub mod consent;
pub mod events;
pub mod keys;
pub mod sessions;
pub mod users;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// The migrations in `telemetry-api/migrations/`, embedded at build time.
/// Numbered, append-only: a released migration is never edited.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connects and applies pending migrations.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|err| anyhow::anyhow!("connecting to the database: {err}"))?;
    MIGRATOR.run(&pool).await.map_err(|err| anyhow::anyhow!("applying migrations: {err}"))?;
    Ok(pool)
}

/// True when `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "23505")
}
