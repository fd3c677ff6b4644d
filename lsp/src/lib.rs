//! Weft's language server library.
//!
//! This crate is the only one that knows LSP, and it knows nothing of
//! llama.cpp. Open documents are ropes, and all conversion between LSP
//! positions and rope indices happens in one module, [`position`].

pub mod agent;
pub mod context;
pub mod document;
pub mod frames;
pub mod position;
pub mod provider;
pub mod server;
pub mod status;
pub mod telemetry;

pub use agent::{
    AgentEdit, AgentFinding, AgentOutcome, AgentProvider, AgentRequest, AgentSelection, AgentUpdate, AgentUpdates,
    FindingSeverity,
};
pub use provider::{CompletionInput, CompletionOutput, CompletionProvider, ProviderError, Trigger};
pub use server::{ACCEPT_COMMAND, Clock, Debounce, ServerConfig, SystemClock, serve, serve_with_agents};
