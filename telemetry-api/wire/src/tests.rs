use expect_test::expect;
use time::macros::datetime;
use uuid::Uuid;

use super::*;

fn fixed(body: EventBody) -> Event {
    Event {
        id: Uuid::from_u128(1),
        occurred_at: datetime!(2025-03-01 12:00:00 UTC),
        session_id: Some(Uuid::from_u128(2)),
        body,
    }
}

#[test]
fn every_example_round_trips_and_validates() {
    let at = datetime!(2025-03-01 12:00:00 UTC);
    let mut events = example::accepted_completion("m", "rust", at);
    events.extend(example::agent_run(at));
    for event in events {
        event.validate().unwrap();
        let json = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event, "{json}");
        assert_eq!(EventKind::parse(event.body.kind().as_str()), Some(event.body.kind()));
    }
}

#[test]
fn shown_event_json() {
    let event = fixed(EventBody::Shown(CompletionOutcome {
        completion_id: Uuid::from_u128(3),
        model: "qwen2.5-coder-1.5b".into(),
    }));
    expect![[r#"
        {
          "id": "00000000-0000-0000-0000-000000000001",
          "occurred_at": "2025-03-01T12:00:00Z",
          "session_id": "00000000-0000-0000-0000-000000000002",
          "kind": "shown",
          "data": {
            "completion_id": "00000000-0000-0000-0000-000000000003",
            "model": "qwen2.5-coder-1.5b"
          }
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&event).unwrap());
}

#[test]
fn generation_event_json() {
    let event =
        fixed(EventBody::CompletionGenerated(example::generation(Uuid::from_u128(3), "qwen2.5-coder-1.5b", "x + 1")));
    expect![[r#"
        {
          "id": "00000000-0000-0000-0000-000000000001",
          "occurred_at": "2025-03-01T12:00:00Z",
          "session_id": "00000000-0000-0000-0000-000000000002",
          "kind": "completion_generated",
          "data": {
            "completion_id": "00000000-0000-0000-0000-000000000003",
            "model": "qwen2.5-coder-1.5b",
            "text": "x + 1",
            "finish_reason": "stop",
            "prompt_tokens": 850,
            "completion_tokens": 17,
            "reused_tokens": 790,
            "latency": {
              "queue_ms": 2.0,
              "prefill_ms": 38.0,
              "decode_ms": 95.0
            },
            "confidence": 0.82,
            "logprobs": [
              -0.05,
              -0.3,
              -0.01,
              -0.2
            ]
          }
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&event).unwrap());
}

#[test]
fn unknown_kind_and_missing_fields_are_errors() {
    let unknown = r#"{"id":"00000000-0000-0000-0000-000000000001","occurred_at":"2025-03-01T12:00:00Z","kind":"teleported","data":{}}"#;
    let err = serde_json::from_str::<Event>(unknown).unwrap_err().to_string();
    assert!(err.contains("teleported"), "{err}");

    let missing = r#"{"id":"00000000-0000-0000-0000-000000000001","occurred_at":"2025-03-01T12:00:00Z","kind":"shown","data":{"model":"m"}}"#;
    let err = serde_json::from_str::<Event>(missing).unwrap_err().to_string();
    assert!(err.contains("completion_id"), "{err}");
}

#[test]
fn validation_rejects_out_of_range_values() {
    let cases: Vec<(EventBody, &str)> = vec![
        (
            EventBody::GroundTruth(GroundTruth {
                completion_id: Uuid::nil(),
                model: "m".into(),
                after_secs: 31,
                accepted: true,
                text: String::new(),
            }),
            "after_secs",
        ),
        (
            EventBody::CompletionRequested(CompletionRequested {
                relative_position: 1.5,
                ..example::completion_request(Uuid::nil(), "rust")
            }),
            "relative_position",
        ),
        (
            EventBody::CompletionGenerated(Generation {
                confidence: Some(-0.1),
                ..example::generation(Uuid::nil(), "m", "x")
            }),
            "confidence",
        ),
        (EventBody::Shown(CompletionOutcome { completion_id: Uuid::nil(), model: " ".into() }), "model"),
    ];
    for (body, field) in cases {
        let err = fixed(body).validate().unwrap_err();
        assert!(err.contains(field), "{err} should name {field}");
    }
}
