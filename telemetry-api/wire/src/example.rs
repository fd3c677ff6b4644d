//! Realistic example events: one completion's whole lifecycle and an agent
//! run. Used by the README, the service's tests and its ingest benchmark.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    AgentRun, AgentStep, Behaviour, CompletionOutcome, CompletionRequested, ContextSource, Event, EventBody,
    FinishReason, Generation, GroundTruth, Latency, TriggerKind,
};

/// The events of one completion that `model` proposed in a `language`
/// document and the user accepted, with a ground-truth snapshot per delay
/// whose text still equals the completion.
pub fn accepted_completion(model: &str, language: &str, at: OffsetDateTime) -> Vec<Event> {
    let completion_id = Uuid::new_v4();
    let text = "let total: u32 = items.iter().map(|i| i.price).sum();";
    let outcome = || CompletionOutcome { completion_id, model: model.to_owned() };
    let mut bodies = vec![
        EventBody::CompletionRequested(completion_request(completion_id, language)),
        EventBody::CompletionGenerated(generation(completion_id, model, text)),
        EventBody::Shown(outcome()),
        EventBody::Accepted(outcome()),
    ];
    for after_secs in crate::SNAPSHOT_DELAYS_SECS {
        bodies.push(EventBody::GroundTruth(GroundTruth {
            completion_id,
            model: model.to_owned(),
            after_secs,
            accepted: true,
            text: text.to_owned(),
        }));
    }
    events_at(bodies, at)
}

/// A completion request with plausible numbers.
pub fn completion_request(completion_id: Uuid, language: &str) -> CompletionRequested {
    CompletionRequested {
        completion_id,
        trigger: TriggerKind::Automatic,
        language: language.to_owned(),
        file_extension: Some("rs".to_owned()),
        caret_line: 41,
        document_length: 5120,
        relative_position: 0.37,
        prefix_length: 1800,
        suffix_length: 600,
        context_sources: vec![
            ContextSource { source: "current_file".to_owned(), tokens: 610 },
            ContextSource { source: "open_tabs".to_owned(), tokens: 240 },
        ],
        behaviour: Some(Behaviour {
            typing_speed_cps: Some(6.5),
            ms_since_last_shown: Some(4200),
            ms_since_last_accepted: Some(31000),
        }),
        prefix: None,
        suffix: None,
        study_arm: None,
    }
}

/// A generation of `text` by `model` with plausible numbers.
pub fn generation(completion_id: Uuid, model: &str, text: &str) -> Generation {
    Generation {
        completion_id,
        model: model.to_owned(),
        text: text.to_owned(),
        finish_reason: FinishReason::Stop,
        prompt_tokens: 850,
        completion_tokens: 17,
        reused_tokens: 790,
        latency: Latency { queue_ms: 2.0, prefill_ms: 38.0, decode_ms: 95.0 },
        confidence: Some(0.82),
        logprobs: vec![-0.05, -0.3, -0.01, -0.2],
    }
}

/// An agent run with two steps.
pub fn agent_run(at: OffsetDateTime) -> Vec<Event> {
    let run_id = Uuid::new_v4();
    let step = |index, role: &str| {
        EventBody::AgentStep(AgentStep {
            run_id,
            index,
            role: role.to_owned(),
            model: "qwen2.5-coder-7b".to_owned(),
            input_tokens: 4000,
            output_tokens: 300,
            cost_usd: 0.0,
            duration_ms: 2500,
            verdict: Some("ok".to_owned()),
        })
    };
    let bodies = vec![
        step(0, "planner"),
        step(1, "coder"),
        EventBody::AgentRun(AgentRun {
            run_id,
            command: "fix-tests".to_owned(),
            steps: 2,
            duration_ms: 5000,
            verdict: Some("success".to_owned()),
        }),
    ];
    events_at(bodies, at)
}

fn events_at(bodies: Vec<EventBody>, at: OffsetDateTime) -> Vec<Event> {
    let session_id = Uuid::new_v4();
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Event {
            id: Uuid::new_v4(),
            occurred_at: at + time::Duration::milliseconds(i as i64 * 150),
            session_id: Some(session_id),
            body,
        })
        .collect()
}
