//! End-to-end test support: a minimal LSP client that runs the real `weft`
//! binary over stdio or connects to `weft lsp --listen` over TCP, and the
//! locations of the real test assets.
//!
//! The client is deliberately small and strict: every byte the server writes
//! to stdout must be a well-formed LSP frame, so a stray `println!` in the
//! server fails the tests.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `weft` binary built by `cargo build` (`$WEFT_BIN` overrides).
pub fn weft_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("WEFT_BIN") {
        return PathBuf::from(bin);
    }
    // Test executables live in target/<profile>/deps/, the demo binary in
    // target/<profile>/ beside `weft`.
    let exe = std::env::current_exe().expect("test executable path");
    let name = format!("weft{}", std::env::consts::EXE_SUFFIX);
    let beside = exe.parent().expect("executable folder").join(&name);
    if beside.is_file() {
        return beside;
    }
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>").join(&name);
    assert!(bin.is_file(), "{} is missing: run `cargo build --workspace` (make test does) first", bin.display());
    bin
}

fn cache_dir() -> PathBuf {
    std::env::var_os("WEFT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/weft"))
}

/// SmolLM2-135M-Instruct (`$WEFT_TEST_MODEL` overrides), fetched by
/// `models/fetch-test-assets.sh`.
pub fn test_model() -> PathBuf {
    let path = std::env::var_os("WEFT_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(path.is_file(), "test model {} is missing: run `make assets`", path.display());
    path
}

/// A vocab-only GGUF of llama.cpp (`ggml-vocab-{name}.gguf`), fetched by
/// `models/fetch-test-assets.sh` (`$WEFT_VOCAB_DIR` overrides the folder).
pub fn vocab_file(name: &str) -> PathBuf {
    let dir = std::env::var_os("WEFT_VOCAB_DIR").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("vocab"));
    let path = dir.join(format!("ggml-vocab-{name}.gguf"));
    assert!(path.is_file(), "{} is missing: run `make assets`", path.display());
    path
}

/// A fixture directory under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A `file://` URI for an absolute path.
pub fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file://");
    for byte in path.to_string_lossy().bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => uri.push(byte as char),
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri
}

/// A running `weft lsp` and the client side of its stdio, or a TCP
/// connection to `weft lsp --listen` ([`LspClient::connect`]).
pub struct LspClient {
    /// The server process, when the client runs it over stdio.
    child: Option<Child>,
    stdin: Box<dyn Write + Send>,
    messages: Receiver<Value>,
    /// Messages received while waiting for something else.
    pending: VecDeque<Value>,
    /// Notifications from the server, in order.
    pub notifications: Vec<Value>,
    next_id: i64,
}

impl LspClient {
    /// Starts `weft lsp` with `args` and `env`.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> LspClient {
        let mut command = Command::new(weft_binary());
        command.arg("lsp").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        // Tests must not read the developer's own configuration.
        command.env("WEFT_CONFIG", fixture("empty-config.toml"));
        command.env("WEFT_LOG", "info");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn weft lsp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        LspClient::over(Some(child), Box::new(stdin), stdout)
    }

    /// Connects to a `weft lsp --listen` server: a session of its own.
    pub fn connect(address: SocketAddr) -> LspClient {
        let stream = TcpStream::connect(address).unwrap_or_else(|err| panic!("connect to {address}: {err}"));
        stream.set_nodelay(true).expect("nodelay");
        let reader = stream.try_clone().expect("clone the TCP stream");
        LspClient::over(None, Box::new(stream), reader)
    }

    fn over(child: Option<Child>, stdin: Box<dyn Write + Send>, stdout: impl std::io::Read + Send + 'static) -> Self {
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_frame(&mut reader) {
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        LspClient { child, stdin, messages, pending: VecDeque::new(), notifications: Vec::new(), next_id: 1 }
    }

    fn send(&mut self, message: &Value) {
        let body = serde_json::to_string(message).expect("json");
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write to weft");
        self.stdin.flush().expect("flush");
    }

    /// Sends a request and returns its id.
    pub fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        id
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends raw bytes, for malformed-input tests.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).expect("write");
        self.stdin.flush().expect("flush");
    }

    /// Waits for the response to request `id`, answering the server's own
    /// requests (progress tokens, configuration) on the way.
    pub fn response(&mut self, id: i64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        if let Some(i) = self.pending.iter().position(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
        {
            return self.pending.remove(i).expect("present");
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match self.messages.recv_timeout(left) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => panic!("no response to request {id} within {timeout:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("weft exited before answering request {id}"),
            };
            if message.get("method").is_some() {
                self.handle_server_message(message);
                continue;
            }
            if message.get("id") == Some(&json!(id)) {
                return message;
            }
            self.pending.push_back(message);
        }
    }

    /// Sends a request and waits for its response.
    pub fn call(&mut self, method: &str, params: Value, timeout: Duration) -> Value {
        let id = self.request(method, params);
        self.response(id, timeout)
    }

    /// Waits for a notification with `method` and returns its params.
    pub fn notification(&mut self, method: &str, timeout: Duration) -> Value {
        self.notification_where(method, |_| true, timeout)
    }

    /// Waits for a notification with `method` whose params satisfy `matches`
    /// (among those received so far, then new ones) and returns its params.
    pub fn notification_where(&mut self, method: &str, matches: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        if let Some(found) = self.notifications.iter().find(|n| n["method"] == method && matches(&n["params"])) {
            return found["params"].clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {method} notification within {timeout:?}"));
            if message.get("method").is_some() {
                let matched = message["method"] == method && message.get("id").is_none() && matches(&message["params"]);
                let params = message["params"].clone();
                self.handle_server_message(message);
                if matched {
                    return params;
                }
            } else {
                self.pending.push_back(message);
            }
        }
    }

    fn handle_server_message(&mut self, message: Value) {
        if let Some(id) = message.get("id").cloned() {
            // A request from the server: accept it (an edit as applied, anything
            // else with a null result).
            let result =
                if message["method"] == "workspace/applyEdit" { json!({ "applied": true }) } else { Value::Null };
            self.send(&json!({ "jsonrpc": "2.0", "id": id, "result": result }));
        }
        self.notifications.push(message);
    }

    /// `initialize` + `initialized` with the given position encodings and
    /// workspace root; returns the initialize result.
    pub fn initialize(&mut self, root: &Path, encodings: &[&str]) -> Value {
        let params = json!({
            "processId": std::process::id(),
            "rootUri": file_uri(root),
            "workspaceFolders": [{ "uri": file_uri(root), "name": "workspace" }],
            "capabilities": {
                "general": { "positionEncodings": encodings },
                "textDocument": { "inlineCompletion": {}, "completion": { "completionItem": {} } },
                "window": { "workDoneProgress": true }
            }
        });
        let response = self.call("initialize", params, Duration::from_secs(30));
        assert!(response.get("error").is_none(), "initialize failed: {response}");
        self.notify("initialized", json!({}));
        response["result"].clone()
    }

    pub fn open(&mut self, uri: &str, language_id: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": language_id, "version": 1, "text": text } }),
        );
    }

    /// `shutdown` then `exit`; returns the exit status.
    pub fn shutdown(mut self) -> ExitStatus {
        let response = self.call("shutdown", Value::Null, Duration::from_secs(30));
        assert!(response.get("error").is_none(), "shutdown failed: {response}");
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child().try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "weft did not exit after `exit`");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `shutdown` then `exit` on a TCP session: the server closes the
    /// connection (and keeps serving others).
    pub fn disconnect(mut self) {
        let response = self.call("shutdown", Value::Null, Duration::from_secs(30));
        assert!(response.get("error").is_none(), "shutdown failed: {response}");
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => panic!("weft did not close the connection after `exit`"),
            }
        }
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child().try_wait().expect("wait").is_none()
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("a client over stdio (a TCP client has no process)")
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `weft lsp --listen 127.0.0.1:0` and the address it bound.
pub struct LspListener {
    child: Child,
    address: SocketAddr,
}

impl LspListener {
    /// Starts `weft lsp --listen 127.0.0.1:0` with `args` and `env`, and
    /// waits for the address it prints. Its stderr goes on to the test's.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> LspListener {
        let mut command = Command::new(weft_binary());
        command.args(["lsp", "--listen", "127.0.0.1:0"]).args(args);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        command.env("WEFT_CONFIG", fixture("empty-config.toml"));
        command.env("WEFT_LOG", "info");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn weft lsp --listen");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, bound) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("weft lsp: listening on ") {
                    let _ = tx.send(address.trim().to_owned());
                }
                eprintln!("{line}");
            }
        });
        let address = bound.recv_timeout(Duration::from_secs(60)).expect("weft lsp prints the address it listens on");
        let address = address.parse().unwrap_or_else(|_| panic!("not an address: {address:?}"));
        LspListener { child, address }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

impl Drop for LspListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one LSP frame; `None` at end of stream. Panics on a malformed
/// frame: the server must write nothing else to stdout.
fn read_frame(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                length = Some(value.trim().parse::<usize>().expect("content length"));
            }
            Some((name, _)) if name.eq_ignore_ascii_case("content-type") => {}
            _ => panic!("weft wrote a non-LSP line to stdout: {line:?}"),
        }
    }
    let mut body = vec![0; length.expect("Content-Length header")];
    reader.read_exact(&mut body).ok()?;
    Some(serde_json::from_slice(&body).expect("a JSON body"))
}

/// Converts a character index in `line` to a column in `encoding`.
pub fn column(line: &str, chars: usize, encoding: &str) -> usize {
    let prefix: String = line.chars().take(chars).collect();
    match encoding {
        "utf-8" => prefix.len(),
        "utf-32" => prefix.chars().count(),
        _ => prefix.encode_utf16().count(),
    }
}
