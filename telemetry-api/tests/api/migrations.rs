//! Migrations replay on an empty database and stay append-only.

use std::path::Path;

use sqlx::PgPool;
use weft_telemetry_api::db::MIGRATOR;

/// `tests/migration_checksums.txt` pins every released migration. Editing
/// or removing one fails here; a new one must be appended (run with
/// `UPDATE_MIGRATION_CHECKSUMS=1` to append it).
#[test]
fn migrations_are_numbered_and_append_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    for (i, name) in files.iter().enumerate() {
        let (number, rest) = name.split_once('_').unwrap_or_else(|| panic!("{name}"));
        assert_eq!(number, format!("{:04}", i + 1), "migrations are numbered 0001, 0002, ...");
        assert!(
            rest.ends_with(".sql")
                && rest
                    .trim_end_matches(".sql")
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}: expected NNNN_snake_case.sql"
        );
    }

    let current: Vec<String> =
        MIGRATOR.iter().map(|m| format!("{:04} {} {}", m.version, m.description, hex::encode(&m.checksum))).collect();
    assert_eq!(current.len(), files.len());
    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migration_checksums.txt");
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let pinned: Vec<&str> = lock.lines().filter(|l| !l.trim().is_empty()).collect();
    for (i, line) in pinned.iter().enumerate() {
        assert_eq!(
            current.get(i).map(String::as_str),
            Some(*line),
            "migration {} was edited or removed; migrations are append-only, add a new one",
            i + 1
        );
    }
    let new = &current[pinned.len()..];
    if !new.is_empty() {
        if std::env::var("UPDATE_MIGRATION_CHECKSUMS").is_ok_and(|v| v == "1") {
            let mut text = lock;
            for line in new {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&lock_path, text).unwrap();
        } else {
            panic!("new migrations are not pinned in {}; rerun with UPDATE_MIGRATION_CHECKSUMS=1", lock_path.display());
        }
    }
}

#[sqlx::test(migrations = false)]
async fn migrations_replay_on_an_empty_database(pool: PgPool) {
    let tables = || {
        sqlx::query_scalar::<_, String>(
            "select table_name::text from information_schema.tables \
             where table_schema = 'public' order by 1",
        )
        .fetch_all(&pool)
    };
    assert_eq!(tables().await.unwrap(), Vec::<String>::new());

    MIGRATOR.run(&pool).await.unwrap();
    let expected = [
        "_sqlx_migrations",
        "agent_runs",
        "agent_steps",
        "completion_outcomes",
        "completion_requests",
        "consents",
        "events",
        "generations",
        "ground_truths",
        "login_failures",
        "service_keys",
        "sessions",
        "users",
    ];
    assert_eq!(tables().await.unwrap(), expected);

    // A second run is a no-op, and every migration is recorded as applied.
    MIGRATOR.run(&pool).await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("select count(*) from _sqlx_migrations where success").fetch_one(&pool).await.unwrap();
    assert_eq!(applied as usize, MIGRATOR.iter().count());
}

#[sqlx::test(migrations = "./migrations")]
async fn the_event_log_refuses_updates(pool: PgPool) {
    let user: uuid::Uuid =
        sqlx::query_scalar("insert into users (email, password_hash) values ('a@example.com', 'x') returning id")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query(
        "insert into events (event_id, user_id, kind, occurred_at, payload) \
         values (gen_random_uuid(), $1, 'shown', now(), '{}')",
    )
    .bind(user)
    .execute(&pool)
    .await
    .unwrap();
    let err = sqlx::query("update events set kind = 'accepted'").execute(&pool).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    // Deleting the account still removes its events.
    sqlx::query("delete from users").execute(&pool).await.unwrap();
    let left: i64 = sqlx::query_scalar("select count(*) from events").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
}
