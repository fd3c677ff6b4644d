//! Wire types of the Weft telemetry API.
//!
//! This crate is the whole contract between the `weft` LSP binary (which
//! records and uploads telemetry) and the `weft-telemetry-api` service (which
//! stores and analyses it). It is deliberately plain data: serde structs and
//! enums, a validation pass, and nothing that does IO. The LSP binary depends
//! on it without linking axum, sqlx or any other server machinery; the
//! service turns on the `openapi` feature to document the same types.
//!
//! # Design
//!
//! * Every event has a client-generated [`Uuid`] (`id`). The service stores
//!   events in an append-only log keyed by that id, so a client that retries
//!   a batch after a timeout never creates a second copy.
//! * The event kind and its data travel as `"kind"` and `"data"` beside the
//!   envelope fields (`id`, `occurred_at`, `session_id`), so a reader can
//!   route on `kind` without understanding every payload.
//! * Events about one completion share a `completion_id` that the client
//!   chooses when the request starts; generations, display outcomes and
//!   ground-truth snapshots point back to it (and to the model that produced
//!   the text).
//! * Source text (`prefix`, `suffix`) is optional and only sent with the
//!   user's consent for the `code` category; the service drops it again when
//!   the account has not consented.
//!
//! ```
//! use weft_telemetry_wire::{Batch, ClientInfo, CompletionOutcome, Event, EventBody};
//!
//! let shown = Event::now(EventBody::Shown(CompletionOutcome {
//!     completion_id: uuid::Uuid::new_v4(),
//!     model: "qwen2.5-coder-1.5b".into(),
//! }));
//! assert!(shown.validate().is_ok());
//! let batch = Batch { client: ClientInfo::default(), consent: None, events: vec![shown] };
//! let json = serde_json::to_value(&batch).unwrap();
//! assert_eq!(json["events"][0]["kind"], "shown");
//! ```

mod agent;
mod completion;
pub mod example;
mod response;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub use agent::{AgentRun, AgentStep};
pub use completion::{
    Behaviour, CompletionOutcome, CompletionRequested, ContextSource, FinishReason, Generation, GroundTruth, Latency,
    PartialAcceptance, SNAPSHOT_DELAYS_SECS, TriggerKind,
};
pub use response::{ErrorBody, EventResult, EventStatus, IngestResponse};

/// The most events one `POST /v1/events` may carry.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// What a client posts to `POST /v1/events`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Batch {
    /// The editor and plugin that recorded every event in this batch.
    #[serde(default)]
    pub client: ClientInfo,
    /// The client's own consent settings; the service applies the stricter
    /// of these and the account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentFlags>,
    /// At most [`MAX_BATCH_EVENTS`] events.
    pub events: Vec<Event>,
}

/// The editor side of a batch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientInfo {
    /// Editor name, e.g. `vscode`, `neovim`, `helix`.
    #[serde(default)]
    pub editor: String,
    #[serde(default)]
    pub editor_version: String,
    /// Version of the Weft editor plugin (or of the `weft` binary).
    #[serde(default)]
    pub plugin_version: String,
    /// Operating system, e.g. `linux`, `macos`, `windows`.
    #[serde(default)]
    pub os: String,
}

/// Consent per data category. Absent flags mean "no objection".
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentFlags {
    /// Usage telemetry at all (every event kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<bool>,
    /// Source text: the `prefix` and `suffix` of completion requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<bool>,
}

/// One telemetry event: an envelope plus a kind-specific body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Client-generated, unique per event; the idempotency key.
    pub id: Uuid,
    /// When it happened on the client (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub occurred_at: OffsetDateTime,
    /// The editor session (one LSP process lifetime), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// `"kind"` and `"data"`.
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// A new event with a random id, happening now.
    pub fn now(body: EventBody) -> Event {
        Event { id: Uuid::new_v4(), occurred_at: OffsetDateTime::now_utc(), session_id: None, body }
    }

    /// Checks the invariants serde cannot express (ranges, known snapshot
    /// delays, non-empty names). The service rejects an event that fails.
    pub fn validate(&self) -> Result<(), String> {
        self.body.validate()
    }
}

/// The kind-specific part of an [`Event`], tagged `"kind"` with its fields in
/// `"data"`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventBody {
    /// The editor asked for a completion.
    CompletionRequested(CompletionRequested),
    /// One model produced a completion for a request.
    CompletionGenerated(Generation),
    /// The completion was displayed.
    Shown(CompletionOutcome),
    /// The user accepted all of it.
    Accepted(CompletionOutcome),
    /// The user accepted a prefix of it (e.g. word by word).
    PartiallyAccepted(PartialAcceptance),
    /// The user dismissed it explicitly (Escape).
    Dismissed(CompletionOutcome),
    /// The user kept typing something else over it.
    TypedOver(CompletionOutcome),
    /// A newer completion replaced it before the user reacted.
    Superseded(CompletionOutcome),
    /// What the document held at the completion's place some time later.
    GroundTruth(GroundTruth),
    /// An agent run (one command) finished.
    AgentRun(AgentRun),
    /// One step of an agent run.
    AgentStep(AgentStep),
}

/// The `kind` of an event without its data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    CompletionRequested,
    CompletionGenerated,
    Shown,
    Accepted,
    PartiallyAccepted,
    Dismissed,
    TypedOver,
    Superseded,
    GroundTruth,
    AgentRun,
    AgentStep,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::CompletionRequested,
        EventKind::CompletionGenerated,
        EventKind::Shown,
        EventKind::Accepted,
        EventKind::PartiallyAccepted,
        EventKind::Dismissed,
        EventKind::TypedOver,
        EventKind::Superseded,
        EventKind::GroundTruth,
        EventKind::AgentRun,
        EventKind::AgentStep,
    ];

    /// The `kind` string on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CompletionRequested => "completion_requested",
            EventKind::CompletionGenerated => "completion_generated",
            EventKind::Shown => "shown",
            EventKind::Accepted => "accepted",
            EventKind::PartiallyAccepted => "partially_accepted",
            EventKind::Dismissed => "dismissed",
            EventKind::TypedOver => "typed_over",
            EventKind::Superseded => "superseded",
            EventKind::GroundTruth => "ground_truth",
            EventKind::AgentRun => "agent_run",
            EventKind::AgentStep => "agent_step",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::CompletionRequested(_) => EventKind::CompletionRequested,
            EventBody::CompletionGenerated(_) => EventKind::CompletionGenerated,
            EventBody::Shown(_) => EventKind::Shown,
            EventBody::Accepted(_) => EventKind::Accepted,
            EventBody::PartiallyAccepted(_) => EventKind::PartiallyAccepted,
            EventBody::Dismissed(_) => EventKind::Dismissed,
            EventBody::TypedOver(_) => EventKind::TypedOver,
            EventBody::Superseded(_) => EventKind::Superseded,
            EventBody::GroundTruth(_) => EventKind::GroundTruth,
            EventBody::AgentRun(_) => EventKind::AgentRun,
            EventBody::AgentStep(_) => EventKind::AgentStep,
        }
    }

    /// The completion this event belongs to, if it is about one.
    pub fn completion_id(&self) -> Option<Uuid> {
        match self {
            EventBody::CompletionRequested(r) => Some(r.completion_id),
            EventBody::CompletionGenerated(g) => Some(g.completion_id),
            EventBody::Shown(o)
            | EventBody::Accepted(o)
            | EventBody::Dismissed(o)
            | EventBody::TypedOver(o)
            | EventBody::Superseded(o) => Some(o.completion_id),
            EventBody::PartiallyAccepted(p) => Some(p.completion_id),
            EventBody::GroundTruth(g) => Some(g.completion_id),
            EventBody::AgentRun(_) | EventBody::AgentStep(_) => None,
        }
    }

    /// The model this event is about, if any.
    pub fn model(&self) -> Option<&str> {
        match self {
            EventBody::CompletionRequested(_) | EventBody::AgentRun(_) => None,
            EventBody::CompletionGenerated(g) => Some(&g.model),
            EventBody::Shown(o)
            | EventBody::Accepted(o)
            | EventBody::Dismissed(o)
            | EventBody::TypedOver(o)
            | EventBody::Superseded(o) => Some(&o.model),
            EventBody::PartiallyAccepted(p) => Some(&p.model),
            EventBody::GroundTruth(g) => Some(&g.model),
            EventBody::AgentStep(s) => Some(&s.model),
        }
    }

    /// The language of the document, carried by completion requests only.
    pub fn language(&self) -> Option<&str> {
        match self {
            EventBody::CompletionRequested(r) => Some(&r.language),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            EventBody::CompletionRequested(r) => r.validate(),
            EventBody::CompletionGenerated(g) => g.validate(),
            EventBody::Shown(o)
            | EventBody::Accepted(o)
            | EventBody::Dismissed(o)
            | EventBody::TypedOver(o)
            | EventBody::Superseded(o) => non_empty("model", &o.model),
            EventBody::PartiallyAccepted(p) => non_empty("model", &p.model),
            EventBody::GroundTruth(g) => g.validate(),
            EventBody::AgentRun(r) => non_empty("command", &r.command),
            EventBody::AgentStep(s) => s.validate(),
        }
    }
}

pub(crate) fn non_empty(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() { Err(format!("`{field}` must not be empty")) } else { Ok(()) }
}

pub(crate) fn in_unit_range(field: &str, value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(format!("`{field}` must be between 0 and 1, got {value}")) }
}

pub(crate) fn non_negative(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!("`{field}` must be a finite number >= 0, got {value}"))
    }
}

#[cfg(test)]
mod tests;
