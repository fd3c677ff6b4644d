//! Typing-aware scheduling over the in-memory stream: the debounce, driven
//! by a hand-moved clock (no test waits on real time), and typed-ahead
//! answers, counted through the scripted provider's calls.

use std::time::Instant;

use tokio::sync::{Notify, watch};

use super::*;
use crate::server::{Clock, Debounce};

/// A clock that moves only when a test moves it, and tells the test when
/// the server starts to wait on it.
#[derive(Debug)]
struct ManualClock {
    now: watch::Sender<Instant>,
    /// Deadlines the server waits for, newest last.
    sleeps: Mutex<Vec<Instant>>,
    slept: Notify,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: watch::Sender::new(Instant::now()),
            sleeps: Mutex::default(),
            slept: Notify::new(),
        })
    }

    fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }

    /// The deadline of the next wait the server begins.
    async fn next_sleep(&self) -> Instant {
        loop {
            if let Some(deadline) = self.sleeps.lock().unwrap().pop() {
                return deadline;
            }
            tokio::time::timeout(Duration::from_secs(10), self.slept.notified()).await.expect("a debounce wait");
        }
    }

    fn waits(&self) -> usize {
        self.sleeps.lock().unwrap().len()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.sleeps.lock().unwrap().push(deadline);
        self.slept.notify_one();
        let mut now = self.now.subscribe();
        async move {
            let _ = now.wait_for(|now| *now >= deadline).await;
        }
        .boxed()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn start_clocked(debounce: Debounce) -> (Client, Arc<Log>, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let config = ServerConfig { debounce, clock: clock.clone(), cross_file: false, ..ServerConfig::default() };
    let (client, log) = start_with(&["utf-16"], config).await;
    (client, log, clock)
}

fn calls(log: &Log) -> usize {
    log.inputs.lock().unwrap().len()
}

impl Client {
    async fn insert(&mut self, uri: &str, version: i32, line: u32, character: u32, text: &str) {
        let at = json!({ "line": line, "character": character });
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": uri, "version": version },
                "contentChanges": [{ "range": { "start": at, "end": at }, "text": text }]
            }),
        )
        .await;
        // A round trip: the server has taken the edit before the test goes
        // on (and moves the clock).
        self.call(
            "workspace/executeCommand",
            json!({ "command": "weft.completion.accepted", "arguments": [{ "id": "-" }] }),
        )
        .await;
    }

    /// Sends an inline completion request; `automatic` is trigger kind 2.
    async fn request_inline(&mut self, uri: &str, line: u32, character: u32, automatic: bool) -> i64 {
        let kind = if automatic { 2 } else { 1 };
        self.request(
            "textDocument/inlineCompletion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character }, "context": { "triggerKind": kind } }),
        )
        .await
    }
}

const URI: &str = "file:///t.py";

#[tokio::test]
async fn a_fixed_debounce_holds_an_automatic_request_until_the_document_is_still() {
    let (mut client, log, clock) = start_clocked(Debounce::Fixed(ms(100))).await;
    open(&mut client, URI, "x = ").await;
    client.insert(URI, 2, 0, 4, "1").await;
    let edited = clock.now();
    let id = client.request_inline(URI, 0, 5, true).await;
    assert_eq!(clock.next_sleep().await, edited + ms(100));
    // The request waits, and the model has not been asked.
    assert_eq!(calls(&log), 0);
    clock.advance(ms(100));
    let response = client.response(id).await;
    assert_eq!(response["result"][0]["insertText"], "42", "{response}");
    assert_eq!(calls(&log), 1);
}

#[tokio::test]
async fn an_invoked_request_is_never_debounced() {
    let (mut client, log, clock) = start_clocked(Debounce::Fixed(ms(100))).await;
    open(&mut client, URI, "x = ").await;
    client.insert(URI, 2, 0, 4, "1").await;
    // The clock does not move: an answer means no wait.
    let id = client.request_inline(URI, 0, 5, false).await;
    let response = client.response(id).await;
    assert_eq!(response["result"][0]["insertText"], "42", "{response}");
    assert_eq!((calls(&log), clock.waits()), (1, 0));
}

#[tokio::test]
async fn zero_turns_the_debounce_off() {
    let (mut client, log, clock) = start_clocked(Debounce::Fixed(Duration::ZERO)).await;
    open(&mut client, URI, "x = ").await;
    client.insert(URI, 2, 0, 4, "1").await;
    let id = client.request_inline(URI, 0, 5, true).await;
    let response = client.response(id).await;
    assert_eq!(response["result"][0]["insertText"], "42", "{response}");
    assert_eq!((calls(&log), clock.waits()), (1, 0));
}

#[tokio::test]
async fn a_request_superseded_during_its_debounce_never_reaches_the_provider() {
    let (mut client, log, clock) = start_clocked(Debounce::Fixed(ms(100))).await;
    open(&mut client, URI, "x = ").await;
    client.insert(URI, 2, 0, 4, "1").await;
    let first = client.request_inline(URI, 0, 5, true).await;
    clock.next_sleep().await;
    client.insert(URI, 3, 0, 5, "2").await;
    // The next keystroke's request supersedes the waiting one.
    let second = client.request_inline(URI, 0, 6, true).await;
    let first = client.response(first).await;
    assert_eq!(first["result"], Value::Null, "{first}");
    assert_eq!(calls(&log), 0);
    clock.next_sleep().await;
    clock.advance(ms(100));
    let second = client.response(second).await;
    assert_eq!(second["result"][0]["insertText"], "42", "{second}");
    // Only the second request reached the model, with the newer text.
    let inputs = log.inputs.lock().unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].prefix, "x = 12");
}

#[tokio::test]
async fn the_adaptive_debounce_follows_the_typing_rhythm() {
    let (mut client, log, clock) = start_clocked(Debounce::Adaptive).await;
    open(&mut client, URI, "x = ").await;
    // Four keystrokes 80 ms apart: a typical interval of 80 ms.
    for (i, digit) in ["1", "2", "3", "4"].into_iter().enumerate() {
        if i > 0 {
            clock.advance(ms(80));
        }
        client.insert(URI, i as i32 + 2, 0, 4 + i as u32, digit).await;
    }
    let last_edit = clock.now();
    clock.advance(ms(5));
    let id = client.request_inline(URI, 0, 8, true).await;
    // 1.5 × 80 ms after the last keystroke.
    assert_eq!(clock.next_sleep().await, last_edit + ms(120));
    assert_eq!(calls(&log), 0);
    clock.advance(ms(115));
    let response = client.response(id).await;
    assert_eq!(response["result"][0]["insertText"], "42", "{response}");

    // After a pause, an automatic request goes straight to the model.
    clock.advance(ms(2000));
    let id = client.request_inline(URI, 0, 8, true).await;
    let response = client.response(id).await;
    assert_eq!(response["result"][0]["insertText"], "42", "{response}");
    assert_eq!((calls(&log), clock.waits()), (2, 0));
}

/// A document whose requests suggest `sum(values)`; the cursor is at the
/// end of line 1.
const SUGGESTING: &str = "# SUGGEST\ntotal = \npass\n";

#[tokio::test]
async fn typing_the_start_of_a_suggestion_is_answered_without_the_provider() {
    let (mut client, log, _clock) = start_clocked(Debounce::Fixed(Duration::ZERO)).await;
    open(&mut client, URI, SUGGESTING).await;
    let first = client.inline(URI, 1, 8).await;
    assert_eq!(first["result"][0]["insertText"], "sum(values)", "{first}");
    assert_eq!(first["result"][0]["command"]["arguments"][0]["id"], "s1");
    assert_eq!(calls(&log), 1);

    client.insert(URI, 2, 1, 8, "s").await;
    let id = client.request_inline(URI, 1, 9, true).await;
    let response = client.response(id).await;
    let item = &response["result"][0];
    assert_eq!(item["insertText"], "um(values)", "{response}");
    assert_eq!(item["range"]["start"], json!({ "line": 1, "character": 9 }));
    // The same completion: acceptance links to the first generation.
    assert_eq!(item["command"]["arguments"][0], json!({ "id": "s1", "model": "scripted", "typedAhead": true }));

    // Several characters in one edit, and a `textDocument/completion`.
    client.insert(URI, 3, 1, 9, "um").await;
    let response = client
        .call(
            "textDocument/completion",
            json!({ "textDocument": { "uri": URI }, "position": { "line": 1, "character": 11 } }),
        )
        .await;
    let item = &response["result"]["items"][0];
    assert_eq!(item["textEdit"]["newText"], "(values)", "{response}");
    assert_eq!(item["detail"], "scripted · typed ahead");
    assert_eq!(item["command"]["arguments"][0]["id"], "s1");
    assert_eq!(calls(&log), 1, "the provider was asked again");
}

#[tokio::test]
async fn other_edits_forget_the_suggestion() {
    let (mut client, log, _clock) = start_clocked(Debounce::Fixed(Duration::ZERO)).await;
    open(&mut client, URI, SUGGESTING).await;
    client.inline(URI, 1, 8).await;
    assert_eq!(calls(&log), 1);
    let id_at = |response: &Value| response["result"][0]["command"]["arguments"][0]["id"].clone();

    // A character the suggestion does not continue with.
    client.insert(URI, 2, 1, 8, "x").await;
    let response = client.inline(URI, 1, 9).await;
    assert_eq!(response["result"][0]["insertText"], "sum(values)", "{response}");
    assert_eq!((id_at(&response), calls(&log)), (json!("s2"), 2));

    // The right character, then an insertion after the cursor.
    client.insert(URI, 3, 1, 9, "s").await;
    client.insert(URI, 4, 2, 0, "#").await;
    let response = client.inline(URI, 1, 10).await;
    assert_eq!((id_at(&response), calls(&log)), (json!("s3"), 3), "{response}");

    // The right character, then a deletion after the cursor.
    client.insert(URI, 5, 1, 10, "s").await;
    client
        .notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": URI, "version": 6 },
                "contentChanges": [{ "range": { "start": { "line": 2, "character": 0 }, "end": { "line": 2, "character": 1 } }, "text": "" }]
            }),
        )
        .await;
    let response = client.inline(URI, 1, 11).await;
    assert_eq!((id_at(&response), calls(&log)), (json!("s4"), 4), "{response}");

    // The right character, then the document is closed and opened again.
    client.insert(URI, 7, 1, 11, "s").await;
    client.notify("textDocument/didClose", json!({ "textDocument": { "uri": URI } })).await;
    open(&mut client, URI, "# SUGGEST\ntotal = xsss\npass\n").await;
    let response = client.inline(URI, 1, 12).await;
    assert_eq!((id_at(&response), calls(&log)), (json!("s5"), 5), "{response}");

    // Without such an edit the same typing is answered from the suggestion.
    client.insert(URI, 2, 1, 12, "s").await;
    let response = client.inline(URI, 1, 13).await;
    assert_eq!((id_at(&response), calls(&log)), (json!("s5"), 5), "{response}");
    assert_eq!(response["result"][0]["insertText"], "um(values)");
}
