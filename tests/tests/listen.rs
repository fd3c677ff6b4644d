//! `weft lsp --listen`: LSP over TCP with the real binary and the real
//! SmolLM2-135M model. Each connection is a session of its own; the model is
//! loaded once and shared.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use weft_e2e::{LspClient, LspListener, file_uri, fixture, test_model, weft_binary};

const LONG: Duration = Duration::from_secs(120);

fn inline_params(uri: &str, line: u32, character: u32) -> Value {
    json!({
        "textDocument": { "uri": uri },
        "position": { "line": line, "character": character },
        "context": { "triggerKind": 1 }
    })
}

fn assert_completed(response: &Value) {
    let items = response["result"].as_array().unwrap_or_else(|| panic!("inline completion failed: {response}"));
    assert!(!items.is_empty(), "no inline completion: {response}");
    assert!(items.iter().all(|item| !item["insertText"].as_str().unwrap_or("").is_empty()), "{response}");
}

#[test]
fn two_tcp_clients_at_once_both_get_inline_completions() {
    let model = test_model();
    // One thread: tests run in parallel on few cores.
    let mut server =
        LspListener::spawn(&["--model", model.to_str().unwrap()], &[("WEFT_N_THREADS", "1"), ("WEFT_MAX_TOKENS", "6")]);
    assert_ne!(server.address().port(), 0, "the chosen port is printed");
    let root = fixture("demo");
    let mut first = LspClient::connect(server.address());
    let mut second = LspClient::connect(server.address());
    first.initialize(&root, &["utf-16"]);
    second.initialize(&root, &["utf-16"]);
    let add = file_uri(&root.join("add.py"));
    let square = file_uri(&root.join("square.py"));
    first.open(&add, "python", "def add(a, b):\n    return ");
    second.open(&square, "python", "def square(x):\n    return ");

    // Both ask before either is answered.
    let first_id = first.request("textDocument/inlineCompletion", inline_params(&add, 1, 11));
    let second_id = second.request("textDocument/inlineCompletion", inline_params(&square, 1, 11));
    assert_completed(&first.response(first_id, LONG));
    assert_completed(&second.response(second_id, LONG));

    // The sessions are separate: the second does not know the first's
    // document.
    let response = second.call("textDocument/inlineCompletion", inline_params(&add, 1, 11), LONG);
    assert_eq!(response["error"]["code"], -32602, "{response}");

    // One session ends; the other and the server go on, and a new client
    // can connect.
    first.disconnect();
    assert_completed(&second.call("textDocument/inlineCompletion", inline_params(&square, 1, 11), LONG));
    let mut third = LspClient::connect(server.address());
    third.initialize(&root, &["utf-16"]);
    third.disconnect();
    second.disconnect();
    assert!(server.is_running());
}

#[test]
fn a_non_loopback_listen_address_is_refused() {
    let output = Command::new(weft_binary())
        .args(["lsp", "--listen", "0.0.0.0:0", "--model", "/nonexistent.gguf"])
        .env("WEFT_CONFIG", fixture("empty-config.toml"))
        .stdin(Stdio::null())
        .output()
        .expect("run weft");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0:0"), "{stderr}");
    assert!(stderr.contains("--listen-any"), "{stderr}");
    assert!(output.stdout.is_empty());
}
