//! Wiring: the LSP server's [`CompletionProvider`] on top of the llama.cpp
//! engine and remote completion servers, and its [`AgentProvider`] on top of
//! the agent workflows. The only place that knows both sides.
//!
//! One model (`[model]`, `--model`) is a [`LlamaProvider`]; the models of
//! `[[models]]` are one provider each (`completion.rs`) under a
//! [`ComparisonProvider`] (`comparison.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use weft_inference::agent::{
    AgentBackends, AgentConfig, AgentRole, AgentRunner, AgentTask, EditKind, RunEvent, RunEventSink, RunLog, RunReport,
    RunState, Selection, Severity, Workflow, Workspace,
};
use weft_inference::chat::{AgentRole as ChatRole, ChatBackend, ChatRouter, LocalChat, LocalProviderConfig};
use weft_inference::remote_completion::RemoteCompletion;
use weft_inference::{CancellationToken, LlamaEngine};
use weft_lsp::{
    AgentEdit, AgentFinding, AgentOutcome, AgentProvider, AgentRequest, AgentUpdate, AgentUpdates, CompletionProvider,
    FindingSeverity,
};

use crate::config::models::{ModelSource, Policy};
use crate::config::{Config, ModelSet};

mod comparison;
mod completion;

use comparison::{Choice, ComparisonProvider, Member};
pub use completion::LlamaProvider;
use completion::{CompletionIds, RemoteProvider};

/// The state of a local model.
#[derive(Clone)]
pub enum Loading {
    Pending,
    Ready(LlamaEngine),
    Failed(String),
}

/// The models `weft lsp` completes with.
pub enum LspModels {
    /// `--model`, `WEFT_MODEL` or `[model]`.
    One(PathBuf),
    /// `[[models]]` under `[comparison]`.
    Set(ModelSet),
}

/// What `weft lsp` completes with, started.
pub struct Completers {
    pub provider: Arc<dyn CompletionProvider>,
    /// The first local model's engine: a local chat model without a model
    /// of its own shares its weights.
    pub shared_engine: Option<watch::Receiver<Loading>>,
}

impl Completers {
    /// Starts the models, loading local ones in the background.
    pub fn spawn(config: &Arc<Config>, models: LspModels) -> Completers {
        let set = match models {
            LspModels::One(path) => {
                let provider = LlamaProvider::spawn(path, config.clone());
                return Completers { shared_engine: Some(provider.engine()), provider };
            }
            LspModels::Set(set) => set,
        };
        let ids = CompletionIds::new();
        let mut shared_engine = None;
        let mut members = Vec::new();
        // In `single` mode only the chosen model starts.
        for spec in set.used() {
            let provider: Arc<dyn CompletionProvider> = match &spec.source {
                ModelSource::Local { path, load, engine } => {
                    let file = crate::config::resolve_model(path).map_err(|err| format!("{err:#}"));
                    let local = LlamaProvider::spawn_with(
                        file,
                        load.clone(),
                        engine.clone(),
                        &config.completion,
                        spec.name.clone(),
                        ids.clone(),
                    );
                    shared_engine.get_or_insert_with(|| local.engine());
                    local
                }
                ModelSource::Remote { config: remote, api_key_env } => {
                    let mut remote = remote.clone();
                    let backend = match api_key_env {
                        None => Ok(()),
                        Some(var) => match std::env::var(var) {
                            Ok(key) if !key.is_empty() => {
                                remote.api_key = Some(key);
                                Ok(())
                            }
                            _ => Err(format!("the API key variable {var} (api_key_env) is not set")),
                        },
                    }
                    .and_then(|()| RemoteCompletion::new(remote).map_err(|err| format!("{err:#}")));
                    RemoteProvider::new(backend, spec.source.kind(), &config.completion, spec.name.clone(), ids.clone())
                }
            };
            members.push(Member { name: spec.name.clone(), provider });
        }
        let choice = match &set.policy {
            Policy::Single(_) => Choice::Single(0),
            Policy::Ab { weights, session } => Choice::Ab {
                weights: weights.clone(),
                session: session.clone().unwrap_or_else(|| format!("{:x}", ids.session())),
            },
            Policy::All => Choice::All,
        };
        let description = set.describe();
        tracing::info!(models = %description, "completion models");
        let provider = Arc::new(ComparisonProvider::new(members, choice, description));
        Completers { provider, shared_engine }
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
        completion_engine: Option<watch::Receiver<Loading>>,
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
                        anyhow::bail!(
                            "chat provider {name} has no model, and no local completion model loaded to share"
                        )
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
            engine: completion_engine,
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
