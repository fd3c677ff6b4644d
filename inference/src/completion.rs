//! Plain-data requests and results of code completion.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::language::Language;
use crate::prompt::{ContextSnippet, PromptInput};

/// Sampling settings. Greedy unless `temperature` is above zero.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: i32,
    pub seed: u32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig { temperature: 0.0, top_p: 0.95, top_k: 40, seed: 42 }
    }
}

impl SamplingConfig {
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// One completion request at a cursor.
#[derive(Clone, Debug)]
pub struct CompletionRequest {
    /// Document text before the cursor (at least the part the prompt may use).
    pub prefix: String,
    /// Document text after the cursor.
    pub suffix: String,
    pub language: Language,
    /// Workspace-relative path of the document, shown to the model.
    pub path: Option<String>,
    /// Extra context, most stable first.
    pub snippets: Vec<ContextSnippet>,
    pub max_tokens: usize,
    /// Generation stops when this much time has passed since the request
    /// started running (queue time excluded).
    pub time_budget: Duration,
    pub sampling: SamplingConfig,
    /// Forces single-line or multi-line; decided from the cursor when `None`.
    pub multiline: Option<bool>,
    /// Generates exactly `max_tokens` tokens: no end-of-text and no
    /// postprocessing stop (throughput benchmarks, like llama-server's
    /// `ignore_eos`). The time budget still applies.
    pub ignore_eos: bool,
}

impl CompletionRequest {
    /// The request as the prompt builder reads it.
    pub fn prompt_input(&self) -> PromptInput<'_> {
        PromptInput {
            prefix: &self.prefix,
            suffix: &self.suffix,
            path: self.path.as_deref(),
            line_comment: self.language.line_comment(),
            repo_name: None,
            snippets: &self.snippets,
        }
    }

    pub fn new(prefix: impl Into<String>, suffix: impl Into<String>, language: Language) -> Self {
        CompletionRequest {
            prefix: prefix.into(),
            suffix: suffix.into(),
            language,
            path: None,
            snippets: Vec::new(),
            max_tokens: 64,
            time_budget: Duration::from_secs(10),
            sampling: SamplingConfig::default(),
            multiline: None,
            ignore_eos: false,
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of text, an end-of-generation or FIM token.
    EndOfText,
    /// Postprocessing decided the completion was complete (line end,
    /// indentation scope, stop word).
    Stop,
    MaxTokens,
    TimeBudget,
    /// The context window is full.
    ContextFull,
}

/// Where the time of one completion went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub queue_ms: f64,
    pub tokenize_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub total_ms: f64,
}

/// The result of one completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The text to insert at the cursor, postprocessed.
    pub text: String,
    /// What the model generated before postprocessing.
    pub raw_text: String,
    pub finish_reason: FinishReason,
    pub model: String,
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused from an earlier request.
    pub reused_tokens: usize,
    pub generated_tokens: usize,
    /// Mean log-probability of the generated tokens kept after postprocessing.
    pub mean_logprob: Option<f64>,
    /// Log-probabilities of the generated tokens, cut at the stop point.
    pub logprobs: Vec<f32>,
    pub multiline: bool,
    /// Prompt tokens each of the request's snippets took, in request order
    /// (0: left out to fit the budget); empty where tokens are not counted
    /// (remote backends).
    #[serde(default)]
    pub context_snippet_tokens: Vec<usize>,
    pub timings: Timings,
}

/// Why a completion failed.
#[derive(Debug, thiserror::Error)]
pub enum CompletionError {
    #[error("the request was cancelled")]
    Cancelled,
    #[error("the inference queue is full ({0} requests waiting); try again shortly")]
    Overloaded(usize),
    #[error("the prompt ({prompt} tokens) does not fit the context window of {n_ctx} tokens")]
    PromptTooLong { prompt: usize, n_ctx: usize },
    #[error("the inference engine has stopped")]
    EngineStopped,
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    #[error("llama.cpp failed: {0}")]
    Backend(String),
    /// A remote completion server failed (after its retries) or its
    /// circuit breaker is open.
    #[error("{0}")]
    Remote(String),
}
