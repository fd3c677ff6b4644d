//! The LSP server's telemetry facts as wire events.

use std::time::SystemTime;

use time::OffsetDateTime;
use uuid::Uuid;
use weft_lsp::telemetry::{GenerationFacts, Outcome, RequestFacts, RequestTrigger, TelemetryData, TelemetryEvent};
use weft_telemetry_wire::{
    Behaviour, CompletionOutcome, CompletionRequested, ContextSource, Event, EventBody, FinishReason, Generation,
    GroundTruth, Latency, PartialAcceptance, TriggerKind,
};

use crate::prompt_cmd::BYTES_PER_TOKEN;

/// The wire event of a fact, or `None` for facts that are not events (the
/// client's name).
pub fn to_wire(event: TelemetryEvent, session_id: Uuid, study_arm: Option<&str>) -> Option<Event> {
    let body = match event.data {
        TelemetryData::Client { .. } => return None,
        TelemetryData::Requested(facts) => EventBody::CompletionRequested(CompletionRequested {
            study_arm: study_arm.map(str::to_owned),
            ..requested(facts)
        }),
        TelemetryData::Generated(facts) => EventBody::CompletionGenerated(generation(facts)),
        TelemetryData::Outcome(o) => {
            let outcome = CompletionOutcome { completion_id: o.completion_id, model: o.model };
            match o.outcome {
                Outcome::Shown => EventBody::Shown(outcome),
                Outcome::Accepted => EventBody::Accepted(outcome),
                Outcome::PartiallyAccepted { chars } => EventBody::PartiallyAccepted(PartialAcceptance {
                    completion_id: outcome.completion_id,
                    model: outcome.model,
                    accepted_chars: chars,
                }),
                Outcome::Dismissed => EventBody::Dismissed(outcome),
                Outcome::TypedOver => EventBody::TypedOver(outcome),
                Outcome::Superseded => EventBody::Superseded(outcome),
            }
        }
        TelemetryData::GroundTruth(s) => EventBody::GroundTruth(GroundTruth {
            completion_id: s.completion_id,
            model: s.model,
            after_secs: s.after_secs,
            accepted: s.accepted,
            text: s.text,
        }),
    };
    Some(Event { id: Uuid::new_v4(), occurred_at: timestamp(event.at), session_id: Some(session_id), body })
}

fn timestamp(at: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(at)
}

fn requested(f: RequestFacts) -> CompletionRequested {
    let relative_position = if f.document_chars == 0 {
        0.0
    } else {
        (f64::from(f.caret_char) / f64::from(f.document_chars)).clamp(0.0, 1.0)
    };
    CompletionRequested {
        completion_id: f.completion_id,
        trigger: match f.trigger {
            RequestTrigger::Automatic => TriggerKind::Automatic,
            RequestTrigger::Invoked => TriggerKind::Invoked,
            RequestTrigger::TriggerCharacter => TriggerKind::TriggerCharacter,
        },
        language: if f.language_id.trim().is_empty() { "plaintext".to_owned() } else { f.language_id },
        file_extension: f.file_extension,
        caret_line: f.caret_line,
        document_length: f.document_chars,
        relative_position,
        prefix_length: f.prefix_chars,
        suffix_length: f.suffix_chars,
        // The prompt builder's count where the engine reports it; else the
        // estimate the retrieval's byte budget uses.
        context_sources: match f.context_tokens {
            Some(tokens) => tokens.into_iter().map(|(source, tokens)| ContextSource { source, tokens }).collect(),
            None => f
                .context_bytes
                .into_iter()
                .map(|(source, bytes)| ContextSource { source, tokens: bytes.div_ceil(BYTES_PER_TOKEN as u32) })
                .collect(),
        },
        behaviour: f.behaviour.map(|b| Behaviour {
            typing_speed_cps: b.typing_speed_cps,
            ms_since_last_shown: b.since_last_shown.map(|d| d.as_millis() as u64),
            ms_since_last_accepted: b.since_last_accepted.map(|d| d.as_millis() as u64),
        }),
        prefix: f.prefix,
        suffix: f.suffix,
        study_arm: None,
    }
}

/// A generation from the engine's details (`weft_inference::Completion` as
/// JSON); without them, only what the server knows.
fn generation(f: GenerationFacts) -> Generation {
    let Ok(completion) = serde_json::from_value::<weft_inference::Completion>(f.details) else {
        return Generation {
            completion_id: f.completion_id,
            model: f.model,
            text: f.text,
            finish_reason: FinishReason::Stop,
            prompt_tokens: 0,
            completion_tokens: 0,
            reused_tokens: 0,
            latency: Latency { queue_ms: 0.0, prefill_ms: 0.0, decode_ms: f.latency_ms.max(0.0) },
            confidence: None,
            logprobs: Vec::new(),
        };
    };
    use weft_inference::FinishReason as Engine;
    let logprobs: Vec<f64> = completion.logprobs.iter().map(|&lp| f64::from(lp).clamp(-1e4, 0.0)).collect();
    let confidence = (!logprobs.is_empty())
        .then(|| (logprobs.iter().map(|lp| lp.exp()).sum::<f64>() / logprobs.len() as f64).clamp(0.0, 1.0));
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let ms = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    let timings = completion.timings;
    Generation {
        completion_id: f.completion_id,
        model: if completion.model.trim().is_empty() { f.model } else { completion.model },
        text: completion.text,
        finish_reason: match completion.finish_reason {
            Engine::EndOfText | Engine::Stop => FinishReason::Stop,
            Engine::MaxTokens | Engine::TimeBudget | Engine::ContextFull => FinishReason::Length,
        },
        prompt_tokens: count(completion.prompt_tokens),
        completion_tokens: count(completion.generated_tokens),
        reused_tokens: count(completion.reused_tokens),
        latency: Latency {
            queue_ms: ms(timings.queue_ms),
            prefill_ms: ms(timings.tokenize_ms + timings.prefill_ms),
            decode_ms: ms(timings.decode_ms),
        },
        confidence,
        logprobs,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weft_lsp::telemetry::{BehaviourFacts, SnapshotFacts};

    use super::*;

    fn event(data: TelemetryData) -> Event {
        to_wire(TelemetryEvent { at: SystemTime::now(), data }, Uuid::nil(), Some("control")).unwrap()
    }

    #[test]
    fn every_fact_becomes_a_valid_event() {
        let completion_id = Uuid::new_v4();
        let details = serde_json::json!({
            "text": "1)", "raw_text": "1)\n", "finish_reason": "stop", "model": "smollm2",
            "prompt_tokens": 40, "reused_tokens": 30, "generated_tokens": 3,
            "mean_logprob": -0.5, "logprobs": [-0.1, -0.9], "multiline": false,
            "timings": {"queue_ms": 1.0, "tokenize_ms": 0.5, "prefill_ms": 10.0, "decode_ms": 20.0, "total_ms": 31.5}
        });
        let facts = [
            TelemetryData::Requested(RequestFacts {
                completion_id,
                trigger: RequestTrigger::TriggerCharacter,
                language_id: "python".into(),
                file_extension: Some("py".into()),
                caret_line: 3,
                document_chars: 200,
                caret_char: 50,
                prefix_chars: 50,
                suffix_chars: 150,
                context_bytes: vec![("definition".into(), 301)],
                context_tokens: None,
                behaviour: Some(BehaviourFacts {
                    typing_speed_cps: Some(4.0),
                    since_last_shown: Some(Duration::from_millis(1500)),
                    since_last_accepted: None,
                }),
                prefix: None,
                suffix: None,
            }),
            TelemetryData::Generated(GenerationFacts {
                completion_id,
                model: "smollm2".into(),
                text: "1)".into(),
                latency_ms: 31.5,
                details,
            }),
            TelemetryData::Outcome(weft_lsp::telemetry::OutcomeFacts {
                completion_id,
                model: "smollm2".into(),
                outcome: Outcome::PartiallyAccepted { chars: 1 },
            }),
            TelemetryData::GroundTruth(SnapshotFacts {
                completion_id,
                model: "smollm2".into(),
                after_secs: 30,
                accepted: true,
                text: "1)".into(),
            }),
        ];
        let facts_requested = facts[0].clone();
        let events: Vec<Event> = facts.into_iter().map(event).collect();
        for e in &events {
            e.validate().unwrap_or_else(|err| panic!("{err}: {e:?}"));
            assert_eq!(e.body.completion_id(), Some(completion_id));
        }
        let EventBody::CompletionRequested(r) = &events[0].body else { panic!() };
        // Without the engine's count, the byte budget's estimate.
        assert_eq!((r.relative_position, r.context_sources[0].tokens), (0.25, 101));
        let TelemetryData::Requested(mut counted) = facts_requested.clone() else { panic!() };
        counted.context_tokens = Some(vec![("definition".into(), 87), ("similar".into(), 0)]);
        let EventBody::CompletionRequested(r) = event(TelemetryData::Requested(counted)).body else { panic!() };
        let sources: Vec<(&str, u32)> = r.context_sources.iter().map(|c| (c.source.as_str(), c.tokens)).collect();
        assert_eq!(sources, [("definition", 87), ("similar", 0)]);
        assert_eq!(r.behaviour.as_ref().unwrap().ms_since_last_shown, Some(1500));
        assert_eq!(r.study_arm.as_deref(), Some("control"));
        let EventBody::CompletionGenerated(g) = &events[1].body else { panic!() };
        assert_eq!((g.prompt_tokens, g.reused_tokens, g.completion_tokens), (40, 30, 3));
        assert_eq!(g.latency.prefill_ms, 10.5);
        let expected = ((-0.1f64).exp() + (-0.9f64).exp()) / 2.0;
        assert!((g.confidence.unwrap() - expected).abs() < 1e-6);
        assert_eq!(g.finish_reason, FinishReason::Stop);
    }
}
