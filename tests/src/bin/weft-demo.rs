//! `make demo`: starts `weft lsp` on the demo workspace, asks for an inline
//! completion through a real LSP exchange, and prints what came back.

// The demo's result goes to stdout.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use serde_json::json;
use weft_e2e::{LspClient, file_uri, fixture, test_model};

fn main() {
    let model = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(test_model);
    let root = fixture("demo");
    let file = root.join("greeting.py");
    let text = std::fs::read_to_string(&file).expect("demo file");
    // Complete the body of a new function after the existing ones.
    let cut = text.find("\n\nif __name__").expect("demo file shape");
    let prefix = format!(
        "{}\n\n\ndef farewell(name: str) -> str:\n    \"\"\"Return a goodbye for name.\"\"\"\n    return ",
        &text[..cut]
    );
    let document = format!("{prefix}{}", &text[cut..]);
    let line = prefix.lines().count() - 1;
    let character = prefix.lines().last().unwrap().encode_utf16().count();

    eprintln!("weft demo: model {}", model.display());
    let mut client = LspClient::spawn(&["--model", model.to_str().unwrap()], &[("WEFT_MAX_TOKENS", "24")]);
    let started = Instant::now();
    let init = client.initialize(&root, &["utf-16"]);
    eprintln!(
        "initialize -> {} {} (position encoding {})",
        init["serverInfo"]["name"].as_str().unwrap_or("?"),
        init["serverInfo"]["version"].as_str().unwrap_or("?"),
        init["capabilities"]["positionEncoding"]
    );
    let uri = file_uri(&file);
    client.open(&uri, "python", &document);
    eprintln!("textDocument/didOpen {uri}");
    eprintln!("textDocument/inlineCompletion at line {}, character {character}:", line + 1);
    for l in prefix.lines().skip(line.saturating_sub(3)) {
        eprintln!("    | {l}");
    }
    let response = client.call(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character }, "context": { "triggerKind": 1 } }),
        Duration::from_secs(120),
    );
    let elapsed = started.elapsed();
    match response["result"].as_array().and_then(|items| items.first()) {
        Some(item) => {
            println!("completion: {}", item["insertText"].as_str().unwrap_or_default());
            eprintln!("(through the LSP server in {elapsed:.2?}, model load included)");
        }
        None => {
            eprintln!("no completion: {response}");
            std::process::exit(1);
        }
    }
    let status = client.shutdown();
    assert!(status.success(), "weft exited with {status}");
}
