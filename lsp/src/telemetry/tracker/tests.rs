//! The tracker with a recording sink and millisecond snapshot delays.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ropey::Rope;

use super::*;
use crate::document::{Document, DocumentStore};
use crate::position::{LspPosition, PositionEncoding};
use crate::telemetry::{RequestTrigger, TelemetrySink};

#[derive(Default)]
struct Recorded(Mutex<Vec<TelemetryEvent>>);

impl TelemetrySink for Recorded {
    fn record(&self, event: TelemetryEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorded {
    fn outcomes(&self) -> Vec<Outcome> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match &e.data {
                TelemetryData::Outcome(o) => Some(o.outcome),
                _ => None,
            })
            .collect()
    }

    fn snapshots(&self) -> Vec<SnapshotFacts> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match &e.data {
                TelemetryData::GroundTruth(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits (up to 10 s) until `n` snapshots are recorded.
    async fn wait_for_snapshots(&self, n: usize) -> Vec<SnapshotFacts> {
        for _ in 0..1000 {
            if self.snapshots().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.snapshots()
    }
}

const URI: &str = "file:///w/a.py";

fn tracker(sink: Arc<Recorded>) -> CompletionTracker {
    CompletionTracker::new(TelemetrySettings {
        sink,
        share_code: false,
        ground_truth: true,
        behaviour: true,
        snapshots: vec![(30, Duration::from_millis(20)), (120, Duration::from_millis(40))],
    })
}

fn request() -> RequestFacts {
    RequestFacts {
        completion_id: Uuid::new_v4(),
        trigger: RequestTrigger::Automatic,
        language_id: "python".into(),
        file_extension: Some("py".into()),
        caret_line: 0,
        document_chars: 8,
        caret_char: 8,
        prefix_chars: 8,
        suffix_chars: 0,
        context_bytes: Vec::new(),
        context_tokens: None,
        behaviour: None,
        prefix: None,
        suffix: None,
    }
}

fn output(id: &str, text: &str) -> CompletionOutput {
    CompletionOutput {
        id: id.into(),
        text: text.into(),
        model: "m".into(),
        latency_ms: 1.0,
        snippet_tokens: None,
        details: serde_json::Value::Null,
    }
}

/// A document and the edits that type `text` at the end of line 0.
struct Doc(DocumentStore);

impl Doc {
    fn new(text: &str) -> Doc {
        let mut store = DocumentStore::new();
        store.open(URI, Document::new(text, 1, "python"));
        Doc(store)
    }

    fn insert(&mut self, tracker: &CompletionTracker, character: u32, text: &str) {
        let at = LspPosition { line: 0, character };
        let change = crate::document::ContentChange { range: Some((at, at)), text: text.into() };
        let edits = self.0.change(URI, 2, &[change], PositionEncoding::Utf16).unwrap();
        let rope: &Rope = self.0.get(URI).unwrap().text();
        tracker.edited(URI, &edits, rope, text.chars().count());
    }
}

#[tokio::test]
async fn an_accepted_completion_is_snapshotted_as_it_reads_later() {
    let sink = Arc::new(Recorded::default());
    let tracker = tracker(sink.clone());
    let mut doc = Doc::new("x = add(\n");
    tracker.answered(SystemTime::now(), request(), URI, 8, &[output("c1", "1, 2)")]);
    tracker.shown("c1");
    // The client inserts the text, then runs the command; the user edits
    // the accepted text and types on after it.
    doc.insert(&tracker, 8, "1, 2)");
    tracker.accepted("c1");
    doc.insert(&tracker, 8, "0");
    doc.insert(&tracker, 14, "  # sum");
    let snapshots = sink.wait_for_snapshots(2).await;
    assert_eq!(sink.outcomes(), [Outcome::Shown, Outcome::Accepted]);
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert_eq!((snapshots[0].after_secs, snapshots[1].after_secs), (30, 120));
    for s in &snapshots {
        assert!(s.accepted);
        assert_eq!(s.text, "01, 2)");
    }
}

#[tokio::test]
async fn typing_something_else_is_typed_over_and_snapshotted_as_rejected() {
    let sink = Arc::new(Recorded::default());
    let tracker = tracker(sink.clone());
    let mut doc = Doc::new("x = add(\n");
    tracker.answered(SystemTime::now(), request(), URI, 8, &[output("c1", "1, 2)\ny = 3")]);
    tracker.shown("c1");
    doc.insert(&tracker, 8, "1");
    assert_eq!(sink.outcomes(), [Outcome::Shown], "typing along the suggestion is not typing over it");
    doc.insert(&tracker, 9, "0)\nz = 4\nw = 5");
    assert_eq!(sink.outcomes(), [Outcome::Shown, Outcome::TypedOver]);
    let snapshots = sink.wait_for_snapshots(2).await;
    assert!(!snapshots[0].accepted);
    // As many lines as the completion had.
    assert_eq!(snapshots[0].text, "10)\nz = 4");
}

#[tokio::test]
async fn a_newer_completion_supersedes_a_shown_one_and_dismissal_is_reported_once() {
    let sink = Arc::new(Recorded::default());
    let tracker = tracker(sink.clone());
    tracker.answered(SystemTime::now(), request(), URI, 8, &[output("c1", "a")]);
    tracker.shown("c1");
    tracker.answered(SystemTime::now(), request(), URI, 8, &[output("c2", "b")]);
    tracker.shown("c2");
    tracker.dismissed("c2");
    tracker.dismissed("c2");
    tracker.dismissed("unknown");
    tracker.partially_accepted("c1", 1);
    assert_eq!(
        sink.outcomes(),
        [
            Outcome::Shown,
            Outcome::Superseded,
            Outcome::Shown,
            Outcome::Dismissed,
            Outcome::PartiallyAccepted { chars: 1 }
        ]
    );
}

#[tokio::test]
async fn a_partial_acceptance_of_a_typed_ahead_rest_counts_the_typed_characters() {
    let sink = Arc::new(Recorded::default());
    let tracker = tracker(sink.clone());
    tracker.answered(SystemTime::now(), request(), URI, 8, &[output("c1", "sum(values)")]);
    tracker.shown("c1");
    // The user typed `su`; the item showed `m(values)`, of which `m(` was
    // accepted.
    tracker.partially_accepted_rest("c1", "m(values)", 2);
    assert_eq!(sink.outcomes(), [Outcome::Shown, Outcome::PartiallyAccepted { chars: 4 }]);
}

#[test]
fn utf16_lengths_become_characters() {
    assert_eq!(chars_in_utf16_prefix("🦀 ok", 2), 1);
    assert_eq!(chars_in_utf16_prefix("🦀 ok", 3), 2);
    assert_eq!(chars_in_utf16_prefix("ab", 10), 2);
    assert_eq!(file_extension("file:///w/Main.RS").as_deref(), Some("rs"));
    assert_eq!(file_extension("file:///w/.bashrc"), None);
    assert_eq!(file_extension("untitled:Untitled-1"), None);
}

#[tokio::test]
async fn a_closed_document_keeps_its_last_text_for_the_snapshots() {
    let sink = Arc::new(Recorded::default());
    let tracker = tracker(sink.clone());
    let mut doc = Doc::new("x = add(\n");
    tracker.answered(SystemTime::now(), request(), URI, 8, &[output("c1", "1, 2)")]);
    doc.insert(&tracker, 8, "1, 2)");
    tracker.accepted("c1");
    tracker.closed(URI);
    // Reopened with other text: its edits are not this completion's.
    let mut doc = Doc::new("print(\n");
    doc.insert(&tracker, 0, "zzz");
    let snapshots = sink.wait_for_snapshots(2).await;
    assert!(snapshots.iter().all(|s| s.text == "1, 2)"), "{snapshots:?}");
}
