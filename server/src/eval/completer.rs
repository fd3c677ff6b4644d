//! What produces completions in a run: a model through the editor's own
//! pipeline, or one of the two sanity modes.

use std::path::PathBuf;
use std::time::Duration;

use weft_inference::prompt::ContextSnippet;
use weft_inference::{
    CancellationToken, CompletionRequest, EngineConfig, FinishReason, LlamaEngine, LoadOptions, SamplingConfig, Timings,
};

use super::task::Task;

/// Generation settings shared by every model of a run.
#[derive(Clone, Debug)]
pub struct GenerationSettings {
    pub max_tokens: usize,
    /// For multi-line tasks.
    pub multiline_max_tokens: usize,
    pub sampling: SamplingConfig,
    pub time_budget: Duration,
}

/// A model to load: a label for the results and a GGUF file.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub label: String,
    pub path: PathBuf,
}

/// A source of completions.
pub enum Completer {
    /// A model, through the same prompt pipeline the editor uses.
    Model { label: String, engine: LlamaEngine },
    /// The ground truth itself: every metric must be perfect.
    Oracle,
    /// Nothing: pass@1 must be near 0.
    Empty,
}

/// A completion and how it was made.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    pub text: String,
    /// What the model generated before postprocessing.
    pub raw_text: String,
    pub finish_reason: Option<FinishReason>,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub reused_tokens: usize,
    pub timings: Option<Timings>,
    pub error: Option<String>,
}

impl Completer {
    /// Loads `spec` on a blocking thread.
    pub async fn load(spec: &ModelSpec, load: LoadOptions, engine: EngineConfig) -> anyhow::Result<Completer> {
        let path = spec.path.clone();
        let engine = tokio::task::spawn_blocking(move || LlamaEngine::start(&path, &load, &engine)).await??;
        Ok(Completer::Model { label: spec.label.clone(), engine })
    }

    pub fn label(&self) -> &str {
        match self {
            Completer::Model { label, .. } => label,
            Completer::Oracle => "oracle",
            Completer::Empty => "empty",
        }
    }

    /// Model metadata for the summary.
    pub fn info(&self) -> serde_json::Value {
        match self {
            Completer::Model { engine, .. } => serde_json::to_value(engine.info()).unwrap_or_default(),
            Completer::Oracle | Completer::Empty => serde_json::Value::Null,
        }
    }

    pub async fn complete(
        &self,
        task: &Task,
        snippets: Vec<ContextSnippet>,
        settings: &GenerationSettings,
    ) -> Generated {
        let engine = match self {
            Completer::Model { engine, .. } => engine,
            Completer::Oracle => return Generated { text: task.ground_truth.clone(), ..Generated::default() },
            Completer::Empty => return Generated::default(),
        };
        let mut request = CompletionRequest::new(task.prefix.as_str(), task.suffix.as_str(), task.language);
        request.path = task.path.clone();
        request.snippets = snippets;
        request.max_tokens = if task.multiline { settings.multiline_max_tokens } else { settings.max_tokens };
        request.time_budget = settings.time_budget;
        request.sampling = settings.sampling;
        request.multiline = Some(task.multiline);
        match engine.complete(request, CancellationToken::new()).await {
            Ok(c) => Generated {
                text: c.text,
                raw_text: c.raw_text,
                finish_reason: Some(c.finish_reason),
                prompt_tokens: c.prompt_tokens,
                generated_tokens: c.generated_tokens,
                reused_tokens: c.reused_tokens,
                timings: Some(c.timings),
                error: None,
            },
            Err(err) => Generated { error: Some(err.to_string()), ..Generated::default() },
        }
    }
}
