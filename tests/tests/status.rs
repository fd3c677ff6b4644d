//! What `weft lsp` tells an editor about itself: work-done progress while
//! the model loads, `weft/status`, and actionable errors.

use std::time::Duration;

use serde_json::{Value, json};
use weft_e2e::{LspClient, file_uri, fixture, test_model};

const LONG: Duration = Duration::from_secs(120);

fn is_loading_progress(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |params| params["token"] == "weft/loadingModel" && params["value"]["kind"] == kind
}

#[test]
fn model_loading_is_reported_with_progress_then_status() {
    let model = test_model();
    let mut client = LspClient::spawn(&["--model", model.to_str().unwrap()], &[("WEFT_MAX_TOKENS", "4")]);
    let root = fixture("demo");
    client.initialize(&root, &["utf-16"]);

    let begin = client.notification_where("$/progress", is_loading_progress("begin"), LONG);
    assert_eq!(begin["value"]["title"], "Weft: loading model", "{begin}");
    let end = client.notification_where("$/progress", is_loading_progress("end"), LONG);
    assert_eq!(end["value"]["message"], "ready", "{end}");
    let ready = client.notification_where("weft/status", |p| p["health"] == "ready", LONG);
    assert!(ready["model"].as_str().unwrap().ends_with(".gguf"), "{ready}");

    // After a completion, the status carries its latency.
    let uri = file_uri(&root.join("greeting.py"));
    client.open(&uri, "python", "def add(a, b):\n    return ");
    let response = client.call(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 1, "character": 11 }, "context": { "triggerKind": 1 } }),
        LONG,
    );
    assert!(response.get("error").is_none(), "{response}");
    let status = client.notification_where("weft/status", |p| p["latencyMs"].is_number(), LONG);
    assert!(status["latencyMs"].as_f64().unwrap() > 0.0, "{status}");
    assert!(client.shutdown().success());
}

#[test]
fn a_model_that_fails_to_load_is_shown_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, b"GGUF but not really a model").unwrap();
    let mut client = LspClient::spawn(&["--model", broken.to_str().unwrap()], &[]);
    let root = fixture("demo");
    client.initialize(&root, &["utf-16"]);

    let message = client.notification("window/showMessage", LONG);
    let text = message["message"].as_str().unwrap();
    assert!(text.contains("failed to load") && text.contains("weft doctor"), "{message}");
    assert_eq!(message["type"], 1, "an error: {message}");
    let status = client.notification_where("weft/status", |p| p["health"] == "error", LONG);
    assert!(status["message"].as_str().unwrap().contains("broken.gguf"), "{status}");

    // Requests get an error response and the server lives on.
    let uri = file_uri(&root.join("greeting.py"));
    client.open(&uri, "python", "x = ");
    let response = client.call(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 4 }, "context": { "triggerKind": 1 } }),
        LONG,
    );
    assert_eq!(response["error"]["code"], -32803, "{response}");
    assert!(client.is_running());
    assert!(client.shutdown().success());
}
