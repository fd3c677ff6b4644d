//! What the server tells clients about itself: the `weft/status`
//! notification and the work-done progress while the model loads.
//!
//! `weft/status` is sent once the client is initialized (health `loading`),
//! when the model is ready or failed to load, and after every completion
//! (with its latency) or failure. Clients show it in a status bar; see
//! `docs/lsp-extensions.md`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::{MessageType, ProgressToken};

use crate::provider::CompletionProvider;

/// The `weft/status` notification, server to client.
pub enum WeftStatus {}

impl Notification for WeftStatus {
    type Params = StatusParams;
    const METHOD: &'static str = "weft/status";
}

/// How the engine behind the server is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// The model is still loading; completions wait for it.
    Loading,
    /// Completions work.
    Ready,
    /// The last attempt failed; `message` says why and what to do.
    Error,
}

/// The params of `weft/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusParams {
    /// The model (a path or a name).
    pub model: String,
    pub health: Health,
    /// Latency of the last completion, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// A human-readable message for `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The token of the model-loading progress.
pub const LOADING_TOKEN: &str = "weft/loadingModel";

/// Error messages already shown, shared between the request handlers and
/// background tasks, so that a user sees each distinct message once.
#[derive(Clone, Default)]
pub struct ShownErrors(Arc<Mutex<HashSet<String>>>);

impl ShownErrors {
    /// Shows `Weft: {message}` in the editor unless it was shown before.
    pub async fn show_once(&self, client: &Client, message: &str) {
        let first = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(message.to_owned());
        if first {
            client.show_message(MessageType::ERROR, format!("Weft: {message}")).await;
        }
    }
}

/// Reports the model's loading: `weft/status` (loading), a work-done
/// progress when the client supports it, then `weft/status` (ready or
/// error) and, on failure, an actionable `window/showMessage`.
pub async fn report_loading(
    client: Client,
    provider: Arc<dyn CompletionProvider>,
    work_done_progress: bool,
    shown: ShownErrors,
) {
    let model = provider.describe();
    let status =
        |health, message: Option<String>| StatusParams { model: model.clone(), health, latency_ms: None, message };
    client.send_notification::<WeftStatus>(status(Health::Loading, None)).await;
    let mut progress = None;
    if work_done_progress {
        let token = ProgressToken::String(LOADING_TOKEN.to_owned());
        match client.create_work_done_progress(token.clone()).await {
            Ok(()) => {
                progress = Some(client.progress(token, "Weft: loading model").with_message(model.clone()).begin().await)
            }
            Err(err) => tracing::warn!("the client refused a progress token: {err}"),
        }
    }
    let result = provider.ready().await;
    if let Some(progress) = progress {
        progress.finish_with_message(if result.is_ok() { "ready" } else { "failed" }).await;
    }
    match result {
        Ok(()) => client.send_notification::<WeftStatus>(status(Health::Ready, None)).await,
        Err(message) => {
            let message = format!("{message}. Run `weft doctor` to check the model file and the configuration");
            client.send_notification::<WeftStatus>(status(Health::Error, Some(message.clone()))).await;
            shown.show_once(&client, &message).await;
        }
    }
}
