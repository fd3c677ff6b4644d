//! What produces completions in a run: a local model through the editor's
//! own pipeline, a remote completion server ([`super::remote`]), or one of
//! the two sanity modes.

use std::path::PathBuf;
use std::time::Duration;

use weft_inference::prompt::ContextSnippet;
use weft_inference::remote_completion::RemoteCompletion;
use weft_inference::{
    CancellationToken, Completion, CompletionError, CompletionRequest, EngineConfig, FinishReason, LlamaEngine,
    LoadOptions, SamplingConfig, Timings,
};

use super::remote::RemoteModel;
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

/// A model of a run: a label for the results and where completions come
/// from.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub label: String,
    pub source: ModelSource,
}

#[derive(Clone, Debug)]
pub enum ModelSource {
    /// A GGUF file, loaded in this process.
    Gguf(PathBuf),
    /// A remote completion server.
    Remote(RemoteModel),
}

impl ModelSpec {
    /// What the model is, for the summary and for checking that a resumed
    /// run gives a label the same model.
    pub fn backend(&self) -> serde_json::Value {
        match &self.source {
            ModelSource::Gguf(path) => serde_json::json!({
                "kind": "gguf",
                "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
            }),
            ModelSource::Remote(remote) => remote.backend(),
        }
    }
}

/// A source of completions.
pub enum Completer {
    /// A model, through the same prompt pipeline the editor uses.
    Model { label: String, engine: LlamaEngine },
    /// A remote server, given the same prompt text (or, for `/infill`, the
    /// same windows) and the same postprocessing.
    Remote { label: String, client: RemoteCompletion, backend: serde_json::Value },
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
    /// The completion failed for a reason outside the model (a remote
    /// server that did not answer): the task is not recorded, so that
    /// running the same command again retries it.
    pub retry_later: bool,
}

impl Completer {
    /// Loads `spec` on a blocking thread, or connects to it.
    pub async fn load(spec: &ModelSpec, load: LoadOptions, engine: EngineConfig) -> anyhow::Result<Completer> {
        let label = spec.label.clone();
        match &spec.source {
            ModelSource::Gguf(path) => {
                let path = path.clone();
                let engine = tokio::task::spawn_blocking(move || LlamaEngine::start(&path, &load, &engine)).await??;
                Ok(Completer::Model { label, engine })
            }
            ModelSource::Remote(remote) => Ok(Completer::Remote {
                label,
                client: RemoteCompletion::new(remote.config.clone())?,
                backend: spec.backend(),
            }),
        }
    }

    pub fn label(&self) -> &str {
        match self {
            Completer::Model { label, .. } | Completer::Remote { label, .. } => label,
            Completer::Oracle => "oracle",
            Completer::Empty => "empty",
        }
    }

    /// Model metadata for the summary.
    pub fn info(&self) -> serde_json::Value {
        match self {
            Completer::Model { engine, .. } => serde_json::to_value(engine.info()).unwrap_or_default(),
            Completer::Remote { backend, .. } => serde_json::json!({ "backend": backend }),
            Completer::Oracle | Completer::Empty => serde_json::Value::Null,
        }
    }

    pub async fn complete(
        &self,
        task: &Task,
        snippets: Vec<ContextSnippet>,
        settings: &GenerationSettings,
    ) -> Generated {
        let mut request = CompletionRequest::new(task.prefix.as_str(), task.suffix.as_str(), task.language);
        request.path = task.path.clone();
        request.snippets = snippets;
        request.max_tokens = if task.multiline { settings.multiline_max_tokens } else { settings.max_tokens };
        request.time_budget = settings.time_budget;
        request.sampling = settings.sampling;
        request.multiline = Some(task.multiline);
        match self {
            Completer::Model { engine, .. } => generated(engine.complete(request, CancellationToken::new()).await),
            Completer::Remote { client, .. } => {
                let result = client.complete(request, CancellationToken::new()).await;
                let retry_later = matches!(result, Err(CompletionError::Remote(_)));
                Generated { retry_later, ..generated(result) }
            }
            Completer::Oracle => Generated { text: task.ground_truth.clone(), ..Generated::default() },
            Completer::Empty => Generated::default(),
        }
    }
}

fn generated(result: Result<Completion, CompletionError>) -> Generated {
    match result {
        Ok(c) => Generated {
            text: c.text,
            raw_text: c.raw_text,
            finish_reason: Some(c.finish_reason),
            prompt_tokens: c.prompt_tokens,
            generated_tokens: c.generated_tokens,
            reused_tokens: c.reused_tokens,
            timings: Some(c.timings),
            error: None,
            retry_later: false,
        },
        Err(err) => Generated { error: Some(err.to_string()), ..Generated::default() },
    }
}
