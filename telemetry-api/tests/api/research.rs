//! Research queries on a small dataset whose answers are known.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;
use weft_telemetry_api::auth::Role;
use weft_telemetry_api::queries::stats::wilson_interval;
use weft_telemetry_wire::{CompletionOutcome, Event, EventBody, GroundTruth, Latency, PartialAcceptance, example};

use crate::common::{Actor, TestApp, create_actor};

enum Outcome {
    NotShown,
    Dismissed,
    Accepted,
    Partial(u32),
}

struct Completion {
    model: &'static str,
    language: &'static str,
    text: &'static str,
    decode_ms: f64,
    outcome: Outcome,
    /// (after_secs, accepted, text)
    truths: Vec<(u32, bool, &'static str)>,
}

fn events(c: &Completion) -> Vec<Event> {
    let id = Uuid::new_v4();
    let model = c.model.to_owned();
    let outcome = || CompletionOutcome { completion_id: id, model: model.clone() };
    let mut generation = example::generation(id, c.model, c.text);
    generation.latency = Latency { queue_ms: 0.0, prefill_ms: 0.0, decode_ms: c.decode_ms };
    let mut bodies = vec![
        EventBody::CompletionRequested(example::completion_request(id, c.language)),
        EventBody::CompletionGenerated(generation),
    ];
    match c.outcome {
        Outcome::NotShown => {}
        Outcome::Dismissed => {
            bodies.push(EventBody::Shown(outcome()));
            bodies.push(EventBody::Dismissed(outcome()));
        }
        Outcome::Accepted => {
            bodies.push(EventBody::Shown(outcome()));
            bodies.push(EventBody::Accepted(outcome()));
        }
        Outcome::Partial(chars) => {
            bodies.push(EventBody::Shown(outcome()));
            bodies.push(EventBody::PartiallyAccepted(PartialAcceptance {
                completion_id: id,
                model: model.clone(),
                accepted_chars: chars,
            }));
        }
    }
    for &(after_secs, accepted, text) in &c.truths {
        bodies.push(EventBody::GroundTruth(GroundTruth {
            completion_id: id,
            model: model.clone(),
            after_secs,
            accepted,
            text: text.to_owned(),
        }));
    }
    bodies.into_iter().map(Event::now).collect()
}

fn simple(model: &'static str, language: &'static str, outcome: Outcome) -> Completion {
    Completion { model, language, text: "x", decode_ms: 10.0, outcome, truths: vec![] }
}

/// Ada's data (4 × m1/rust shown, 3 accepted; 2 × m2/python shown, none
/// accepted; one request never shown) and Bob's (5 × m1/rust accepted).
async fn dataset(app: &TestApp) -> (Actor, Actor) {
    let pool = &app.pool;
    let ada = create_actor(pool, Role::User).await;
    let bob = create_actor(pool, Role::User).await;
    let ada_completions = [
        Completion {
            model: "m1",
            language: "rust",
            text: "let x = compute(a, b);",
            decode_ms: 100.0,
            outcome: Outcome::Accepted,
            truths: vec![(30, true, "let x = compute(a, b);"), (600, true, "let y = other();")],
        },
        Completion {
            model: "m1",
            language: "rust",
            text: "return total;",
            decode_ms: 200.0,
            outcome: Outcome::Accepted,
            truths: vec![(30, true, "return total + 1;")],
        },
        Completion {
            model: "m1",
            language: "rust",
            text: "self.items.len()",
            decode_ms: 300.0,
            outcome: Outcome::Partial(4),
            truths: vec![(30, true, "self")],
        },
        Completion {
            model: "m1",
            language: "rust",
            text: "unused()",
            decode_ms: 400.0,
            outcome: Outcome::Dismissed,
            truths: vec![(30, false, "foo")],
        },
        simple("m2", "python", Outcome::Dismissed),
        simple("m2", "python", Outcome::Dismissed),
        simple("m2", "python", Outcome::NotShown),
    ];
    let batch: Vec<Event> = ada_completions.iter().flat_map(events).collect();
    app.ingest(&ada, &batch).await;
    let batch: Vec<Event> = (0..5).flat_map(|_| events(&simple("m1", "rust", Outcome::Accepted))).collect();
    app.ingest(&bob, &batch).await;
    (ada, bob)
}

async fn get(app: &TestApp, actor: &Actor, path: &str) -> Value {
    let resp = app.get(path).token(&actor.token).send().await;
    assert_eq!(resp.status, StatusCode::OK, "{path}: {}", resp.text());
    resp.json()
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-6
}

#[sqlx::test(migrations = "./migrations")]
async fn acceptance_rates_with_wilson_intervals(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let (ada, _bob) = dataset(&app).await;
    let researcher = create_actor(&pool, Role::Researcher).await;
    let today = OffsetDateTime::now_utc().date().to_string();

    let rows = get(&app, &ada, "/v1/research/acceptance").await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let m1 = &rows[0];
    assert_eq!(
        (&m1["model"], &m1["language"], &m1["editor"], m1["day"].as_str()),
        (&Value::from("m1"), &Value::from("rust"), &Value::from("vscode"), Some(today.as_str()))
    );
    assert_eq!((&m1["shown"], &m1["accepted"]), (&Value::from(4), &Value::from(3)));
    let (lo, hi) = wilson_interval(3, 4);
    assert!(close(&m1["rate"], 0.75) && close(&m1["ci_low"], lo) && close(&m1["ci_high"], hi));
    assert_eq!((&rows[1]["model"], &rows[1]["accepted"]), (&Value::from("m2"), &Value::from(0)));

    let all = get(&app, &researcher, "/v1/research/acceptance?model=m1").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!((&all[0]["shown"], &all[0]["accepted"]), (&Value::from(9), &Value::from(8)));

    let python = get(&app, &researcher, "/v1/research/acceptance?language=python").await;
    assert_eq!(python.as_array().unwrap().len(), 1);
    assert_eq!(python[0]["model"], "m2");

    let future = get(&app, &researcher, "/v1/research/acceptance?from=2999-01-01T00:00:00Z").await;
    assert_eq!(future, Value::Array(vec![]));
    let resp = app.get("/v1/research/acceptance?from=yesterday").token(&researcher.token).send().await;
    assert_eq!((resp.status.as_u16(), resp.error_code().as_str()), (400, "invalid_query"));
}

#[sqlx::test(migrations = "./migrations")]
async fn funnel_counts_unchanged_completions(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let (ada, _bob) = dataset(&app).await;
    let funnel = get(&app, &ada, "/v1/research/funnel").await;
    assert_eq!(
        (&funnel["requested"], &funnel["shown"], &funnel["accepted"]),
        (&Value::from(7), &Value::from(6), &Value::from(3))
    );
    let stages: Vec<(u64, u64, u64)> = funnel["unchanged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["after_secs"].as_u64().unwrap(), s["snapshots"].as_u64().unwrap(), s["unchanged"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(stages, [(30, 3, 3), (120, 0, 0), (300, 0, 0), (600, 1, 0)]);

    let m2 = get(&app, &ada, "/v1/research/funnel?model=m2").await;
    assert_eq!((&m2["requested"], &m2["shown"], &m2["accepted"]), (&Value::from(3), &Value::from(2), &Value::from(0)));
}

#[sqlx::test(migrations = "./migrations")]
async fn latency_percentiles_per_model(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let (ada, _bob) = dataset(&app).await;
    let rows = get(&app, &ada, "/v1/research/latency?model=m1").await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let m1 = &rows[0];
    assert_eq!(m1["generations"], 4);
    // percentile_cont over 100, 200, 300, 400.
    assert!(close(&m1["total_ms"]["p50"], 250.0), "{m1}");
    assert!(close(&m1["total_ms"]["p95"], 385.0), "{m1}");
    assert!(close(&m1["total_ms"]["p99"], 397.0), "{m1}");
    assert!(close(&m1["decode_ms"]["p50"], 250.0) && close(&m1["queue_ms"]["p99"], 0.0));
}

#[sqlx::test(migrations = "./migrations")]
async fn quality_against_ground_truth(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let (ada, _bob) = dataset(&app).await;
    let rows = get(&app, &ada, "/v1/research/quality").await;
    let rows = rows.as_array().unwrap();
    let key = |r: &Value| {
        (r["model"].as_str().unwrap().to_owned(), r["after_secs"].as_i64().unwrap(), r["accepted"].as_bool().unwrap())
    };
    let keys: Vec<_> = rows.iter().map(key).collect();
    assert_eq!(keys, [("m1".to_owned(), 30, false), ("m1".to_owned(), 30, true), ("m1".to_owned(), 600, true)]);
    let accepted_30 = &rows[1];
    assert_eq!(accepted_30["snapshots"], 3);
    assert!(close(&accepted_30["exact_match"], 1.0 / 3.0));
    // 1.0, 1 - 4/17 and 1 - 12/16.
    let expected = (1.0 + (1.0 - 4.0 / 17.0) + (1.0 - 12.0 / 16.0)) / 3.0;
    assert!(close(&accepted_30["edit_similarity"], expected), "{accepted_30}");
    assert!(close(&rows[0]["exact_match"], 0.0));
}

#[sqlx::test(migrations = "./migrations")]
async fn calibration_bins_and_brier_score(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let (ada, _bob) = dataset(&app).await;
    // Two m3 completions with their own confidence: 0.25 dismissed, 0.95
    // accepted; and one never shown, which does not count.
    let with_confidence = |outcome, confidence: f64| {
        let mut events = events(&simple("m3", "go", outcome));
        for event in &mut events {
            if let EventBody::CompletionGenerated(g) = &mut event.body {
                g.confidence = Some(confidence);
            }
        }
        events
    };
    let mut batch = with_confidence(Outcome::Dismissed, 0.25);
    batch.extend(with_confidence(Outcome::Accepted, 0.95));
    batch.extend(with_confidence(Outcome::NotShown, 0.5));
    app.ingest(&ada, &batch).await;

    let rows = get(&app, &ada, "/v1/research/calibration").await;
    let models: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["m1", "m2", "m3"]);
    // m1: four shown at 0.82, three accepted (one in part).
    let m1 = &rows[0];
    assert_eq!(m1["generations"], 4);
    assert!(close(&m1["brier_score"], (3.0 * 0.18f64.powi(2) + 0.82f64.powi(2)) / 4.0), "{m1}");
    assert!(close(&m1["acceptance_rate"], 0.75));
    assert_eq!(m1["bins"].as_array().unwrap().len(), 1);
    assert!(close(&m1["bins"][0]["lower"], 0.8));
    let m3 = &rows[2];
    assert_eq!(m3["generations"], 2);
    assert!(close(&m3["brier_score"], (0.25f64.powi(2) + 0.05f64.powi(2)) / 2.0), "{m3}");
    let bins: Vec<(f64, f64)> = m3["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["lower"].as_f64().unwrap(), b["acceptance_rate"].as_f64().unwrap()))
        .collect();
    assert_eq!(bins, [(0.2, 0.0), (0.9, 1.0)]);
}

#[sqlx::test(migrations = "./migrations")]
async fn study_arms_side_by_side(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let (ada, bob) = dataset(&app).await;
    let in_arm = |arm: &str, outcome| {
        let mut events = events(&simple("m1", "rust", outcome));
        for event in &mut events {
            if let EventBody::CompletionRequested(r) = &mut event.body {
                r.study_arm = Some(arm.to_owned());
            }
        }
        events
    };
    // Control: 2 shown, 1 accepted, 1 never shown. Treatment: 3 shown, 3 accepted.
    let mut batch = in_arm("control", Outcome::Accepted);
    batch.extend(in_arm("control", Outcome::Dismissed));
    batch.extend(in_arm("control", Outcome::NotShown));
    app.ingest(&ada, &batch).await;
    let batch: Vec<Event> = (0..3).flat_map(|_| in_arm("treatment", Outcome::Partial(1))).collect();
    app.ingest(&bob, &batch).await;

    let researcher = create_actor(&pool, Role::Researcher).await;
    let rows = get(&app, &researcher, "/v1/research/arms").await;
    let summary: Vec<(String, i64, i64, i64, i64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_i64().unwrap();
            (r["arm"].as_str().unwrap().to_owned(), n("users"), n("requested"), n("shown"), n("accepted"))
        })
        .collect();
    assert_eq!(summary, [("control".to_owned(), 1, 3, 2, 1), ("treatment".to_owned(), 1, 3, 3, 3)]);
    let (low, high) = wilson_interval(1, 2);
    assert!(close(&rows[0]["ci_low"], low) && close(&rows[0]["ci_high"], high), "{rows}");
    assert!(close(&rows[0]["median_latency_ms"], 10.0));
    // A user sees only their own arm.
    let own = get(&app, &ada, "/v1/research/arms").await;
    assert_eq!(own.as_array().unwrap().len(), 1);
    assert_eq!(own[0]["arm"], "control");
}

#[sqlx::test(migrations = "./migrations")]
async fn event_export_as_json_jsonl_and_csv_with_pseudonyms(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let (ada, bob) = dataset(&app).await;
    let researcher = create_actor(&pool, Role::Researcher).await;

    let accepted = get(&app, &researcher, "/v1/research/events?kind=accepted&model=m1").await;
    assert_eq!(accepted.as_array().unwrap().len(), 2 + 5);
    let bobs = get(&app, &researcher, &format!("/v1/research/events?user_id={}", bob.id)).await;
    assert_eq!(bobs.as_array().unwrap().len(), 5 * 4);
    let bob_pseudonym = bobs[0]["user"].as_str().unwrap().to_owned();
    assert!(bob_pseudonym.starts_with("u_"), "{bob_pseudonym}");
    assert!(bobs.as_array().unwrap().iter().all(|e| e["user"] == bob_pseudonym.as_str()));
    assert!(!bobs.to_string().contains(&bob.id.to_string()), "exports carry no account ids");
    let python = get(&app, &researcher, "/v1/research/events?language=python&kind=shown").await;
    assert_eq!(python.as_array().unwrap().len(), 2);
    let limited = get(&app, &researcher, "/v1/research/events?limit=3").await;
    assert_eq!(limited.as_array().unwrap().len(), 3);
    let resp = app.get("/v1/research/events?limit=0").token(&researcher.token).send().await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);

    let resp = app.get("/v1/research/events?kind=shown&format=csv").token(&ada.token).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.headers["content-type"], "text/csv; charset=utf-8");
    let csv = resp.text();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,user,kind,occurred_at"));
    assert_eq!(lines.len(), 1 + 6);
    let ada_pseudonym = lines[1].split(',').nth(1).unwrap().to_owned();
    assert_ne!(ada_pseudonym, bob_pseudonym);
    assert!(lines[1..].iter().all(|l| l.contains(&format!(",{ada_pseudonym},shown,"))));
    assert!(!csv.contains(&ada.id.to_string()));
    assert!(lines[1].contains(r#""{""completion_id"":"#), "{}", lines[1]);

    let resp = app.get("/v1/research/events?kind=shown&format=jsonl").token(&ada.token).send().await;
    assert_eq!(resp.headers["content-type"], "application/jsonl; charset=utf-8");
    let events: Vec<Value> = resp.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| e["user"] == ada_pseudonym.as_str() && e["kind"] == "shown"));
    // The same pseudonym in every export.
    let again = get(&app, &researcher, &format!("/v1/research/events?user_id={}&limit=1", bob.id)).await;
    assert_eq!(again[0]["user"], bob_pseudonym.as_str());
}

#[sqlx::test(migrations = "./migrations")]
async fn exports_hold_source_text_only_while_its_owner_consents(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ada = app.register_and_login("ada@example.com").await;
    let consent =
        |code: bool| app.put("/v1/me/consent").token(&ada.token).json(json!({"usage": true, "code": code})).send();
    assert_eq!(consent(true).await.status, StatusCode::OK);
    let mut request = example::completion_request(Uuid::new_v4(), "rust");
    request.prefix = Some("fn secret() {".into());
    app.ingest(&ada, &[Event::now(EventBody::CompletionRequested(request))]).await;
    let export = || get(&app, &ada, "/v1/research/events?kind=completion_requested");
    assert_eq!(export().await[0]["data"]["prefix"], "fn secret() {");
    assert_eq!(consent(false).await.status, StatusCode::OK);
    let exported = export().await;
    assert!(exported[0]["data"].get("prefix").is_none(), "{exported}");
    assert_eq!(exported[0]["data"]["caret_line"], 41);
}
