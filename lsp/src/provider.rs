//! What the server asks of a completion engine, in plain data.
//!
//! The `weft` binary implements [`CompletionProvider`] on top of the
//! inference crate; tests may implement it with a scripted double.

use std::path::PathBuf;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// How a completion was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The editor asked while the user typed.
    Automatic,
    /// The user asked explicitly.
    Invoked,
}

/// One request at a cursor.
#[derive(Clone, Debug)]
pub struct CompletionInput {
    pub uri: String,
    /// The document's file path, when it is a `file:` URI.
    pub path: Option<PathBuf>,
    /// The path relative to the workspace root, when inside it.
    pub relative_path: Option<String>,
    pub language_id: String,
    /// Text before the cursor (a window of it, starting at a line start).
    pub prefix: String,
    /// Text after the cursor (a window of it).
    pub suffix: String,
    pub trigger: Trigger,
    /// Whether the prefix window is the whole text before the cursor.
    pub prefix_is_complete: bool,
    /// Extra context from the context engine, in prompt order.
    pub snippets: Vec<crate::context::Snippet>,
}

/// One generated completion.
#[derive(Clone, Debug, Serialize)]
pub struct CompletionOutput {
    /// Identifies this completion in acceptance reports.
    pub id: String,
    /// Text to insert at the cursor.
    pub text: String,
    pub model: String,
    pub latency_ms: f64,
    /// Prompt tokens each of the input's snippets took (0: left out), when
    /// the engine counts them.
    pub snippet_tokens: Option<Vec<usize>>,
    /// Engine details for logs and telemetry.
    pub details: serde_json::Value,
}

/// Why a provider gave no completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderError {
    /// The work was cancelled (by the client or a newer request).
    Cancelled,
    /// The engine refused the request for now; the message says why.
    Busy(String),
    /// Anything else: the model failed, the prompt did not fit…
    Failed(String),
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderError::Cancelled => f.write_str("the request was cancelled"),
            ProviderError::Busy(message) | ProviderError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ProviderError {}

/// A completion engine.
pub trait CompletionProvider: Send + Sync + 'static {
    /// Completes at a cursor. The work must stop soon after `cancel` fires.
    fn complete(
        &self,
        input: CompletionInput,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Vec<CompletionOutput>, ProviderError>>;

    /// A short description for status reports, e.g. the model name.
    fn describe(&self) -> String;

    /// Resolves when the engine can complete (its model is loaded), or with
    /// the reason it never will.
    fn ready(&self) -> BoxFuture<'static, Result<(), String>> {
        async { Ok(()) }.boxed()
    }
}
