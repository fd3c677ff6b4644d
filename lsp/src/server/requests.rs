//! The requests a client sends: `initialize`, `shutdown`, the two
//! completion requests and the commands. Completion itself runs in
//! [`super::completion`].

use serde_json::{Value, json};
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use super::completion::{Answer, Cursor};
use super::{ACCEPT_COMMAND, Backend, catch_panics, invalid_params};
use crate::agent::commands::ServerView;
use crate::context::protocol as context_protocol;
use crate::position;
use crate::provider::CompletionOutput;
use crate::telemetry::RequestTrigger;

impl Backend {
    /// `initialize`: negotiates the position encoding and starts indexing.
    pub(super) fn initialize_session(&self, params: InitializeParams) -> Result<InitializeResult> {
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

    /// `shutdown`: stops every running completion.
    pub(super) fn shut_down(&self) {
        let mut state = self.state();
        for (_, (_, cancel)) in state.in_flight.drain() {
            cancel.cancel();
        }
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
            let Some(Answer { outputs, cursor, typed_ahead }) =
                self.generate(&tdp.text_document.uri, tdp.position, trigger).await?
            else {
                return Ok(None);
            };
            let items = outputs
                .into_iter()
                .filter(|output| !output.text.is_empty())
                .map(|output| InlineCompletionItem {
                    insert_text: with_line_endings(&output.text, cursor.crlf),
                    filter_text: None,
                    range: Some(Range::new(cursor.position, cursor.position)),
                    command: Some(accept_command(&output, typed_ahead)),
                    insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
                })
                .collect();
            Ok(Some(InlineCompletionResponse::Array(items)))
        })
        .await
    }

    /// `textDocument/completion`: the model's completions as items.
    pub(super) async fn completion_items(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        if !self.config.completion_items {
            return Ok(None);
        }
        let trigger = match params.context.as_ref().map(|c| c.trigger_kind) {
            Some(CompletionTriggerKind::INVOKED) => RequestTrigger::Invoked,
            Some(CompletionTriggerKind::TRIGGER_CHARACTER) => RequestTrigger::TriggerCharacter,
            _ => RequestTrigger::Automatic,
        };
        let tdp = params.text_document_position;
        let Some(Answer { outputs, cursor, typed_ahead }) =
            self.generate(&tdp.text_document.uri, tdp.position, trigger).await?
        else {
            return Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items: Vec::new() })));
        };
        let items = outputs
            .iter()
            .filter(|output| !output.text.trim().is_empty())
            .enumerate()
            .map(|(rank, output)| completion_item(output, &cursor, rank, typed_ahead))
            .collect();
        // Incomplete: the client asks again as the user types on.
        Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items })))
    }

    /// `workspace/executeCommand`: the accept command and the agents.
    pub(super) async fn run_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        match (params.command.as_str(), &self.agents) {
            (ACCEPT_COMMAND, _) => self.accepted(&params.arguments),
            (command, Some(agents)) if command.starts_with(crate::agent::COMMAND_PREFIX) => {
                let token = params.work_done_progress_params.work_done_token;
                agents.execute(&self.client, || self.agent_view(), command, &params.arguments, token).await
            }
            (other, _) => Err(invalid_params(format!("unknown command {other}"))),
        }
    }

    /// `textDocument/codeAction`: the agent commands on a selection.
    pub(super) async fn agent_code_actions(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
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
}

fn completion_item(output: &CompletionOutput, cursor: &Cursor, rank: usize, typed_ahead: bool) -> CompletionItem {
    let text = with_line_endings(&output.text, cursor.crlf);
    let first_line = output.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let label: String = first_line.chars().take(60).collect();
    CompletionItem {
        label: if output.text.contains('\n') { format!("{label}…") } else { label },
        kind: Some(CompletionItemKind::TEXT),
        detail: Some(if typed_ahead {
            format!("{} · typed ahead", output.model)
        } else {
            format!("{} · {:.0} ms", output.model, output.latency_ms)
        }),
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
        command: Some(accept_command(output, typed_ahead)),
        ..CompletionItem::default()
    }
}

/// The accept command of an item. Its argument carries the completion's id
/// (and `typedAhead` when the item is the rest of a suggestion the user has
/// begun to type); clients echo it back.
fn accept_command(output: &CompletionOutput, typed_ahead: bool) -> Command {
    let mut argument = json!({ "id": output.id, "model": output.model });
    if typed_ahead {
        argument["typedAhead"] = json!(true);
    }
    Command {
        title: "Weft: completion accepted".to_owned(),
        command: ACCEPT_COMMAND.to_owned(),
        arguments: Some(vec![argument]),
    }
}

fn with_line_endings(text: &str, crlf: bool) -> String {
    if crlf { text.replace('\n', "\r\n") } else { text.to_owned() }
}
