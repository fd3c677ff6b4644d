//! Several models in the real `weft lsp` (`[[models]]`, `[comparison]`):
//! two local ones (the real SmolLM2-135M under two names) and remote ones
//! served by a real HTTP server in this test, side by side (`all`) and in an
//! A/B assignment (`ab`); and `weft doctor` on the same list.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use weft_e2e::{LspClient, file_uri, test_model, weft_binary};

const LONG: Duration = Duration::from_secs(180);

/// What the remote model answers (single-line, so kept whole).
const REMOTE_TEXT: &str = "a + b";

/// A real HTTP/1.1 server on a thread speaking `/v1/completions` (and
/// `/v1/models`, for `weft doctor`); it records the completion requests.
struct OpenAiServer {
    base_url: String,
    completions: Arc<Mutex<Vec<Value>>>,
}

impl OpenAiServer {
    fn start() -> OpenAiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let completions = Arc::new(Mutex::new(Vec::new()));
        let seen = completions.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || answer(stream, &seen));
            }
        });
        OpenAiServer { base_url, completions }
    }

    fn completions(&self) -> Vec<Value> {
        self.completions.lock().unwrap().clone()
    }
}

/// Reads one request, answers it and closes the connection.
fn answer(mut stream: TcpStream, seen: &Mutex<Vec<Value>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                length = value.trim().parse().unwrap_or(0);
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = request_line.split(' ').nth(1).unwrap_or_default();
    let (status, reply) = match path {
        "/v1/completions" => {
            seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let reply = json!({
                "object": "text_completion",
                "choices": [{"index": 0, "text": REMOTE_TEXT, "finish_reason": "stop", "logprobs": {
                    "tokens": ["a", " +", " b"], "token_logprobs": [-0.5, -0.25, -0.75]
                }}],
                "usage": {"prompt_tokens": 17, "completion_tokens": 3}
            });
            (200, reply)
        }
        "/v1/models" => (200, json!({"object": "list", "data": [{"id": "test-coder", "object": "model"}]})),
        _ => (404, json!({"error": {"message": "not found"}})),
    };
    let reply = reply.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

/// `[engine]` and `[completion]` kept small: two 1-thread engines share the
/// machine with other tests.
fn config(dir: &Path, models: &str) -> std::path::PathBuf {
    let text = format!(
        "[engine]\nn_ctx = 1024\nn_threads = 1\nslots = 1\n\n[completion]\nmax_tokens = 8\ntime_budget_ms = 60000\n\n\
         [lsp]\ncross_file = false\n\n[agent]\nenabled = false\n\n{models}"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn local(name: &str) -> String {
    format!("[[models]]\nname = \"{name}\"\npath = {:?}\n\n", test_model().to_str().unwrap())
}

fn remote(name: &str, backend: &str, url: &str) -> String {
    format!("[[models]]\nname = \"{name}\"\nbackend = \"{backend}\"\nurl = \"{url}\"\nmodel = \"test-coder\"\n\n")
}

/// `weft lsp` on `config`; an empty `WEFT_MODEL` keeps a developer's own
/// from replacing the list.
fn spawn(config: &Path) -> LspClient {
    LspClient::spawn(&[], &[("WEFT_CONFIG", config.to_str().unwrap()), ("WEFT_N_THREADS", "1"), ("WEFT_MODEL", "")])
}

const DOC: &str = "def add(a, b):\n    return \n\n\nprint(add(1, 2))\n";

/// Inline completion at the end of `return `; the items' models, in order.
fn complete(client: &mut LspClient, uri: &str) -> Vec<(String, String)> {
    let position = json!({ "line": 1, "character": 11 });
    let inline = client.call(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": position, "context": { "triggerKind": 1 } }),
        LONG,
    );
    let items = inline["result"].as_array().unwrap_or_else(|| panic!("inline completion failed: {inline}"));
    items
        .iter()
        .map(|item| {
            // The model's name reaches the client in the accept command's
            // argument, beside the completion's id.
            let argument = &item["command"]["arguments"][0];
            assert!(argument["id"].as_str().is_some_and(|id| !id.is_empty()), "{item}");
            let model = argument["model"].as_str().unwrap_or_else(|| panic!("no model in {item}")).to_owned();
            (model, item["insertText"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn all_mode_answers_with_every_model_labelled_and_survives_a_dead_one() {
    let server = OpenAiServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: that model fails every request.
    let models = format!(
        "{}{}{}{}[comparison]\nmode = \"all\"\n",
        local("small-a"),
        local("small-b"),
        remote("remote", "openai", &server.base_url),
        remote("down", "infill", "http://127.0.0.1:1"),
    );
    let config = config(dir.path(), &models);

    let mut client = spawn(&config);
    client.initialize(dir.path(), &["utf-16"]);
    let uri = file_uri(&dir.path().join("add.py"));
    client.open(&uri, "python", DOC);
    let answers = complete(&mut client, &uri);
    let mut models: Vec<&str> = answers.iter().map(|(model, _)| model.as_str()).collect();
    models.sort_unstable();
    assert_eq!(models, ["remote", "small-a", "small-b"], "{answers:?}");
    let remote_text = answers.iter().find(|(model, _)| model == "remote").map(|(_, text)| text.as_str());
    assert_eq!(remote_text, Some(REMOTE_TEXT));
    // The same GGUF under two names: two generations of the same prompt.
    let local: Vec<_> = answers.iter().filter(|(model, _)| model.starts_with("small-")).collect();
    assert!(local.iter().all(|(_, text)| !text.is_empty()), "{answers:?}");

    let status = client.notification_where(
        "weft/status",
        |params| params["health"] == "ready" && params["latencyMs"].is_number(),
        LONG,
    );
    assert_eq!(status["model"], "small-a+small-b+remote+down");

    // The remote server got Weft's prompt, for the configured model name.
    let sent = server.completions();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["model"], "test-coder");
    assert_eq!(sent[0]["max_tokens"], 8);
    assert!(sent[0]["prompt"].as_str().unwrap().ends_with("def add(a, b):\n    return "), "{}", sent[0]);
    assert!(client.shutdown().success());
}

#[test]
fn ab_mode_answers_with_one_model_per_document_and_keeps_it() {
    let server = OpenAiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let models = format!(
        "{}{}[comparison]\nmode = \"ab\"\nsession = \"e2e\"\n",
        local("small"),
        remote("remote", "openai", &server.base_url)
    );
    let config = config(dir.path(), &models);

    let mut client = spawn(&config);
    client.initialize(dir.path(), &["utf-16"]);
    let mut assigned = Vec::new();
    for i in 0..6 {
        let uri = file_uri(&dir.path().join(format!("doc_{i}.py")));
        client.open(&uri, "python", DOC);
        let first = complete(&mut client, &uri);
        assert_eq!(first.len(), 1, "{uri}: {first:?}");
        let again = complete(&mut client, &uri);
        assert_eq!(again.len(), 1, "{uri}: {again:?}");
        assert_eq!(first[0].0, again[0].0, "{uri} changed model between requests");
        assigned.push(first[0].0.clone());
    }
    // With this session the six documents are split between the models
    // (the assignment is a fixed hash: this holds on every run).
    assert!(assigned.contains(&"small".to_owned()) && assigned.contains(&"remote".to_owned()), "{assigned:?}");
    let remote_documents = assigned.iter().filter(|model| *model == "remote").count();
    assert_eq!(server.completions().len(), 2 * remote_documents);
    let status = client.notification_where("weft/status", |params| params["health"] == "ready", LONG);
    assert_eq!(status["model"], "small|remote (ab)");
    assert!(client.shutdown().success());
}

#[test]
fn doctor_checks_every_model_of_the_list() {
    let server = OpenAiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let models = format!(
        "{}{}{}[comparison]\nmode = \"all\"\n",
        local("small"),
        remote("remote", "openai", &server.base_url),
        remote("down", "infill", "http://127.0.0.1:1"),
    );
    let config = config(dir.path(), &models);
    let output = Command::new(weft_binary())
        .args(["doctor", "--json"])
        .env("WEFT_CONFIG", &config)
        .env("WEFT_MODEL", "")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "the dead server fails the check: {out}");
    let findings: Value = serde_json::from_str(&out).unwrap();
    let find = |model: &str, check: &str| {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["model"] == model && f["check"] == check)
            .unwrap_or_else(|| panic!("no {check} finding for {model}: {out}"))
            .clone()
    };
    assert_eq!(find("small", "model file")["verdict"], "ok");
    assert_eq!(find("small", "prompt format")["verdict"], "warning", "SmolLM2 has no FIM tokens");
    assert_eq!(find("remote", "remote server")["verdict"], "ok");
    let down = find("down", "remote server");
    assert_eq!(down["verdict"], "failed");
    assert!(down["detail"].as_str().unwrap().contains("cannot be reached"), "{down}");
    // The model named in [[models]] is listed by the server: no warning.
    assert!(!out.contains("does not list"), "{out}");
}
