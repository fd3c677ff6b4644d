//! Agent workflows: plan, implement, test, review, council and explain.
//!
//! A workflow is a fixed sequence of steps; each model step asks its role's
//! [`ChatBackend`](crate::chat::ChatBackend) with a JSON schema for its
//! answer (a local model is then constrained by a grammar, so the answer
//! parses). Everything here is plain data in editor-neutral terms: a
//! [`AgentTask`] in, a [`RunReport`] out, [`RunEvent`]s on the way. The LSP
//! crate turns these into commands, progress, `workspace/applyEdit` and
//! diagnostics; this module knows nothing of it.
//!
//! Design decisions:
//! - Agents never write: code steps produce [`ProposedEdit`]s that the editor
//!   shows and the user can undo. The test step applies them to a scratch
//!   copy of the workspace and runs the configured command there, sandboxed
//!   ([`crate::sandbox`]).
//! - Agents read only inside the workspace ([`Workspace`]): paths are
//!   relative, `..` is rejected and symlinks are resolved before the check.
//! - Where a schema can say it, it does: file paths in a plan or a review are
//!   an `enum` of the workspace's files, so a small model cannot name a file
//!   that does not exist; plans are still validated before coding.
//! - Runs are queued behind a semaphore (a local model serves one at a time),
//!   every step has a timeout and the run as a whole has another; a
//!   [`CancellationToken`] stops a run within the step it is in.

mod council;
mod edits;
mod parse;
mod prompts;
mod run;
mod schema;
mod session;
mod test_step;
mod tracking;
mod workflows;
mod workspace;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chat::{ChatBackend, ChatUsage};

pub use council::{DecisionRule, decide};
pub use edits::{EditKind, ProposedEdit, TextPoint, TextSpan, line_start_offsets};
pub use parse::{CodeBlock, extract_code_blocks, parse_json_lenient};
pub use run::{AgentRunner, RunEvent, RunEventSink, RunHook, RunReport, RunState};
pub use schema::{
    Explanation, FileContent, Finding, JudgeReview, Plan, PlanStep, Review, Severity, TestAnalysis, Verdict,
};
pub use test_step::{TestCommand, TestOutcome, TestStatus};
pub use tracking::{RunLog, RunRecord, StepRecord};
pub use workspace::{Workspace, WorkspaceError};

/// The workflows a user can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    /// A plan of steps that name files; nothing is changed.
    Plan,
    /// Plan → code → test → analyze → review, revised on REVISE.
    Implement,
    /// Tests for a selection, written and run.
    Test,
    /// One reviewer.
    Review,
    /// Security, performance and maintainability judges.
    Council,
    /// A teaching-style explanation of a selection.
    Explain,
}

impl Workflow {
    pub const ALL: [Workflow; 6] =
        [Workflow::Plan, Workflow::Implement, Workflow::Test, Workflow::Review, Workflow::Council, Workflow::Explain];

    pub fn name(self) -> &'static str {
        match self {
            Workflow::Plan => "plan",
            Workflow::Implement => "implement",
            Workflow::Test => "test",
            Workflow::Review => "review",
            Workflow::Council => "council",
            Workflow::Explain => "explain",
        }
    }

    pub fn from_name(name: &str) -> Option<Workflow> {
        Workflow::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// Who answers a step. Each role can have its own backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentRole {
    Planner,
    Coder,
    Tester,
    TestAnalyzer,
    Reviewer,
    SecurityJudge,
    PerformanceJudge,
    MaintainabilityJudge,
    Explainer,
}

impl AgentRole {
    pub const ALL: [AgentRole; 9] = [
        AgentRole::Planner,
        AgentRole::Coder,
        AgentRole::Tester,
        AgentRole::TestAnalyzer,
        AgentRole::Reviewer,
        AgentRole::SecurityJudge,
        AgentRole::PerformanceJudge,
        AgentRole::MaintainabilityJudge,
        AgentRole::Explainer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AgentRole::Planner => "planner",
            AgentRole::Coder => "coder",
            AgentRole::Tester => "tester",
            AgentRole::TestAnalyzer => "analyzer",
            AgentRole::Reviewer => "reviewer",
            AgentRole::SecurityJudge => "security",
            AgentRole::PerformanceJudge => "performance",
            AgentRole::MaintainabilityJudge => "maintainability",
            AgentRole::Explainer => "explainer",
        }
    }

    pub fn from_name(name: &str) -> Option<AgentRole> {
        AgentRole::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Prices a model's usage in US dollars (0 for local models).
pub type PriceFn = Arc<dyn Fn(&str, ChatUsage) -> f64 + Send + Sync>;

/// The backend of each role: one default, overridden per role.
#[derive(Clone)]
pub struct AgentBackends {
    default: Arc<dyn ChatBackend>,
    by_role: HashMap<AgentRole, Arc<dyn ChatBackend>>,
    price: Option<PriceFn>,
}

impl AgentBackends {
    /// Every role asks `default`.
    pub fn new(default: Arc<dyn ChatBackend>) -> Self {
        AgentBackends { default, by_role: HashMap::new(), price: None }
    }

    /// `role` asks `backend` instead of the default.
    pub fn with_role(mut self, role: AgentRole, backend: Arc<dyn ChatBackend>) -> Self {
        self.by_role.insert(role, backend);
        self
    }

    /// Costs steps with `price` (model name, usage → dollars).
    pub fn with_price(mut self, price: PriceFn) -> Self {
        self.price = Some(price);
        self
    }

    pub fn for_role(&self, role: AgentRole) -> Arc<dyn ChatBackend> {
        self.by_role.get(&role).unwrap_or(&self.default).clone()
    }

    pub fn cost(&self, model: &str, usage: ChatUsage) -> f64 {
        self.price.as_ref().map_or(0.0, |price| price(model, usage))
    }
}

/// How workflows run.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Code → review rounds of `implement` at most (at least 1).
    pub max_iterations: u32,
    /// How the council's verdicts combine.
    pub decision_rule: DecisionRule,
    /// The command the test step runs; without one, tests are skipped.
    pub test_command: Option<TestCommand>,
    /// One model step at most.
    pub step_timeout: Duration,
    /// A whole run at most, queueing excluded.
    pub run_timeout: Duration,
    /// Runs that execute at once; the others wait in the queue.
    pub max_concurrent_runs: usize,
    /// Tokens one step may generate.
    pub max_tokens: u32,
    /// 0 means greedy.
    pub temperature: f32,
    /// Bytes of workspace files shown to a model in one step at most.
    pub max_context_bytes: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            max_iterations: 3,
            decision_rule: DecisionRule::Majority,
            test_command: None,
            step_timeout: Duration::from_secs(120),
            run_timeout: Duration::from_secs(900),
            max_concurrent_runs: 1,
            max_tokens: 1024,
            temperature: 0.0,
            max_context_bytes: 24_000,
        }
    }
}

/// Selected text in a workspace file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Relative to the workspace root, `/`-separated.
    pub path: String,
    /// Zero-based lines, `end_line` included.
    pub start_line: u32,
    pub end_line: u32,
}

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentTask {
    pub workflow: Workflow,
    /// The task in the user's words (may be empty for review, council,
    /// explain and test, which work on the selection).
    pub instruction: String,
    pub selection: Option<Selection>,
}
