//! Agent commands (`weft.agent.*`): what the server asks of an agent engine,
//! in plain data, and how runs become LSP traffic ([`commands`]).
//!
//! The `weft` binary implements [`AgentProvider`] on top of the inference
//! crate's workflows; tests implement it with a scripted double. Positions
//! here are zero-based lines and UTF-8 byte columns; [`commands`] converts
//! them to the negotiated encoding.

pub mod commands;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use commands::AgentCommands;

/// Prefix of every agent command.
pub const COMMAND_PREFIX: &str = "weft.agent.";

/// The workflows a command can start (`weft.agent.{name}`).
pub const WORKFLOWS: [&str; 6] = ["plan", "implement", "test", "review", "council", "explain"];

/// Every agent command, for the server capabilities.
pub fn command_names() -> Vec<String> {
    WORKFLOWS.iter().chain(&["status", "cancel", "resume"]).map(|name| format!("{COMMAND_PREFIX}{name}")).collect()
}

/// Selected lines of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSelection {
    pub path: PathBuf,
    /// Zero-based, `end_line` included.
    pub start_line: u32,
    pub end_line: u32,
}

/// One run to carry out.
#[derive(Clone, Debug)]
pub struct AgentRequest {
    /// A UUID, chosen by the server.
    pub run_id: String,
    /// One of [`WORKFLOWS`].
    pub workflow: String,
    pub instruction: String,
    /// The workspace root.
    pub root: PathBuf,
    pub selection: Option<AgentSelection>,
    /// Texts of open documents (they may differ from the files on disk).
    pub open_documents: Vec<(PathBuf, String)>,
}

/// Progress of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentUpdate {
    /// `queued`, `running`, `completed`, `failed`, `cancelled` or
    /// `waiting_for_input`.
    State(String),
    StepStarted {
        index: u32,
        step: String,
        role: String,
    },
    StepFinished {
        index: u32,
        step: String,
        verdict: Option<String>,
        error: Option<String>,
    },
}

/// Where a run's updates go.
pub type AgentUpdates = Arc<dyn Fn(AgentUpdate) + Send + Sync>;

/// A change to a file, proposed to the editor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEdit {
    pub path: PathBuf,
    /// The file does not exist yet.
    pub create: bool,
    /// (line, UTF-8 byte column), zero-based; end exclusive.
    pub start: (u32, u32),
    pub end: (u32, u32),
    pub new_text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingSeverity {
    Error,
    Warning,
    Info,
}

/// A review finding, for a diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentFinding {
    pub path: PathBuf,
    /// Zero-based lines, `end_line` included.
    pub start_line: u32,
    pub end_line: u32,
    pub severity: FindingSeverity,
    pub message: String,
    /// Who found it: `reviewer`, `security`, `performance`…
    pub judge: String,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct AgentOutcome {
    /// A final state, as in [`AgentUpdate::State`].
    pub state: String,
    pub summary: String,
    /// The structured result, returned as the command's response.
    pub result: Value,
    pub edits: Vec<AgentEdit>,
    pub findings: Vec<AgentFinding>,
}

/// An agent engine.
pub trait AgentProvider: Send + Sync + 'static {
    /// Runs a workflow to its end; the run stops soon after `cancel` fires
    /// (and then ends in state `cancelled`).
    fn run(
        &self,
        request: AgentRequest,
        updates: AgentUpdates,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, AgentOutcome>;
}
