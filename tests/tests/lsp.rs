//! The real `weft lsp` with the real SmolLM2-135M model, over stdio.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_e2e::{LspClient, column, file_uri, fixture, test_model};

const LONG: Duration = Duration::from_secs(120);

fn spawn(env: &[(&str, &str)]) -> LspClient {
    let model = test_model();
    let mut env = env.to_vec();
    // One thread each: tests run in parallel, and two-thread llama.cpp
    // engines that share two cores wait for each other many times over.
    env.push(("WEFT_N_THREADS", "1"));
    LspClient::spawn(&["--model", model.to_str().unwrap()], &env)
}

/// A document whose cursor line has multi-byte text before the cursor
/// (two-byte, three-byte and four-byte UTF-8; the crab is a UTF-16 pair).
const DOC: &str =
    "# Grüße aus Köln — 日本語 🦀\ndef greet(name):\n    message = \"Grüße 🦀, \" + name + \n    return message\n";
const CURSOR_LINE: usize = 2;

fn cursor_chars() -> usize {
    DOC.lines().nth(CURSOR_LINE).unwrap().chars().count()
}

fn check_completion_at_cursor(encoding: &str) {
    let mut client = spawn(&[("WEFT_MAX_TOKENS", "12")]);
    let root = fixture("demo");
    let init = client.initialize(&root, &[encoding]);
    assert_eq!(init["capabilities"]["positionEncoding"], encoding);
    assert_eq!(init["capabilities"]["inlineCompletionProvider"], true);
    assert_eq!(init["capabilities"]["textDocumentSync"]["change"], 2, "incremental sync");

    let uri = file_uri(&root.join("unicode.py"));
    client.open(&uri, "python", DOC);
    let line_text = DOC.lines().nth(CURSOR_LINE).unwrap();
    let character = column(line_text, cursor_chars(), encoding);
    let position = json!({ "line": CURSOR_LINE, "character": character });
    let cursor_range = json!({ "start": position, "end": position });

    let inline = client.call(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": position, "context": { "triggerKind": 1 } }),
        LONG,
    );
    let items = inline["result"].as_array().unwrap_or_else(|| panic!("inline completion failed: {inline}"));
    assert!(!items.is_empty(), "no inline completion: {inline}");
    for item in items {
        assert!(!item["insertText"].as_str().unwrap().is_empty());
        assert_eq!(item["range"], cursor_range, "{encoding}: {item}");
        assert_eq!(item["command"]["command"], "weft.completion.accepted");
    }

    let completion = client.call(
        "textDocument/completion",
        json!({ "textDocument": { "uri": uri }, "position": position, "context": { "triggerKind": 1 } }),
        LONG,
    );
    let items = completion["result"]["items"].as_array().unwrap_or_else(|| panic!("completion failed: {completion}"));
    assert!(!items.is_empty(), "no completion item: {completion}");
    let item = &items[0];
    assert_eq!(item["textEdit"]["range"], cursor_range, "{encoding}: {item}");
    assert!(!item["textEdit"]["newText"].as_str().unwrap().is_empty());

    // Accepting runs the item's command on the server.
    let command = item["command"].clone();
    let accepted = client.call(
        "workspace/executeCommand",
        json!({ "command": command["command"], "arguments": command["arguments"] }),
        LONG,
    );
    assert!(accepted.get("error").is_none(), "{accepted}");

    assert!(client.shutdown().success());
}

#[test]
fn completes_after_multibyte_text_in_utf16() {
    check_completion_at_cursor("utf-16");
}

#[test]
fn completes_after_multibyte_text_in_utf8() {
    check_completion_at_cursor("utf-8");
}

#[test]
fn completes_after_multibyte_text_in_utf32() {
    check_completion_at_cursor("utf-32");
}

#[test]
fn utf16_is_the_default_and_utf8_is_preferred() {
    let mut client = spawn(&[]);
    let init = client.initialize(&fixture("demo"), &[]);
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-16");
    drop(client);
    let mut client = spawn(&[]);
    let init = client.initialize(&fixture("demo"), &["utf-16", "utf-32", "utf-8"]);
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-8");
}

/// A long prompt: about 3,000 tokens of prefix to prefill.
fn long_document() -> String {
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!("def function_{i}(value):\n    return value * {i} + {}\n\n", i % 7));
    }
    text.push_str("def final(value):\n    return ");
    text
}

#[test]
fn cancel_request_stops_a_long_prefill_and_the_next_request_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[engine]\nn_ctx = 8192\nprefill_chunk = 64\n[engine.budget]\nprefix_tokens = 6000\n[completion]\nmax_tokens = 8\ntime_budget_ms = 120000\n",
    )
    .unwrap();
    let mut client = spawn(&[("WEFT_CONFIG", config.to_str().unwrap())]);
    let root = fixture("demo");
    client.initialize(&root, &["utf-16"]);
    let long_uri = file_uri(&root.join("long.py"));
    let text = long_document();
    client.open(&long_uri, "python", &text);
    let last_line = text.lines().count() - 1;
    let last_col = text.lines().last().unwrap().len();

    let started = Instant::now();
    let id = client.request(
        "textDocument/inlineCompletion",
        json!({
            "textDocument": { "uri": long_uri },
            "position": { "line": last_line, "character": last_col },
            "context": { "triggerKind": 1 }
        }),
    );
    std::thread::sleep(Duration::from_millis(500));
    client.notify("$/cancelRequest", json!({ "id": id }));
    let response = client.response(id, LONG);
    let cancelled_after = started.elapsed();
    assert_eq!(response["error"]["code"], -32800, "{response}");
    assert!(cancelled_after < Duration::from_secs(5), "cancel took {cancelled_after:?}");

    // The engine is free again: a short request does not wait for the
    // cancelled prefill (6,000 tokens: 20 s or more at this CPU's best
    // prompt speed, about 290 tokens/s). The bound leaves room for a
    // loaded machine.
    let short_uri = file_uri(&root.join("short.py"));
    client.open(&short_uri, "python", "def add(a, b):\n    return ");
    let started = Instant::now();
    let next = client.call(
        "textDocument/inlineCompletion",
        json!({
            "textDocument": { "uri": short_uri },
            "position": { "line": 1, "character": 11 },
            "context": { "triggerKind": 1 }
        }),
        LONG,
    );
    assert!(next["result"].is_array(), "{next}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "the next request waited {elapsed:?}");
    assert!(client.shutdown().success());
}

#[test]
fn a_newer_request_supersedes_the_older_one_of_the_same_document() {
    let mut client = spawn(&[("WEFT_MAX_TOKENS", "8")]);
    let root = fixture("demo");
    client.initialize(&root, &["utf-16"]);
    let uri = file_uri(&root.join("long.py"));
    client.open(&uri, "python", &long_document());
    let params = |line: usize| {
        json!({
            "textDocument": { "uri": uri },
            "position": { "line": line, "character": 0 },
            "context": { "triggerKind": 2 }
        })
    };
    let first = client.request("textDocument/inlineCompletion", params(300));
    let second = client.request("textDocument/inlineCompletion", params(301));
    let first = client.response(first, LONG);
    let second = client.response(second, LONG);
    // The superseded request answers with nothing, not an error.
    assert_eq!(first["result"], Value::Null, "{first}");
    assert!(second["result"].is_array(), "{second}");
}

#[test]
fn bad_requests_get_errors_and_the_server_lives_on() {
    let mut client = spawn(&[("WEFT_MAX_TOKENS", "4")]);
    let root = fixture("demo");
    client.initialize(&root, &["utf-16"]);
    let uri = file_uri(&root.join("greeting.py"));

    // Not opened.
    let response = client.call(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 0 }, "context": { "triggerKind": 1 } }),
        LONG,
    );
    assert_eq!(response["error"]["code"], -32602, "{response}");
    assert!(response["error"]["message"].as_str().unwrap().contains("is not open"));

    client.open(&uri, "python", "x = 1\n");
    // A line past the end of the document.
    let response = client.call(
        "textDocument/completion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 40, "character": 0 } }),
        LONG,
    );
    assert_eq!(response["error"]["code"], -32602, "{response}");

    // Params of the wrong shape.
    let response = client.call("textDocument/inlineCompletion", json!({ "position": "here" }), LONG);
    assert_eq!(response["error"]["code"], -32602, "{response}");

    // An unknown command.
    let response = client.call("workspace/executeCommand", json!({ "command": "weft.nope", "arguments": [] }), LONG);
    assert_eq!(response["error"]["code"], -32602, "{response}");

    // An edit outside the document is refused and reported, not applied.
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": uri, "version": 2 },
            "contentChanges": [{ "range": { "start": { "line": 9, "character": 0 }, "end": { "line": 9, "character": 1 } }, "text": "y" }]
        }),
    );
    let message = client.notification("window/showMessage", LONG);
    assert!(message["message"].as_str().unwrap().contains("could not be applied"), "{message}");

    // A column past the end of the line is clamped to the line's end.
    let response = client.call(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 99 }, "context": { "triggerKind": 1 } }),
        LONG,
    );
    if let Some(item) = response["result"].as_array().and_then(|items| items.first()) {
        assert_eq!(item["range"]["start"], json!({ "line": 0, "character": 5 }));
    }
    assert!(response.get("error").is_none(), "{response}");

    // A malformed frame body does not kill the server.
    client.send_raw(b"Content-Length: 9\r\n\r\n{not json");
    let logged = client.notification_where(
        "window/logMessage",
        |p| p["message"].as_str().is_some_and(|m| m.contains("malformed")),
        LONG,
    );
    assert!(logged["message"].as_str().unwrap().contains("not valid JSON"), "{logged}");
    assert!(client.is_running());
    // It still answers.
    let response = client.call("workspace/executeCommand", json!({ "command": "weft.nope", "arguments": [] }), LONG);
    assert_eq!(response["error"]["code"], -32602, "{response}");
    assert!(client.shutdown().success());
}

#[test]
fn typing_the_start_of_a_suggestion_is_answered_without_the_model() {
    let mut client = spawn(&[("WEFT_MAX_TOKENS", "8")]);
    let root = fixture("demo");
    client.initialize(&root, &["utf-16"]);
    let uri = file_uri(&root.join("typed.py"));
    client.open(&uri, "python", "def add(a, b):\n    return ");
    let params = |line: usize, character: usize, kind: u32| {
        json!({
            "textDocument": { "uri": uri },
            "position": { "line": line, "character": character },
            "context": { "triggerKind": kind }
        })
    };
    let first = client.call("textDocument/inlineCompletion", params(1, 11, 1), LONG);
    let item = &first["result"][0];
    let suggestion = item["insertText"].as_str().unwrap_or_else(|| panic!("no suggestion: {first}")).to_owned();
    let argument = item["command"]["arguments"][0].clone();
    assert_eq!(argument.get("typedAhead"), None, "{first}");
    let typed = suggestion.chars().next().unwrap();
    assert!(suggestion.chars().count() >= 2, "the model suggested only {suggestion:?}: nothing would remain");

    // The user types the suggestion's first character.
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": uri, "version": 2 },
            "contentChanges": [{
                "range": { "start": { "line": 1, "character": 11 }, "end": { "line": 1, "character": 11 } },
                "text": typed.to_string()
            }]
        }),
    );
    let (line, character) = if typed == '\n' { (2, 0) } else { (1, 11 + typed.len_utf16()) };
    let second = client.call("textDocument/inlineCompletion", params(line, character, 2), LONG);
    let item = &second["result"][0];
    assert_eq!(item["insertText"].as_str(), Some(&suggestion[typed.len_utf8()..]), "{second}");
    // The same completion, answered from what was typed, not by the model.
    assert_eq!(item["command"]["arguments"][0]["id"], argument["id"], "{second}");
    assert_eq!(item["command"]["arguments"][0]["typedAhead"], true, "{second}");
    assert!(client.shutdown().success());
}
