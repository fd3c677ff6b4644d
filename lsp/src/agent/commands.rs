//! `weft.agent.*` over LSP: a command starts a run and answers with its
//! structured result; `$/progress` names each step; edits go to the client
//! with `workspace/applyEdit`; review findings become diagnostics with
//! source `weft-review`. A run stops on `$/cancelRequest`, on
//! `window/workDoneProgress/cancel` for its token, or on `weft.agent.cancel`.
//! A run that ended `waiting_for_input` is carried on by
//! `weft.agent.resume` with the user's answer: a new run of the same
//! workflow, its instruction extended by the answer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ropey::Rope;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::notification::Progress;
use tower_lsp_server::ls_types::*;

use super::{
    AgentEdit, AgentFinding, AgentOutcome, AgentProvider, AgentRequest, AgentSelection, AgentUpdate, COMMAND_PREFIX,
    FindingSeverity, WORKFLOWS,
};
use crate::position::{self, LspPosition, PositionEncoding};
use crate::server::delivery::{Delivery, is_progress_end};

/// The source of review diagnostics.
pub const REVIEW_SOURCE: &str = "weft-review";

/// Finished runs remembered for `weft.agent.status`.
const FINISHED_KEPT: usize = 32;

/// What the server knows when a command runs (taken again after the run,
/// as documents change meanwhile).
pub struct ServerView {
    pub encoding: PositionEncoding,
    pub root: Option<PathBuf>,
    /// Open documents by file path.
    pub documents: HashMap<PathBuf, Rope>,
    /// Whether the client accepts `window/workDoneProgress/create`.
    pub work_done_progress: bool,
}

#[derive(Clone, Debug)]
struct RunEntry {
    workflow: String,
    state: String,
    step: Option<String>,
    summary: Option<String>,
    token: Option<ProgressToken>,
    cancel: CancellationToken,
    /// The command's argument, kept while the run waits for input.
    argument: Option<Value>,
    /// The run this one carries on (`weft.agent.resume`).
    resumes: Option<String>,
    /// The run that carried this one on.
    resumed_by: Option<String>,
}

/// The agent side of one connection.
pub struct AgentCommands {
    provider: Arc<dyn AgentProvider>,
    /// When the connection's writer has taken a message.
    delivery: Delivery,
    runs: Arc<Mutex<HashMap<String, RunEntry>>>,
    finished: Mutex<VecDeque<String>>,
    /// Documents that carry review diagnostics.
    reviewed: Mutex<HashSet<Uri>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn invalid_params(message: impl Into<String>) -> Error {
    Error { code: ErrorCode::InvalidParams, message: message.into().into(), data: None }
}

impl AgentCommands {
    pub fn new(provider: Arc<dyn AgentProvider>, delivery: Delivery) -> AgentCommands {
        AgentCommands {
            provider,
            delivery,
            runs: Arc::default(),
            finished: Mutex::default(),
            reviewed: Mutex::default(),
        }
    }

    /// Runs `weft.agent.{name}`.
    pub async fn execute(
        &self,
        client: &Client,
        view: impl Fn() -> ServerView,
        command: &str,
        arguments: &[Value],
        token: Option<ProgressToken>,
    ) -> Result<Option<Value>> {
        let name = command.strip_prefix(COMMAND_PREFIX).unwrap_or(command);
        let argument = arguments.first().cloned().unwrap_or(Value::Null);
        if !argument.is_null() && !argument.is_object() {
            return Err(invalid_params(format!("{command} takes one object argument")));
        }
        match name {
            "status" => Ok(Some(self.status(argument["runId"].as_str()))),
            "cancel" => {
                let run_id = argument["runId"]
                    .as_str()
                    .ok_or_else(|| invalid_params("weft.agent.cancel takes {\"runId\": string}"))?;
                let cancelled = self.cancel(run_id);
                Ok(Some(json!({ "runId": run_id, "cancelled": cancelled })))
            }
            "resume" => self.resume(client, view, &argument, token).await.map(Some),
            name if WORKFLOWS.contains(&name) => {
                let run_id = uuid::Uuid::new_v4().to_string();
                self.start(client, view, name, argument, token, run_id, None).await.map(Some)
            }
            other => Err(invalid_params(format!("unknown command {COMMAND_PREFIX}{other}"))),
        }
    }

    /// Cancels a run; false when no such run is going on.
    pub fn cancel(&self, run_id: &str) -> bool {
        let runs = lock(&self.runs);
        match runs.get(run_id) {
            Some(entry) if !is_final(&entry.state) => {
                entry.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// `window/workDoneProgress/cancel`: cancels the run with that token.
    pub fn cancel_progress(&self, token: &ProgressToken) {
        for entry in lock(&self.runs).values() {
            if entry.token.as_ref() == Some(token) {
                entry.cancel.cancel();
            }
        }
    }

    fn status(&self, run_id: Option<&str>) -> Value {
        let runs = lock(&self.runs);
        let describe = |id: &str, entry: &RunEntry| {
            let mut value = json!({ "runId": id, "workflow": entry.workflow, "state": entry.state, "step": entry.step, "summary": entry.summary });
            if let Some(old) = &entry.resumes {
                value["resumes"] = json!(old);
            }
            if let Some(new) = &entry.resumed_by {
                value["resumedBy"] = json!(new);
            }
            value
        };
        match run_id {
            Some(id) => runs.get(id).map_or_else(|| json!({ "runId": id, "state": "unknown" }), |e| describe(id, e)),
            None => {
                let mut all: Vec<Value> = runs.iter().map(|(id, e)| describe(id, e)).collect();
                all.sort_by(|a, b| a["runId"].as_str().cmp(&b["runId"].as_str()));
                json!({ "runs": all })
            }
        }
    }

    /// `weft.agent.resume {runId, answer?, uri?, range?}`: runs the
    /// workflow of a run that waits for input again, with the answer
    /// added to its instruction and the selection replaced when one is
    /// given. A run is resumed once.
    async fn resume(
        &self,
        client: &Client,
        view: impl Fn() -> ServerView,
        argument: &Value,
        token: Option<ProgressToken>,
    ) -> Result<Value> {
        const USAGE: &str = "weft.agent.resume takes {\"runId\": string, \"answer\"?: string, \"uri\"?, \"range\"?}";
        let old_id = argument["runId"].as_str().ok_or_else(|| invalid_params(USAGE))?;
        let answer = match &argument["answer"] {
            Value::Null => "",
            Value::String(answer) => answer.trim(),
            _ => return Err(invalid_params(USAGE)),
        };
        if answer.is_empty() && argument["uri"].is_null() {
            return Err(invalid_params("weft.agent.resume needs an answer or a selection (uri, range)"));
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let (workflow, resumed) = {
            let mut runs = lock(&self.runs);
            let entry = runs.get_mut(old_id).ok_or_else(|| {
                invalid_params(format!("no agent run {old_id} (finished runs are kept {FINISHED_KEPT} at most)"))
            })?;
            if let Some(new) = &entry.resumed_by {
                return Err(invalid_params(format!("run {old_id} was resumed already, as run {new}")));
            }
            let original = match (&entry.argument, entry.state.as_str()) {
                (Some(original), "waiting_for_input") => original,
                (_, state) => return Err(invalid_params(format!("run {old_id} is {state}, not waiting_for_input"))),
            };
            let resumed = resumed_argument(original, answer, argument);
            entry.resumed_by = Some(run_id.clone());
            (entry.workflow.clone(), resumed)
        };
        let started = self.start(client, view, &workflow, resumed, token, run_id, Some(old_id.to_owned())).await;
        if started.is_err() {
            // Nothing ran: the old run can be resumed again.
            if let Some(entry) = lock(&self.runs).get_mut(old_id) {
                entry.resumed_by = None;
            }
        }
        started
    }

    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        client: &Client,
        view: impl Fn() -> ServerView,
        workflow: &str,
        argument: Value,
        token: Option<ProgressToken>,
        run_id: String,
        resumes: Option<String>,
    ) -> Result<Value> {
        let snapshot = view();
        let root = snapshot
            .root
            .clone()
            .ok_or_else(|| invalid_params("agents need a workspace folder: open a folder first"))?;
        let selection = selection(&argument)?;
        let instruction = argument["instruction"].as_str().unwrap_or("").to_owned();
        let token = match token {
            Some(token) => Some(token),
            None if snapshot.work_done_progress => {
                let token = ProgressToken::String(format!("weft/agent/{run_id}"));
                match client.create_work_done_progress(token.clone()).await {
                    Ok(()) => Some(token),
                    Err(err) => {
                        tracing::warn!("the client refused a progress token: {err}");
                        None
                    }
                }
            }
            None => None,
        };
        let cancel = CancellationToken::new();
        lock(&self.runs).insert(
            run_id.clone(),
            RunEntry {
                workflow: workflow.to_owned(),
                state: "queued".to_owned(),
                step: None,
                summary: None,
                token: token.clone(),
                cancel: cancel.clone(),
                argument: Some(argument),
                resumes: resumes.clone(),
                resumed_by: None,
            },
        );
        let title = format!("Weft: {workflow}");
        if let Some(token) = &token {
            let begin = WorkDoneProgressBegin {
                title: title.clone(),
                cancellable: Some(true),
                message: Some("queued".to_owned()),
                percentage: None,
            };
            send_progress(client, token, WorkDoneProgress::Begin(begin)).await;
        }

        // Updates arrive on the run's task; they go out in order from here.
        let (tx, mut rx) = mpsc::unbounded_channel::<Option<AgentUpdate>>();
        let forwarder = {
            let (client, token, runs, run_id) = (client.clone(), token.clone(), self.runs.clone(), run_id.clone());
            tokio::spawn(async move {
                while let Some(Some(update)) = rx.recv().await {
                    let message = {
                        let mut runs = lock(&runs);
                        let entry = runs.get_mut(&run_id);
                        progress_message(&update, entry)
                    };
                    if let (Some(token), Some(message)) = (&token, message) {
                        let report = WorkDoneProgressReport {
                            cancellable: Some(true),
                            message: Some(message),
                            percentage: None,
                        };
                        send_progress(&client, token, WorkDoneProgress::Report(report)).await;
                    }
                }
            })
        };
        let updates = {
            let tx = tx.clone();
            Arc::new(move |update: AgentUpdate| {
                let _ = tx.send(Some(update));
            })
        };
        let request = AgentRequest {
            run_id: run_id.clone(),
            workflow: workflow.to_owned(),
            instruction,
            root,
            selection,
            open_documents: snapshot.documents.iter().map(|(path, rope)| (path.clone(), rope.to_string())).collect(),
        };
        // Dropping this future ($/cancelRequest) cancels the run, ends its
        // progress and records it as cancelled.
        let mut abandoned = Abandoned {
            cancel: cancel.clone(),
            runs: self.runs.clone(),
            run_id: run_id.clone(),
            progress: token.clone().map(|token| (client.clone(), token)),
            armed: true,
        };
        let outcome = self.provider.run(request, updates, cancel).await;
        abandoned.armed = false;
        let _ = tx.send(None);
        let _ = forwarder.await;

        let view = view();
        let mut result = outcome.result.clone();
        result["runId"] = json!(run_id);
        if let Some(old) = &resumes {
            result["resumes"] = json!(old);
        }
        if !outcome.edits.is_empty() && outcome.state == "completed" {
            let edit = workspace_edit(&outcome.edits, &view);
            let label = format!("Weft {workflow}: {}", outcome.summary);
            let applied = match client
                .send_request::<request::ApplyWorkspaceEdit>(ApplyWorkspaceEditParams { edit, label: Some(label) })
                .await
            {
                Ok(response) => json!({ "applied": response.applied, "failureReason": response.failure_reason }),
                Err(err) => json!({ "applied": false, "failureReason": err.message }),
            };
            result["applyEdit"] = applied;
        }
        if matches!(workflow, "review" | "council" | "implement") && outcome.state == "completed" {
            self.publish_findings(client, &outcome.findings, &view).await;
        }
        if let Some(token) = &token {
            // The client sees the end before the result: the writer must
            // have taken it before the response exists.
            let token_json = serde_json::to_value(token).unwrap_or_default();
            let written = self.delivery.expect(move |message| is_progress_end(message, &token_json));
            let end = WorkDoneProgressEnd { message: Some(format!("{}: {}", outcome.state, outcome.summary)) };
            send_progress(client, token, WorkDoneProgress::End(end)).await;
            written.await;
        }
        self.finish(&run_id, &outcome);
        Ok(result)
    }

    fn finish(&self, run_id: &str, outcome: &AgentOutcome) {
        let mut runs = lock(&self.runs);
        if let Some(entry) = runs.get_mut(run_id) {
            entry.state = outcome.state.clone();
            entry.step = None;
            entry.summary = Some(outcome.summary.clone());
            if entry.state != "waiting_for_input" {
                entry.argument = None;
            }
        }
        let mut finished = lock(&self.finished);
        finished.push_back(run_id.to_owned());
        while finished.len() > FINISHED_KEPT {
            if let Some(old) = finished.pop_front() {
                runs.remove(&old);
            }
        }
    }

    /// Replaces the review diagnostics: every document that had some and
    /// every document with new findings gets its new list.
    async fn publish_findings(&self, client: &Client, findings: &[AgentFinding], view: &ServerView) {
        let mut by_uri: HashMap<Uri, Vec<Diagnostic>> = HashMap::new();
        for finding in findings {
            let Some(uri) = Uri::from_file_path(&finding.path) else { continue };
            let rope = text_of(&finding.path, view);
            by_uri.entry(uri).or_default().push(diagnostic(finding, &rope, view.encoding));
        }
        let stale: Vec<Uri> = {
            let mut reviewed = lock(&self.reviewed);
            let stale = reviewed.iter().filter(|uri| !by_uri.contains_key(*uri)).cloned().collect();
            *reviewed = by_uri.keys().cloned().collect();
            stale
        };
        for uri in stale {
            client.publish_diagnostics(uri, Vec::new(), None).await;
        }
        for (uri, diagnostics) in by_uri {
            client.publish_diagnostics(uri, diagnostics, None).await;
        }
    }

    /// Agent commands on a selection, as code actions.
    pub fn code_actions(&self, uri: &Uri, range: Range, selected_text: &str) -> Vec<CodeActionOrCommand> {
        let arguments = |instruction: Option<&str>| {
            let mut argument = json!({ "uri": uri, "range": range });
            if let Some(instruction) = instruction {
                argument["instruction"] = json!(instruction);
            }
            Some(vec![argument])
        };
        let mut actions = vec![
            ("explain", "Weft: explain this code", None),
            ("review", "Weft: review this code", None),
            ("council", "Weft: ask the council (security, performance, maintainability)", None),
            ("test", "Weft: write and run tests for this code", None),
        ];
        // Implementing needs a task: a TODO in the selection is one.
        let todo = selected_text
            .lines()
            .find_map(|line| line.find("TODO").or_else(|| line.find("FIXME")).map(|i| line[i..].trim().to_owned()));
        if let Some(todo) = &todo {
            actions.push(("plan", "Weft: plan this TODO", Some(todo.as_str())));
            actions.push(("implement", "Weft: implement this TODO", Some(todo.as_str())));
        }
        actions
            .into_iter()
            .map(|(name, title, instruction)| {
                CodeActionOrCommand::CodeAction(CodeAction {
                    title: title.to_owned(),
                    kind: Some(CodeActionKind::new("refactor.weft")),
                    command: Some(Command {
                        title: title.to_owned(),
                        command: format!("{COMMAND_PREFIX}{name}"),
                        arguments: arguments(instruction),
                    }),
                    ..CodeAction::default()
                })
            })
            .collect()
    }
}

/// What to undo when a command's future is dropped mid-run.
struct Abandoned {
    cancel: CancellationToken,
    runs: Arc<Mutex<HashMap<String, RunEntry>>>,
    run_id: String,
    progress: Option<(Client, ProgressToken)>,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.cancel.cancel();
        if let Some(entry) = lock(&self.runs).get_mut(&self.run_id) {
            entry.state = "cancelled".to_owned();
            entry.step = None;
        }
        if let Some((client, token)) = self.progress.take() {
            let end = WorkDoneProgressEnd { message: Some("cancelled".to_owned()) };
            tokio::spawn(async move { send_progress(&client, &token, WorkDoneProgress::End(end)).await });
        }
    }
}

/// The argument of a resumed run: the original one with `answer` added to
/// its instruction (on a line of its own) and, when `given` names a `uri`,
/// its selection instead of the original one.
fn resumed_argument(original: &Value, answer: &str, given: &Value) -> Value {
    let mut argument = original.clone();
    if !argument.is_object() {
        argument = json!({});
    }
    if !answer.is_empty() {
        let instruction = original["instruction"].as_str().unwrap_or("").trim_end();
        argument["instruction"] =
            json!(if instruction.is_empty() { answer.to_owned() } else { format!("{instruction}\n{answer}") });
    }
    if !given["uri"].is_null() {
        argument["uri"] = given["uri"].clone();
        match given.get("range") {
            Some(range) => argument["range"] = range.clone(),
            None => {
                if let Some(object) = argument.as_object_mut() {
                    object.remove("range");
                }
            }
        }
    }
    argument
}

fn is_final(state: &str) -> bool {
    !matches!(state, "queued" | "running")
}

/// Records an update in the run's entry and says what progress to show.
fn progress_message(update: &AgentUpdate, entry: Option<&mut RunEntry>) -> Option<String> {
    let entry = entry?;
    match update {
        AgentUpdate::State(state) => {
            entry.state = state.clone();
            (!is_final(state)).then(|| state.clone())
        }
        AgentUpdate::StepStarted { step, role, .. } => {
            entry.step = Some(step.clone());
            Some(format!("{step} ({role})"))
        }
        AgentUpdate::StepFinished { step, verdict, error, .. } => Some(match (verdict, error) {
            (_, Some(error)) => format!("{step} failed: {error}"),
            (Some(verdict), None) => format!("{step}: {verdict}"),
            (None, None) => format!("{step} done"),
        }),
    }
}

async fn send_progress(client: &Client, token: &ProgressToken, progress: WorkDoneProgress) {
    let params = ProgressParams { token: token.clone(), value: ProgressParamsValue::WorkDone(progress) };
    client.send_notification::<Progress>(params).await;
}

/// The selection in a command's argument: `uri` and `range` (a range that
/// ends at the start of a line leaves that line out).
fn selection(argument: &Value) -> Result<Option<AgentSelection>> {
    let Some(uri) = argument["uri"].as_str() else { return Ok(None) };
    let uri: Uri = uri.parse().map_err(|_| invalid_params(format!("{uri} is not a URI")))?;
    let path =
        uri.to_file_path().ok_or_else(|| invalid_params(format!("{} is not a file", uri.as_str())))?.into_owned();
    let range: Option<Range> = serde_json::from_value(argument["range"].clone()).ok();
    let (start_line, end_line) = match range {
        Some(range) => {
            let end = if range.end.character == 0 && range.end.line > range.start.line {
                range.end.line - 1
            } else {
                range.end.line
            };
            (range.start.line, end.max(range.start.line))
        }
        None => (0, u32::MAX),
    };
    Ok(Some(AgentSelection { path, start_line, end_line }))
}

/// The text the editor has for `path`: the open document, else the file.
fn text_of(path: &Path, view: &ServerView) -> Rope {
    if let Some(rope) = view.documents.get(path) {
        return rope.clone();
    }
    std::fs::read_to_string(path).map(|text| Rope::from_str(&text)).unwrap_or_default()
}

/// A (line, UTF-8 byte column) point in the negotiated encoding, clamped
/// into the text.
fn lsp_position(rope: &Rope, (line, column): (u32, u32), encoding: PositionEncoding) -> Position {
    let idx = position::to_char_idx(rope, LspPosition::new(line, column), PositionEncoding::Utf8)
        .unwrap_or_else(|| rope.len_chars());
    position::to_lsp(rope, idx, encoding).map_or(Position::new(line, 0), Position::from)
}

fn workspace_edit(edits: &[AgentEdit], view: &ServerView) -> WorkspaceEdit {
    let mut operations = Vec::new();
    for edit in edits {
        let Some(uri) = Uri::from_file_path(&edit.path) else { continue };
        let range = if edit.create {
            operations.push(DocumentChangeOperation::Op(ResourceOp::Create(CreateFile {
                uri: uri.clone(),
                options: Some(CreateFileOptions { overwrite: Some(false), ignore_if_exists: Some(true) }),
                annotation_id: None,
            })));
            Range::default()
        } else {
            let rope = text_of(&edit.path, view);
            Range::new(lsp_position(&rope, edit.start, view.encoding), lsp_position(&rope, edit.end, view.encoding))
        };
        operations.push(DocumentChangeOperation::Edit(TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier { uri, version: None },
            edits: vec![OneOf::Left(TextEdit::new(range, edit.new_text.clone()))],
        }));
    }
    WorkspaceEdit {
        changes: None,
        document_changes: Some(DocumentChanges::Operations(operations)),
        change_annotations: None,
    }
}

/// A finding as a diagnostic over its whole lines.
fn diagnostic(finding: &AgentFinding, rope: &Rope, encoding: PositionEncoding) -> Diagnostic {
    let start = Position::new(finding.start_line, 0);
    // Past the line's end clamps to it.
    let end = lsp_position(rope, (finding.end_line, u32::MAX), encoding);
    let end = if end.line < finding.end_line { Position::new(finding.end_line, 0) } else { end };
    Diagnostic {
        range: Range::new(start, end),
        severity: Some(match finding.severity {
            FindingSeverity::Error => DiagnosticSeverity::ERROR,
            FindingSeverity::Warning => DiagnosticSeverity::WARNING,
            FindingSeverity::Info => DiagnosticSeverity::INFORMATION,
        }),
        code: Some(NumberOrString::String(finding.judge.clone())),
        source: Some(REVIEW_SOURCE.to_owned()),
        message: finding.message.clone(),
        ..Diagnostic::default()
    }
}
