//! `weft.agent.implement`, `council` and `resume` end to end: the real `weft lsp`, the real
//! SmolLM2-135M-Instruct answering every step under a JSON-schema grammar,
//! the real test command in the sandbox, over stdio.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use weft_e2e::{LspClient, file_uri, fixture, test_model};

const LONG: Duration = Duration::from_secs(240);

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn implement_runs_end_to_end_with_the_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("calc");
    copy_dir(&fixture("agent/calc"), &root);
    let run_log = dir.path().join("agent-runs.jsonl");
    let config = dir.path().join("config.toml");
    // Small answers keep the run short on a CPU.
    std::fs::write(
        &config,
        format!(
            "[agent]\nmax_tokens = 320\nmax_iterations = 1\nstep_timeout_s = 120\n\
             test_command = \"python3 -m unittest -q\"\ntest_timeout_s = 20\nrun_log = {:?}\n\
             [chat.providers.local]\nkind = \"local\"\nn_ctx = 2048\n",
            run_log.display().to_string()
        ),
    )
    .unwrap();
    let model = test_model();
    let mut client = LspClient::spawn(
        &["--model", model.to_str().unwrap()],
        // One thread: on a loaded two-core machine two threads wait on each
        // other at every ggml barrier (a generated token costs ten times more).
        &[("WEFT_CONFIG", config.to_str().unwrap()), ("WEFT_N_THREADS", "1")],
    );
    let init = client.initialize(&root, &["utf-16"]);
    let commands = init["capabilities"]["executeCommandProvider"]["commands"].as_array().unwrap().clone();
    assert!(commands.contains(&json!("weft.agent.implement")), "{init}");

    let uri = file_uri(&root.canonicalize().unwrap().join("calc.py"));
    let response = client.call(
        "workspace/executeCommand",
        json!({
            "command": "weft.agent.implement",
            "arguments": [{ "instruction": "Fix add in calc.py so that it returns a + b.", "uri": uri }]
        }),
        LONG,
    );
    let result = &response["result"];
    assert!(response.get("error").is_none(), "{response}");
    eprintln!("weft.agent.implement result: {result}");
    assert_eq!(result["state"], "completed", "{result:#}");

    // The grammar-constrained steps parsed: a plan naming a real file, code,
    // the tests, their analysis and a review verdict.
    let plan_files: Vec<&str> = result["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()))
        .collect();
    assert!(plan_files.iter().all(|f| ["calc.py", "shell.py", "test_calc.py"].contains(f)), "{plan_files:?}");
    let steps: Vec<&str> = result["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["plan", "code", "test", "analyze", "review"], "{result:#}");
    assert!(["APPROVE", "REVISE", "REJECT"].contains(&result["verdict"].as_str().unwrap()), "{result:#}");
    assert_eq!(result["reviews"][0]["judge"], "reviewer");
    assert!(["passed", "failed", "timed_out"].contains(&result["tests"]["status"].as_str().unwrap()));
    for step in result["steps"].as_array().unwrap().iter().filter(|s| s["role"] != "sandbox") {
        assert!(step["model"].as_str().unwrap().to_lowercase().contains("smollm2"), "{step}");
        assert!(step["completion_tokens"].as_u64().unwrap() > 0, "{step}");
    }

    // The edit reached the client as workspace/applyEdit.
    let apply: Vec<&Value> = client.notifications.iter().filter(|m| m["method"] == "workspace/applyEdit").collect();
    assert_eq!(apply.len(), 1, "{result:#}");
    let changes = apply[0]["params"]["edit"]["documentChanges"].as_array().unwrap();
    assert!(!changes.is_empty());
    assert_eq!(result["applyEdit"]["applied"], true, "{result:#}");

    // Progress named each step, from begin to end.
    let progress: Vec<&Value> = client.notifications.iter().filter(|m| m["method"] == "$/progress").collect();
    let messages: Vec<&str> = progress.iter().filter_map(|p| p["params"]["value"]["message"].as_str()).collect();
    for step in ["plan (planner)", "code (coder)", "test (sandbox)", "analyze (analyzer)", "review (reviewer)"] {
        assert!(messages.contains(&step), "{step} missing from {messages:?}");
    }
    assert_eq!(progress.first().unwrap()["params"]["value"]["kind"], "begin");
    assert_eq!(progress.last().unwrap()["params"]["value"]["kind"], "end");

    // The run was tracked locally.
    let log = std::fs::read_to_string(&run_log).unwrap();
    let record: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!((record["workflow"].as_str(), record["steps"].as_array().unwrap().len()), (Some("implement"), 5));

    assert!(client.shutdown().success());
}

#[test]
fn council_findings_become_diagnostics_with_the_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("calc");
    copy_dir(&fixture("agent/calc"), &root);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nmax_tokens = 200\ndecision_rule = \"any-reject-blocks\"\nrun_log = {:?}\n",
            dir.path().join("runs.jsonl").display().to_string()
        ),
    )
    .unwrap();
    let model = test_model();
    let mut client = LspClient::spawn(
        &["--model", model.to_str().unwrap()],
        &[("WEFT_CONFIG", config.to_str().unwrap()), ("WEFT_N_THREADS", "1")],
    );
    client.initialize(&root, &["utf-16"]);
    let uri = file_uri(&root.canonicalize().unwrap().join("shell.py"));
    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 7, "character": 0 } });
    // Without a selection the council waits for one; resumed with it, the
    // run goes on as a new run linked to the first.
    let waiting =
        client.call("workspace/executeCommand", json!({ "command": "weft.agent.council", "arguments": [{}] }), LONG);
    assert_eq!(waiting["result"]["state"], "waiting_for_input", "{waiting}");
    assert_eq!(waiting["result"]["question"], "select the code to work on", "{waiting}");
    let waiting_id = waiting["result"]["runId"].as_str().unwrap().to_owned();
    let response = client.call(
        "workspace/executeCommand",
        json!({ "command": "weft.agent.resume", "arguments": [{ "runId": waiting_id, "uri": uri, "range": range }] }),
        LONG,
    );
    let result = &response["result"];
    assert_eq!(result["state"], "completed", "{response}");
    assert_eq!(result["resumes"], json!(waiting_id), "{response}");
    assert_eq!(result["decision_rule"], "any-reject-blocks");
    let judges: Vec<&str> =
        result["reviews"].as_array().unwrap().iter().map(|r| r["judge"].as_str().unwrap()).collect();
    assert_eq!(judges, ["security", "performance", "maintainability"]);
    // The decision follows the rule from the judges' verdicts.
    let any_reject = result["reviews"].as_array().unwrap().iter().any(|r| r["verdict"] == "REJECT");
    assert_eq!(result["verdict"], if any_reject { "REJECT" } else { "APPROVE" }, "{result:#}");

    // Every finding is a weft-review diagnostic on its lines of shell.py
    // (seven lines long, so every range lies in it).
    let findings: Vec<&Value> =
        result["reviews"].as_array().unwrap().iter().flat_map(|r| r["findings"].as_array().unwrap()).collect();
    eprintln!("council: {} ({} findings)", result["summary"], findings.len());
    if !findings.is_empty() {
        let published = client.notification_where(
            "textDocument/publishDiagnostics",
            |params| params["uri"] == json!(uri),
            Duration::from_secs(10),
        );
        let diagnostics = published["diagnostics"].as_array().unwrap();
        assert_eq!(diagnostics.len(), findings.len(), "{published}");
        for (diagnostic, finding) in diagnostics.iter().zip(&findings) {
            assert_eq!(diagnostic["source"], "weft-review");
            assert_eq!(diagnostic["code"], finding["source"]);
            assert_eq!(diagnostic["range"]["start"], json!({ "line": finding["start_line"], "character": 0 }));
            assert_eq!(diagnostic["range"]["end"]["line"], finding["end_line"]);
            assert!(finding["end_line"].as_u64().unwrap() < 7, "{finding}");
        }
    }
    assert!(client.shutdown().success());
}
