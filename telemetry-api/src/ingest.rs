//! Turning a posted batch into rows and per-event results.
//!
//! The batch envelope is parsed first; a body that is not a batch is a 422
//! and one with too many events a 413. Each event is then parsed and
//! validated on its own, so a malformed event is rejected with its reason
//! while the good ones around it are stored.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use weft_telemetry_wire::{
    ClientInfo, ConsentFlags, Event, EventBody, EventResult, EventStatus, IngestResponse, MAX_BATCH_EVENTS,
};

use crate::db::consent::Consent;
use crate::db::events::NewEvent;
use crate::error::ApiError;

/// How far in the future (client clock ahead) an event may claim to be.
const MAX_CLOCK_SKEW: Duration = Duration::hours(24);

/// A batch before its events are parsed.
#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(default)]
    client: ClientInfo,
    #[serde(default)]
    consent: Option<ConsentFlags>,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Enough of an event to name it in a rejection.
#[derive(Deserialize)]
struct EventId {
    #[serde(default)]
    id: Option<Uuid>,
}

/// A parsed batch: rows to insert and the results so far.
pub struct PreparedBatch {
    pub client: ClientInfo,
    pub rows: Vec<NewEvent>,
    /// One per posted event; rows start as `Accepted` and are settled by
    /// [`PreparedBatch::settle`] once the database said which were new.
    results: Vec<EventResult>,
    /// `results` index of each row.
    row_results: Vec<usize>,
}

impl PreparedBatch {
    /// Marks rows that the insert skipped as duplicates.
    pub fn settle(mut self, inserted: &HashSet<Uuid>) -> IngestResponse {
        for &i in &self.row_results {
            let result = &mut self.results[i];
            if !result.id.is_some_and(|id| inserted.contains(&id)) {
                result.status = EventStatus::Duplicate;
            }
        }
        let count = |status| self.results.iter().filter(|r| r.status == status).count() as u32;
        IngestResponse {
            accepted: count(EventStatus::Accepted),
            duplicates: count(EventStatus::Duplicate),
            rejected: count(EventStatus::Rejected),
            results: self.results,
        }
    }

    /// Takes the rows out for inserting.
    pub fn take_rows(&mut self) -> Vec<NewEvent> {
        std::mem::take(&mut self.rows)
    }
}

/// Parses and checks a batch against the account's consent.
pub fn prepare(body: &[u8], account: Consent, now: OffsetDateTime) -> Result<PreparedBatch, ApiError> {
    let batch: RawBatch<'_> = serde_json::from_slice(body).map_err(|err| {
        ApiError::unprocessable("not_a_batch", format!("expected {{\"client\": {{...}}, \"events\": [...]}}: {err}"))
    })?;
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::PayloadTooLarge(format!(
            "a batch holds at most {MAX_BATCH_EVENTS} events, this one has {}",
            batch.events.len()
        )));
    }
    let client_consent = batch.consent.unwrap_or_default();
    if !account.usage || client_consent.usage == Some(false) {
        return Err(ApiError::forbidden(
            "consent_required",
            "usage telemetry is switched off for this account or client",
        ));
    }
    let keep_code = account.code && client_consent.code != Some(false);

    let mut seen = HashSet::with_capacity(batch.events.len());
    let mut results = Vec::with_capacity(batch.events.len());
    let mut rows = Vec::with_capacity(batch.events.len());
    let mut row_results = Vec::with_capacity(batch.events.len());
    for (index, raw) in batch.events.iter().enumerate() {
        let index = index as u32;
        let event = match parse_event(raw, now) {
            Ok(event) => event,
            Err(reason) => {
                let id = serde_json::from_str::<EventId>(raw.get()).ok().and_then(|e| e.id);
                results.push(EventResult { index, id, status: EventStatus::Rejected, reason: Some(reason) });
                continue;
            }
        };
        let id = event.id;
        if !seen.insert(id) {
            results.push(EventResult { index, id: Some(id), status: EventStatus::Duplicate, reason: None });
            continue;
        }
        match to_row(event, keep_code) {
            Ok(row) => {
                row_results.push(results.len());
                rows.push(row);
                results.push(EventResult { index, id: Some(id), status: EventStatus::Accepted, reason: None });
            }
            Err(err) => {
                results.push(EventResult {
                    index,
                    id: Some(id),
                    status: EventStatus::Rejected,
                    reason: Some(format!("cannot store event: {err}")),
                });
            }
        }
    }
    Ok(PreparedBatch { client: batch.client, rows, results, row_results })
}

fn parse_event(raw: &RawValue, now: OffsetDateTime) -> Result<Event, String> {
    let event: Event = serde_json::from_str(raw.get()).map_err(|err| err.to_string())?;
    event.validate()?;
    if event.occurred_at > now + MAX_CLOCK_SKEW {
        return Err("`occurred_at` is more than a day in the future".to_owned());
    }
    Ok(event)
}

/// The row of a valid event; drops source text without consent.
fn to_row(event: Event, keep_code: bool) -> serde_json::Result<NewEvent> {
    let kind = event.body.kind().as_str();
    let completion_id = event.body.completion_id();
    let model = event.body.model().map(str::to_owned);
    let language = event.body.language().map(str::to_owned);
    let payload_json = match event.body {
        EventBody::CompletionRequested(mut r) => {
            if !keep_code {
                r.prefix = None;
                r.suffix = None;
            }
            serde_json::to_string(&r)
        }
        EventBody::CompletionGenerated(g) => serde_json::to_string(&g),
        EventBody::Shown(o)
        | EventBody::Accepted(o)
        | EventBody::Dismissed(o)
        | EventBody::TypedOver(o)
        | EventBody::Superseded(o) => serde_json::to_string(&o),
        EventBody::PartiallyAccepted(p) => serde_json::to_string(&p),
        EventBody::GroundTruth(g) => serde_json::to_string(&g),
        EventBody::AgentRun(r) => serde_json::to_string(&r),
        EventBody::AgentStep(s) => serde_json::to_string(&s),
    }?;
    Ok(NewEvent {
        id: event.id,
        kind,
        occurred_at: event.occurred_at,
        session_id: event.session_id,
        completion_id,
        model,
        language,
        payload_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use weft_telemetry_wire::example;

    const NOW: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

    fn body(events: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "client": {"editor": "helix"}, "events": events })).unwrap()
    }

    #[test]
    fn malformed_events_are_rejected_one_by_one() {
        let good = example::accepted_completion("m", "rust", NOW);
        let mut events = serde_json::to_value(&good[..2]).unwrap();
        let list = events.as_array_mut().unwrap();
        list.push(serde_json::json!({"id": "00000000-0000-0000-0000-000000000009", "kind": "shown"}));
        list.push(serde_json::json!(42));
        list.push(list[0].clone());
        let prepared = prepare(&body(events), Consent::default(), NOW).unwrap();
        assert_eq!(prepared.rows.len(), 2);
        let inserted = prepared.rows.iter().map(|r| r.id).collect();
        let response = prepared.settle(&inserted);
        assert_eq!((response.accepted, response.duplicates, response.rejected), (2, 1, 2));
        let rejected = &response.results[2];
        assert_eq!(rejected.id, Some(Uuid::from_u128(9)));
        assert!(rejected.reason.as_deref().unwrap().contains("occurred_at"), "{rejected:?}");
        assert_eq!(response.results[3].id, None);
        assert_eq!(response.results[4].status, EventStatus::Duplicate);
    }

    #[test]
    fn source_text_needs_code_consent_from_account_and_client() {
        let mut request = example::completion_request(Uuid::nil(), "rust");
        request.prefix = Some("fn main() {".into());
        request.suffix = Some("}".into());
        let event = Event { occurred_at: NOW, ..Event::now(EventBody::CompletionRequested(request)) };
        let events = serde_json::to_value(vec![event]).unwrap();
        let stored_prefix = |account: Consent, client_code: Option<bool>| {
            let mut b: serde_json::Value = serde_json::from_slice(&body(events.clone())).unwrap();
            b["consent"] = serde_json::json!({ "code": client_code });
            let prepared = prepare(&serde_json::to_vec(&b).unwrap(), account, NOW).unwrap();
            let payload: serde_json::Value = serde_json::from_str(&prepared.rows[0].payload_json).unwrap();
            payload.get("prefix").cloned()
        };
        let with_code = Consent { usage: true, code: true };
        assert_eq!(stored_prefix(with_code, None), Some("fn main() {".into()));
        assert_eq!(stored_prefix(with_code, Some(false)), None);
        assert_eq!(stored_prefix(Consent::default(), Some(true)), None);
    }

    #[test]
    fn envelope_errors() {
        let not_batch = prepare(b"[1, 2]", Consent::default(), NOW).err().unwrap();
        assert_eq!(not_batch.status().as_u16(), 422);
        let not_json = prepare(b"{", Consent::default(), NOW).err().unwrap();
        assert_eq!(not_json.status().as_u16(), 422);
        let too_many = body(serde_json::Value::Array(vec![serde_json::json!(1); 1001]));
        let err = prepare(&too_many, Consent::default(), NOW).err().unwrap();
        assert_eq!(err.status().as_u16(), 413);
        let no_usage = Consent { usage: false, code: false };
        let err = prepare(&body(serde_json::json!([])), no_usage, NOW).err().unwrap();
        assert_eq!(err.status().as_u16(), 403);
    }
}
