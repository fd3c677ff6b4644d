//! The wire formats of remote chat providers: OpenAI-compatible
//! `/v1/chat/completions` and the Anthropic Messages API `/v1/messages`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ChatMessage, ChatUsage, Role};
use crate::resilience::AttemptError;

/// The protocol a remote provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteKind {
    /// `POST {base_url}/v1/chat/completions`, `Authorization: Bearer`;
    /// a schema goes in `response_format` (`json_schema`). OpenAI, and the
    /// servers that copy its API (llama-server, vLLM, Ollama…).
    OpenAi,
    /// `POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`; a
    /// schema goes into the system prompt as an instruction.
    Anthropic,
}

impl RemoteKind {
    pub fn default_base_url(self) -> &'static str {
        match self {
            RemoteKind::OpenAi => "https://api.openai.com",
            RemoteKind::Anthropic => "https://api.anthropic.com",
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            RemoteKind::OpenAi => "/v1/chat/completions",
            RemoteKind::Anthropic => "/v1/messages",
        }
    }
}

/// The Messages API version Weft speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// What a provider answered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WireAnswer {
    pub text: String,
    pub model: String,
    pub usage: ChatUsage,
}

/// The instruction that carries a schema to a provider without structured
/// output, and to any provider in a repair request.
pub(crate) fn schema_instruction(schema: &Value) -> String {
    format!(
        "Answer with a single JSON value and nothing else (no prose, no code fence). \
         It must satisfy this JSON schema:\n{schema}"
    )
}

pub(crate) fn request_body(
    kind: RemoteKind,
    model: &str,
    messages: &[ChatMessage],
    max_tokens: u32,
    temperature: f32,
    schema: Option<&Value>,
) -> Value {
    match kind {
        RemoteKind::OpenAi => {
            let messages: Vec<Value> =
                messages.iter().map(|m| json!({"role": role_name(m.role), "content": m.content})).collect();
            let mut body = json!({
                "model": model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": temperature,
            });
            if let Some(schema) = schema {
                body["response_format"] =
                    json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}});
            }
            body
        }
        RemoteKind::Anthropic => {
            let mut system: Vec<&str> =
                messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
            let instruction = schema.map(schema_instruction);
            if let Some(instruction) = &instruction {
                system.push(instruction);
            }
            let messages: Vec<Value> = messages
                .iter()
                .filter(|m| m.role != Role::System)
                .map(|m| json!({"role": role_name(m.role), "content": m.content}))
                .collect();
            let mut body = json!({
                "model": model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": temperature,
            });
            if !system.is_empty() {
                body["system"] = Value::from(system.join("\n\n"));
            }
            body
        }
    }
}

pub(crate) fn parse_answer(kind: RemoteKind, body: &Value, requested_model: &str) -> Result<WireAnswer, AttemptError> {
    let malformed = |what: &str| AttemptError::Permanent(format!("malformed answer: {what} missing in {body}"));
    let count = |pointer: &str| body.pointer(pointer).and_then(Value::as_u64).unwrap_or(0) as u32;
    let model = body.get("model").and_then(Value::as_str).unwrap_or(requested_model).to_owned();
    match kind {
        RemoteKind::OpenAi => {
            let message = body.pointer("/choices/0/message").ok_or_else(|| malformed("choices[0].message"))?;
            let text = match message.get("content") {
                Some(Value::String(text)) => text.clone(),
                _ => match message.get("refusal").and_then(Value::as_str) {
                    Some(refusal) => return Err(AttemptError::Permanent(format!("the model refused: {refusal}"))),
                    None => return Err(malformed("choices[0].message.content")),
                },
            };
            let usage = ChatUsage {
                prompt_tokens: count("/usage/prompt_tokens"),
                completion_tokens: count("/usage/completion_tokens"),
            };
            Ok(WireAnswer { text, model, usage })
        }
        RemoteKind::Anthropic => {
            let blocks = body.get("content").and_then(Value::as_array).ok_or_else(|| malformed("content"))?;
            let text: String = blocks
                .iter()
                .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|block| block.get("text").and_then(Value::as_str))
                .collect();
            let usage = ChatUsage {
                prompt_tokens: count("/usage/input_tokens"),
                completion_tokens: count("/usage/output_tokens"),
            };
            Ok(WireAnswer { text, model, usage })
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Vec<ChatMessage> {
        vec![ChatMessage::system("Be brief."), ChatMessage::user("Plan."), ChatMessage::assistant("{}")]
    }

    #[test]
    fn openai_bodies_carry_the_schema_as_response_format() {
        let schema = json!({"type": "object"});
        let body = request_body(RemoteKind::OpenAi, "gpt-x", &conversation(), 64, 0.0, Some(&schema));
        expect_test::expect![[r#"{"max_tokens":64,"messages":[{"content":"Be brief.","role":"system"},{"content":"Plan.","role":"user"},{"content":"{}","role":"assistant"}],"model":"gpt-x","response_format":{"json_schema":{"name":"answer","schema":{"type":"object"}},"type":"json_schema"},"temperature":0.0}"#]]
            .assert_eq(&sorted(&body));
    }

    #[test]
    fn anthropic_bodies_move_system_messages_and_the_schema_to_system() {
        let schema = json!({"type": "object"});
        let body = request_body(RemoteKind::Anthropic, "claude-x", &conversation(), 64, 0.5, Some(&schema));
        expect_test::expect![[r#"{"max_tokens":64,"messages":[{"content":"Plan.","role":"user"},{"content":"{}","role":"assistant"}],"model":"claude-x","system":"Be brief.\n\nAnswer with a single JSON value and nothing else (no prose, no code fence). It must satisfy this JSON schema:\n{\"type\":\"object\"}","temperature":0.5}"#]]
            .assert_eq(&sorted(&body));
    }

    #[test]
    fn answers_are_parsed() {
        let openai = json!({
            "model": "gpt-x-2024", "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2}
        });
        assert_eq!(
            parse_answer(RemoteKind::OpenAi, &openai, "gpt-x").unwrap(),
            WireAnswer {
                text: "hi".into(),
                model: "gpt-x-2024".into(),
                usage: ChatUsage { prompt_tokens: 9, completion_tokens: 2 }
            }
        );
        let refusal = json!({"choices": [{"message": {"content": null, "refusal": "no"}}]});
        assert_eq!(
            parse_answer(RemoteKind::OpenAi, &refusal, "m").unwrap_err(),
            AttemptError::Permanent("the model refused: no".into())
        );
        let anthropic = json!({
            "model": "claude-x", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "usage": {"input_tokens": 5, "output_tokens": 1}
        });
        assert_eq!(parse_answer(RemoteKind::Anthropic, &anthropic, "m").unwrap().text, "ab");
        assert!(parse_answer(RemoteKind::Anthropic, &json!({"type": "error"}), "m").is_err());
    }

    /// The body with object keys sorted, whatever serde_json's map order.
    fn sorted(value: &Value) -> String {
        fn sort(value: &Value) -> Value {
            match value {
                Value::Object(map) => {
                    let mut entries: Vec<_> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sort(v))).collect())
                }
                Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
                other => other.clone(),
            }
        }
        sort(value).to_string()
    }
}
