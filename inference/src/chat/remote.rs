//! [`RemoteChat`]: an HTTP chat provider (OpenAI-compatible or Anthropic)
//! as a [`ChatBackend`].
//!
//! Every request goes through the provider's [`RetryPolicy`] and
//! [`CircuitBreaker`] (`crate::resilience`). With a schema, the answer is
//! taken out of any code fence or surrounding prose, parsed and validated;
//! if it fails, the provider is asked once more with the violations (a
//! repair request), and a second failure is [`ChatError::InvalidOutput`].
//! Usage is summed over both requests.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::schema::Schema;
use super::wire::{self, ANTHROPIC_VERSION, RemoteKind, WireAnswer};
use super::{ChatBackend, ChatError, ChatMessage, ChatRequest, ChatResponse, ChatUsage};
use crate::resilience::{BreakerConfig, CallError, CircuitBreaker, Clock, RetryConfig, RetryPolicy, SystemClock, http};

/// One remote provider.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteChatConfig {
    pub kind: RemoteKind,
    /// Without the path: `https://api.openai.com`, `http://127.0.0.1:8080`.
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// For one whole attempt, answer included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
}

impl RemoteChatConfig {
    pub fn new(kind: RemoteKind, model: impl Into<String>) -> Self {
        RemoteChatConfig {
            kind,
            base_url: kind.default_base_url().to_owned(),
            api_key: None,
            model: model.into(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// A remote chat provider. Cheap to clone; clones share the breaker.
#[derive(Clone)]
pub struct RemoteChat {
    shared: Arc<Shared>,
}

struct Shared {
    config: RemoteChatConfig,
    url: String,
    client: reqwest::Client,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
}

impl RemoteChat {
    pub fn new(config: RemoteChatConfig) -> anyhow::Result<Self> {
        RemoteChat::with_clock(config, Arc::new(SystemClock))
    }

    /// A provider whose waits and breaker cooldown follow `clock`.
    pub fn with_clock(config: RemoteChatConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        match (config.kind, &config.api_key) {
            (RemoteKind::OpenAi, Some(key)) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| anyhow::anyhow!("the API key is not a valid HTTP header value"))?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            (RemoteKind::OpenAi, None) => {}
            (RemoteKind::Anthropic, key) => {
                let key = key.as_deref().ok_or_else(|| anyhow::anyhow!("the Anthropic API needs an API key"))?;
                let mut value = HeaderValue::from_str(key)
                    .map_err(|_| anyhow::anyhow!("the API key is not a valid HTTP header value"))?;
                value.set_sensitive(true);
                headers.insert("x-api-key", value);
                headers.insert("anthropic-version", HeaderValue::from_static(ANTHROPIC_VERSION));
            }
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()?;
        let url = format!("{}{}", config.base_url.trim_end_matches('/'), config.kind.path());
        let retry = RetryPolicy::new(config.retry.clone(), clock.clone());
        let breaker = CircuitBreaker::new(config.breaker.clone(), clock);
        Ok(RemoteChat { shared: Arc::new(Shared { config, url, client, retry, breaker }) })
    }

    /// The provider's breaker, for status reports.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.shared.breaker
    }
}

impl ChatBackend for RemoteChat {
    fn model(&self) -> String {
        self.shared.config.model.clone()
    }

    fn chat(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<ChatResponse, ChatError>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.answer(request, cancel).await })
    }
}

impl Shared {
    async fn answer(&self, request: ChatRequest, cancel: CancellationToken) -> Result<ChatResponse, ChatError> {
        let schema = match &request.schema {
            Some(raw) => Some(Schema::parse(raw).map_err(|e| ChatError::Failed(e.to_string()))?),
            None => None,
        };
        let first = self.send(&request, &request.messages, &cancel).await?;
        let Some(schema) = schema else {
            return Ok(response(first.text, first.model, first.usage));
        };
        let problem = match extract_valid_json(&schema, &first.text) {
            Ok(json) => return Ok(response(json, first.model, first.usage)),
            Err(problem) => problem,
        };
        tracing::debug!(model = %first.model, "the answer does not match its schema ({problem}); asking for a repair");
        let raw_schema = request.schema.as_ref().expect("a parsed schema has its source");
        let mut messages = request.messages.clone();
        messages.push(ChatMessage::assistant(first.text.clone()));
        messages.push(ChatMessage::user(format!(
            "Your answer is not valid: {problem}.\n{}",
            wire::schema_instruction(raw_schema)
        )));
        let second = self.send(&request, &messages, &cancel).await?;
        let usage = ChatUsage {
            prompt_tokens: first.usage.prompt_tokens + second.usage.prompt_tokens,
            completion_tokens: first.usage.completion_tokens + second.usage.completion_tokens,
        };
        match extract_valid_json(&schema, &second.text) {
            Ok(json) => Ok(response(json, second.model, usage)),
            Err(problem) => Err(ChatError::InvalidOutput(format!("{problem} (after one repair request)"), usage)),
        }
    }

    async fn send(
        &self,
        request: &ChatRequest,
        messages: &[ChatMessage],
        cancel: &CancellationToken,
    ) -> Result<WireAnswer, ChatError> {
        let config = &self.config;
        let body = wire::request_body(
            config.kind,
            &config.model,
            messages,
            request.max_tokens,
            request.temperature,
            request.schema.as_ref(),
        );
        let provider = format!("{} ({})", config.model, self.url);
        let (client, url, body) = (&self.client, self.url.as_str(), &body);
        self.retry
            .run(&provider, &self.breaker, cancel, move || async move {
                let answer = http::send_json(client.post(url).json(body)).await?;
                wire::parse_answer(config.kind, &answer, &config.model)
            })
            .await
            .map_err(ChatError::from)
    }
}

impl From<CallError> for ChatError {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Cancelled => ChatError::Cancelled,
            CallError::Unavailable(message) => ChatError::Unavailable(message),
            CallError::Transient(message) => ChatError::Transient(message),
            CallError::Permanent(message) => ChatError::Failed(message),
        }
    }
}

fn response(text: String, model: String, usage: ChatUsage) -> ChatResponse {
    ChatResponse { text, model, usage }
}

/// The JSON in `text` (bare, fenced, or the outermost `{…}` / `[…]` in
/// prose) if it satisfies `schema`, else what is wrong with it.
fn extract_valid_json(schema: &Schema, text: &str) -> Result<String, String> {
    let Some((json, value)) = extract_json(text) else {
        return Err("it is not JSON".to_owned());
    };
    match schema.validate(&value) {
        Ok(()) => Ok(json.to_owned()),
        Err(violations) => {
            let listed: Vec<String> = violations.iter().map(ToString::to_string).collect();
            Err(listed.join("; "))
        }
    }
}

fn extract_json(text: &str) -> Option<(&str, Value)> {
    let parse = |candidate: &str| serde_json::from_str::<Value>(candidate).ok();
    let trimmed = text.trim();
    if let Some(value) = parse(trimmed) {
        return Some((trimmed, value));
    }
    // A fenced block: ```json … ``` or ``` … ```.
    if let Some(start) = trimmed.find("```") {
        let after = &trimmed[start + 3..];
        let body_start = after.find('\n').map_or(0, |i| i + 1);
        if let Some(end) = after[body_start..].find("```") {
            let inner = after[body_start..body_start + end].trim();
            if let Some(value) = parse(inner) {
                return Some((inner, value));
            }
        }
    }
    // The outermost object or array in prose.
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(start), Some(end)) = (trimmed.find(open), trimmed.rfind(close))
            && start < end
        {
            let inner = &trimmed[start..=end];
            if let Some(value) = parse(inner) {
                return Some((inner, value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_is_found_bare_fenced_or_in_prose() {
        let found = |text: &str| extract_json(text).map(|(json, _)| json.to_owned());
        assert_eq!(found(" {\"a\": 1}\n").as_deref(), Some("{\"a\": 1}"));
        assert_eq!(found("```json\n{\"a\": [1]}\n```").as_deref(), Some("{\"a\": [1]}"));
        assert_eq!(found("Here it is:\n```\n[1, 2]\n```\nDone.").as_deref(), Some("[1, 2]"));
        assert_eq!(
            found("Sure! {\"verdict\": \"APPROVE\"} Hope this helps.").as_deref(),
            Some("{\"verdict\": \"APPROVE\"}")
        );
        assert_eq!(found("no json here"), None);
        assert_eq!(found("{broken"), None);
    }

    #[test]
    fn violations_explain_what_to_repair() {
        let schema = Schema::parse(&json!({
            "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]
        }))
        .unwrap();
        assert_eq!(extract_valid_json(&schema, "{\"ok\": true}"), Ok("{\"ok\": true}".to_owned()));
        assert_eq!(
            extract_valid_json(&schema, "{\"ok\": 1}"),
            Err("#/ok: expected true or false, found a number".to_owned())
        );
        assert_eq!(extract_valid_json(&schema, "yes"), Err("it is not JSON".to_owned()));
    }
}
