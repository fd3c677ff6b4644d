//! Wiring: the LSP server's [`CompletionProvider`] on top of the llama.cpp
//! engine, and its [`AgentProvider`] on top of the agent workflows. The only
//! place that knows both sides.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use weft_inference::agent::{
    AgentBackends, AgentConfig, AgentRole, AgentRunner, AgentTask, EditKind, RunEvent, RunEventSink, RunLog, RunReport,
    RunState, Selection, Severity, Workflow, Workspace,
};
use weft_inference::chat::{AgentRole as ChatRole, ChatBackend, ChatRouter, LocalChat, LocalProviderConfig};
use weft_inference::{CancellationToken, CompletionError, CompletionRequest, Language, LlamaEngine, LoadOptions};
use weft_lsp::{
    AgentEdit, AgentFinding, AgentOutcome, AgentProvider, AgentRequest, AgentUpdate, AgentUpdates, CompletionInput,
    CompletionOutput, CompletionProvider, FindingSeverity, ProviderError, Trigger,
};

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
                snippet_tokens: (!completion.context_snippet_tokens.is_empty())
                    .then(|| completion.context_snippet_tokens.clone()),
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

/// Builds the agents' chat backends (it may load a model: blocking).
type BackendsFactory = Box<dyn FnOnce(Option<LlamaEngine>) -> anyhow::Result<AgentBackends> + Send>;

/// The LSP server's [`AgentProvider`] on the inference crate's workflows.
/// The chat backends are made at the first run, once the completion model
/// (whose weights a local chat model shares) has loaded.
pub struct WorkflowAgents {
    state: Arc<AgentsState>,
}

struct AgentsState {
    config: AgentConfig,
    run_log: Option<PathBuf>,
    /// Where finished runs go as telemetry events, when telemetry is on.
    telemetry: Option<crate::telemetry::WireSink>,
    /// The completion engine, when the chat model shares its weights.
    engine: Option<watch::Receiver<Loading>>,
    factory: std::sync::Mutex<Option<BackendsFactory>>,
    runner: tokio::sync::OnceCell<Result<Arc<AgentRunner>, String>>,
}

impl WorkflowAgents {
    /// Agents on the `[chat]` providers, a local one sharing the weights of
    /// `completion`'s model unless it names its own; `None` when `[agent]
    /// enabled = false`.
    pub fn from_config(
        config: &Arc<Config>,
        completion: &LlamaProvider,
        telemetry: Option<crate::telemetry::WireSink>,
    ) -> Option<Arc<dyn AgentProvider>> {
        if !config.agent.enabled {
            return None;
        }
        let chat = config.chat.clone();
        let engine_threads = config.engine.n_threads;
        let factory: BackendsFactory = Box::new(move |engine: Option<LlamaEngine>| {
            let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
            let mut local = |name: &str, local: &LocalProviderConfig| -> anyhow::Result<Arc<dyn ChatBackend>> {
                // Without its own thread count, a local chat model uses the
                // completion engine's (`[engine] n_threads`, `WEFT_N_THREADS`).
                let mut chat_config = local.chat_config();
                chat_config.n_threads = chat_config.n_threads.or(engine_threads);
                let chat = match (&local.model, &engine) {
                    (Some(model), _) => LocalChat::load(&crate::config::resolve_model(model)?, chat_config)?,
                    (None, Some(engine)) => LocalChat::with_model(engine.model(), chat_config)?,
                    (None, None) => {
                        anyhow::bail!("chat provider {name} has no model and the completion model did not load")
                    }
                };
                Ok(Arc::new(chat))
            };
            let router = ChatRouter::from_config(&chat, &env, &mut local)?;
            let mut backends = AgentBackends::new(router.backend(ChatRole::Reviewer));
            for role in AgentRole::ALL {
                backends = backends.with_role(role, router.backend(chat_role(role)));
            }
            let prices = router.prices().clone();
            Ok(backends.with_price(Arc::new(move |model: &str, usage| prices.cost(model, usage).unwrap_or(0.0))))
        });
        let state = AgentsState {
            config: config.agent.workflow_config(),
            run_log: config.agent.run_log_path(),
            telemetry,
            engine: Some(completion.engine.clone()),
            factory: std::sync::Mutex::new(Some(factory)),
            runner: tokio::sync::OnceCell::new(),
        };
        Some(Arc::new(WorkflowAgents { state: Arc::new(state) }))
    }
}

/// The `[chat.routes]` key of an agent role.
fn chat_role(role: AgentRole) -> ChatRole {
    match role {
        AgentRole::Planner => ChatRole::Planner,
        AgentRole::Coder => ChatRole::Coder,
        AgentRole::Tester => ChatRole::Tester,
        AgentRole::TestAnalyzer => ChatRole::Analyzer,
        AgentRole::Reviewer => ChatRole::Reviewer,
        AgentRole::SecurityJudge => ChatRole::Security,
        AgentRole::PerformanceJudge => ChatRole::Performance,
        AgentRole::MaintainabilityJudge => ChatRole::Maintainability,
        AgentRole::Explainer => ChatRole::Explainer,
    }
}

impl AgentsState {
    /// The runner, made at the first call.
    async fn runner(&self) -> Result<Arc<AgentRunner>, String> {
        self.runner
            .get_or_init(|| async {
                let engine = match &self.engine {
                    Some(engine) => ready(engine.clone()).await.ok(),
                    None => None,
                };
                let factory = self
                    .factory
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take()
                    .ok_or("the agents' backends were already being made")?;
                let backends = tokio::task::spawn_blocking(move || factory(engine))
                    .await
                    .map_err(|err| format!("making the agents' chat backends panicked: {err}"))?
                    .map_err(|err| format!("the agents' chat backends failed to start: {err:#}"))?;
                let mut runner = AgentRunner::new(self.config.clone(), backends);
                if let Some(path) = &self.run_log {
                    runner = runner.with_log(RunLog::new(path));
                }
                let telemetry = self.telemetry.clone();
                runner = runner.on_finished(Arc::new(move |record| {
                    if let Some(sink) = &telemetry {
                        sink(record.telemetry_events());
                    }
                    tracing::info!(
                        run = %record.run_id,
                        workflow = record.workflow,
                        state = record.state,
                        verdict = record.verdict.as_deref().unwrap_or("-"),
                        steps = record.steps.len(),
                        tokens = record.total_tokens(),
                        cost_usd = record.total_cost_usd(),
                        duration_ms = record.duration_ms,
                        "agent run finished"
                    );
                }));
                Ok(Arc::new(runner))
            })
            .await
            .clone()
    }
}

impl AgentProvider for WorkflowAgents {
    fn run(
        &self,
        request: AgentRequest,
        updates: AgentUpdates,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, AgentOutcome> {
        let state = self.state.clone();
        async move {
            let (task, workspace) = match agent_task(&request) {
                Ok(prepared) => prepared,
                Err(message) => return failed_outcome(&request, message),
            };
            let runner = tokio::select! {
                runner = state.runner() => match runner {
                    Ok(runner) => runner,
                    Err(message) => return failed_outcome(&request, message),
                },
                () = cancel.cancelled() => return failed_outcome(&request, "cancelled".to_owned()),
            };
            let run_id = uuid::Uuid::parse_str(&request.run_id).unwrap_or_else(|_| uuid::Uuid::new_v4());
            // Paths go back in the client's terms: under its root, which may
            // differ from the canonical one by symlinks.
            let root = request.root.clone();
            let events: RunEventSink = Arc::new(move |event: RunEvent| updates(agent_update(event)));
            let report = runner.run(run_id, task, workspace, events, cancel).await;
            agent_outcome(&report, &root)
        }
        .boxed()
    }
}

/// The workflow's task and workspace from the server's request: paths made
/// relative to the workspace, open documents as overlays.
fn agent_task(request: &AgentRequest) -> Result<(AgentTask, Workspace), String> {
    let workflow =
        Workflow::from_name(&request.workflow).ok_or_else(|| format!("unknown workflow {}", request.workflow))?;
    let mut workspace = Workspace::open(&request.root).map_err(|err| err.to_string())?;
    for (path, text) in &request.open_documents {
        if let Some(relative) = workspace.relative(path) {
            workspace = workspace.with_overlay(&relative, text.clone()).map_err(|err| err.to_string())?;
        }
    }
    let selection = match &request.selection {
        None => None,
        Some(selection) => {
            let path = workspace
                .relative(&selection.path)
                .ok_or_else(|| format!("{} is outside the workspace", selection.path.display()))?;
            Some(Selection { path, start_line: selection.start_line, end_line: selection.end_line })
        }
    };
    Ok((AgentTask { workflow, instruction: request.instruction.clone(), selection }, workspace))
}

fn agent_update(event: RunEvent) -> AgentUpdate {
    match event {
        RunEvent::State { state, .. } => AgentUpdate::State(state.name().to_owned()),
        RunEvent::StepStarted { index, step, role, .. } => AgentUpdate::StepStarted { index, step, role },
        RunEvent::StepFinished { index, step, verdict, error, .. } => {
            AgentUpdate::StepFinished { index, step, verdict, error }
        }
    }
}

fn agent_outcome(report: &RunReport, root: &std::path::Path) -> AgentOutcome {
    let edits = report
        .edits
        .iter()
        .map(|edit| AgentEdit {
            path: root.join(&edit.path),
            create: edit.kind == EditKind::Create,
            start: (edit.range.start.line, edit.range.start.column),
            end: (edit.range.end.line, edit.range.end.column),
            new_text: edit.new_text.clone(),
        })
        .collect();
    let findings = report
        .findings()
        .map(|finding| AgentFinding {
            path: root.join(&finding.path),
            start_line: finding.start_line,
            end_line: finding.end_line,
            severity: match finding.severity {
                Severity::Error => FindingSeverity::Error,
                Severity::Warning => FindingSeverity::Warning,
                Severity::Info => FindingSeverity::Info,
            },
            message: finding.message.clone(),
            judge: finding.source.clone(),
        })
        .collect();
    AgentOutcome {
        state: report.state.name().to_owned(),
        summary: report.summary.clone(),
        result: serde_json::to_value(report).unwrap_or_default(),
        edits,
        findings,
    }
}

fn failed_outcome(request: &AgentRequest, message: String) -> AgentOutcome {
    AgentOutcome {
        state: RunState::Failed.name().to_owned(),
        summary: message.clone(),
        result: serde_json::json!({ "run_id": request.run_id, "workflow": request.workflow, "state": "failed", "error": message }),
        edits: Vec::new(),
        findings: Vec::new(),
    }
}
