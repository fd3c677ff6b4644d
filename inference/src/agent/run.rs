//! The run lifecycle: queued → running → completed | failed | cancelled |
//! waiting_for_input, with an overall timeout, events for each state and
//! step, a [`RunReport`] at the end and a line in the run log.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::schema::{Explanation, Finding, JudgeReview, Plan, TestAnalysis, Verdict};
use super::session::{Session, Stop, stop_message};
use super::test_step::TestOutcome;
use super::tracking::{RunLog, RunRecord, StepRecord};
use super::workflows::{self, Output};
use super::{AgentBackends, AgentConfig, AgentTask, DecisionRule, ProposedEdit, Workflow, Workspace};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    /// The workflow needs something from the user (the report's
    /// `question` says what); running the command again with it starts a
    /// new run.
    WaitingForInput,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::WaitingForInput => "waiting_for_input",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }
}

/// What happens during a run, as it happens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    State {
        run_id: Uuid,
        state: RunState,
    },
    StepStarted {
        run_id: Uuid,
        index: u32,
        step: String,
        role: String,
    },
    StepFinished {
        run_id: Uuid,
        index: u32,
        step: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verdict: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        duration_ms: u64,
    },
}

/// Where a run's events go (called on the run's task; keep it quick).
pub type RunEventSink = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// Called with every finished run.
pub type RunHook = Arc<dyn Fn(&RunRecord) + Send + Sync>;

/// The result of a run: the structured JSON answer of an agent command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: Uuid,
    pub workflow: Workflow,
    pub state: RunState,
    /// One line for the user.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the user must supply (`waiting_for_input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The last review's verdict, or the council's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_rule: Option<DecisionRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    pub edits: Vec<ProposedEdit>,
    /// The final round's reviews (one per judge for the council).
    pub reviews: Vec<JudgeReview>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_analysis: Option<TestAnalysis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// Code → review rounds (`implement`).
    pub iterations: u32,
    pub steps: Vec<StepRecord>,
    pub duration_ms: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
}

impl RunReport {
    /// Every finding of the final reviews.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.reviews.iter().flat_map(|r| &r.review.findings)
    }

    /// The run as the run log and telemetry keep it.
    pub fn record(&self, queued_at_ms: u64) -> RunRecord {
        RunRecord {
            run_id: self.run_id,
            workflow: self.workflow.name().to_owned(),
            state: self.state.name().to_owned(),
            queued_at_ms,
            duration_ms: self.duration_ms,
            verdict: self.verdict.map(|v| v.name().to_owned()),
            error: self.error.clone(),
            steps: self.steps.clone(),
        }
    }
}

/// Runs workflows, a bounded number at a time.
pub struct AgentRunner {
    config: Arc<AgentConfig>,
    backends: AgentBackends,
    log: Option<RunLog>,
    slots: Arc<Semaphore>,
    /// Called with every finished run (telemetry, for one).
    on_finished: Option<RunHook>,
}

impl AgentRunner {
    pub fn new(config: AgentConfig, backends: AgentBackends) -> AgentRunner {
        let slots = Arc::new(Semaphore::new(config.max_concurrent_runs.max(1)));
        AgentRunner { config: Arc::new(config), backends, log: None, slots, on_finished: None }
    }

    /// Appends every finished run to `log`.
    pub fn with_log(mut self, log: RunLog) -> AgentRunner {
        self.log = Some(log);
        self
    }

    /// Calls `hook` with every finished run.
    pub fn on_finished(mut self, hook: RunHook) -> AgentRunner {
        self.on_finished = Some(hook);
        self
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Runs `task` on `workspace` to its end. Never fails: failures,
    /// timeouts and cancellation are states of the report.
    pub async fn run(
        &self,
        run_id: Uuid,
        task: AgentTask,
        workspace: Workspace,
        events: RunEventSink,
        cancel: CancellationToken,
    ) -> RunReport {
        let queued_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        events(RunEvent::State { run_id, state: RunState::Queued });
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            permit = self.slots.clone().acquire_owned() => permit.ok(),
        };
        let started = Instant::now();
        let mut session =
            Session::new(run_id, self.config.clone(), self.backends.clone(), workspace, cancel.clone(), events.clone());
        let mut out = Output::default();
        let stop = match permit {
            None => Some(Stop::Cancelled),
            Some(_permit) => {
                events(RunEvent::State { run_id, state: RunState::Running });
                let timeout = self.config.run_timeout;
                let result = tokio::select! {
                    biased;
                    () = cancel.cancelled() => Err(Stop::Cancelled),
                    result = tokio::time::timeout(timeout, workflows::run(&mut session, &task, &mut out)) => {
                        result.unwrap_or_else(|_| Err(Stop::TimedOut(format!("the run took longer than {timeout:?}"))))
                    }
                };
                result.err()
            }
        };
        let state = match &stop {
            None => RunState::Completed,
            Some(Stop::Cancelled) => RunState::Cancelled,
            Some(Stop::NeedsInput(_)) => RunState::WaitingForInput,
            Some(Stop::TimedOut(_) | Stop::Failed(_)) => RunState::Failed,
        };
        let steps = std::mem::take(&mut session.steps);
        let summary = match (&stop, out.summary.is_empty()) {
            (None, false) => out.summary.clone(),
            (None, true) => format!("{} finished", task.workflow.name()),
            (Some(stop), _) => stop_message(stop),
        };
        let report = RunReport {
            run_id,
            workflow: task.workflow,
            state,
            summary,
            error: match &stop {
                Some(Stop::TimedOut(message) | Stop::Failed(message)) => Some(message.clone()),
                _ => None,
            },
            question: match &stop {
                Some(Stop::NeedsInput(question)) => Some(question.clone()),
                _ => None,
            },
            verdict: out.verdict,
            decision_rule: (task.workflow == Workflow::Council).then_some(self.config.decision_rule),
            plan: out.plan,
            edits: out.edits,
            reviews: out.reviews,
            tests: out.tests,
            test_analysis: out.test_analysis,
            explanation: out.explanation,
            iterations: out.iterations,
            total_tokens: steps.iter().map(|s| u64::from(s.prompt_tokens) + u64::from(s.completion_tokens)).sum(),
            cost_usd: steps.iter().map(|s| s.cost_usd).fold(0.0, |total, cost| total + cost),
            steps,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let record = report.record(queued_at_ms);
        if let Some(log) = &self.log {
            if let Err(err) = log.append(&record) {
                tracing::warn!("cannot write the agent run log {}: {err}", log.path().display());
            }
        }
        if let Some(hook) = &self.on_finished {
            hook(&record);
        }
        events(RunEvent::State { run_id, state });
        report
    }
}
