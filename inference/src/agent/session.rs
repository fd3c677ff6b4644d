//! One run's steps: asking a role's backend with a schema, under the step
//! timeout and the run's cancellation, with progress events and a record of
//! every step.

use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::parse::parse_json_lenient;
use super::run::{RunEvent, RunEventSink};
use super::schema::FileContent;
use super::test_step::{TestOutcome, run_tests};
use super::tracking::StepRecord;
use super::{AgentBackends, AgentConfig, AgentRole, Workspace};
use crate::chat::{ChatError, ChatMessage, ChatRequest};

/// Why a run stopped before its workflow finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Cancelled,
    /// A step or the run took too long; the message says which.
    TimedOut(String),
    Failed(String),
    /// The workflow cannot go on without the user; the question says why.
    NeedsInput(String),
}

pub(crate) struct Session {
    pub run_id: Uuid,
    pub config: Arc<AgentConfig>,
    pub backends: AgentBackends,
    pub workspace: Workspace,
    pub cancel: CancellationToken,
    events: RunEventSink,
    pub steps: Vec<StepRecord>,
}

impl Session {
    pub fn new(
        run_id: Uuid,
        config: Arc<AgentConfig>,
        backends: AgentBackends,
        workspace: Workspace,
        cancel: CancellationToken,
        events: RunEventSink,
    ) -> Session {
        Session { run_id, config, backends, workspace, cancel, events, steps: Vec::new() }
    }

    fn start_step(&mut self, step: &str, role: &str, model: &str) -> usize {
        let index = self.steps.len();
        (self.events)(RunEvent::StepStarted {
            run_id: self.run_id,
            index: index as u32,
            step: step.to_owned(),
            role: role.to_owned(),
        });
        self.steps.push(StepRecord {
            index: index as u32,
            step: step.to_owned(),
            role: role.to_owned(),
            model: model.to_owned(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
            duration_ms: 0,
            verdict: None,
            error: None,
        });
        index
    }

    fn finish_step(&mut self, index: usize, started: Instant, error: Option<String>) {
        let record = &mut self.steps[index];
        record.duration_ms = started.elapsed().as_millis() as u64;
        record.error = error;
        (self.events)(RunEvent::StepFinished {
            run_id: self.run_id,
            index: index as u32,
            step: record.step.clone(),
            verdict: record.verdict.clone(),
            error: record.error.clone(),
            duration_ms: record.duration_ms,
        });
    }

    /// Asks `role` and reads its answer as `T`. Returns the answer and the
    /// step's index (for [`Session::set_verdict`]).
    pub async fn ask<T: DeserializeOwned>(
        &mut self,
        step: &str,
        role: AgentRole,
        messages: Vec<ChatMessage>,
        schema: Value,
    ) -> Result<(T, usize), Stop> {
        let backend = self.backends.for_role(role);
        let index = self.start_step(step, role.name(), &backend.model());
        let started = Instant::now();
        let request = ChatRequest {
            messages,
            max_tokens: self.config.max_tokens,
            temperature: self.config.temperature,
            schema: Some(schema),
        };
        let step_cancel = self.cancel.child_token();
        // An answer that failed its schema still cost its tokens.
        let mut failed_usage = None;
        let _stop_on_drop = step_cancel.clone().drop_guard();
        let answer = tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Stop::Cancelled),
            result = tokio::time::timeout(self.config.step_timeout, backend.chat(request, step_cancel.clone())) => {
                match result {
                    Err(_) => {
                        step_cancel.cancel();
                        Err(Stop::TimedOut(format!("step {step} took longer than {:?}", self.config.step_timeout)))
                    }
                    Ok(Err(ChatError::Cancelled)) if self.cancel.is_cancelled() => Err(Stop::Cancelled),
                    Ok(Err(err)) => {
                        if let ChatError::InvalidOutput(_, usage) = &err {
                            failed_usage = Some(*usage);
                        }
                        Err(Stop::Failed(format!("step {step} ({}): {err}", role.name())))
                    }
                    Ok(Ok(response)) => Ok(response),
                }
            }
        };
        let response = match answer {
            Ok(response) => response,
            Err(stop) => {
                if let Some(usage) = failed_usage {
                    let cost = self.backends.cost(&backend.model(), usage);
                    let record = &mut self.steps[index];
                    record.prompt_tokens = usage.prompt_tokens;
                    record.completion_tokens = usage.completion_tokens;
                    record.cost_usd = cost;
                }
                self.finish_step(index, started, Some(stop_message(&stop)));
                return Err(stop);
            }
        };
        let cost = self.backends.cost(&response.model, response.usage);
        let record = &mut self.steps[index];
        record.model = response.model.clone();
        record.prompt_tokens = response.usage.prompt_tokens;
        record.completion_tokens = response.usage.completion_tokens;
        record.cost_usd = cost;
        let parsed = parse_json_lenient(&response.text)
            .and_then(|value| serde_json::from_value::<T>(value).map_err(|err| format!("unexpected answer: {err}")));
        match parsed {
            Ok(answer) => {
                self.finish_step(index, started, None);
                Ok((answer, index))
            }
            Err(err) => {
                let message = format!("step {step} ({}) gave an answer that does not parse: {err}", role.name());
                self.finish_step(index, started, Some(message.clone()));
                Err(Stop::Failed(message))
            }
        }
    }

    /// Records the verdict a step gave (after the workflow read it).
    pub fn set_verdict(&mut self, index: usize, verdict: &str) {
        if let Some(record) = self.steps.get_mut(index) {
            record.verdict = Some(verdict.to_owned());
        }
    }

    /// The test step: the configured command on a scratch copy with `files`
    /// written into it; skipped (not a step) without a command.
    pub async fn run_tests(&mut self, files: &[FileContent]) -> Result<TestOutcome, Stop> {
        let Some(command) = self.config.test_command.clone() else {
            return Ok(TestOutcome::skipped());
        };
        let index = self.start_step("test", "sandbox", "sandbox");
        let started = Instant::now();
        let workspace = self.workspace.clone();
        let files = files.to_vec();
        let cancel = self.cancel.clone();
        let task =
            tokio::task::spawn_blocking(move || run_tests(&workspace, &files, &command, &|| cancel.is_cancelled()));
        let result = match task.await {
            Ok(_) if self.cancel.is_cancelled() => Err(Stop::Cancelled),
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(err)) => Err(Stop::Failed(err)),
            Err(err) => Err(Stop::Failed(format!("the test run panicked: {err}"))),
        };
        match &result {
            Ok(outcome) => {
                let status = serde_json::to_value(outcome.status).ok();
                self.steps[index].verdict = status.and_then(|v| v.as_str().map(str::to_owned));
                self.finish_step(index, started, None);
            }
            Err(stop) => self.finish_step(index, started, Some(stop_message(stop))),
        }
        result
    }
}

pub(crate) fn stop_message(stop: &Stop) -> String {
    match stop {
        Stop::Cancelled => "cancelled".to_owned(),
        Stop::TimedOut(message) | Stop::Failed(message) | Stop::NeedsInput(message) => message.clone(),
    }
}
