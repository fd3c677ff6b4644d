//! Completion telemetry, as plain data.
//!
//! The server reports what happens to its completions — requested,
//! generated, shown, accepted (fully or partly), dismissed, typed over,
//! superseded — and what the document holds at a completion's place some
//! time later (ground truth), to a [`TelemetrySink`]. This crate knows
//! nothing of where the events go: the `weft` binary implements the sink
//! with a queue, a disk spool and an HTTP sender.
//!
//! **Invariant:** recording never waits. [`TelemetrySink::record`] must
//! return at once (no disk, no network), and the completion path only
//! records; ground-truth snapshots run on timers of their own.

mod region;
mod tracker;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

pub use region::TrackedRegion;
pub use tracker::{CompletionTracker, file_extension};

use crate::context::{Snippet, SnippetSource};
use crate::document::Document;
use crate::server::PromptWindows;

/// The nominal delays of ground-truth snapshots, in seconds; the telemetry
/// API accepts these labels only.
pub const SNAPSHOT_LABELS_SECS: [u32; 4] = [30, 120, 300, 600];

/// Where telemetry events go. Implementations must not block.
pub trait TelemetrySink: Send + Sync + 'static {
    fn record(&self, event: TelemetryEvent);
}

/// What the server records, and when.
#[derive(Clone)]
pub struct TelemetrySettings {
    pub sink: Arc<dyn TelemetrySink>,
    /// Whether the prefix and suffix text of requests is passed to the sink
    /// (consent for the `code` category).
    pub share_code: bool,
    /// Whether ground-truth snapshots are taken (they hold document text).
    pub ground_truth: bool,
    /// Whether typing speed and the time since the last shown and accepted
    /// completion go with requests.
    pub behaviour: bool,
    /// When the snapshots are taken, after display (rejected completions)
    /// or acceptance, each with its nominal label in seconds (one of
    /// [`SNAPSHOT_LABELS_SECS`]). Tests use short delays.
    pub snapshots: Vec<(u32, Duration)>,
}

impl TelemetrySettings {
    /// The production schedule: 30, 120, 300 and 600 seconds.
    pub fn default_snapshots() -> Vec<(u32, Duration)> {
        SNAPSHOT_LABELS_SECS.iter().map(|&secs| (secs, Duration::from_secs(u64::from(secs)))).collect()
    }
}

impl fmt::Debug for TelemetrySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetrySettings")
            .field("share_code", &self.share_code)
            .field("ground_truth", &self.ground_truth)
            .field("behaviour", &self.behaviour)
            .field("snapshots", &self.snapshots)
            .finish_non_exhaustive()
    }
}

/// One telemetry event: when it happened and what.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryEvent {
    pub at: SystemTime,
    pub data: TelemetryData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TelemetryData {
    /// The client named itself in `initialize`.
    Client {
        name: String,
        version: Option<String>,
    },
    Requested(RequestFacts),
    Generated(GenerationFacts),
    Outcome(OutcomeFacts),
    GroundTruth(SnapshotFacts),
}

/// How a request was triggered, as telemetry tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestTrigger {
    Automatic,
    Invoked,
    TriggerCharacter,
}

/// A completion request and the shape of its context.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestFacts {
    /// Chosen when the request starts; every later event of it uses it.
    pub completion_id: Uuid,
    pub trigger: RequestTrigger,
    pub language_id: String,
    /// Without the dot.
    pub file_extension: Option<String>,
    /// Zero-based.
    pub caret_line: u32,
    /// Characters (Unicode scalar values) in the document.
    pub document_chars: u32,
    /// Characters before the caret.
    pub caret_char: u32,
    /// Characters of the prefix and suffix windows given to the engine.
    pub prefix_chars: u32,
    pub suffix_chars: u32,
    /// Extra context by source (`definition`, `module`, `scope`, `similar`)
    /// in bytes; the retrieval budget is in bytes.
    pub context_bytes: Vec<(String, u32)>,
    /// The prompt tokens of that context by source, when the engine counts
    /// them (snippets left out to fit the budget count 0).
    pub context_tokens: Option<Vec<(String, u32)>>,
    /// Only with [`TelemetrySettings::behaviour`].
    pub behaviour: Option<BehaviourFacts>,
    /// The windows' text; only with [`TelemetrySettings::share_code`].
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// What the user was doing when the request started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BehaviourFacts {
    /// Characters typed per second over the last few seconds.
    pub typing_speed_cps: Option<f64>,
    pub since_last_shown: Option<Duration>,
    pub since_last_accepted: Option<Duration>,
}

/// One output of the engine for a request.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationFacts {
    pub completion_id: Uuid,
    pub model: String,
    pub text: String,
    pub latency_ms: f64,
    /// The engine's own details (`CompletionOutput::details`).
    pub details: serde_json::Value,
}

/// What became of one shown completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Shown,
    Accepted,
    /// A prefix of this many characters was accepted.
    PartiallyAccepted {
        chars: u32,
    },
    Dismissed,
    TypedOver,
    Superseded,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeFacts {
    pub completion_id: Uuid,
    pub model: String,
    pub outcome: Outcome,
}

/// The document at a completion's place some time after it was shown or
/// accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotFacts {
    pub completion_id: Uuid,
    pub model: String,
    /// The nominal delay (one of [`SNAPSHOT_LABELS_SECS`]).
    pub after_secs: u32,
    /// Whether the completion had been accepted, fully or in part.
    pub accepted: bool,
    pub text: String,
}

/// The facts of a request at a cursor (`char_idx` in `document`), with the
/// code and behaviour the settings allow. Context sources are filled in
/// after retrieval ([`context_bytes`]).
pub(crate) fn request_facts(
    tracker: &CompletionTracker,
    uri: &str,
    document: &Document,
    char_idx: usize,
    windows: &PromptWindows,
    trigger: RequestTrigger,
) -> RequestFacts {
    let rope = document.text();
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let share = tracker.shares_code();
    RequestFacts {
        completion_id: Uuid::new_v4(),
        trigger,
        language_id: document.language_id().to_owned(),
        file_extension: file_extension(uri),
        caret_line: clamp(rope.char_to_line(char_idx)),
        document_chars: clamp(rope.len_chars()),
        caret_char: clamp(char_idx),
        prefix_chars: clamp(windows.prefix.chars().count()),
        suffix_chars: clamp(windows.suffix.chars().count()),
        context_bytes: Vec::new(),
        context_tokens: None,
        behaviour: tracker.behaviour(),
        prefix: share.then(|| windows.prefix.clone()),
        suffix: share.then(|| windows.suffix.clone()),
    }
}

/// Bytes of retrieved context per source, in a stable order.
pub(crate) fn context_bytes(snippets: &[Snippet]) -> Vec<(String, u32)> {
    let sizes = snippets.iter().map(|snippet| (source_name(snippet.source), snippet.text.len()));
    sum_by_source(sizes)
}

/// Prompt tokens per source, from the tokens each snippet took (in the
/// order of `sources`, the snippets' sources).
pub(crate) fn context_tokens(sources: &[SnippetSource], tokens: &[usize]) -> Vec<(String, u32)> {
    sum_by_source(sources.iter().zip(tokens).map(|(&source, &n)| (source_name(source), n)))
}

fn source_name(source: SnippetSource) -> &'static str {
    match source {
        SnippetSource::Definition => "definition",
        SnippetSource::Module => "module",
        SnippetSource::Scope => "scope",
        SnippetSource::Similar => "similar",
    }
}

/// Totals per source name, in the order sources first appear.
fn sum_by_source(sizes: impl Iterator<Item = (&'static str, usize)>) -> Vec<(String, u32)> {
    let mut by_source: Vec<(String, u32)> = Vec::new();
    for (name, size) in sizes {
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        match by_source.iter_mut().find(|(source, _)| source == name) {
            Some((_, total)) => *total = total.saturating_add(size),
            None => by_source.push((name.to_owned(), size)),
        }
    }
    by_source
}
