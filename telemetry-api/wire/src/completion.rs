//! Events about one inline completion, from request to ground truth.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{in_unit_range, non_empty, non_negative};

/// The delays (seconds after display) at which clients snapshot ground truth.
pub const SNAPSHOT_DELAYS_SECS: [u32; 4] = [30, 120, 300, 600];

/// Why the editor asked for a completion.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// While typing (debounced).
    Automatic,
    /// The user invoked completion explicitly.
    Invoked,
    /// A trigger character such as `.` or `(`.
    TriggerCharacter,
}

/// A completion request, with the shape of its context.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompletionRequested {
    /// Chosen by the client; every later event about this completion uses it.
    pub completion_id: Uuid,
    pub trigger: TriggerKind,
    /// LSP language id, e.g. `rust`, `python`.
    pub language: String,
    /// File extension without the dot, if the document has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_extension: Option<String>,
    /// Zero-based line of the caret.
    pub caret_line: u32,
    /// Document length in characters.
    pub document_length: u32,
    /// Caret offset divided by document length, 0 to 1.
    pub relative_position: f64,
    /// Characters of prefix and suffix that went into the prompt.
    pub prefix_length: u32,
    pub suffix_length: u32,
    /// Where the prompt's context came from, with token counts.
    #[serde(default)]
    pub context_sources: Vec<ContextSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<Behaviour>,
    /// Source text before the caret; only with consent for `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Source text after the caret; only with consent for `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// The arm of an A/B study the client was assigned to (e.g. `control`,
    /// `context-v2`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_arm: Option<String>,
}

impl CompletionRequested {
    pub(crate) fn validate(&self) -> Result<(), String> {
        non_empty("language", &self.language)?;
        in_unit_range("relative_position", self.relative_position)?;
        if let Some(arm) = &self.study_arm {
            non_empty("study_arm", arm)?;
            if arm.len() > 64 {
                return Err("`study_arm` must be at most 64 bytes".to_owned());
            }
        }
        for source in &self.context_sources {
            non_empty("context_sources[].source", &source.source)?;
        }
        if let Some(b) = &self.behaviour {
            if let Some(speed) = b.typing_speed_cps {
                non_negative("behaviour.typing_speed_cps", speed)?;
            }
        }
        Ok(())
    }
}

/// One source of prompt context (the current file, open tabs, a symbol
/// index, ...) and how many tokens it contributed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContextSource {
    pub source: String,
    pub tokens: u32,
}

/// What the user was doing when the request started.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Behaviour {
    /// Characters per second over the last few seconds of typing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_speed_cps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms_since_last_shown: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms_since_last_accepted: Option<u64>,
}

/// Why generation stopped.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop sequence or end-of-text token.
    Stop,
    /// The token limit.
    Length,
    /// The request went stale and was cancelled.
    Cancelled,
    Error,
}

/// Time spent on one generation, in milliseconds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Latency {
    /// Waiting for a free inference slot.
    pub queue_ms: f64,
    /// Processing the prompt.
    pub prefill_ms: f64,
    /// Producing the tokens.
    pub decode_ms: f64,
}

impl Latency {
    pub fn total_ms(&self) -> f64 {
        self.queue_ms + self.prefill_ms + self.decode_ms
    }
}

/// One model's answer to a completion request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Generation {
    pub completion_id: Uuid,
    pub model: String,
    /// The completion text after postprocessing.
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens served from the KV cache.
    #[serde(default)]
    pub reused_tokens: u32,
    pub latency: Latency,
    /// Mean token probability of the kept tokens, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Log-probabilities of the kept tokens, cut at the stop point.
    #[serde(default)]
    pub logprobs: Vec<f64>,
}

impl Generation {
    pub(crate) fn validate(&self) -> Result<(), String> {
        non_empty("model", &self.model)?;
        non_negative("latency.queue_ms", self.latency.queue_ms)?;
        non_negative("latency.prefill_ms", self.latency.prefill_ms)?;
        non_negative("latency.decode_ms", self.latency.decode_ms)?;
        if let Some(c) = self.confidence {
            in_unit_range("confidence", c)?;
        }
        if self.logprobs.iter().any(|lp| !lp.is_finite() || *lp > 0.0) {
            return Err("`logprobs` must be finite and <= 0".to_owned());
        }
        Ok(())
    }
}

/// A display outcome of one model's completion.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompletionOutcome {
    pub completion_id: Uuid,
    pub model: String,
}

/// The user accepted the first `accepted_chars` characters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartialAcceptance {
    pub completion_id: Uuid,
    pub model: String,
    /// Accepted length in characters (Unicode scalar values).
    pub accepted_chars: u32,
}

/// The document text at the completion's place some time after display.
///
/// For an accepted completion `text` covers the span that was inserted (as
/// it reads now); for a rejected one, what the user wrote there instead.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroundTruth {
    pub completion_id: Uuid,
    pub model: String,
    /// One of [`SNAPSHOT_DELAYS_SECS`].
    pub after_secs: u32,
    /// Whether the completion had been accepted (fully or partially).
    pub accepted: bool,
    pub text: String,
}

impl GroundTruth {
    pub(crate) fn validate(&self) -> Result<(), String> {
        non_empty("model", &self.model)?;
        if !SNAPSHOT_DELAYS_SECS.contains(&self.after_secs) {
            return Err(format!("`after_secs` must be one of {SNAPSHOT_DELAYS_SECS:?}, got {}", self.after_secs));
        }
        Ok(())
    }
}
