//! The completions the server answered with, followed until their last
//! ground-truth snapshot: outcomes, the document region each one covers,
//! and the snapshot timers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ropey::Rope;
use uuid::Uuid;

use super::{
    BehaviourFacts, GenerationFacts, Outcome, OutcomeFacts, RequestFacts, SnapshotFacts, TelemetryData, TelemetryEvent,
    TelemetrySettings, TrackedRegion,
};
use crate::document::TextEdit;
use crate::provider::CompletionOutput;

/// Completions never shown nor accepted are forgotten beyond this many (the
/// newest are kept, so that a late accept of a completion item still finds
/// its completion).
const MAX_UNSHOWN: usize = 256;

/// Typing speed is measured over this window.
const TYPING_WINDOW: Duration = Duration::from_secs(5);

/// Follows completions for telemetry; cheap to share between the request
/// handlers and the snapshot timers.
#[derive(Clone)]
pub struct CompletionTracker {
    settings: TelemetrySettings,
    inner: Arc<Mutex<Tracked>>,
}

#[derive(Default)]
struct Tracked {
    /// By the provider's output id (what the accept command names).
    completions: HashMap<String, TrackedCompletion>,
    /// Output ids of completions neither shown nor accepted, oldest first.
    unshown: VecDeque<String>,
    last_shown: Option<Instant>,
    last_accepted: Option<Instant>,
    /// Characters inserted by recent edits.
    typing: VecDeque<(Instant, usize)>,
}

struct TrackedCompletion {
    completion_id: Uuid,
    model: String,
    /// The completion text, line endings as `\n`.
    text: String,
    uri: String,
    region: TrackedRegion,
    /// The region's text as of the last edit that touched it.
    region_text: String,
    shown: bool,
    accepted: bool,
    /// Dismissed, typed over or superseded.
    rejected: bool,
    /// Bumped when the snapshot timers restart (at acceptance).
    schedule: u64,
}

impl CompletionTracker {
    pub fn new(settings: TelemetrySettings) -> CompletionTracker {
        CompletionTracker { settings, inner: Arc::new(Mutex::new(Tracked::default())) }
    }

    fn lock(&self) -> MutexGuard<'_, Tracked> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, at: SystemTime, data: TelemetryData) {
        self.settings.sink.record(TelemetryEvent { at, data });
    }

    /// Whether request facts should carry the prefix and suffix text.
    pub fn shares_code(&self) -> bool {
        self.settings.share_code
    }

    /// The client's name and version from `initialize`.
    pub fn client(&self, name: String, version: Option<String>) {
        self.record(SystemTime::now(), TelemetryData::Client { name, version });
    }

    /// Behaviour at the start of a request, if it is recorded.
    pub fn behaviour(&self) -> Option<BehaviourFacts> {
        if !self.settings.behaviour {
            return None;
        }
        let now = Instant::now();
        let tracked = self.lock();
        let typed: usize =
            tracked.typing.iter().filter(|(at, _)| now.duration_since(*at) <= TYPING_WINDOW).map(|(_, n)| n).sum();
        Some(BehaviourFacts {
            typing_speed_cps: Some(typed as f64 / TYPING_WINDOW.as_secs_f64()),
            since_last_shown: tracked.last_shown.map(|t| now.duration_since(t)),
            since_last_accepted: tracked.last_accepted.map(|t| now.duration_since(t)),
        })
    }

    /// A request finished (answered, cancelled or failed): records it and
    /// its generations, and follows each non-empty output from `cursor_byte`
    /// of `uri`. Completions of the same document still on screen are
    /// superseded.
    pub fn answered(
        &self,
        at: SystemTime,
        request: RequestFacts,
        uri: &str,
        cursor_byte: usize,
        outputs: &[CompletionOutput],
    ) {
        let completion_id = request.completion_id;
        self.record(at, TelemetryData::Requested(request));
        let now = SystemTime::now();
        for output in outputs {
            self.record(
                now,
                TelemetryData::Generated(GenerationFacts {
                    completion_id,
                    model: output.model.clone(),
                    text: output.text.clone(),
                    latency_ms: output.latency_ms,
                    details: output.details.clone(),
                }),
            );
        }
        let answered: Vec<&CompletionOutput> = outputs.iter().filter(|o| !o.text.is_empty()).collect();
        if answered.is_empty() {
            return;
        }
        let mut superseded = Vec::new();
        {
            let mut tracked = self.lock();
            for c in tracked.completions.values_mut() {
                if c.uri == uri && c.shown && !c.accepted && !c.rejected {
                    c.rejected = true;
                    superseded.push((c.completion_id, c.model.clone()));
                }
            }
            for output in answered {
                tracked.completions.insert(
                    output.id.clone(),
                    TrackedCompletion {
                        completion_id,
                        model: output.model.clone(),
                        text: output.text.replace("\r\n", "\n"),
                        uri: uri.to_owned(),
                        region: TrackedRegion::at(cursor_byte),
                        region_text: String::new(),
                        shown: false,
                        accepted: false,
                        rejected: false,
                        schedule: 0,
                    },
                );
                tracked.unshown.push_back(output.id.clone());
            }
            while tracked.unshown.len() > MAX_UNSHOWN {
                if let Some(old) = tracked.unshown.pop_front() {
                    if tracked.completions.get(&old).is_some_and(|c| !c.shown && !c.accepted) {
                        tracked.completions.remove(&old);
                    }
                }
            }
        }
        for (completion_id, model) in superseded {
            self.outcome(completion_id, model, Outcome::Superseded);
        }
    }

    fn outcome(&self, completion_id: Uuid, model: String, outcome: Outcome) {
        self.record(SystemTime::now(), TelemetryData::Outcome(OutcomeFacts { completion_id, model, outcome }));
    }

    /// `textDocument/didShowCompletion`. Unknown ids are ignored.
    pub fn shown(&self, output_id: &str) {
        let found = {
            let mut tracked = self.lock();
            tracked.last_shown = Some(Instant::now());
            tracked.completions.get_mut(output_id).filter(|c| !c.shown).map(|c| {
                c.shown = true;
                (c.completion_id, c.model.clone(), c.schedule)
            })
        };
        if let Some((completion_id, model, schedule)) = found {
            self.outcome(completion_id, model, Outcome::Shown);
            // Snapshots of a completion that is never accepted run from
            // when it was shown; acceptance restarts them.
            self.schedule_snapshots(output_id, schedule);
        }
    }

    /// The accept command. Unknown ids are ignored (the completion may be
    /// older than the tracker remembers).
    pub fn accepted(&self, output_id: &str) {
        self.accept(output_id, None);
    }

    /// `textDocument/didPartiallyAcceptCompletion`, with the accepted length
    /// in UTF-16 code units.
    pub fn partially_accepted(&self, output_id: &str, utf16_len: usize) {
        self.accept(output_id, Some(utf16_len));
    }

    /// `textDocument/didPartiallyAcceptCompletion` of a typed-ahead item,
    /// which showed only `rest`, the end of the completion (the user had
    /// typed its beginning): the length counts from the start of `rest`.
    pub fn partially_accepted_rest(&self, output_id: &str, rest: &str, utf16_len: usize) {
        let typed_units = self.lock().completions.get(output_id).map_or(0, |c| {
            let rest = rest.replace("\r\n", "\n");
            c.text.strip_suffix(rest.as_str()).map_or(0, |typed| typed.encode_utf16().count())
        });
        self.accept(output_id, Some(typed_units + utf16_len));
    }

    fn accept(&self, output_id: &str, partial_utf16: Option<usize>) {
        let found = {
            let mut tracked = self.lock();
            tracked.last_accepted = Some(Instant::now());
            tracked.completions.get_mut(output_id).map(|c| {
                c.accepted = true;
                c.rejected = false;
                c.schedule += 1;
                let outcome = match partial_utf16 {
                    Some(units) => Outcome::PartiallyAccepted { chars: chars_in_utf16_prefix(&c.text, units) },
                    None => {
                        // The insertion is in the region already (clients
                        // edit before they run the command); typing after
                        // it is not part of the completion.
                        c.region.grows_at_end = false;
                        Outcome::Accepted
                    }
                };
                (c.completion_id, c.model.clone(), c.schedule, outcome)
            })
        };
        if let Some((completion_id, model, schedule, outcome)) = found {
            self.outcome(completion_id, model, outcome);
            self.schedule_snapshots(output_id, schedule);
        }
    }

    /// `weft/didDismissCompletion`.
    pub fn dismissed(&self, output_id: &str) {
        let found = {
            let mut tracked = self.lock();
            tracked.completions.get_mut(output_id).filter(|c| !c.accepted && !c.rejected).map(|c| {
                c.rejected = true;
                (c.completion_id, c.model.clone())
            })
        };
        if let Some((completion_id, model)) = found {
            self.outcome(completion_id, model, Outcome::Dismissed);
        }
    }

    /// Follows the edits of one `didChange` (already applied to `text`):
    /// moves and grows regions, and reports shown completions the user
    /// typed over with something else.
    pub fn edited(&self, uri: &str, edits: &[TextEdit], text: &Rope, inserted_chars: usize) {
        let mut typed_over = Vec::new();
        {
            let mut tracked = self.lock();
            let now = Instant::now();
            tracked.typing.push_back((now, inserted_chars));
            while tracked.typing.front().is_some_and(|(at, _)| now.duration_since(*at) > TYPING_WINDOW) {
                tracked.typing.pop_front();
            }
            for c in tracked.completions.values_mut().filter(|c| c.uri == uri) {
                let mut touched = false;
                for edit in edits {
                    touched |= c.region.apply(edit);
                }
                if !touched {
                    continue;
                }
                let end = c.region.bytes.end.min(text.len_bytes());
                let start = c.region.bytes.start.min(end);
                c.region_text = text.byte_slice(start..end).to_string();
                let written = c.region_text.replace("\r\n", "\n");
                if c.shown && !c.accepted && !c.rejected && !c.text.starts_with(&written) {
                    c.rejected = true;
                    typed_over.push((c.completion_id, c.model.clone()));
                }
            }
        }
        for (completion_id, model) in typed_over {
            self.outcome(completion_id, model, Outcome::TypedOver);
        }
    }

    /// The document was closed: its completions keep the text they had, and
    /// their snapshots report it (a reopened document starts afresh).
    pub fn closed(&self, uri: &str) {
        for c in self.lock().completions.values_mut().filter(|c| c.uri == uri) {
            c.uri.clear();
        }
    }

    /// Starts the snapshot timers of one completion; timers of an earlier
    /// `schedule` stop when they see a newer one.
    fn schedule_snapshots(&self, output_id: &str, schedule: u64) {
        if !self.settings.ground_truth || self.settings.snapshots.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let tracker = self.clone();
        let output_id = output_id.to_owned();
        let start = tokio::time::Instant::now();
        runtime.spawn(async move {
            let last = tracker.settings.snapshots.len() - 1;
            for (i, &(after_secs, delay)) in tracker.settings.snapshots.iter().enumerate() {
                tokio::time::sleep_until(start + delay).await;
                if !tracker.snapshot(&output_id, schedule, after_secs, i == last) {
                    return;
                }
            }
        });
    }

    /// Records one snapshot; false when the timer is stale.
    fn snapshot(&self, output_id: &str, schedule: u64, after_secs: u32, last: bool) -> bool {
        let facts = {
            let mut tracked = self.lock();
            let Some(c) = tracked.completions.get(output_id).filter(|c| c.schedule == schedule) else {
                return false;
            };
            let text = if c.accepted { c.region_text.clone() } else { first_lines(&c.region_text, &c.text) };
            let facts = SnapshotFacts {
                completion_id: c.completion_id,
                model: c.model.clone(),
                after_secs,
                accepted: c.accepted,
                text,
            };
            if last {
                tracked.completions.remove(output_id);
            }
            facts
        };
        self.record(SystemTime::now(), TelemetryData::GroundTruth(facts));
        true
    }
}

/// What the user wrote where a rejected completion would have gone, cut to
/// as many lines as the completion had.
fn first_lines(written: &str, completion: &str) -> String {
    let lines = completion.split('\n').count().max(1);
    written.split_inclusive('\n').take(lines).collect::<String>().trim_end_matches(['\r', '\n']).to_owned()
}

/// The characters of `text` that `units` UTF-16 code units cover.
fn chars_in_utf16_prefix(text: &str, units: usize) -> u32 {
    let mut seen = 0;
    let mut chars = 0u32;
    for c in text.chars() {
        if seen >= units {
            break;
        }
        seen += c.len_utf16();
        chars += 1;
    }
    chars
}

/// The extension of the file a URI names, lower-cased, without the dot.
pub fn file_extension(uri: &str) -> Option<String> {
    let name = uri.rsplit('/').next()?;
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
