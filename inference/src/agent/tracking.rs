//! What each run and step cost: kept locally as JSON lines, and turned into
//! the telemetry API's `agent_run` / `agent_step` events for whoever sends
//! telemetry.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use weft_telemetry_wire::{AgentRun, AgentStep, Event, EventBody};

/// One model step (or the test command) of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Zero-based position in the run.
    pub index: u32,
    /// What the step did, e.g. `plan`, `code`, `review`.
    pub step: String,
    /// Who answered, e.g. `planner`, `security`; `sandbox` for the tests.
    pub role: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub cost_usd: f64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: Uuid,
    pub workflow: String,
    /// `completed`, `failed`, `cancelled` or `waiting_for_input`.
    pub state: String,
    /// Milliseconds since the Unix epoch when the run was queued.
    pub queued_at_ms: u64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

impl RunRecord {
    pub fn total_tokens(&self) -> u64 {
        self.steps.iter().map(|s| u64::from(s.prompt_tokens) + u64::from(s.completion_tokens)).sum()
    }

    pub fn total_cost_usd(&self) -> f64 {
        self.steps.iter().map(|s| s.cost_usd).fold(0.0, |total, cost| total + cost)
    }

    /// The telemetry events of this run: one `agent_step` per model step,
    /// then the `agent_run`. The run's verdict is the review verdict, or the
    /// state when there is none.
    pub fn telemetry_events(&self) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .steps
            .iter()
            .filter(|step| step.role != "sandbox")
            .map(|step| {
                Event::now(EventBody::AgentStep(AgentStep {
                    run_id: self.run_id,
                    index: step.index,
                    role: step.role.clone(),
                    model: step.model.clone(),
                    input_tokens: step.prompt_tokens,
                    output_tokens: step.completion_tokens,
                    cost_usd: step.cost_usd,
                    duration_ms: step.duration_ms,
                    verdict: step.verdict.clone(),
                }))
            })
            .collect();
        let steps = events.len() as u32;
        events.push(Event::now(EventBody::AgentRun(AgentRun {
            run_id: self.run_id,
            command: format!("weft.agent.{}", self.workflow),
            steps,
            duration_ms: self.duration_ms,
            verdict: Some(self.verdict.clone().unwrap_or_else(|| self.state.clone())),
        })));
        events
    }
}

/// An append-only JSON-lines file of finished runs.
#[derive(Clone, Debug)]
pub struct RunLog {
    path: PathBuf,
}

impl RunLog {
    pub fn new(path: impl Into<PathBuf>) -> RunLog {
        RunLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one run as one line.
    pub fn append(&self, record: &RunRecord) -> std::io::Result<()> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(line.as_bytes())
    }

    /// Every run in the file; lines that do not parse are skipped.
    pub fn records(&self) -> std::io::Result<Vec<RunRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
    }
}
