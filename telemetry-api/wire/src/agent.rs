//! Events about agent runs: one command, several model steps.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{non_empty, non_negative};

/// An agent run as a whole, sent when it finishes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentRun {
    pub run_id: Uuid,
    /// The command the user ran, e.g. `fix-tests`.
    pub command: String,
    /// Number of steps; each also arrives as an [`AgentStep`].
    pub steps: u32,
    pub duration_ms: u64,
    /// Final verdict, e.g. `success`, `failure`, `cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

/// One step (one model call) of an agent run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentStep {
    pub run_id: Uuid,
    /// Zero-based position in the run.
    pub index: u32,
    /// E.g. `planner`, `coder`, `reviewer`.
    pub role: String,
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Cost in US dollars (0 for local models).
    #[serde(default)]
    pub cost_usd: f64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

impl AgentStep {
    pub(crate) fn validate(&self) -> Result<(), String> {
        non_empty("role", &self.role)?;
        non_empty("model", &self.model)?;
        non_negative("cost_usd", self.cost_usd)
    }
}
