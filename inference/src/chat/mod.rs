//! Chat with instruct models: the interface agent workflows talk to.
//!
//! A [`ChatBackend`] answers a conversation. Implementations: a local
//! llama.cpp instruct model (the GGUF's chat template; a JSON schema becomes
//! a grammar that constrains sampling), OpenAI-compatible chat and the
//! Anthropic Messages API over HTTP (a schema is validated, with one repair
//! retry). Workflows depend on this trait only, so tests drive them with a
//! scripted backend.
//!
//! Modules: [`schema`] parses the JSON-schema subset steps use and validates
//! answers; [`grammar`] turns a schema into a GBNF grammar; [`local`] is
//! [`LocalChat`]; [`RemoteChat`] speaks the providers' wire formats
//! through `crate::resilience` (retries, circuit breaker); [`ChatRouter`]
//! picks the backend of each [`AgentRole`] from the `[chat]` config
//! ([`ChatConfig`]) and prices answers ([`PriceTable`]).

mod config;
pub mod grammar;
pub mod local;
mod remote;
mod router;
pub mod schema;
mod wire;

pub use config::{AgentRole, ChatConfig, LocalProviderConfig, ModelPrice, ProviderConfig, RemoteProviderConfig};
pub use local::{LocalChat, LocalChatConfig};
pub use remote::{RemoteChat, RemoteChatConfig};
pub use router::{ChatRouter, LOCAL, LocalBackendFactory, PriceTable, UsageTotals};
pub use schema::{Schema, SchemaError, Violation};
pub use wire::{ANTHROPIC_VERSION, RemoteKind};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::System, content: content.into() }
    }

    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, content: content.into() }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::Assistant, content: content.into() }
    }
}

/// One conversation to answer.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Tokens generated at most.
    pub max_tokens: u32,
    /// 0 means greedy.
    pub temperature: f32,
    /// A JSON schema the answer must satisfy (the answer is then JSON text).
    pub schema: Option<serde_json::Value>,
}

/// Tokens a request used, for cost accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub text: String,
    /// The model that answered, as the backend names it.
    pub model: String,
    pub usage: ChatUsage,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("the request was cancelled")]
    Cancelled,
    /// Worth retrying: a timeout, a 429 or a 5xx.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The provider's circuit breaker is open; no request was sent.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The answer did not satisfy the requested schema, repair included.
    #[error("the answer does not match its schema: {0}")]
    /// The tokens it took are counted all the same.
    InvalidOutput(String, ChatUsage),
    /// Anything else: a 4xx, a model that failed to load…
    #[error("{0}")]
    Failed(String),
}

/// Something that answers conversations.
pub trait ChatBackend: Send + Sync + 'static {
    /// The model's name, for results and usage records.
    fn model(&self) -> String;

    /// Answers `request`. The work must stop soon after `cancel` fires.
    fn chat(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<ChatResponse, ChatError>>;
}
