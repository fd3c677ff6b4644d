//! The notifications a client sends: lifecycle, document sync, workspace
//! changes and the completion-telemetry extensions
//! (`docs/lsp-extensions.md`). None of them answers; a panic in one is
//! logged and the server goes on.

use serde_json::Value;
use tower_lsp_server::ls_types::*;

use super::{Backend, guard_notification};
use crate::context::protocol::{self as context_protocol, ContextUpdateParams};
use crate::document::{ContentChange, Document};
use crate::status;

impl Backend {
    /// `initialized`: reports the model's loading and registers the file watcher.
    pub(super) async fn client_initialized(&self) {
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

    /// `textDocument/didOpen`.
    pub(super) fn document_opened(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        guard_notification("textDocument/didOpen", || {
            if let Some(path) = doc.uri.to_file_path() {
                self.context.open(&path, &doc.language_id, &doc.text);
            }
            let document = Document::new(&doc.text, doc.version, doc.language_id);
            let mut state = self.state();
            let uri = doc.uri.as_str();
            state.documents.open(uri, document);
            // A document opened again starts afresh.
            state.typed_ahead.remove(uri);
            state.rhythm.remove(uri);
        });
    }

    /// `textDocument/didChange`: the edits reach the context engine and the
    /// telemetry's regions, the typing rhythm and the typed-ahead answer
    /// follow them; a rejected edit is shown to the user once.
    pub(super) async fn document_changed(&self, params: DidChangeTextDocumentParams) {
        let error = guard_notification("textDocument/didChange", || {
            let changes: Vec<ContentChange> = params.content_changes.into_iter().map(ContentChange::from).collect();
            let mut state = self.state();
            let encoding = state.encoding;
            let uri = params.text_document.uri.as_str();
            let edits = match state.documents.change(uri, params.text_document.version, &changes, encoding) {
                Ok(edits) => edits,
                Err(err) => {
                    state.typed_ahead.remove(uri);
                    return Some(err);
                }
            };
            let now = self.config.clock.now();
            state.rhythm.entry(uri.to_owned()).or_default().edited(now);
            if let Some(entry) = state.typed_ahead.get_mut(uri) {
                let holds = edits.iter().zip(&changes).all(|(edit, change)| entry.edited(edit, &change.text));
                if !holds {
                    state.typed_ahead.remove(uri);
                }
            }
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

    /// `textDocument/didClose`: stops the document's completion.
    pub(super) fn document_closed(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri.as_str().to_owned();
        {
            let mut state = self.state();
            state.documents.close(&uri);
            if let Some((_, cancel)) = state.in_flight.remove(&uri) {
                cancel.cancel();
            }
            state.typed_ahead.remove(&uri);
            state.rhythm.remove(&uri);
        }
        if let Some(tracker) = &self.telemetry {
            tracker.closed(&uri);
        }
        if let Some(path) = params.text_document.uri.to_file_path() {
            guard_notification("textDocument/didClose", || self.context.close(&path));
        }
    }

    /// `textDocument/didSave`: the file counts as recently used.
    pub(super) fn document_saved(&self, params: DidSaveTextDocumentParams) {
        if let Some(path) = params.text_document.uri.to_file_path() {
            self.context.touch(&path);
        }
    }

    /// `workspace/didChangeWatchedFiles`.
    pub(super) fn watched_files_changed(&self, params: DidChangeWatchedFilesParams) {
        guard_notification("workspace/didChangeWatchedFiles", || {
            self.context.file_events(context_protocol::file_events(params));
        });
    }

    /// `workspace/didChangeWorkspaceFolders`: the context engine indexes the new set.
    pub(super) fn workspace_folders_changed(&self, params: DidChangeWorkspaceFoldersParams) {
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

    /// `window/workDoneProgress/cancel`: the user cancelled an agent run.
    pub async fn work_done_progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        if let Some(agents) = &self.agents {
            agents.cancel_progress(&params.token);
        }
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
            // A typed-ahead item shows the rest of the completion only.
            let item = &params["item"];
            let rest = item["insertText"].as_str().or_else(|| item["textEdit"]["newText"].as_str());
            match (item["command"]["arguments"][0]["typedAhead"].as_bool(), rest) {
                (Some(true), Some(rest)) => tracker.partially_accepted_rest(id, rest, length as usize),
                _ => tracker.partially_accepted(id, length as usize),
            }
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
}

/// The id of one of our completions, from the item a client echoes back.
fn completion_id(item: &Value) -> Option<&str> {
    item["command"]["arguments"][0]["id"].as_str()
}
