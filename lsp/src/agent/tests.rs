//! Agent commands over an in-memory LSP stream with a scripted agent
//! provider: progress, diagnostics on the right ranges, applyEdit,
//! cancellation. The real workflows run end to end in `tests/`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::provider::{CompletionInput, CompletionOutput, CompletionProvider, ProviderError};
use crate::server::{ServerConfig, serve_with_agents};

struct NoCompletions;

impl CompletionProvider for NoCompletions {
    fn complete(
        &self,
        _input: CompletionInput,
        _cancel: CancellationToken,
    ) -> BoxFuture<'static, std::result::Result<Vec<CompletionOutput>, ProviderError>> {
        async { Ok(Vec::new()) }.boxed()
    }

    fn describe(&self) -> String {
        "none".into()
    }
}

/// A council with fixed findings; `implement` proposes one edit; an
/// instruction `wait` runs until cancelled; `plan` and `implement` without
/// an instruction, or with one that names no file, wait for input.
struct ScriptedAgents {
    requests: Mutex<Vec<AgentRequest>>,
}

impl AgentProvider for ScriptedAgents {
    fn run(
        &self,
        request: AgentRequest,
        updates: AgentUpdates,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, AgentOutcome> {
        self.requests.lock().unwrap().push(request.clone());
        async move {
            updates(AgentUpdate::State("running".into()));
            if request.instruction == "wait" {
                updates(AgentUpdate::StepStarted { index: 0, step: "plan".into(), role: "planner".into() });
                cancel.cancelled().await;
                return AgentOutcome {
                    state: "cancelled".into(),
                    summary: "cancelled".into(),
                    result: json!({ "state": "cancelled" }),
                    edits: Vec::new(),
                    findings: Vec::new(),
                };
            }
            if matches!(request.workflow.as_str(), "plan" | "implement") && !request.instruction.contains(".py") {
                let question = if request.instruction.is_empty() {
                    "describe the task to carry out"
                } else {
                    "name the files to change"
                };
                return AgentOutcome {
                    state: "waiting_for_input".into(),
                    summary: question.into(),
                    result: json!({ "state": "waiting_for_input", "question": question }),
                    edits: Vec::new(),
                    findings: Vec::new(),
                };
            }
            let path =
                request.selection.as_ref().map(|s| s.path.clone()).unwrap_or_else(|| request.root.join("app.py"));
            let mut findings = Vec::new();
            let mut edits = Vec::new();
            if request.workflow == "council" {
                for (index, judge) in ["security", "performance", "maintainability"].into_iter().enumerate() {
                    updates(AgentUpdate::StepStarted { index: index as u32, step: judge.into(), role: judge.into() });
                    updates(AgentUpdate::StepFinished {
                        index: index as u32,
                        step: judge.into(),
                        verdict: Some("REVISE".into()),
                        error: None,
                    });
                }
                findings.push(AgentFinding {
                    path: path.clone(),
                    start_line: 1,
                    end_line: 2,
                    severity: FindingSeverity::Error,
                    message: "shell injection".into(),
                    judge: "security".into(),
                });
                findings.push(AgentFinding {
                    path: path.clone(),
                    start_line: 3,
                    end_line: 3,
                    severity: FindingSeverity::Warning,
                    message: "quadratic loop".into(),
                    judge: "performance".into(),
                });
            } else {
                edits.push(AgentEdit {
                    path: path.clone(),
                    create: false,
                    // After `é` (two bytes) on line 1.
                    start: (1, 12),
                    end: (2, 0),
                    new_text: "'safe'\n".into(),
                });
            }
            AgentOutcome {
                state: "completed".into(),
                summary: "REVISE".into(),
                result: json!({ "state": "completed", "verdict": "REVISE" }),
                edits,
                findings,
            }
        }
        .boxed()
    }
}

const APP: &str = "import os\nname = 'é' + os.environ['X']\nos.system('echo ' + name)\nfor i in range(9): pass\n";

struct Client {
    reader: BufReader<ReadHalf<DuplexStream>>,
    writer: WriteHalf<DuplexStream>,
    next_id: i64,
    /// Everything the server sent that was not a response.
    received: Vec<Value>,
}

impl Client {
    async fn send(&mut self, message: Value) {
        let body = message.to_string();
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        self.writer.write_all(frame.as_bytes()).await.unwrap();
    }

    async fn read(&mut self) -> Value {
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                length = v.parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    async fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })).await;
        id
    }

    /// Waits for the response to `id`, answering the server's requests:
    /// `workspace/applyEdit` is applied, anything else gets `null`.
    async fn response(&mut self, id: i64) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.read()).await.expect("a message in time");
            if let Some(method) = message.get("method").and_then(Value::as_str) {
                if let Some(request_id) = message.get("id") {
                    let result = if method == "workspace/applyEdit" { json!({ "applied": true }) } else { Value::Null };
                    self.send(json!({ "jsonrpc": "2.0", "id": request_id, "result": result })).await;
                }
                self.received.push(message);
            } else if message["id"] == id {
                return message;
            }
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params).await;
        self.response(id).await
    }

    async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params })).await;
    }

    /// Reads on until a message satisfies `done` (notifications may follow
    /// the response they belong to).
    async fn wait_for(&mut self, done: impl Fn(&Value) -> bool) {
        while !self.received.iter().any(&done) {
            let message = tokio::time::timeout(Duration::from_secs(10), self.read()).await.expect("a message in time");
            self.received.push(message);
        }
    }

    fn received(&self, method: &str) -> Vec<&Value> {
        self.received.iter().filter(|m| m["method"] == method).collect()
    }
}

async fn start(encoding: &str) -> (Client, Arc<ScriptedAgents>, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), APP).unwrap();
    let root = dir.path().canonicalize().unwrap();
    let agents = Arc::new(ScriptedAgents { requests: Mutex::new(Vec::new()) });
    let (client_side, server_side) = tokio::io::duplex(1 << 16);
    let (server_read, server_write) = tokio::io::split(server_side);
    tokio::spawn(serve_with_agents(
        server_read,
        server_write,
        Arc::new(NoCompletions),
        Some(agents.clone()),
        ServerConfig { cross_file: false, ..ServerConfig::default() },
    ));
    let (read, writer) = tokio::io::split(client_side);
    let mut client = Client { reader: BufReader::new(read), writer, next_id: 1, received: Vec::new() };
    let root_uri = Uri::from_file_path(&root).unwrap().as_str().to_owned();
    let init = client
        .call(
            "initialize",
            json!({
                "rootUri": root_uri,
                "capabilities": { "general": { "positionEncodings": [encoding] }, "window": { "workDoneProgress": true } }
            }),
        )
        .await;
    let commands = &init["result"]["capabilities"]["executeCommandProvider"]["commands"];
    for name in ["plan", "implement", "test", "review", "council", "explain", "status", "cancel", "resume"] {
        assert!(commands.as_array().unwrap().contains(&json!(format!("weft.agent.{name}"))), "{init}");
    }
    assert_eq!(init["result"]["capabilities"]["codeActionProvider"], true);
    client.notify("initialized", json!({})).await;
    let uri = Uri::from_file_path(root.join("app.py")).unwrap().as_str().to_owned();
    (client, agents, dir, uri)
}

use tower_lsp_server::ls_types::Uri;

#[tokio::test]
async fn council_findings_become_diagnostics_on_their_lines() {
    let (mut client, agents, _dir, uri) = start("utf-16").await;
    client
        .notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": APP } }),
        )
        .await;
    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 4, "character": 0 } });
    let response = client
        .call(
            "workspace/executeCommand",
            json!({ "command": "weft.agent.council", "arguments": [{ "uri": uri, "range": range }] }),
        )
        .await;
    let result = &response["result"];
    assert_eq!(result["verdict"], "REVISE", "{response}");
    let run_id = result["runId"].as_str().unwrap().to_owned();

    let token = json!(format!("weft/agent/{run_id}"));
    client
        .wait_for(|m| {
            m["method"] == "$/progress" && m["params"]["token"] == token && m["params"]["value"]["kind"] == "end"
        })
        .await;

    // The provider saw the selection (lines 0-3) and the open document.
    let request = agents.requests.lock().unwrap()[0].clone();
    let selection = request.selection.unwrap();
    assert_eq!((selection.start_line, selection.end_line), (0, 3));
    assert_eq!(request.open_documents.len(), 1);

    let published = client.received("textDocument/publishDiagnostics");
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["params"]["uri"], json!(uri));
    let diagnostics = published[0]["params"]["diagnostics"].as_array().unwrap();
    // Line 2 is `os.system('echo ' + name)` (25 UTF-16 units); line 3 ends
    // at 23.
    assert_eq!(
        diagnostics[0],
        json!({
            "range": { "start": { "line": 1, "character": 0 }, "end": { "line": 2, "character": 25 } },
            "severity": 1, "code": "security", "source": "weft-review", "message": "shell injection"
        })
    );
    assert_eq!(
        diagnostics[1]["range"],
        json!({ "start": { "line": 3, "character": 0 }, "end": { "line": 3, "character": 23 } })
    );
    assert_eq!(
        (diagnostics[1]["severity"].as_i64(), diagnostics[1]["source"].as_str()),
        (Some(2), Some("weft-review"))
    );

    // Progress: begin, a report per step, end.
    let progress: Vec<&Value> =
        client.received("$/progress").into_iter().filter(|p| p["params"]["token"] == token).collect();
    let kinds: Vec<&str> = progress.iter().map(|p| p["params"]["value"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"begin"));
    assert_eq!(kinds.last(), Some(&"end"));
    let messages: Vec<&str> = progress.iter().filter_map(|p| p["params"]["value"]["message"].as_str()).collect();
    assert!(messages.contains(&"security (security)"), "{messages:?}");
    assert!(messages.contains(&"maintainability: REVISE"), "{messages:?}");
    let created = client.received("window/workDoneProgress/create");
    assert!(created.iter().any(|c| c["params"]["token"] == token), "{created:?}");

    let status = client
        .call("workspace/executeCommand", json!({ "command": "weft.agent.status", "arguments": [{ "runId": run_id }] }))
        .await;
    assert_eq!(status["result"]["state"], "completed", "{status}");
}

/// tower-lsp-server writes notifications and responses through a fair
/// `select`: without waiting for the writer, the end came after the result
/// about every other run.
#[tokio::test]
async fn the_progress_end_is_written_before_the_commands_result() {
    let (mut client, _agents, _dir, uri) = start("utf-16").await;
    for run in 0..24 {
        let token = json!(format!("run-{run}"));
        let response = client
            .call(
                "workspace/executeCommand",
                json!({ "command": "weft.agent.explain", "arguments": [{ "uri": uri }], "workDoneToken": token }),
            )
            .await;
        assert!(response["result"]["runId"].is_string(), "{response}");
        let kinds: Vec<&str> = client
            .received("$/progress")
            .into_iter()
            .filter(|p| p["params"]["token"] == token)
            .filter_map(|p| p["params"]["value"]["kind"].as_str())
            .collect();
        assert_eq!(kinds.first(), Some(&"begin"), "run {run}: {kinds:?}");
        assert_eq!(kinds.last(), Some(&"end"), "run {run}: the result came before the progress end: {kinds:?}");
    }
}

#[tokio::test]
async fn implement_edits_reach_the_client_in_its_encoding() {
    let (mut client, _agents, _dir, uri) = start("utf-16").await;
    let response = client
        .call(
            "workspace/executeCommand",
            json!({ "command": "weft.agent.implement", "arguments": [{ "instruction": "make app.py safe", "uri": uri }] }),
        )
        .await;
    assert_eq!(response["result"]["applyEdit"]["applied"], true, "{response}");
    let apply = client.received("workspace/applyEdit");
    assert_eq!(apply.len(), 1);
    let operation = &apply[0]["params"]["edit"]["documentChanges"][0];
    assert_eq!(operation["textDocument"]["uri"], json!(uri));
    // Byte column 12 is after `é`: UTF-16 column 11.
    assert_eq!(
        operation["edits"][0]["range"],
        json!({ "start": { "line": 1, "character": 11 }, "end": { "line": 2, "character": 0 } })
    );
    assert_eq!(operation["edits"][0]["newText"], "'safe'\n");
}

#[tokio::test]
async fn a_run_stops_on_progress_cancel_the_cancel_command_and_cancel_request() {
    for how in ["progress", "command", "request"] {
        let (mut client, _agents, _dir, _uri) = start("utf-8").await;
        let id = client
            .request(
                "workspace/executeCommand",
                json!({ "command": "weft.agent.plan", "arguments": [{ "instruction": "wait" }] }),
            )
            .await;
        // Wait for the step to start, then cancel.
        let token = loop {
            let message = client.read().await;
            if let Some(request_id) = message.get("id").filter(|_| message.get("method").is_some()) {
                client.send(json!({ "jsonrpc": "2.0", "id": request_id, "result": null })).await;
            }
            if message["method"] == "$/progress" && message["params"]["value"]["message"] == "plan (planner)" {
                break message["params"]["token"].clone();
            }
        };
        let run_id = token.as_str().unwrap().trim_start_matches("weft/agent/").to_owned();
        match how {
            "progress" => client.notify("window/workDoneProgress/cancel", json!({ "token": token })).await,
            "command" => {
                let cancel = client
                    .call(
                        "workspace/executeCommand",
                        json!({ "command": "weft.agent.cancel", "arguments": [{ "runId": run_id }] }),
                    )
                    .await;
                assert_eq!(cancel["result"]["cancelled"], true, "{cancel}");
            }
            _ => client.notify("$/cancelRequest", json!({ "id": id })).await,
        }
        let response = client.response(id).await;
        if how == "request" {
            assert_eq!(response["error"]["code"], -32800, "{response}");
        } else {
            assert_eq!(response["result"]["state"], "cancelled", "{response}");
        }
        client
            .wait_for(|m| {
                m["method"] == "$/progress" && m["params"]["token"] == token && m["params"]["value"]["kind"] == "end"
            })
            .await;
        let status = client
            .call(
                "workspace/executeCommand",
                json!({ "command": "weft.agent.status", "arguments": [{ "runId": run_id }] }),
            )
            .await;
        assert_eq!(status["result"]["state"], "cancelled", "{how}: {status}");
    }
}

#[tokio::test]
async fn code_actions_offer_the_agents_on_a_selection() {
    let (mut client, _agents, _dir, uri) = start("utf-8").await;
    let text = "def f():\n    # TODO: handle errors\n    pass\n";
    client
        .notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": text } }),
        )
        .await;
    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 2, "character": 0 } });
    let response = client
        .call(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": uri }, "range": range, "context": { "diagnostics": [] } }),
        )
        .await;
    let actions = response["result"].as_array().unwrap();
    let commands: Vec<&str> = actions.iter().map(|a| a["command"]["command"].as_str().unwrap()).collect();
    assert_eq!(
        commands,
        [
            "weft.agent.explain",
            "weft.agent.review",
            "weft.agent.council",
            "weft.agent.test",
            "weft.agent.plan",
            "weft.agent.implement"
        ]
    );
    assert_eq!(actions[5]["command"]["arguments"][0]["instruction"], "TODO: handle errors");
    assert_eq!(actions[0]["command"]["arguments"][0]["range"], range);
}

#[tokio::test]
async fn a_run_waiting_for_input_is_resumed_once_with_the_answer() {
    let (mut client, agents, _dir, uri) = start("utf-8").await;
    let execute = |command: &str, argument: Value| json!({ "command": command, "arguments": [argument] });
    let range = json!({ "start": { "line": 1, "character": 0 }, "end": { "line": 3, "character": 0 } });
    let first = client
        .call("workspace/executeCommand", execute("weft.agent.implement", json!({ "uri": uri, "range": range })))
        .await;
    assert_eq!(first["result"]["state"], "waiting_for_input", "{first}");
    assert_eq!(first["result"]["question"], "describe the task to carry out");
    let first_id = first["result"]["runId"].as_str().unwrap().to_owned();

    // Bad calls: a clear error each, and the run can still be resumed.
    for (argument, expected) in [
        (json!({}), "takes {\"runId\""),
        (json!({ "runId": "nope", "answer": "x" }), "no agent run nope"),
        (json!({ "runId": first_id }), "needs an answer or a selection"),
        (json!({ "runId": first_id, "answer": 3 }), "takes {\"runId\""),
    ] {
        let response = client.call("workspace/executeCommand", execute("weft.agent.resume", argument)).await;
        assert_eq!(response["error"]["code"], -32602, "{response}");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }

    // The answer becomes the instruction; the selection stays.
    let second = client
        .call(
            "workspace/executeCommand",
            execute("weft.agent.resume", json!({ "runId": first_id, "answer": "validate the input" })),
        )
        .await;
    assert_eq!(second["result"]["state"], "waiting_for_input", "{second}");
    assert_eq!(second["result"]["question"], "name the files to change");
    assert_eq!(second["result"]["resumes"], json!(first_id));
    let second_id = second["result"]["runId"].as_str().unwrap().to_owned();
    assert_ne!(second_id, first_id);

    let again = client
        .call("workspace/executeCommand", execute("weft.agent.resume", json!({ "runId": first_id, "answer": "y" })))
        .await;
    let message = again["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("resumed already, as run {second_id}")), "{again}");

    // A second answer goes on a line of its own, after the first.
    let third = client
        .call(
            "workspace/executeCommand",
            execute("weft.agent.resume", json!({ "runId": second_id, "answer": " in app.py " })),
        )
        .await;
    assert_eq!(third["result"]["state"], "completed", "{third}");
    assert_eq!(third["result"]["applyEdit"]["applied"], true, "{third}");
    let third_id = third["result"]["runId"].as_str().unwrap().to_owned();

    let requests = agents.requests.lock().unwrap().clone();
    let instructions: Vec<&str> = requests.iter().map(|r| r.instruction.as_str()).collect();
    assert_eq!(instructions, ["", "validate the input", "validate the input\nin app.py"]);
    for request in &requests {
        assert_eq!(request.workflow, "implement");
        let selection = request.selection.as_ref().unwrap();
        assert_eq!((selection.start_line, selection.end_line), (1, 2));
    }

    // A completed run cannot be resumed; status links the runs.
    let done = client
        .call("workspace/executeCommand", execute("weft.agent.resume", json!({ "runId": third_id, "answer": "z" })))
        .await;
    let message = done["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("is completed, not waiting_for_input"), "{done}");
    let status =
        client.call("workspace/executeCommand", execute("weft.agent.status", json!({ "runId": second_id }))).await;
    assert_eq!(status["result"]["resumes"], json!(first_id), "{status}");
    assert_eq!(status["result"]["resumedBy"], json!(third_id), "{status}");
}

#[tokio::test]
async fn a_resumed_run_can_take_a_new_selection() {
    let (mut client, agents, _dir, uri) = start("utf-8").await;
    let waiting = client
        .call(
            "workspace/executeCommand",
            json!({ "command": "weft.agent.plan", "arguments": [{ "uri": uri,
                    "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 1, "character": 0 } } }] }),
        )
        .await;
    assert_eq!(waiting["result"]["state"], "waiting_for_input", "{waiting}");
    let run_id = waiting["result"]["runId"].as_str().unwrap();
    let resumed = client
        .call(
            "workspace/executeCommand",
            json!({ "command": "weft.agent.resume", "arguments": [{ "runId": run_id, "answer": "tidy app.py", "uri": uri }] }),
        )
        .await;
    assert_eq!(resumed["result"]["state"], "completed", "{resumed}");
    let last = agents.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.instruction, "tidy app.py");
    let selection = last.selection.unwrap();
    // No range given with the new uri: the whole file.
    assert_eq!((selection.start_line, selection.end_line), (0, u32::MAX));
}
