//! Integration tests of the telemetry API against a real Postgres.
//!
//! Every `#[sqlx::test]` gets a fresh database on the server named by
//! `DATABASE_URL` (see `scripts/test-db.sh`), with the migrations applied,
//! and drives the real router in-process.

mod accounts;
mod authz_matrix;
mod common;
mod ingest;
mod migrations;
mod openapi;
mod research;
