//! The server over an in-memory stream with a scripted provider: protocol
//! behaviour without a model. The real model is tested end to end in
//! `tests/`.

mod typing;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

use crate::provider::{CompletionInput, CompletionOutput, CompletionProvider, ProviderError};
use crate::server::{ServerConfig, serve};

/// What the scripted provider saw.
#[derive(Default)]
struct Log {
    inputs: Mutex<Vec<CompletionInput>>,
    cancelled: Mutex<usize>,
}

/// Answers by keywords in the prefix; records every input and cancellation.
struct Scripted(Arc<Log>);

impl CompletionProvider for Scripted {
    fn complete(
        &self,
        input: CompletionInput,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Vec<CompletionOutput>, ProviderError>> {
        let calls = {
            let mut inputs = self.0.inputs.lock().unwrap();
            inputs.push(input.clone());
            inputs.len()
        };
        if input.prefix.contains("SLOW") {
            // Like a real engine's worker, notice the cancel even after the
            // request's future is dropped.
            let log = self.0.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                *log.cancelled.lock().unwrap() += 1;
            });
        }
        async move {
            let output = |text: &str| CompletionOutput {
                id: "c1".into(),
                text: text.into(),
                model: "scripted".into(),
                latency_ms: 1.0,
                snippet_tokens: None,
                details: Value::Null,
            };
            if input.prefix.contains("PANIC") {
                panic!("scripted panic");
            } else if input.prefix.contains("BUSY") {
                Err(ProviderError::Busy("the inference queue is full".into()))
            } else if input.prefix.contains("FAIL") {
                Err(ProviderError::Failed("the model exploded".into()))
            } else if input.prefix.contains("SLOW") {
                cancel.cancelled().await;
                Err(ProviderError::Cancelled)
            } else if input.prefix.contains("LINES") {
                Ok(vec![output("one\ntwo")])
            } else if input.prefix.contains("SUGGEST") {
                Ok(vec![CompletionOutput { id: format!("s{calls}"), ..output("sum(values)") }])
            } else {
                Ok(vec![output("42")])
            }
        }
        .boxed()
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

struct Client {
    reader: BufReader<ReadHalf<DuplexStream>>,
    writer: WriteHalf<DuplexStream>,
    next_id: i64,
    notifications: Vec<Value>,
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

    async fn response(&mut self, id: i64) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.read()).await.expect("a response in time");
            if message.get("method").is_some() {
                self.notifications.push(message);
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

    async fn inline(&mut self, uri: &str, line: u32, character: u32) -> Value {
        self.call(
            "textDocument/inlineCompletion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character }, "context": { "triggerKind": 1 } }),
        )
        .await
    }
}

async fn start(encodings: &[&str]) -> (Client, Arc<Log>) {
    start_with(encodings, ServerConfig::default()).await
}

async fn start_with(encodings: &[&str], config: ServerConfig) -> (Client, Arc<Log>) {
    let log = Arc::new(Log::default());
    let (client_side, server_side) = tokio::io::duplex(1 << 16);
    let (server_read, server_write) = tokio::io::split(server_side);
    tokio::spawn(serve(server_read, server_write, Arc::new(Scripted(log.clone())), config));
    let (read, writer) = tokio::io::split(client_side);
    let mut client = Client { reader: BufReader::new(read), writer, next_id: 1, notifications: Vec::new() };
    let init =
        client.call("initialize", json!({ "capabilities": { "general": { "positionEncodings": encodings } } })).await;
    assert!(init.get("error").is_none(), "{init}");
    client.notify("initialized", json!({})).await;
    (client, log)
}

async fn open(client: &mut Client, uri: &str, text: &str) {
    client
        .notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": text } }),
        )
        .await;
}

#[tokio::test]
async fn a_panicking_provider_gives_an_internal_error_and_the_server_lives_on() {
    let (mut client, _) = start(&[]).await;
    open(&mut client, "file:///a.py", "PANIC = ").await;
    let response = client.inline("file:///a.py", 0, 8).await;
    assert_eq!(response["error"]["code"], -32603, "{response}");
    assert!(response["error"]["message"].as_str().unwrap().contains("scripted panic"));
    open(&mut client, "file:///b.py", "x = ").await;
    let response = client.inline("file:///b.py", 0, 4).await;
    assert_eq!(response["result"][0]["insertText"], "42", "{response}");
}

#[tokio::test]
async fn a_model_failure_is_an_error_and_one_message_to_the_user() {
    let (mut client, _) = start(&[]).await;
    open(&mut client, "file:///a.py", "FAIL").await;
    for _ in 0..2 {
        let response = client.inline("file:///a.py", 0, 4).await;
        assert_eq!(response["error"]["code"], -32803, "{response}");
        assert_eq!(response["error"]["message"], "the model exploded");
    }
    // A request after the messages flushes them through.
    client
        .call(
            "workspace/executeCommand",
            json!({ "command": "weft.completion.accepted", "arguments": [{ "id": "x" }] }),
        )
        .await;
    let shown: Vec<_> = client.notifications.iter().filter(|n| n["method"] == "window/showMessage").collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["params"]["message"], "Weft: the model exploded");
    assert_eq!(shown[0]["params"]["type"], 1);
}

#[tokio::test]
async fn an_overloaded_engine_is_an_error_without_a_popup() {
    let (mut client, _) = start(&[]).await;
    open(&mut client, "file:///a.py", "BUSY").await;
    let response = client.inline("file:///a.py", 0, 4).await;
    assert_eq!(response["error"]["code"], -32803, "{response}");
    assert!(client.notifications.iter().all(|n| n["method"] != "window/showMessage"));
}

#[tokio::test]
async fn cancel_request_reaches_the_provider() {
    let (mut client, provider) = start(&[]).await;
    open(&mut client, "file:///slow.py", "SLOW").await;
    let before = *provider.cancelled.lock().unwrap();
    let id = client
        .request(
            "textDocument/inlineCompletion",
            json!({ "textDocument": { "uri": "file:///slow.py" }, "position": { "line": 0, "character": 4 }, "context": { "triggerKind": 1 } }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.notify("$/cancelRequest", json!({ "id": id })).await;
    let response = client.response(id).await;
    assert_eq!(response["error"]["code"], -32800, "{response}");
    // The provider saw its token cancelled (the drop guard fired).
    for _ in 0..100 {
        if *provider.cancelled.lock().unwrap() > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the provider was not cancelled");
}

#[tokio::test]
async fn incremental_edits_reach_the_provider_in_utf16() {
    let (mut client, provider) = start(&["utf-16"]).await;
    open(&mut client, "file:///e.py", "s = '🦀'\n").await;
    // Insert after the crab: the crab is two UTF-16 units.
    client
        .notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": "file:///e.py", "version": 2 },
                "contentChanges": [{ "range": { "start": { "line": 0, "character": 7 }, "end": { "line": 0, "character": 7 } }, "text": "é" }]
            }),
        )
        .await;
    let response = client.inline("file:///e.py", 0, 8).await;
    assert_eq!(response["result"][0]["range"]["start"], json!({ "line": 0, "character": 8 }), "{response}");
    let input = provider.inputs.lock().unwrap().last().cloned().unwrap();
    assert_eq!(input.prefix, "s = '🦀é");
    assert_eq!(input.suffix, "'\n");
}

#[tokio::test]
async fn crlf_documents_get_crlf_completions() {
    let (mut client, provider) = start(&[]).await;
    open(&mut client, "file:///w.py", "a = 1\r\nLINES\r\nz = 2\r\n").await;
    let response = client.inline("file:///w.py", 1, 5).await;
    assert_eq!(response["result"][0]["insertText"], "one\r\ntwo", "{response}");
    let input = provider.inputs.lock().unwrap().last().cloned().unwrap();
    assert_eq!(input.prefix, "a = 1\nLINES");
    assert_eq!(input.suffix, "\nz = 2\n");
}

#[tokio::test]
async fn completion_items_edit_exactly_at_the_cursor() {
    let (mut client, _) = start(&["utf-8"]).await;
    open(&mut client, "file:///c.py", "ñ = ").await;
    let response = client
        .call(
            "textDocument/completion",
            json!({ "textDocument": { "uri": "file:///c.py" }, "position": { "line": 0, "character": 5 } }),
        )
        .await;
    let item = &response["result"]["items"][0];
    let cursor = json!({ "line": 0, "character": 5 });
    assert_eq!(item["textEdit"]["range"], json!({ "start": cursor, "end": cursor }), "{response}");
    assert_eq!(item["textEdit"]["newText"], "42");
    assert_eq!(item["command"]["command"], "weft.completion.accepted");
    assert_eq!(response["result"]["isIncomplete"], true);
}
