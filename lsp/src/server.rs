//! The language server: lifecycle, document sync and completion requests.
//!
//! The backend's handlers are split along the protocol's seam: requests in
//! [`requests`] (completion itself in [`completion`]), notifications in
//! [`notifications`]; this module holds the state they share and routes
//! `LanguageServer` calls to them.
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
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService};

use crate::agent::{AgentCommands, AgentProvider};
use crate::context::protocol as context_protocol;
use crate::context::{ContextConfig, ContextEngine};
use crate::document::DocumentStore;
use crate::position::PositionEncoding;
use crate::provider::CompletionProvider;
use crate::status::ShownErrors;
use crate::telemetry::{CompletionTracker, TelemetrySettings};
use debounce::TypingRhythm;
use delivery::{Delivery, TrackedSocket};
use typed_ahead::TypedAhead;

mod completion;
pub mod debounce;
pub mod delivery;
mod notifications;
mod requests;
mod typed_ahead;

pub use completion::{PromptWindows, prompt_windows};
pub use debounce::{Clock, Debounce, SystemClock};

/// The command a client runs when the user accepts a completion.
pub const ACCEPT_COMMAND: &str = "weft.completion.accepted";

/// LSP's `RequestFailed` (3.17): the request was valid but failed.
const REQUEST_FAILED: i64 = -32803;

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
    /// Lines the cursor may move from where context was last retrieved
    /// before it is retrieved again ([`ContextConfig::sticky_lines`]).
    pub sticky_context_lines: usize,
    /// Where completion telemetry goes; `None` records nothing.
    pub telemetry: Option<TelemetrySettings>,
    /// How long automatic completion requests wait for the typing to stop
    /// ([`debounce`]).
    pub debounce: Debounce,
    /// The time source of the debounce.
    pub clock: Arc<dyn Clock>,
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
            sticky_context_lines: context.sticky_lines,
            telemetry: None,
            debounce: Debounce::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Builds the service for one client connection.
pub fn service(provider: Arc<dyn CompletionProvider>, config: ServerConfig) -> (LspService<Backend>, TrackedSocket) {
    service_with_agents(provider, None, config)
}

/// Builds the service, with the `weft.agent.*` commands when `agents` is
/// given.
pub fn service_with_agents(
    provider: Arc<dyn CompletionProvider>,
    agents: Option<Arc<dyn AgentProvider>>,
    config: ServerConfig,
) -> (LspService<Backend>, TrackedSocket) {
    let delivery = Delivery::default();
    let (service, socket) =
        LspService::build(|client| Backend::new(client, provider, agents, config, delivery.clone()))
            .custom_method("window/workDoneProgress/cancel", Backend::work_done_progress_cancel)
            .custom_method("textDocument/inlineCompletion", Backend::inline_completion)
            .custom_method(context_protocol::CONTEXT_UPDATE, Backend::context_update)
            .custom_method(crate::frames::MALFORMED, Backend::malformed_message)
            .custom_method("textDocument/didShowCompletion", Backend::did_show_completion)
            .custom_method("textDocument/didPartiallyAcceptCompletion", Backend::did_partially_accept_completion)
            .custom_method("weft/didDismissCompletion", Backend::did_dismiss_completion)
            .finish();
    (service, delivery.track(socket))
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
    /// The typing rhythm of each document, for the debounce.
    rhythm: HashMap<String, TypingRhythm>,
    /// The last answer of each document, while the user types it.
    typed_ahead: HashMap<String, TypedAhead>,
    /// Whether the client accepts `window/workDoneProgress/create`.
    work_done_progress: bool,
}

impl Backend {
    fn new(
        client: Client,
        provider: Arc<dyn CompletionProvider>,
        agents: Option<Arc<dyn AgentProvider>>,
        config: ServerConfig,
        delivery: Delivery,
    ) -> Self {
        let context = ContextEngine::new(ContextConfig {
            cross_file: config.cross_file,
            max_bytes: config.context_bytes,
            sticky_lines: config.sticky_context_lines,
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
            agents: agents.map(|agents| AgentCommands::new(agents, delivery)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Shows an error in the editor, once per distinct message.
    async fn show_error_once(&self, message: &str) {
        self.shown_errors.show_once(&self.client, message).await;
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        self.initialize_session(params)
    }

    async fn initialized(&self, _params: InitializedParams) {
        self.client_initialized().await;
    }

    async fn shutdown(&self) -> Result<()> {
        self.shut_down();
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        self.document_opened(params);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        self.document_changed(params).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        self.document_closed(params);
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        self.document_saved(params);
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        self.watched_files_changed(params);
    }

    async fn did_change_workspace_folders(&self, params: DidChangeWorkspaceFoldersParams) {
        self.workspace_folders_changed(params);
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        catch_panics("textDocument/completion", self.completion_items(params)).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        catch_panics("workspace/executeCommand", self.run_command(params)).await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        catch_panics("textDocument/codeAction", self.agent_code_actions(params)).await
    }
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
