//! Workflows driven by a scripted chat backend: every state, the revision
//! bound, the council's rules, timeouts and cancellation. The real model is
//! tested end to end in `tests/tests/agent.rs`.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::*;
use crate::chat::{ChatError, ChatRequest, ChatResponse};

/// One scripted answer.
#[derive(Clone)]
enum Reply {
    Json(Value),
    Text(&'static str),
    /// Waits for the cancel, then answers Cancelled.
    Hang,
    Fail(ChatError),
}

/// Answers in order; the last answer repeats. Records what it was asked.
struct Scripted {
    name: &'static str,
    replies: Mutex<VecDeque<Reply>>,
    asked: Mutex<Vec<ChatRequest>>,
    /// Requests whose cancel token fired while they waited.
    cancelled: Arc<Mutex<u32>>,
}

impl Scripted {
    fn new(name: &'static str, replies: Vec<Reply>) -> Arc<Scripted> {
        Arc::new(Scripted {
            name,
            replies: Mutex::new(replies.into()),
            asked: Mutex::new(Vec::new()),
            cancelled: Arc::new(Mutex::new(0)),
        })
    }

    fn asked(&self) -> Vec<ChatRequest> {
        self.asked.lock().unwrap().clone()
    }
}

impl ChatBackend for Scripted {
    fn model(&self) -> String {
        self.name.to_owned()
    }

    fn chat(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<ChatResponse, ChatError>> {
        assert!(request.schema.is_some(), "every step asks with a schema");
        self.asked.lock().unwrap().push(request);
        let reply = {
            let mut replies = self.replies.lock().unwrap();
            if replies.len() > 1 { replies.pop_front().unwrap() } else { replies.front().cloned().expect("a reply") }
        };
        let model = self.name.to_owned();
        if matches!(reply, Reply::Hang) {
            // Like a real backend's worker, notice the cancel even after the
            // request's future is dropped.
            let (cancelled, cancel) = (self.cancelled.clone(), cancel.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                *cancelled.lock().unwrap() += 1;
            });
        }
        async move {
            let text = match reply {
                Reply::Json(value) => value.to_string(),
                Reply::Text(text) => text.to_owned(),
                Reply::Hang => {
                    cancel.cancelled().await;
                    return Err(ChatError::Cancelled);
                }
                Reply::Fail(err) => return Err(err),
            };
            Ok(ChatResponse { text, model, usage: ChatUsage { prompt_tokens: 10, completion_tokens: 5 } })
        }
        .boxed()
    }
}

/// A backend per role, scripted.
struct Cast {
    backends: Vec<(AgentRole, Arc<Scripted>)>,
}

impl Cast {
    fn new() -> Cast {
        Cast { backends: Vec::new() }
    }

    fn role(mut self, role: AgentRole, replies: Vec<Reply>) -> Cast {
        self.backends.push((role, Scripted::new(role.name(), replies)));
        self
    }

    fn get(&self, role: AgentRole) -> Arc<Scripted> {
        self.backends.iter().find(|(r, _)| *r == role).map(|(_, b)| b.clone()).expect("a scripted role")
    }

    fn backends(&self) -> AgentBackends {
        let unused = Scripted::new("unused", vec![Reply::Fail(ChatError::Failed("no script for this role".into()))]);
        let mut backends =
            AgentBackends::new(unused).with_price(Arc::new(|_, usage| f64::from(usage.prompt_tokens) * 0.001));
        for (role, backend) in &self.backends {
            backends = backends.with_role(*role, backend.clone());
        }
        backends
    }
}

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(root.join("README.md"), "A calculator.\n").unwrap();
    std::fs::write(dir.path().join("outside.py"), "SECRET = 1\n").unwrap();
    let workspace = Workspace::open(&root).unwrap();
    (dir, workspace)
}

fn plan() -> Reply {
    Reply::Json(json!({ "steps": [{ "description": "fix add", "files": ["calc.py"] }] }))
}

fn code(body: &str) -> Reply {
    Reply::Json(json!({ "summary": "fixed", "files": [{ "path": "calc.py", "content": body }] }))
}

fn review(verdict: &str) -> Reply {
    Reply::Json(json!({
        "verdict": verdict,
        "summary": format!("{verdict} it"),
        "findings": [{ "path": "calc.py", "start_line": 2, "end_line": 9, "severity": "warning", "message": "check the sign" }]
    }))
}

const FIXED: &str = "def add(a, b):\n    return a + b\n";

struct Outcome {
    report: RunReport,
    events: Vec<RunEvent>,
}

async fn run(config: AgentConfig, cast: &Cast, ws: Workspace, task: AgentTask) -> Outcome {
    run_with(AgentRunner::new(config, cast.backends()), ws, task, CancellationToken::new()).await
}

async fn run_with(runner: AgentRunner, ws: Workspace, task: AgentTask, cancel: CancellationToken) -> Outcome {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let report =
        runner.run(Uuid::new_v4(), task, ws, Arc::new(move |event| sink.lock().unwrap().push(event)), cancel).await;
    let events = events.lock().unwrap().clone();
    Outcome { report, events }
}

fn task(workflow: Workflow, instruction: &str) -> AgentTask {
    AgentTask { workflow, instruction: instruction.to_owned(), selection: None }
}

fn selected(workflow: Workflow) -> AgentTask {
    AgentTask {
        workflow,
        instruction: String::new(),
        selection: Some(Selection { path: "calc.py".into(), start_line: 0, end_line: 1 }),
    }
}

fn states(events: &[RunEvent]) -> Vec<RunState> {
    events.iter().filter_map(|e| if let RunEvent::State { state, .. } = e { Some(*state) } else { None }).collect()
}

fn steps(report: &RunReport) -> Vec<(&str, Option<&str>)> {
    report.steps.iter().map(|s| (s.step.as_str(), s.verdict.as_deref())).collect()
}

#[tokio::test]
async fn implement_plans_codes_reviews_and_completes() {
    let (dir, ws) = workspace();
    let cast = Cast::new()
        .role(AgentRole::Planner, vec![plan()])
        .role(AgentRole::Coder, vec![code(FIXED)])
        .role(AgentRole::Reviewer, vec![review("APPROVE")]);
    let log = RunLog::new(dir.path().join("cache/agent-runs.jsonl"));
    let runner = AgentRunner::new(AgentConfig::default(), cast.backends()).with_log(log.clone());
    let Outcome { report, events: run_events } =
        run_with(runner, ws, task(Workflow::Implement, "fix add"), CancellationToken::new()).await;
    assert_eq!(states(&run_events), [RunState::Queued, RunState::Running, RunState::Completed]);
    assert_eq!(report.state, RunState::Completed, "{report:?}");
    assert_eq!(steps(&report), [("plan", None), ("code", None), ("review", Some("APPROVE"))]);
    assert_eq!(report.verdict, Some(Verdict::Approve));
    assert_eq!(report.iterations, 1);
    // Only the changed line is replaced, and the workspace is untouched.
    assert_eq!(report.edits.len(), 1);
    assert_eq!(report.edits[0].new_text, "    return a + b\n");
    assert_eq!(report.edits[0].range.start, TextPoint { line: 1, column: 0 });
    assert_eq!(std::fs::read_to_string(dir.path().join("ws/calc.py")).unwrap(), "def add(a, b):\n    return a - b\n");
    // Findings: one-based lines from the model, clamped into the file,
    // zero-based in the report.
    let finding = report.findings().next().unwrap();
    assert_eq!((finding.start_line, finding.end_line, finding.source.as_str()), (1, 1, "reviewer"));
    // The plan's schema only allows real files.
    let planner = &cast.get(AgentRole::Planner).asked()[0];
    let files = &planner.schema.as_ref().unwrap()["properties"]["steps"]["items"]["properties"]["files"]["items"];
    assert_eq!(files["enum"], json!(["README.md", "calc.py"]));
    // Tracking: tokens, cost, one JSON line, telemetry events.
    assert_eq!(report.total_tokens, 45);
    assert!((report.cost_usd - 0.03).abs() < 1e-9, "{}", report.cost_usd);
    let records = log.records().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].verdict.as_deref(), Some("APPROVE"));
    let events = records[0].telemetry_events();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.validate().is_ok()));
    let json = serde_json::to_value(&events[3]).unwrap();
    assert_eq!(
        (json["kind"].as_str(), json["data"]["command"].as_str()),
        (Some("agent_run"), Some("weft.agent.implement"))
    );
    // Progress named each step.
    assert_eq!(events_started(&run_events), ["plan", "code", "review"]);
}

fn events_started(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| if let RunEvent::StepStarted { step, .. } = e { Some(step.clone()) } else { None })
        .collect()
}

#[tokio::test]
async fn the_revision_loop_stops_at_the_configured_bound() {
    let (_dir, ws) = workspace();
    let cast = Cast::new()
        .role(AgentRole::Planner, vec![plan()])
        .role(AgentRole::Coder, vec![code(FIXED)])
        .role(AgentRole::Reviewer, vec![review("REVISE")]);
    let config = AgentConfig { max_iterations: 2, ..AgentConfig::default() };
    let Outcome { report, events } = run(config, &cast, ws, task(Workflow::Implement, "fix add")).await;
    assert_eq!(report.state, RunState::Completed);
    assert_eq!((report.verdict, report.iterations), (Some(Verdict::Revise), 2));
    assert_eq!(events_started(&events), ["plan", "code", "review", "code (iteration 2)", "review (iteration 2)"]);
    assert_eq!(cast.get(AgentRole::Coder).asked().len(), 2);
    // The second round is told why.
    let second = &cast.get(AgentRole::Coder).asked()[1];
    let prompt = &second.messages.last().unwrap().content;
    assert!(prompt.contains("needs revision") && prompt.contains("check the sign"), "{prompt}");
}

#[tokio::test]
async fn approval_ends_the_loop_early_and_rejection_ends_it_too() {
    for (replies, verdict, iterations) in
        [(vec![review("REVISE"), review("APPROVE")], Verdict::Approve, 2), (vec![review("REJECT")], Verdict::Reject, 1)]
    {
        let (_dir, ws) = workspace();
        let cast = Cast::new()
            .role(AgentRole::Planner, vec![plan()])
            .role(AgentRole::Coder, vec![code(FIXED)])
            .role(AgentRole::Reviewer, replies);
        let Outcome { report, .. } = run(AgentConfig::default(), &cast, ws, task(Workflow::Implement, "fix")).await;
        assert_eq!((report.state, report.verdict, report.iterations), (RunState::Completed, Some(verdict), iterations));
    }
}

#[tokio::test]
async fn an_invalid_plan_is_retried_once_then_waits_for_input() {
    let (_dir, ws) = workspace();
    let bad = Reply::Json(json!({ "steps": [{ "description": " ", "files": ["../outside.py", "nope.py"] }] }));
    let cast = Cast::new().role(AgentRole::Planner, vec![bad]);
    let Outcome { report, events } = run(AgentConfig::default(), &cast, ws, task(Workflow::Implement, "fix")).await;
    assert_eq!(states(&events).last(), Some(&RunState::WaitingForInput));
    assert_eq!(report.state, RunState::WaitingForInput);
    let question = report.question.unwrap();
    assert!(question.contains("step 1 has no description"), "{question}");
    assert!(question.contains("../outside.py, which is not a file"), "{question}");
    assert!(question.contains("nope.py, which is not a file"), "{question}");
    let asked = cast.get(AgentRole::Planner).asked();
    assert_eq!(asked.len(), 2);
    assert!(asked[1].messages.last().unwrap().content.contains("cannot be used"));

    // A retry that fixes the plan goes on.
    let (_dir, ws) = workspace();
    let empty = Reply::Json(json!({ "steps": [] }));
    let cast = Cast::new()
        .role(AgentRole::Planner, vec![empty, plan()])
        .role(AgentRole::Coder, vec![code(FIXED)])
        .role(AgentRole::Reviewer, vec![review("APPROVE")]);
    let Outcome { report, .. } = run(AgentConfig::default(), &cast, ws, task(Workflow::Plan, "fix")).await;
    assert_eq!(report.state, RunState::Completed);
    assert_eq!(report.plan.unwrap().steps[0].files, ["calc.py"]);
}

#[tokio::test]
async fn a_missing_instruction_or_selection_waits_for_input() {
    let (_dir, ws) = workspace();
    let cast = Cast::new();
    let Outcome { report, .. } = run(AgentConfig::default(), &cast, ws.clone(), task(Workflow::Implement, "  ")).await;
    assert_eq!(
        (report.state, report.question.as_deref()),
        (RunState::WaitingForInput, Some("describe the task to carry out"))
    );
    let Outcome { report, .. } = run(AgentConfig::default(), &cast, ws, task(Workflow::Review, "")).await;
    assert_eq!(
        (report.state, report.question.as_deref()),
        (RunState::WaitingForInput, Some("select the code to work on"))
    );
    assert!(report.steps.is_empty());
    // No step, no cost: 0, not the -0 of an empty float sum.
    assert!(report.cost_usd == 0.0 && report.cost_usd.is_sign_positive(), "{}", report.cost_usd);
    assert_eq!(serde_json::to_value(&report).unwrap()["cost_usd"], json!(0.0));
}

#[tokio::test]
async fn failures_of_the_backend_or_of_its_answer_fail_the_run() {
    let (_dir, ws) = workspace();
    let cast = Cast::new().role(AgentRole::Explainer, vec![Reply::Fail(ChatError::Unavailable("breaker open".into()))]);
    let Outcome { report, events } = run(AgentConfig::default(), &cast, ws.clone(), selected(Workflow::Explain)).await;
    assert_eq!(states(&events), [RunState::Queued, RunState::Running, RunState::Failed]);
    assert!(report.error.as_deref().unwrap().contains("breaker open"), "{report:?}");
    assert_eq!(report.steps[0].error, report.error);

    // An answer that failed its schema still counts its tokens and cost.
    let usage = ChatUsage { prompt_tokens: 40, completion_tokens: 64 };
    let invalid = Reply::Fail(ChatError::InvalidOutput("cut at max_tokens".into(), usage));
    let cast = Cast::new().role(AgentRole::Explainer, vec![invalid]);
    let Outcome { report, .. } = run(AgentConfig::default(), &cast, ws.clone(), selected(Workflow::Explain)).await;
    assert_eq!(report.state, RunState::Failed);
    let step = &report.steps[0];
    assert_eq!((step.prompt_tokens, step.completion_tokens), (40, 64), "{step:?}");
    assert!((step.cost_usd - 0.04).abs() < 1e-9, "{step:?}");

    let cast = Cast::new().role(AgentRole::Explainer, vec![Reply::Text("I think it adds numbers.")]);
    let Outcome { report, .. } = run(AgentConfig::default(), &cast, ws.clone(), selected(Workflow::Explain)).await;
    assert_eq!(report.state, RunState::Failed);
    assert!(report.error.unwrap().contains("does not parse: no JSON"));

    // An answer cut short by the token limit is still read.
    let cut = Reply::Text(r#"{"summary": "Adds two numbers", "walkthrough": ["returns a - b"#);
    let cast = Cast::new().role(AgentRole::Explainer, vec![cut]);
    let Outcome { report, .. } = run(AgentConfig::default(), &cast, ws, selected(Workflow::Explain)).await;
    assert_eq!(report.state, RunState::Completed, "{report:?}");
    assert_eq!(report.explanation.unwrap().walkthrough, ["returns a - b"]);
}

#[tokio::test]
async fn code_outside_the_workspace_is_never_proposed() {
    let (_dir, ws) = workspace();
    let outside = Reply::Json(json!({ "summary": "", "files": [
        { "path": "../outside.py", "content": "SECRET = 2\n" },
        { "path": "/etc/passwd", "content": "x" }
    ] }));
    let cast = Cast::new().role(AgentRole::Tester, vec![outside]);
    let Outcome { report, .. } = run(AgentConfig::default(), &cast, ws, selected(Workflow::Test)).await;
    assert_eq!(report.state, RunState::Failed);
    assert!(report.edits.is_empty());
    let error = report.error.unwrap();
    assert!(error.contains("../outside.py is outside the workspace"), "{error}");
}

#[tokio::test]
async fn cancelling_mid_step_stops_the_backend_and_keeps_the_plan() {
    let (_dir, ws) = workspace();
    let cast = Cast::new().role(AgentRole::Planner, vec![plan()]).role(AgentRole::Coder, vec![Reply::Hang]);
    let runner = AgentRunner::new(AgentConfig::default(), cast.backends());
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let on_event: RunEventSink = Arc::new(move |event: RunEvent| {
        if matches!(&event, RunEvent::StepStarted { step, .. } if step == "code") {
            trigger.cancel();
        }
        sink.lock().unwrap().push(event);
    });
    let report = runner.run(Uuid::new_v4(), task(Workflow::Implement, "fix"), ws, on_event, cancel).await;
    assert_eq!(report.state, RunState::Cancelled);
    assert_eq!(states(&events.lock().unwrap()).last(), Some(&RunState::Cancelled));
    assert!(report.plan.is_some());
    assert_eq!(steps(&report), [("plan", None), ("code", None)]);
    assert_eq!(report.steps[1].error.as_deref(), Some("cancelled"));
    // The backend's own token fired too (the step's drop guard).
    let coder = cast.get(AgentRole::Coder);
    for _ in 0..1000 {
        if *coder.cancelled.lock().unwrap() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(*coder.cancelled.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_step_past_its_timeout_fails_the_run_and_is_cancelled() {
    let (_dir, ws) = workspace();
    let cast = Cast::new().role(AgentRole::Explainer, vec![Reply::Hang]);
    let config = AgentConfig { step_timeout: Duration::from_millis(30), ..AgentConfig::default() };
    let Outcome { report, .. } = run(config, &cast, ws.clone(), selected(Workflow::Explain)).await;
    assert_eq!(report.state, RunState::Failed);
    assert!(report.error.unwrap().contains("step explain took longer than"));

    let config = AgentConfig { run_timeout: Duration::from_millis(30), ..AgentConfig::default() };
    let Outcome { report, .. } = run(config, &cast, ws, selected(Workflow::Explain)).await;
    assert_eq!(report.state, RunState::Failed);
    assert!(report.error.unwrap().contains("the run took longer than"));
}

#[tokio::test]
async fn runs_queue_for_a_slot_and_a_queued_run_can_be_cancelled() {
    let (_dir, ws) = workspace();
    let cast = Cast::new().role(AgentRole::Explainer, vec![Reply::Hang]);
    let runner = Arc::new(AgentRunner::new(AgentConfig::default(), cast.backends()));
    let first_cancel = CancellationToken::new();
    let first = {
        let (runner, ws, cancel) = (runner.clone(), ws.clone(), first_cancel.clone());
        tokio::spawn(async move { run_with_arc(runner, ws, selected(Workflow::Explain), cancel).await })
    };
    // Wait until the first run holds the slot.
    while cast.get(AgentRole::Explainer).asked().is_empty() {
        tokio::task::yield_now().await;
    }
    let second_cancel = CancellationToken::new();
    let second = {
        let (runner, ws, cancel) = (runner.clone(), ws.clone(), second_cancel.clone());
        tokio::spawn(async move { run_with_arc(runner, ws, selected(Workflow::Explain), cancel).await })
    };
    tokio::task::yield_now().await;
    second_cancel.cancel();
    let second = second.await.unwrap();
    assert_eq!(states(&second.events), [RunState::Queued, RunState::Cancelled]);
    assert!(second.report.steps.is_empty());
    first_cancel.cancel();
    let first = first.await.unwrap();
    assert_eq!(states(&first.events), [RunState::Queued, RunState::Running, RunState::Cancelled]);
    assert_eq!(cast.get(AgentRole::Explainer).asked().len(), 1);
}

async fn run_with_arc(runner: Arc<AgentRunner>, ws: Workspace, task: AgentTask, cancel: CancellationToken) -> Outcome {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let report =
        runner.run(Uuid::new_v4(), task, ws, Arc::new(move |event| sink.lock().unwrap().push(event)), cancel).await;
    let events = events.lock().unwrap().clone();
    Outcome { report, events }
}

#[tokio::test]
async fn the_council_decides_by_each_rule() {
    let judges = [AgentRole::SecurityJudge, AgentRole::PerformanceJudge, AgentRole::MaintainabilityJudge];
    let cases = [
        (DecisionRule::Unanimous, ["APPROVE", "APPROVE", "REVISE"], Verdict::Revise),
        (DecisionRule::Unanimous, ["APPROVE", "APPROVE", "APPROVE"], Verdict::Approve),
        (DecisionRule::Majority, ["APPROVE", "APPROVE", "REJECT"], Verdict::Approve),
        (DecisionRule::Majority, ["APPROVE", "REVISE", "REJECT"], Verdict::Revise),
        (DecisionRule::AnyRejectBlocks, ["APPROVE", "APPROVE", "REJECT"], Verdict::Reject),
        (DecisionRule::AnyRejectBlocks, ["REVISE", "APPROVE", "REVISE"], Verdict::Approve),
    ];
    for (rule, verdicts, decision) in cases {
        let (_dir, ws) = workspace();
        let mut cast = Cast::new();
        for (judge, verdict) in judges.iter().zip(verdicts) {
            cast = cast.role(*judge, vec![review(verdict)]);
        }
        let config = AgentConfig { decision_rule: rule, ..AgentConfig::default() };
        let Outcome { report, .. } = run(config, &cast, ws, selected(Workflow::Council)).await;
        assert_eq!(report.state, RunState::Completed);
        assert_eq!((report.verdict, report.decision_rule), (Some(decision), Some(rule)), "{rule:?} {verdicts:?}");
        let sources: Vec<&str> = report.findings().map(|f| f.source.as_str()).collect();
        assert_eq!(sources, ["security", "performance", "maintainability"]);
        let recorded: Vec<Option<&str>> = report.steps.iter().map(|s| s.verdict.as_deref()).collect();
        assert_eq!(recorded, verdicts.map(Some));
    }
}

#[tokio::test]
async fn the_test_step_runs_the_command_on_a_scratch_copy() {
    let (dir, ws) = workspace();
    let tests = Reply::Json(json!({ "summary": "a test", "files": [{
        "path": "tests/check.sh",
        "content": "```sh\ngrep -q 'a + b' calc.py || { echo 'add is wrong'; exit 3; }\n```"
    }] }));
    let analysis = Reply::Json(json!({ "passed": false, "analysis": "add subtracts" }));
    let cast = Cast::new().role(AgentRole::Tester, vec![tests]).role(AgentRole::TestAnalyzer, vec![analysis]);
    let command = TestCommand {
        command: "sh tests/check.sh".into(),
        cpu_time: Duration::from_secs(5),
        memory_bytes: 256 << 20,
        output_bytes: 1 << 16,
        pass_env: Vec::new(),
    };
    let config = AgentConfig { test_command: Some(command), ..AgentConfig::default() };
    let Outcome { report, .. } = run(config, &cast, ws, selected(Workflow::Test)).await;
    assert_eq!(report.state, RunState::Completed, "{report:?}");
    assert_eq!(steps(&report), [("write tests", None), ("test", Some("failed")), ("analyze", Some("failed"))]);
    let outcome = report.tests.unwrap();
    assert_eq!((outcome.status, outcome.exit_code), (TestStatus::Failed, Some(3)));
    assert_eq!(outcome.output, "add is wrong\n");
    // The fence around the file was removed; the file is proposed, not written.
    assert_eq!(report.edits[0].kind, EditKind::Create);
    assert!(report.edits[0].new_text.starts_with("grep"));
    assert!(!Path::new(&dir.path().join("ws/tests")).exists());
    // What the analyzer saw.
    let asked = cast.get(AgentRole::TestAnalyzer).asked();
    assert!(asked[0].messages[1].content.contains("add is wrong"));
}

#[tokio::test]
async fn failing_tests_turn_an_approval_into_a_revision() {
    let (_dir, ws) = workspace();
    let cast = Cast::new()
        .role(AgentRole::Planner, vec![plan()])
        .role(AgentRole::Coder, vec![code("def add(a, b):\n    return a * b\n"), code(FIXED)])
        .role(AgentRole::TestAnalyzer, vec![Reply::Json(json!({ "passed": true, "analysis": "ok" }))])
        .role(AgentRole::Reviewer, vec![review("APPROVE")]);
    let command = TestCommand {
        command: "grep -q 'a + b' calc.py".into(),
        cpu_time: Duration::from_secs(5),
        memory_bytes: 256 << 20,
        output_bytes: 1 << 16,
        pass_env: Vec::new(),
    };
    let config = AgentConfig { test_command: Some(command), ..AgentConfig::default() };
    let Outcome { report, .. } = run(config, &cast, ws, task(Workflow::Implement, "fix add")).await;
    assert_eq!(
        steps(&report),
        [
            ("plan", None),
            ("code", None),
            ("test", Some("failed")),
            ("analyze", Some("passed")),
            ("review", Some("REVISE")),
            ("code (iteration 2)", None),
            ("test", Some("passed")),
            ("analyze", Some("passed")),
            ("review (iteration 2)", Some("APPROVE")),
        ]
    );
    assert_eq!(report.verdict, Some(Verdict::Approve));
}
