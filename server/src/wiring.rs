//! Wiring: the LSP server's [`CompletionProvider`] on top of the llama.cpp
//! engine. The only place that knows both sides.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use weft_inference::{CancellationToken, CompletionError, CompletionRequest, Language, LlamaEngine, LoadOptions};
use weft_lsp::{CompletionInput, CompletionOutput, CompletionProvider, ProviderError, Trigger};

use crate::config::Config;

/// The state of the model behind the provider.
#[derive(Clone)]
enum Loading {
    Pending,
    Ready(LlamaEngine),
    Failed(String),
}

/// Completes with a local llama.cpp model, loaded in the background so that
/// the server answers `initialize` at once.
pub struct LlamaProvider {
    engine: watch::Receiver<Loading>,
    config: Arc<Config>,
    model_path: PathBuf,
    next_id: AtomicU64,
    session: u64,
}

impl LlamaProvider {
    /// Starts loading `model_path` on a blocking thread.
    pub fn spawn(model_path: PathBuf, config: Arc<Config>) -> Arc<Self> {
        let (tx, rx) = watch::channel(Loading::Pending);
        let path = model_path.clone();
        let engine_config = config.engine.clone();
        let load = LoadOptions {
            vocab_only: false,
            n_gpu_layers: config.engine.n_gpu_layers,
            format: config.model.format,
            fim_order: config.model.fim_order,
        };
        tokio::task::spawn_blocking(move || {
            let state = match LlamaEngine::start(&path, &load, &engine_config) {
                Ok(engine) => {
                    let info = engine.info();
                    tracing::info!(
                        model = %info.name,
                        format = info.detection.format.name(),
                        reason = %info.detection.reason,
                        load_ms = info.load_ms,
                        "model loaded"
                    );
                    Loading::Ready(engine)
                }
                Err(err) => {
                    tracing::error!("model failed to load: {err:#}");
                    Loading::Failed(format!("the model {} failed to load: {err:#}", path.display()))
                }
            };
            let _ = tx.send(state);
        });
        let session =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Arc::new(LlamaProvider { engine: rx, config, model_path, next_id: AtomicU64::new(1), session })
    }

    fn request(&self, input: &CompletionInput) -> CompletionRequest {
        let language = match Language::from_language_id(&input.language_id) {
            Language::Other => input.path.as_deref().map_or(Language::Other, Language::from_path),
            language => language,
        };
        let completion = &self.config.completion;
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
}

impl CompletionProvider for LlamaProvider {
    fn complete(
        &self,
        input: CompletionInput,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Vec<CompletionOutput>, ProviderError>> {
        let request = self.request(&input);
        let id = format!("{:x}-{}", self.session, self.next_id.fetch_add(1, Ordering::Relaxed));
        let engine = self.engine.clone();
        async move {
            let engine = tokio::select! {
                engine = ready(engine) => engine.map_err(ProviderError::Failed)?,
                () = cancel.cancelled() => return Err(ProviderError::Cancelled),
            };
            let completion = engine.complete(request, cancel).await.map_err(|err| match err {
                CompletionError::Cancelled => ProviderError::Cancelled,
                CompletionError::Overloaded(_) => ProviderError::Busy(err.to_string()),
                other => ProviderError::Failed(other.to_string()),
            })?;
            tracing::debug!(
                id,
                total_ms = completion.timings.total_ms,
                prompt = completion.prompt_tokens,
                reused = completion.reused_tokens,
                generated = completion.generated_tokens,
                finish = ?completion.finish_reason,
                "completion"
            );
            let details = serde_json::to_value(&completion).unwrap_or_default();
            Ok(vec![CompletionOutput {
                id,
                text: completion.text,
                model: completion.model,
                latency_ms: completion.timings.total_ms,
                details,
            }])
        }
        .boxed()
    }

    fn describe(&self) -> String {
        self.model_path.display().to_string()
    }

    fn ready(&self) -> BoxFuture<'static, Result<(), String>> {
        let engine = self.engine.clone();
        async move { ready(engine).await.map(drop) }.boxed()
    }
}

async fn ready(mut rx: watch::Receiver<Loading>) -> Result<LlamaEngine, String> {
    let state = rx.wait_for(|state| !matches!(state, Loading::Pending)).await.map_err(|e| e.to_string())?.clone();
    match state {
        Loading::Ready(engine) => Ok(engine),
        Loading::Failed(message) => Err(message),
        Loading::Pending => Err("the model is still loading".to_owned()),
    }
}
