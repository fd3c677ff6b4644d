//! One completion model as a [`CompletionProvider`]: a local GGUF on its own
//! `LlamaEngine`, loaded in the background, or a remote server through
//! `weft_inference::remote_completion` (the code `weft eval` uses).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use weft_inference::remote_completion::RemoteCompletion;
use weft_inference::{
    CancellationToken, Completion, CompletionError, CompletionRequest, EngineConfig, Language, LlamaEngine, LoadOptions,
};
use weft_lsp::{CompletionInput, CompletionOutput, CompletionProvider, ProviderError, Trigger};

use super::{Loading, ready};
use crate::config::{CompletionConfig, Config};

/// Completion ids: unique within a server run, across all its models.
pub struct CompletionIds {
    session: u64,
    next: AtomicU64,
}

impl CompletionIds {
    pub fn new() -> Arc<Self> {
        let session =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Arc::new(CompletionIds { session, next: AtomicU64::new(1) })
    }

    /// A value that differs between server runs.
    pub fn session(&self) -> u64 {
        self.session
    }

    fn next(&self) -> String {
        format!("{:x}-{}", self.session, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// The inference crate's request for an LSP request.
fn completion_request(input: &CompletionInput, completion: &CompletionConfig) -> CompletionRequest {
    let language = match Language::from_language_id(&input.language_id) {
        Language::Other => input.path.as_deref().map_or(Language::Other, Language::from_path),
        language => language,
    };
    let mut request = CompletionRequest::new(input.prefix.clone(), input.suffix.clone(), language);
    request.path = input.relative_path.clone();
    request.snippets = input
        .snippets
        .iter()
        .map(|s| weft_inference::prompt::ContextSnippet { path: s.path.clone(), text: s.text.clone() })
        .collect();
    request.max_tokens = completion.max_tokens;
    request.time_budget = completion.time_budget();
    request.sampling = completion.sampling;
    // An explicit request may run longer than one made while typing.
    if input.trigger == Trigger::Invoked {
        request.time_budget *= 2;
    }
    request
}

/// The LSP crate's output for a completion; `details` is the whole
/// [`Completion`] (timings, token counts, log-probabilities) and the backend.
fn completion_output(id: String, backend: &str, completion: Completion) -> CompletionOutput {
    tracing::debug!(
        id,
        model = completion.model,
        backend,
        total_ms = completion.timings.total_ms,
        prompt = completion.prompt_tokens,
        reused = completion.reused_tokens,
        generated = completion.generated_tokens,
        finish = ?completion.finish_reason,
        "completion"
    );
    let mut details = serde_json::to_value(&completion).unwrap_or_default();
    details["backend"] = backend.into();
    CompletionOutput {
        id,
        latency_ms: completion.timings.total_ms,
        snippet_tokens: (!completion.context_snippet_tokens.is_empty())
            .then(|| completion.context_snippet_tokens.clone()),
        text: completion.text,
        model: completion.model,
        details,
    }
}

fn provider_error(err: CompletionError) -> ProviderError {
    match err {
        CompletionError::Cancelled => ProviderError::Cancelled,
        CompletionError::Overloaded(_) => ProviderError::Busy(err.to_string()),
        other => ProviderError::Failed(other.to_string()),
    }
}

/// Completes with a local llama.cpp model, loaded in the background so that
/// the server answers `initialize` at once.
pub struct LlamaProvider {
    engine: watch::Receiver<Loading>,
    completion: CompletionConfig,
    description: String,
    ids: Arc<CompletionIds>,
}

impl LlamaProvider {
    /// Starts loading `model_path` on a blocking thread (the `[model]` of
    /// `config`).
    pub fn spawn(model_path: PathBuf, config: Arc<Config>) -> Arc<Self> {
        let load = LoadOptions {
            vocab_only: false,
            n_gpu_layers: config.engine.n_gpu_layers,
            format: config.model.format,
            fim_order: config.model.fim_order,
        };
        let description = model_path.display().to_string();
        Self::spawn_with(
            Ok(model_path),
            load,
            config.engine.clone(),
            &config.completion,
            description,
            CompletionIds::new(),
        )
    }

    /// Starts loading the model at `path` (or fails every request with the
    /// reason it has none); `description` is what [`Self::describe`] says.
    pub fn spawn_with(
        path: Result<PathBuf, String>,
        load: LoadOptions,
        engine_config: EngineConfig,
        completion: &CompletionConfig,
        description: String,
        ids: Arc<CompletionIds>,
    ) -> Arc<Self> {
        let (tx, rx) = watch::channel(Loading::Pending);
        let label = description.clone();
        match path {
            Err(message) => {
                tracing::error!(model = %label, "{message}");
                let _ = tx.send(Loading::Failed(message));
            }
            Ok(path) => {
                tokio::task::spawn_blocking(move || {
                    let state = match LlamaEngine::start(&path, &load, &engine_config) {
                        Ok(engine) => {
                            let info = engine.info();
                            tracing::info!(
                                model = %info.name,
                                label = %label,
                                format = info.detection.format.name(),
                                reason = %info.detection.reason,
                                load_ms = info.load_ms,
                                "model loaded"
                            );
                            Loading::Ready(engine)
                        }
                        Err(err) => {
                            tracing::error!(model = %label, "model failed to load: {err:#}");
                            Loading::Failed(format!("the model {} failed to load: {err:#}", path.display()))
                        }
                    };
                    let _ = tx.send(state);
                });
            }
        }
        Arc::new(LlamaProvider { engine: rx, completion: completion.clone(), description, ids })
    }

    /// The engine, once loaded (agents' local chat shares its weights).
    pub fn engine(&self) -> watch::Receiver<Loading> {
        self.engine.clone()
    }
}

impl CompletionProvider for LlamaProvider {
    fn complete(
        &self,
        input: CompletionInput,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Vec<CompletionOutput>, ProviderError>> {
        let request = completion_request(&input, &self.completion);
        let id = self.ids.next();
        let engine = self.engine.clone();
        async move {
            let engine = tokio::select! {
                engine = ready(engine) => engine.map_err(ProviderError::Failed)?,
                () = cancel.cancelled() => return Err(ProviderError::Cancelled),
            };
            let completion = engine.complete(request, cancel).await.map_err(provider_error)?;
            Ok(vec![completion_output(id, "local", completion)])
        }
        .boxed()
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn ready(&self) -> BoxFuture<'static, Result<(), String>> {
        let engine = self.engine.clone();
        async move { ready(engine).await.map(drop) }.boxed()
    }
}

/// Completes with a remote server (`/v1/completions` or `/infill`), with
/// its retries and circuit breaker.
pub struct RemoteProvider {
    /// Why there is none: an API key variable that is not set, say.
    backend: Result<RemoteCompletion, String>,
    /// `openai` or `infill`.
    kind: &'static str,
    completion: CompletionConfig,
    description: String,
    ids: Arc<CompletionIds>,
}

impl RemoteProvider {
    pub fn new(
        backend: Result<RemoteCompletion, String>,
        kind: &'static str,
        completion: &CompletionConfig,
        description: String,
        ids: Arc<CompletionIds>,
    ) -> Arc<Self> {
        if let Err(message) = &backend {
            tracing::error!(model = %description, "{message}");
        }
        Arc::new(RemoteProvider { backend, kind, completion: completion.clone(), description, ids })
    }
}

impl CompletionProvider for RemoteProvider {
    fn complete(
        &self,
        input: CompletionInput,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Vec<CompletionOutput>, ProviderError>> {
        let request = completion_request(&input, &self.completion);
        let id = self.ids.next();
        let backend = self.backend.clone();
        let kind = self.kind;
        async move {
            let backend = backend.map_err(ProviderError::Failed)?;
            let completion = backend.complete(request, cancel).await.map_err(provider_error)?;
            Ok(vec![completion_output(id, kind, completion)])
        }
        .boxed()
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn ready(&self) -> BoxFuture<'static, Result<(), String>> {
        let backend = self.backend.as_ref().map(drop).map_err(Clone::clone);
        async move { backend }.boxed()
    }
}
