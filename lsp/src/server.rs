//! The language server: lifecycle, document sync and completion requests.
//!
//! Every request gets exactly one response: a handler that panics answers
//! with an internal error and the server lives on; a request cancelled with
//! `$/cancelRequest` is answered with RequestCancelled (-32800) by
//! tower-lsp-server, and dropping the handler's future cancels the running
//! inference through a drop guard.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService};

use crate::agent::commands::ServerView;
use crate::agent::{AgentCommands, AgentProvider};
use crate::context::protocol::{self as context_protocol, ContextUpdateParams};
use crate::context::{ContextConfig, ContextEngine, ContextQuery};
use crate::document::{ContentChange, Document, DocumentStore};
use crate::position::{self, LspPosition, PositionEncoding};
use crate::provider::{CompletionInput, CompletionOutput, CompletionProvider, ProviderError, Trigger};
use crate::status::{self, Health, ShownErrors, StatusParams, WeftStatus};
use crate::telemetry::{CompletionTracker, RequestTrigger, TelemetrySettings, request_facts};

/// The command a client runs when the user accepts a completion.
pub const ACCEPT_COMMAND: &str = "weft.completion.accepted";

/// LSP's `RequestFailed` (3.17): the request was valid but failed.
const REQUEST_FAILED: i64 = -32803;

/// The prefix window's first line moves in steps of this many lines, so that
/// consecutive prompts share their beginning.
const PREFIX_LINE_QUANTUM: usize = 64;

/// Settings of the server itself (the engine has its own).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Lines before the cursor's line passed to the engine (at least).
    pub max_prefix_lines: usize,
    /// Lines after the cursor's line passed to the engine.
    pub max_suffix_lines: usize,
    /// Whether `textDocument/completion` answers with model completions.
    pub completion_items: bool,
    /// Whether context from other files goes into prompts (`[lsp] cross_file`).
    pub cross_file: bool,
    /// Bytes of extra context retrieved at most (the prompt builder then
    /// fits it to its token budget).
    pub context_bytes: usize,
    /// Where completion telemetry goes; `None` records nothing.
    pub telemetry: Option<TelemetrySettings>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let context = ContextConfig::default();
        ServerConfig {
            max_prefix_lines: 512,
            max_suffix_lines: 128,
            completion_items: true,
            cross_file: context.cross_file,
            context_bytes: context.max_bytes,
            telemetry: None,
        }
    }
}

/// Builds the service for one client connection.
pub fn service(
    provider: Arc<dyn CompletionProvider>,
    config: ServerConfig,
) -> (LspService<Backend>, tower_lsp_server::ClientSocket) {
    service_with_agents(provider, None, config)
}

/// Builds the service, with the `weft.agent.*` commands when `agents` is
/// given.
pub fn service_with_agents(
    provider: Arc<dyn CompletionProvider>,
    agents: Option<Arc<dyn AgentProvider>>,
    config: ServerConfig,
) -> (LspService<Backend>, tower_lsp_server::ClientSocket) {
    LspService::build(|client| Backend::new(client, provider, agents, config))
        .custom_method("window/workDoneProgress/cancel", Backend::work_done_progress_cancel)
        .custom_method("textDocument/inlineCompletion", Backend::inline_completion)
        .custom_method(context_protocol::CONTEXT_UPDATE, Backend::context_update)
        .custom_method(crate::frames::MALFORMED, Backend::malformed_message)
        .custom_method("textDocument/didShowCompletion", Backend::did_show_completion)
        .custom_method("textDocument/didPartiallyAcceptCompletion", Backend::did_partially_accept_completion)
        .custom_method("weft/didDismissCompletion", Backend::did_dismiss_completion)
        .finish()
}

/// Serves one client over a pair of streams (stdio, a TCP connection).
pub async fn serve<I, O>(input: I, output: O, provider: Arc<dyn CompletionProvider>, config: ServerConfig)
where
    I: tokio::io::AsyncRead + Unpin + Send + 'static,
    O: tokio::io::AsyncWrite,
{
    serve_with_agents(input, output, provider, None, config).await;
}

/// [`serve`], with the `weft.agent.*` commands when `agents` is given.
pub async fn serve_with_agents<I, O>(
    input: I,
    output: O,
    provider: Arc<dyn CompletionProvider>,
    agents: Option<Arc<dyn AgentProvider>>,
    config: ServerConfig,
) where
    I: tokio::io::AsyncRead + Unpin + Send + 'static,
    O: tokio::io::AsyncWrite,
{
    let (service, socket) = service_with_agents(provider, agents, config);
    // One malformed frame must not end the session.
    let input = crate::frames::guard(input);
    // Requests run concurrently; completions of one document supersede each
    // other, so this bounds the work of many documents, not of one.
    tower_lsp_server::Server::new(input, output, socket).concurrency_level(32).serve(service).await;
}

/// The state of one client connection.
pub struct Backend {
    client: Client,
    provider: Arc<dyn CompletionProvider>,
    config: ServerConfig,
    state: Mutex<State>,
    next_request: AtomicU64,
    /// The workspace index and retrieval; it has its own lock, always taken
    /// after `state`'s when both are held.
    context: ContextEngine,
    /// Error messages already shown to the user.
    shown_errors: ShownErrors,
    /// Follows completions for telemetry, when it is on.
    telemetry: Option<CompletionTracker>,
    /// The `weft.agent.*` commands, when an agent engine is configured.
    agents: Option<AgentCommands>,
}

#[derive(Default)]
struct State {
    encoding: PositionEncoding,
    documents: DocumentStore,
    root: Option<PathBuf>,
    /// Every workspace folder, for the context engine.
    folders: Vec<PathBuf>,
    /// Whether the client lets the server watch files.
    watch_files: bool,
    /// The running completion of each document, by request sequence number.
    in_flight: HashMap<String, (u64, CancellationToken)>,
    /// Whether the client accepts `window/workDoneProgress/create`.
    work_done_progress: bool,
}

/// Where a completion request stands when the engine is called.
struct Cursor {
    position: Position,
    crlf: bool,
}

impl Backend {
    fn new(
        client: Client,
        provider: Arc<dyn CompletionProvider>,
        agents: Option<Arc<dyn AgentProvider>>,
        config: ServerConfig,
    ) -> Self {
        let context = ContextEngine::new(ContextConfig {
            cross_file: config.cross_file,
            max_bytes: config.context_bytes,
            ..ContextConfig::default()
        });
        let telemetry = config.telemetry.clone().map(CompletionTracker::new);
        Backend {
            client,
            provider,
            config,
            telemetry,
            state: Mutex::new(State::default()),
            next_request: AtomicU64::new(1),
            context,
            shown_errors: ShownErrors::default(),
            agents: agents.map(AgentCommands::new),
        }
    }

    /// What an agent command needs of the server's state.
    fn agent_view(&self) -> ServerView {
        let state = self.state();
        let documents = state
            .documents
            .iter()
            .filter_map(|(uri, document)| {
                let uri: Uri = uri.parse().ok()?;
                Some((uri.to_file_path()?.into_owned(), document.text().clone()))
            })
            .collect();
        ServerView {
            encoding: state.encoding,
            root: state.root.clone(),
            documents,
            work_done_progress: state.work_done_progress,
        }
    }

    /// `window/workDoneProgress/cancel`: the user cancelled an agent run.
    pub async fn work_done_progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        if let Some(agents) = &self.agents {
            agents.cancel_progress(&params.token);
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `textDocument/inlineCompletion` (LSP 3.18).
    pub async fn inline_completion(&self, params: InlineCompletionParams) -> Result<Option<InlineCompletionResponse>> {
        catch_panics("textDocument/inlineCompletion", async {
            let trigger = if params.context.trigger_kind == InlineCompletionTriggerKind::INVOKED {
                RequestTrigger::Invoked
            } else {
                RequestTrigger::Automatic
            };
            let tdp = params.text_document_position;
            let Some((outputs, cursor)) = self.generate(&tdp.text_document.uri, tdp.position, trigger).await? else {
                return Ok(None);
            };
            let items = outputs
                .into_iter()
                .filter(|output| !output.text.is_empty())
                .map(|output| InlineCompletionItem {
                    insert_text: with_line_endings(&output.text, cursor.crlf),
                    filter_text: None,
                    range: Some(Range::new(cursor.position, cursor.position)),
                    command: Some(accept_command(&output)),
                    insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
                })
                .collect();
            Ok(Some(InlineCompletionResponse::Array(items)))
        })
        .await
    }

    /// `weft/contextUpdate`: files the client pushes as extra context.
    pub async fn context_update(&self, params: ContextUpdateParams) {
        guard_notification(context_protocol::CONTEXT_UPDATE, || self.context.push(params.into_files()));
    }

    /// A frame from the client that was not a JSON-RPC message
    /// ([`crate::frames`]): logged, and reported to the client's log.
    pub async fn malformed_message(&self, params: Value) {
        let reason = params["reason"].as_str().unwrap_or("unknown");
        tracing::error!("malformed message from the client: {reason}");
        self.client.log_message(MessageType::ERROR, format!("Weft ignored a malformed message: {reason}")).await;
    }

    /// `textDocument/didShowCompletion`: the client shows a suggestion.
    pub async fn did_show_completion(&self, params: Value) {
        let id = completion_id(&params["item"]);
        tracing::debug!(id, "completion shown");
        if let (Some(tracker), Some(id)) = (&self.telemetry, id) {
            tracker.shown(id);
        }
    }

    /// `textDocument/didPartiallyAcceptCompletion`: part of a suggestion
    /// was accepted (a word, a line).
    pub async fn did_partially_accept_completion(&self, params: Value) {
        let id = completion_id(&params["item"]);
        let length = params["acceptedLength"].as_u64();
        tracing::debug!(id, length, "completion partially accepted");
        if let (Some(tracker), Some(id), Some(length)) = (&self.telemetry, id, length) {
            tracker.partially_accepted(id, length as usize);
        }
    }

    /// `weft/didDismissCompletion`: the user dismissed a suggestion.
    pub async fn did_dismiss_completion(&self, params: Value) {
        let id = completion_id(&params["item"]);
        tracing::debug!(id, "completion dismissed");
        if let (Some(tracker), Some(id)) = (&self.telemetry, id) {
            tracker.dismissed(id);
        }
    }

    /// Runs the provider for a cursor, superseding the document's earlier
    /// request. `None` when the request was superseded.
    async fn generate(
        &self,
        uri: &Uri,
        position: Position,
        trigger: RequestTrigger,
    ) -> Result<Option<(Vec<CompletionOutput>, Cursor)>> {
        let started = std::time::SystemTime::now();
        let uri_key = uri.as_str().to_owned();
        let seq = self.next_request.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let (mut input, cursor, cursor_byte, window, mut facts) = {
            let mut state = self.state();
            let encoding = state.encoding;
            let document = state
                .documents
                .get(&uri_key)
                .ok_or_else(|| invalid_params(format!("document {uri_key} is not open")))?;
            let rope = document.text();
            let char_idx = position::to_char_idx(rope, position.into(), encoding).ok_or_else(|| {
                invalid_params(format!("position {}:{} is outside the document", position.line, position.character))
            })?;
            // The range of the answer is the cursor as the server understood
            // it: clamped to the line's end, in the negotiated encoding.
            let clamped: Position =
                position::to_lsp(rope, char_idx, encoding).unwrap_or(LspPosition::from(position)).into();
            let windows = prompt_windows(document, char_idx, &self.config);
            let facts =
                self.telemetry.as_ref().map(|t| request_facts(t, &uri_key, document, char_idx, &windows, trigger));
            let crlf = windows.crlf;
            let cursor_byte = rope.char_to_byte(char_idx);
            let path = uri.to_file_path().map(|p| p.into_owned());
            let relative_path = match (&path, &state.root) {
                (Some(path), Some(root)) => path.strip_prefix(root).ok().map(|p| p.to_string_lossy().into_owned()),
                _ => None,
            };
            let input = CompletionInput {
                uri: uri_key.clone(),
                relative_path: relative_path
                    .or_else(|| path.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned())),
                path,
                language_id: document.language_id().to_owned(),
                prefix: windows.prefix,
                suffix: windows.suffix,
                trigger: match trigger {
                    RequestTrigger::Invoked => Trigger::Invoked,
                    RequestTrigger::Automatic | RequestTrigger::TriggerCharacter => Trigger::Automatic,
                },
                prefix_is_complete: windows.prefix_is_complete,
                snippets: Vec::new(),
            };
            if let Some((_, older)) = state.in_flight.insert(uri_key.clone(), (seq, cancel.clone())) {
                older.cancel();
            }
            (input, Cursor { position: clamped, crlf }, cursor_byte, windows.bytes, facts)
        };
        // Retrieval takes the engine's own lock, briefly (milliseconds).
        if let Some(path) = &input.path {
            let query = ContextQuery { path, cursor: cursor_byte, window };
            let retrieval = self.context.retrieve(&query);
            tracing::debug!(snippets = retrieval.snippets.len(), micros = retrieval.micros, "context retrieved");
            input.snippets = retrieval.snippets;
        }
        if let Some(facts) = &mut facts {
            facts.context_bytes = crate::telemetry::context_bytes(&input.snippets);
        }
        let snippet_sources: Vec<_> = input.snippets.iter().map(|snippet| snippet.source).collect();

        // Dropping this future (on `$/cancelRequest`) cancels the engine.
        let guard = cancel.clone().drop_guard();
        let result = self.provider.complete(input, cancel).await;
        drop(guard);
        {
            let mut state = self.state();
            if state.in_flight.get(&uri_key).is_some_and(|(s, _)| *s == seq) {
                state.in_flight.remove(&uri_key);
            }
        }
        if let (Some(tracker), Some(mut facts)) = (&self.telemetry, facts) {
            let outputs = result.as_deref().unwrap_or_default();
            if let Some(tokens) = outputs.first().and_then(|output| output.snippet_tokens.as_deref()) {
                facts.context_tokens = Some(crate::telemetry::context_tokens(&snippet_sources, tokens));
            }
            tracker.answered(started, facts, &uri_key, cursor_byte, outputs);
        }
        match result {
            Ok(outputs) => {
                if let Some(first) = outputs.first() {
                    let params = StatusParams {
                        model: self.provider.describe(),
                        health: Health::Ready,
                        latency_ms: Some(first.latency_ms),
                        message: None,
                    };
                    self.client.send_notification::<WeftStatus>(params).await;
                }
                Ok(Some((outputs, cursor)))
            }
            Err(ProviderError::Cancelled) => Ok(None),
            Err(ProviderError::Busy(message)) => Err(request_failed(message)),
            Err(ProviderError::Failed(message)) => {
                let params = StatusParams {
                    model: self.provider.describe(),
                    health: Health::Error,
                    latency_ms: None,
                    message: Some(message.clone()),
                };
                self.client.send_notification::<WeftStatus>(params).await;
                self.show_error_once(&message).await;
                Err(request_failed(message))
            }
        }
    }

    /// Shows an error in the editor, once per distinct message.
    async fn show_error_once(&self, message: &str) {
        self.shown_errors.show_once(&self.client, message).await;
    }

    fn accepted(&self, arguments: &[Value]) -> Result<Option<Value>> {
        let id = arguments
            .first()
            .and_then(|arg| arg.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_params(format!("{ACCEPT_COMMAND} takes one argument {{\"id\": string}}")))?;
        tracing::info!(completion = id, "completion accepted");
        if let Some(tracker) = &self.telemetry {
            tracker.accepted(id);
        }
        Ok(None)
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let offered: Option<Vec<String>> = params
            .capabilities
            .general
            .as_ref()
            .and_then(|general| general.position_encodings.as_ref())
            .map(|kinds| kinds.iter().map(|kind| kind.as_str().to_owned()).collect());
        let encoding = position::negotiate(offered.as_deref());
        if let (Some(tracker), Some(info)) = (&self.telemetry, &params.client_info) {
            tracker.client(info.name.clone(), info.version.clone());
        }
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|folders| folders.first())
            .and_then(|folder| folder.uri.to_file_path().map(|p| p.into_owned()));
        #[allow(deprecated)]
        let root = root.or_else(|| params.root_uri.as_ref().and_then(|uri| uri.to_file_path().map(|p| p.into_owned())));
        let folders = context_protocol::initial_roots(&params);
        {
            let mut state = self.state();
            state.encoding = encoding;
            state.root = root;
            state.folders = folders.clone();
            state.watch_files = context_protocol::can_watch_files(&params);
            state.work_done_progress =
                params.capabilities.window.as_ref().and_then(|window| window.work_done_progress).unwrap_or(false);
        }
        // Indexing runs in the background; until it is done, completions
        // use the current file's context only.
        self.context.set_roots(folders);
        tracing::info!(encoding = encoding.as_lsp_kind(), provider = %self.provider.describe(), "initialized");
        let capabilities = ServerCapabilities {
            position_encoding: Some(PositionEncodingKind::from(encoding.as_lsp_kind().to_owned())),
            text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                ..TextDocumentSyncOptions::default()
            })),
            completion_provider: self.config.completion_items.then(CompletionOptions::default),
            inline_completion_provider: Some(OneOf::Left(true)),
            execute_command_provider: Some(ExecuteCommandOptions {
                commands: std::iter::once(ACCEPT_COMMAND.to_owned())
                    .chain(self.agents.iter().flat_map(|_| crate::agent::command_names()))
                    .collect(),
                ..ExecuteCommandOptions::default()
            }),
            code_action_provider: self.agents.as_ref().map(|_| CodeActionProviderCapability::Simple(true)),
            workspace: Some(WorkspaceServerCapabilities {
                workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                    supported: Some(true),
                    change_notifications: Some(OneOf::Left(true)),
                }),
                file_operations: None,
            }),
            ..ServerCapabilities::default()
        };
        Ok(InitializeResult {
            capabilities,
            server_info: Some(ServerInfo {
                name: "weft".to_owned(),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _params: InitializedParams) {
        let (watch_files, work_done_progress) = {
            let state = self.state();
            (state.watch_files, state.work_done_progress)
        };
        // The model may still be loading: say so, in the background.
        tokio::spawn(status::report_loading(
            self.client.clone(),
            self.provider.clone(),
            work_done_progress,
            self.shown_errors.clone(),
        ));
        if watch_files && self.config.cross_file {
            let registration = context_protocol::watcher_registration();
            if let Err(err) = self.client.register_capability(vec![registration]).await {
                tracing::warn!("the client refused the file watcher: {err}");
            }
        }
    }

    async fn shutdown(&self) -> Result<()> {
        let mut state = self.state();
        for (_, (_, cancel)) in state.in_flight.drain() {
            cancel.cancel();
        }
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        guard_notification("textDocument/didOpen", || {
            if let Some(path) = doc.uri.to_file_path() {
                self.context.open(&path, &doc.language_id, &doc.text);
            }
            let document = Document::new(&doc.text, doc.version, doc.language_id);
            self.state().documents.open(doc.uri.as_str(), document);
        });
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let error = guard_notification("textDocument/didChange", || {
            let changes: Vec<ContentChange> = params.content_changes.into_iter().map(ContentChange::from).collect();
            let mut state = self.state();
            let encoding = state.encoding;
            let uri = params.text_document.uri.as_str();
            let edits = match state.documents.change(uri, params.text_document.version, &changes, encoding) {
                Ok(edits) => edits,
                Err(err) => return Some(err),
            };
            // The state lock is held so that the engine sees edits in order.
            if let (Some(path), Some(document)) = (params.text_document.uri.to_file_path(), state.documents.get(uri)) {
                self.context.change(&path, &edits, &changes, document.text());
            }
            if let (Some(tracker), Some(document)) = (&self.telemetry, state.documents.get(uri)) {
                let inserted = changes.iter().map(|c| c.text.chars().count()).sum();
                tracker.edited(uri, &edits, document.text(), inserted);
            }
            None
        });
        if let Some(Some(err)) = error {
            // The document is out of sync; the editor must resend it.
            tracing::error!("didChange rejected: {err}");
            self.show_error_once(&format!("an edit could not be applied ({err}); reopen the file")).await;
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri.as_str().to_owned();
        {
            let mut state = self.state();
            state.documents.close(&uri);
            if let Some((_, cancel)) = state.in_flight.remove(&uri) {
                cancel.cancel();
            }
        }
        if let Some(tracker) = &self.telemetry {
            tracker.closed(&uri);
        }
        if let Some(path) = params.text_document.uri.to_file_path() {
            guard_notification("textDocument/didClose", || self.context.close(&path));
        }
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        if let Some(path) = params.text_document.uri.to_file_path() {
            self.context.touch(&path);
        }
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        guard_notification("workspace/didChangeWatchedFiles", || {
            self.context.file_events(context_protocol::file_events(params));
        });
    }

    async fn did_change_workspace_folders(&self, params: DidChangeWorkspaceFoldersParams) {
        let folders = {
            let mut state = self.state();
            let removed = context_protocol::folder_paths(&params.event.removed);
            state.folders.retain(|f| !removed.contains(f));
            for added in context_protocol::folder_paths(&params.event.added) {
                if !state.folders.contains(&added) {
                    state.folders.push(added);
                }
            }
            state.folders.clone()
        };
        self.context.set_roots(folders);
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        catch_panics("textDocument/completion", async {
            if !self.config.completion_items {
                return Ok(None);
            }
            let trigger = match params.context.as_ref().map(|c| c.trigger_kind) {
                Some(CompletionTriggerKind::INVOKED) => RequestTrigger::Invoked,
                Some(CompletionTriggerKind::TRIGGER_CHARACTER) => RequestTrigger::TriggerCharacter,
                _ => RequestTrigger::Automatic,
            };
            let tdp = params.text_document_position;
            let Some((outputs, cursor)) = self.generate(&tdp.text_document.uri, tdp.position, trigger).await? else {
                return Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items: Vec::new() })));
            };
            let items = outputs
                .iter()
                .filter(|output| !output.text.trim().is_empty())
                .enumerate()
                .map(|(rank, output)| completion_item(output, &cursor, rank))
                .collect();
            // Incomplete: the client asks again as the user types on.
            Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items })))
        })
        .await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        catch_panics("workspace/executeCommand", async {
            match (params.command.as_str(), &self.agents) {
                (ACCEPT_COMMAND, _) => self.accepted(&params.arguments),
                (command, Some(agents)) if command.starts_with(crate::agent::COMMAND_PREFIX) => {
                    let token = params.work_done_progress_params.work_done_token;
                    agents.execute(&self.client, || self.agent_view(), command, &params.arguments, token).await
                }
                (other, _) => Err(invalid_params(format!("unknown command {other}"))),
            }
        })
        .await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        catch_panics("textDocument/codeAction", async {
            let Some(agents) = &self.agents else { return Ok(None) };
            let selected = {
                let state = self.state();
                let document = state.documents.get(params.text_document.uri.as_str());
                document
                    .and_then(|d| {
                        let range = position::range_to_char_range(
                            d.text(),
                            params.range.start.into(),
                            params.range.end.into(),
                            state.encoding,
                        )?;
                        Some(d.text().slice(range).to_string())
                    })
                    .unwrap_or_default()
            };
            Ok(Some(agents.code_actions(&params.text_document.uri, params.range, &selected)))
        })
        .await
    }
}

/// The id of one of our completions, from the item a client echoes back.
fn completion_id(item: &Value) -> Option<&str> {
    item["command"]["arguments"][0]["id"].as_str()
}

fn completion_item(output: &CompletionOutput, cursor: &Cursor, rank: usize) -> CompletionItem {
    let text = with_line_endings(&output.text, cursor.crlf);
    let first_line = output.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let label: String = first_line.chars().take(60).collect();
    CompletionItem {
        label: if output.text.contains('\n') { format!("{label}…") } else { label },
        kind: Some(CompletionItemKind::TEXT),
        detail: Some(format!("{} · {:.0} ms", output.model, output.latency_ms)),
        documentation: Some(Documentation::MarkupContent(MarkupContent {
            kind: MarkupKind::PlainText,
            value: output.text.clone(),
        })),
        sort_text: Some(format!("0000{rank:04}")),
        // The text at the cursor is empty, so clients filter on nothing and
        // keep the item while the user types.
        filter_text: Some(String::new()),
        insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
        text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(Range::new(cursor.position, cursor.position), text))),
        command: Some(accept_command(output)),
        ..CompletionItem::default()
    }
}

fn accept_command(output: &CompletionOutput) -> Command {
    Command {
        title: "Weft: completion accepted".to_owned(),
        command: ACCEPT_COMMAND.to_owned(),
        arguments: Some(vec![json!({ "id": output.id, "model": output.model })]),
    }
}

/// The text around a cursor that a prompt shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptWindows {
    /// Text before the cursor, from a line start; line endings are `\n`.
    pub prefix: String,
    /// Text after the cursor; line endings are `\n`.
    pub suffix: String,
    /// Whether the prefix is the whole text before the cursor.
    pub prefix_is_complete: bool,
    /// Whether the document uses CRLF line endings.
    pub crlf: bool,
    /// The bytes of the document the two windows cover.
    pub bytes: std::ops::Range<usize>,
}

/// Text around the cursor for the engine: the prefix window starts at a line
/// that moves in steps of [`PREFIX_LINE_QUANTUM`] lines. Line endings are
/// normalized to `\n`. `weft prompt` cuts its windows here too.
pub fn prompt_windows(document: &Document, char_idx: usize, config: &ServerConfig) -> PromptWindows {
    let rope = document.text();
    let line = rope.char_to_line(char_idx);
    let first = line.saturating_sub(config.max_prefix_lines) / PREFIX_LINE_QUANTUM * PREFIX_LINE_QUANTUM;
    let start = rope.line_to_char(first);
    let end_line = (line + config.max_suffix_lines + 1).min(rope.len_lines());
    let end = rope.line_to_char(end_line).max(char_idx);
    let prefix = rope.slice(start..char_idx).to_string();
    let suffix = rope.slice(char_idx..end).to_string();
    let crlf = rope.line(line).to_string().ends_with("\r\n")
        || (line > 0 && rope.line(line - 1).to_string().ends_with("\r\n"));
    let bytes = rope.char_to_byte(start)..rope.char_to_byte(end);
    let (prefix, suffix) =
        if crlf { (prefix.replace("\r\n", "\n"), suffix.replace("\r\n", "\n")) } else { (prefix, suffix) };
    PromptWindows { prefix, suffix, prefix_is_complete: start == 0, crlf, bytes }
}

fn with_line_endings(text: &str, crlf: bool) -> String {
    if crlf { text.replace('\n', "\r\n") } else { text.to_owned() }
}

fn invalid_params(message: String) -> Error {
    Error { code: ErrorCode::InvalidParams, message: message.into(), data: None }
}

fn request_failed(message: String) -> Error {
    Error { code: ErrorCode::ServerError(REQUEST_FAILED), message: message.into(), data: None }
}

/// Runs a request handler; a panic becomes an InternalError response.
async fn catch_panics<T>(method: &str, handler: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic_message(&panic);
            tracing::error!("{method} panicked: {message}");
            Err(Error {
                code: ErrorCode::InternalError,
                message: format!("internal error in {method}: {message}").into(),
                data: None,
            })
        }
    }
}

/// Runs a notification handler; a panic is logged, the server goes on.
fn guard_notification<T>(method: &str, handler: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(handler)) {
        Ok(value) => Some(value),
        Err(panic) => {
            tracing::error!("{method} panicked: {}", panic_message(&panic));
            None
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests;
