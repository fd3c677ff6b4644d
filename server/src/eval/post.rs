//! `weft eval --post`: the run's summary as telemetry events.
//!
//! An evaluation run is recorded the way agent runs are: one `agent_run`
//! event (`command` = `eval`) and one `agent_step` per (model, benchmark,
//! context) cell, whose `role` names the benchmark and context and whose
//! `verdict` carries the metrics. The per-task results stay in
//! `results.jsonl`; the service has no event kind for them.

use uuid::Uuid;
use weft_telemetry_wire::{AgentRun, AgentStep, Batch, ClientInfo, Event, EventBody, IngestResponse};

use super::results::{CellSummary, TaskResult};

/// The events of a run.
pub fn events(run_id: Uuid, cells: &[CellSummary], results: &[TaskResult], duration_ms: u64) -> Vec<Event> {
    let mut events = vec![Event::now(EventBody::AgentRun(AgentRun {
        run_id,
        command: "eval".to_owned(),
        steps: cells.len() as u32,
        duration_ms,
        verdict: Some("completed".to_owned()),
    }))];
    for (index, cell) in cells.iter().enumerate() {
        let of_cell = results
            .iter()
            .filter(|r| r.model == cell.model && r.benchmark == cell.benchmark && r.context == cell.context);
        let (mut input, mut output, mut ms) = (0usize, 0usize, 0.0);
        for r in of_cell {
            input += r.prompt_tokens;
            output += r.generated_tokens;
            ms += r.latency_ms().unwrap_or(0.0);
        }
        let mut verdict = format!("tasks={}", cell.tasks);
        if let Some(pass) = cell.pass_at_1 {
            verdict.push_str(&format!(" pass@1={pass:.4}"));
        }
        verdict.push_str(&format!(
            " exact_match={:.4} edit_similarity={:.4} identifier_em={:.4} identifier_f1={:.4}",
            cell.exact_match, cell.edit_similarity, cell.identifier_em, cell.identifier_f1
        ));
        events.push(Event::now(EventBody::AgentStep(AgentStep {
            run_id,
            index: index as u32,
            role: format!("eval:{}:{}", cell.benchmark, cell.context),
            model: cell.model.clone(),
            input_tokens: u32::try_from(input).unwrap_or(u32::MAX),
            output_tokens: u32::try_from(output).unwrap_or(u32::MAX),
            cost_usd: 0.0,
            duration_ms: ms as u64,
            verdict: Some(verdict),
        })));
    }
    events
}

/// Posts `events` to `POST {base_url}/v1/events`.
pub async fn post(base_url: &str, token: &str, events: Vec<Event>) -> anyhow::Result<IngestResponse> {
    for event in &events {
        event.validate().map_err(|reason| anyhow::anyhow!("invalid event: {reason}"))?;
    }
    let batch = Batch {
        client: ClientInfo {
            editor: "weft-eval".to_owned(),
            editor_version: env!("CARGO_PKG_VERSION").to_owned(),
            plugin_version: env!("CARGO_PKG_VERSION").to_owned(),
            os: std::env::consts::OS.to_owned(),
        },
        consent: None,
        events,
    };
    let url = format!("{}/v1/events", base_url.trim_end_matches('/'));
    let response = reqwest::Client::new().post(&url).bearer_auth(token).json(&batch).send().await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("the telemetry API answered {status}: {}", body.trim());
    }
    Ok(response.json().await?)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn cell() -> CellSummary {
        serde_json::from_value(serde_json::json!({
            "model": "tiny", "benchmark": "humaneval-single", "context": "none", "tasks": 2, "pass_at_1": 0.5,
            "exact_match": 0.5, "edit_similarity": 0.75, "identifier_em": 0.5, "identifier_f1": 0.6,
            "timed_out": 0, "errors": 0, "mean_prompt_tokens": 10.0, "mean_generated_tokens": 3.0,
            "mean_context_snippets": 0.0,
        }))
        .unwrap()
    }

    #[test]
    fn a_run_is_one_agent_run_and_a_step_per_cell() {
        let events = events(Uuid::nil(), &[cell()], &[], 1234);
        let kinds: Vec<_> = events.iter().map(|e| serde_json::to_value(e).unwrap()["kind"].clone()).collect();
        assert_eq!(kinds, ["agent_run", "agent_step"]);
        let step = serde_json::to_value(&events[1]).unwrap();
        assert_eq!(step["data"]["role"], "eval:humaneval-single:none");
        assert_eq!(
            step["data"]["verdict"],
            "tasks=2 pass@1=0.5000 exact_match=0.5000 edit_similarity=0.7500 identifier_em=0.5000 identifier_f1=0.6000"
        );
        assert!(events.iter().all(|e| e.validate().is_ok()));
    }

    #[tokio::test]
    async fn posting_sends_a_batch_with_the_token() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read until the whole body (its length is in the headers) arrived.
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length || n == 0 {
                        break;
                    }
                }
            }
            let body = r#"{"accepted":2,"duplicates":0,"rejected":0,"results":[]}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(request).unwrap()
        });
        let response = post(&url, "wft_secret", events(Uuid::nil(), &[cell()], &[], 1)).await.unwrap();
        assert_eq!(response.accepted, 2);
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /v1/events HTTP/1.1"), "{request}");
        assert!(request.to_ascii_lowercase().contains("authorization: bearer wft_secret"), "{request}");
        assert!(request.contains(r#""editor":"weft-eval""#), "{request}");
    }
}
