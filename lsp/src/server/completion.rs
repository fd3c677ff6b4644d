//! One completion at a cursor: supersession of the document's older
//! request, the typed-ahead answer ([`super::typed_ahead`]), the debounce
//! ([`super::debounce`]), the prompt windows, retrieval, the provider, and
//! what is reported about the answer.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use super::typed_ahead::TypedAhead;
use super::{Backend, ServerConfig, invalid_params, request_failed};
use crate::context::ContextQuery;
use crate::document::Document;
use crate::position::{self, LspPosition};
use crate::provider::{CompletionInput, CompletionOutput, ProviderError, Trigger};
use crate::status::{Health, StatusParams, WeftStatus};
use crate::telemetry::{RequestFacts, RequestTrigger, request_facts};

/// The prefix window's first line moves in steps of this many lines, so that
/// consecutive prompts share their beginning.
const PREFIX_LINE_QUANTUM: usize = 64;

/// Where a completion request stands when the engine is called.
pub(super) struct Cursor {
    pub(super) position: Position,
    pub(super) crlf: bool,
}

/// What a completion request is answered with.
pub(super) struct Answer {
    pub(super) outputs: Vec<CompletionOutput>,
    pub(super) cursor: Cursor,
    /// Whether the outputs are the rest of the last answer, which the user
    /// has begun to type ([`TypedAhead`]), not the model's new work.
    pub(super) typed_ahead: bool,
}

/// A request as it stands when it has been read against its document.
struct Prepared {
    input: CompletionInput,
    cursor: Cursor,
    cursor_byte: usize,
    window: std::ops::Range<usize>,
    facts: Option<RequestFacts>,
    /// The document's version the request saw.
    version: i32,
    /// The rest of the last answer, when the user typed its beginning.
    typed_ahead: Option<Vec<CompletionOutput>>,
    /// When the debounce lets the request go to the model.
    release_at: Option<Instant>,
}

impl Backend {
    /// Answers a completion request at a cursor, superseding the document's
    /// earlier request: from the typed-ahead answer when the user typed the
    /// beginning of the last one, else from the provider once the debounce
    /// lets it through. `None` when the request was superseded.
    pub(super) async fn generate(
        &self,
        uri: &Uri,
        position: Position,
        trigger: RequestTrigger,
    ) -> Result<Option<Answer>> {
        let started = std::time::SystemTime::now();
        let uri_key = uri.as_str().to_owned();
        let seq = self.next_request.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let Prepared { mut input, cursor, cursor_byte, window, mut facts, version, typed_ahead, release_at } =
            self.prepare(uri, position, trigger, seq, &cancel)?;
        if let Some(outputs) = typed_ahead {
            // Not a request to the model: telemetry follows the original
            // completion (same id) through the typing, so nothing is
            // recorded here.
            self.finish_in_flight(&uri_key, seq);
            tracing::debug!(uri = uri_key, "answered from the typed-ahead suggestion");
            return Ok(Some(Answer { outputs, cursor, typed_ahead: true }));
        }

        // Dropping this future (on `$/cancelRequest`) cancels the engine.
        let guard = cancel.clone().drop_guard();
        if let Some(release_at) = release_at {
            let superseded = tokio::select! {
                () = cancel.cancelled() => true,
                () = self.config.clock.sleep_until(release_at) => false,
            };
            if superseded {
                // It never reached the model: nothing to record.
                self.finish_in_flight(&uri_key, seq);
                return Ok(None);
            }
        }

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

        let result = self.provider.complete(input, cancel).await;
        drop(guard);
        {
            let mut state = self.state();
            let current = state.in_flight.get(&uri_key).is_some_and(|(s, _)| *s == seq);
            if current {
                state.in_flight.remove(&uri_key);
            }
            // The answer is remembered for typing ahead only if the document
            // is as the request saw it: later edits were not followed.
            let unchanged = state.documents.get(&uri_key).is_some_and(|d| d.version() == version);
            if let (true, true, Ok(outputs)) = (current, unchanged, &result) {
                match TypedAhead::new(cursor_byte, outputs) {
                    Some(entry) => state.typed_ahead.insert(uri_key.clone(), entry),
                    None => state.typed_ahead.remove(&uri_key),
                };
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
                Ok(Some(Answer { outputs, cursor, typed_ahead: false }))
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

    /// Reads a request against its document, under the state lock, and
    /// makes it the document's running request (cancelling the older one).
    fn prepare(
        &self,
        uri: &Uri,
        position: Position,
        trigger: RequestTrigger,
        seq: u64,
        cancel: &CancellationToken,
    ) -> Result<Prepared> {
        let uri_key = uri.as_str();
        let mut state = self.state();
        let encoding = state.encoding;
        let document =
            state.documents.get(uri_key).ok_or_else(|| invalid_params(format!("document {uri_key} is not open")))?;
        let rope = document.text();
        let char_idx = position::to_char_idx(rope, position.into(), encoding).ok_or_else(|| {
            invalid_params(format!("position {}:{} is outside the document", position.line, position.character))
        })?;
        // The range of the answer is the cursor as the server understood
        // it: clamped to the line's end, in the negotiated encoding.
        let clamped: Position =
            position::to_lsp(rope, char_idx, encoding).unwrap_or(LspPosition::from(position)).into();
        let windows = prompt_windows(document, char_idx, &self.config);
        let facts = self.telemetry.as_ref().map(|t| request_facts(t, uri_key, document, char_idx, &windows, trigger));
        let crlf = windows.crlf;
        let cursor_byte = rope.char_to_byte(char_idx);
        let version = document.version();
        let path = uri.to_file_path().map(|p| p.into_owned());
        let relative_path = match (&path, &state.root) {
            (Some(path), Some(root)) => path.strip_prefix(root).ok().map(|p| p.to_string_lossy().into_owned()),
            _ => None,
        };
        let input = CompletionInput {
            uri: uri_key.to_owned(),
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
        let typed_ahead = state.typed_ahead.get(uri_key).and_then(|entry| entry.answer(cursor_byte));
        // An invoked request never waits.
        let release_at = match trigger {
            RequestTrigger::Invoked => None,
            RequestTrigger::Automatic | RequestTrigger::TriggerCharacter => state
                .rhythm
                .get(uri_key)
                .and_then(|rhythm| rhythm.release_at(self.config.debounce, self.config.clock.now())),
        };
        if let Some((_, older)) = state.in_flight.insert(uri_key.to_owned(), (seq, cancel.clone())) {
            older.cancel();
        }
        Ok(Prepared {
            input,
            cursor: Cursor { position: clamped, crlf },
            cursor_byte,
            window: windows.bytes,
            facts,
            version,
            typed_ahead,
            release_at,
        })
    }

    /// The request `seq` is done: it is no longer the document's running
    /// request (unless a newer one is).
    fn finish_in_flight(&self, uri: &str, seq: u64) {
        let mut state = self.state();
        if state.in_flight.get(uri).is_some_and(|(s, _)| *s == seq) {
            state.in_flight.remove(uri);
        }
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
