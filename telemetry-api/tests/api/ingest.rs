//! `POST /v1/events`: idempotency, per-event results, limits, consent,
//! metrics.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;
use weft_telemetry_api::ServiceConfig;
use weft_telemetry_wire::{Event, EventBody, example};

use crate::common::TestApp;

async fn count_events(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from events").fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn retried_batches_add_nothing_twice(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ada = app.register_and_login("ada@example.com").await;
    let now = OffsetDateTime::now_utc();
    let mut events = example::accepted_completion("m", "rust", now);
    events.extend(example::agent_run(now));

    let first = app.ingest(&ada, &events).await;
    assert_eq!((first["accepted"].as_u64(), first["duplicates"].as_u64()), (Some(11), Some(0)));
    let again = app.ingest(&ada, &events).await;
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(11)));
    assert!(again["results"].as_array().unwrap().iter().all(|r| r["status"] == "duplicate"));
    assert_eq!(count_events(&pool).await, 11);

    // The columns copied out at ingest, and the typed views.
    let (kind, model, language, editor): (String, Option<String>, Option<String>, String) =
        sqlx::query_as("select kind, model, language, editor from events where event_id = $1")
            .bind(events[0].id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), model, language.as_deref(), editor.as_str()),
        ("completion_requested", None, Some("rust"), "vscode")
    );
    let (decode_ms, confidence): (f64, f64) =
        sqlx::query_as("select decode_ms, confidence from generations").fetch_one(&pool).await.unwrap();
    assert_eq!((decode_ms, confidence), (95.0, 0.82));
    let snapshots: i64 =
        sqlx::query_scalar("select count(*) from ground_truths where accepted").fetch_one(&pool).await.unwrap();
    assert_eq!(snapshots, 4);
    let steps: i64 = sqlx::query_scalar("select sum(input_tokens) from agent_steps").fetch_one(&pool).await.unwrap();
    assert_eq!(steps, 8000);
}

#[sqlx::test(migrations = "./migrations")]
async fn malformed_events_are_rejected_without_losing_good_ones(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ada = app.register_and_login("ada@example.com").await;
    let good = Event::now(EventBody::Shown(weft_telemetry_wire::CompletionOutcome {
        completion_id: Uuid::new_v4(),
        model: "m".into(),
    }));
    let mut bad_delay =
        serde_json::to_value(&example::accepted_completion("m", "rust", OffsetDateTime::now_utc())[4]).unwrap();
    bad_delay["data"]["after_secs"] = json!(45);
    let resp = app
        .post("/v1/events")
        .token(&ada.token)
        .json(json!({
            "client": {"editor": "helix"},
            "events": [good, {"id": "not-a-uuid"}, bad_delay, "nonsense", good],
        }))
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let body = resp.json();
    assert_eq!((&body["accepted"], &body["duplicates"], &body["rejected"]), (&json!(1), &json!(1), &json!(3)));
    let statuses: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "rejected", "rejected", "rejected", "duplicate"]);
    let reason = |i: usize| body["results"][i]["reason"].as_str().unwrap().to_owned();
    assert!(reason(2).contains("after_secs"), "{}", reason(2));
    assert!(!reason(1).is_empty());
    assert_eq!(body["results"][1].get("id"), None);
    assert_eq!(body["results"][2]["id"], bad_delay["id"]);
    assert_eq!(count_events(&pool).await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn batch_shape_and_size_limits(pool: PgPool) {
    let config = ServiceConfig { ingest_body_limit_bytes: 256 * 1024, ..ServiceConfig::default() };
    let app = TestApp::with_config(pool.clone(), config);
    let ada = app.register_and_login("ada@example.com").await;
    let post = |body: Value| app.post("/v1/events").token(&ada.token).json(body).send();

    for not_a_batch in [json!([1, 2]), json!({"events": "many"}), json!({"client": 1, "events": []})] {
        let resp = post(not_a_batch).await;
        assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (422, "not_a_batch"));
    }
    let resp = app.post("/v1/events").token(&ada.token).raw("{").send().await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);

    let resp = post(json!({"events": vec![json!(0); 1001]})).await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (413, "payload_too_large"));
    let resp = post(json!({"events": ["x".repeat(300 * 1024)]})).await;
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);

    let resp = app.post("/v1/events").json(json!({"events": []})).send().await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    let empty = post(json!({"events": []})).await.json();
    assert_eq!(empty["accepted"], 0);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_full_batch_of_1000_events_is_stored(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ada = app.register_and_login("ada@example.com").await;
    let now = OffsetDateTime::now_utc();
    let events: Vec<Event> = (0..125).flat_map(|_| example::accepted_completion("m", "rust", now)).collect();
    assert_eq!(events.len(), 1000);
    let body = app.ingest(&ada, &events).await;
    assert_eq!(body["accepted"], 1000);
    assert_eq!(count_events(&pool).await, 1000);
}

#[sqlx::test(migrations = "./migrations")]
async fn source_text_is_kept_only_with_code_consent(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ada = app.register_and_login("ada@example.com").await;
    let request_with_text = || {
        let mut request = example::completion_request(Uuid::new_v4(), "rust");
        request.prefix = Some("fn secret() {".into());
        request.suffix = Some("}".into());
        Event::now(EventBody::CompletionRequested(request))
    };
    let stored_prefix = |id: Uuid| {
        sqlx::query_scalar::<_, Option<String>>("select prefix from completion_requests where event_id = $1")
            .bind(id)
            .fetch_one(&pool)
    };

    let without = request_with_text();
    app.ingest(&ada, std::slice::from_ref(&without)).await;
    assert_eq!(stored_prefix(without.id).await.unwrap(), None);

    let consent = |usage: bool, code: bool| {
        app.put("/v1/me/consent").token(&ada.token).json(json!({"usage": usage, "code": code})).send()
    };
    assert_eq!(consent(true, true).await.status, StatusCode::OK);
    let with = request_with_text();
    app.ingest(&ada, std::slice::from_ref(&with)).await;
    assert_eq!(stored_prefix(with.id).await.unwrap().as_deref(), Some("fn secret() {"));

    assert_eq!(consent(false, true).await.status, StatusCode::OK);
    let resp = app.post("/v1/events").token(&ada.token).json(json!({"events": [request_with_text()]})).send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (403, "consent_required"));
}

#[sqlx::test(migrations = "./migrations")]
async fn health_and_metrics(pool: PgPool) {
    let app = TestApp::new(pool);
    let ada = app.register_and_login("ada@example.com").await;
    app.ingest(&ada, &example::agent_run(OffsetDateTime::now_utc())).await;
    let health = app.get("/health").send().await;
    assert_eq!(health.json()["status"], "ok");
    app.delete(format!("/v1/me/sessions/{}", Uuid::new_v4())).send().await;

    let resp = app.get("/metrics").send().await;
    assert_eq!(resp.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = resp.text();
    for line in [
        "weft_http_requests_total{method=\"POST\",route=\"/v1/events\",status=\"200\"} 1",
        "weft_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "weft_http_requests_total{method=\"DELETE\",route=\"/v1/me/sessions/{id}\",status=\"401\"} 1",
        "weft_http_request_duration_seconds_count{route=\"/v1/events\"} 1",
        "weft_events_ingested_total{result=\"accepted\"} 3",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
