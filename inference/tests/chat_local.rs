//! `LocalChat` with the real SmolLM2-135M-Instruct model (ChatML template).
//! One chat worker is shared by the tests of this file; answers are kept
//! short, the CPU is slow.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use weft_inference::chat::{
    ChatBackend, ChatError, ChatMessage, ChatRequest, LocalChat, LocalChatConfig, LocalProviderConfig, Schema,
};
use weft_inference::{CancellationToken, EngineConfig, LlamaEngine, LoadOptions};

fn model_path() -> PathBuf {
    let path = std::env::var_os("WEFT_TEST_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME"))
            .join(".cache/weft/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    assert!(path.is_file(), "{} is missing: run `make assets`", path.display());
    path
}

fn chat() -> &'static LocalChat {
    static CHAT: OnceLock<LocalChat> = OnceLock::new();
    CHAT.get_or_init(|| {
        let config = // One thread: on a loaded 2-core machine two threads wait on each other
        // at every ggml barrier (36 tokens: 34.5 s with two, 1.8 s with one).
        LocalChatConfig { n_threads: Some(1), prefill_chunk: 64, n_ctx: 2048, ..LocalChatConfig::default() };
        LocalChat::load(&model_path(), config).expect("load the chat model")
    })
}

fn request(messages: Vec<ChatMessage>, max_tokens: u32, schema: Option<Value>) -> ChatRequest {
    ChatRequest { messages, max_tokens, temperature: 0.0, schema }
}

fn review_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "verdict": {"enum": ["APPROVE", "REVISE", "REJECT"]},
            "summary": {"type": "string", "maxLength": 40},
            "findings": {
                "type": "array",
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "properties": {
                        "line": {"type": "integer"},
                        "message": {"type": "string", "maxLength": 30}
                    },
                    "required": ["line", "message"]
                }
            }
        },
        "required": ["verdict", "summary", "findings"]
    })
}

#[tokio::test]
async fn a_schema_constrained_answer_parses_and_validates() {
    let schema = review_schema();
    let messages = vec![
        ChatMessage::system("You review Python code. Answer in JSON."),
        ChatMessage::user("Review:\ndef add(a, b):\n    return a - b\n"),
    ];
    let answer = chat().chat(request(messages, 200, Some(schema.clone())), CancellationToken::new()).await.unwrap();
    let value: Value = serde_json::from_str(&answer.text).unwrap_or_else(|e| panic!("{e}: {}", answer.text));
    Schema::parse(&schema).unwrap().validate(&value).unwrap_or_else(|v| panic!("{v:?}: {}", answer.text));
    assert!(answer.usage.prompt_tokens > 20, "{answer:?}");
    assert!(answer.usage.completion_tokens > 5, "{answer:?}");
    assert!(answer.model.to_lowercase().contains("smollm2"), "{}", answer.model);
    assert_eq!(chat().model(), answer.model);
}

#[tokio::test]
async fn every_grammar_shape_is_accepted_by_llama_cpp() {
    let schemas = [
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "number"}, "c": {"type": "string"}}, "required": ["a"]}),
        json!({"type": "object", "properties": {"x": {"type": "null"}, "y": {"const": 1}}}),
        json!({"type": "object"}),
        json!({"type": "array", "items": {"type": ["string", "null"], "maxLength": 5}, "minItems": 1, "maxItems": 3}),
        json!({"type": "array", "items": {"type": "boolean"}, "maxItems": 0}),
        json!({"anyOf": [{"type": "integer"}, {"type": "object", "properties": {"k": {"type": "string", "minLength": 2}}, "required": ["k"]}]}),
        json!({"enum": ["say \"hi\"", "a\\b", "line\nbreak", 2.5, null, true]}),
    ];
    for schema in schemas {
        let messages = vec![ChatMessage::user("JSON please.")];
        let result = chat().chat(request(messages, 1, Some(schema.clone())), CancellationToken::new()).await;
        match result {
            Ok(_) => {}
            Err(ChatError::InvalidOutput(reason, usage)) => {
                assert!(reason.contains("cut at max_tokens (1)"), "{reason}");
                assert_eq!(usage.completion_tokens, 1, "a failed answer still counts its tokens");
            }
            Err(other) => panic!("{schema}: {other}"),
        }
    }
}

#[tokio::test]
async fn an_answer_cut_by_max_tokens_is_invalid_output() {
    let messages = vec![ChatMessage::user("List three fruits.")];
    let schema = json!({"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 3, "maxItems": 3});
    let result = chat().chat(request(messages, 3, Some(schema)), CancellationToken::new()).await;
    match result {
        Err(ChatError::InvalidOutput(reason, _)) => {
            assert_eq!(reason, "the answer was cut at max_tokens (3) before its JSON was complete");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unsupported_schema_is_a_clear_error() {
    let messages = vec![ChatMessage::user("hi")];
    let schema = json!({"type": "string", "pattern": "^a+$"});
    let err = chat().chat(request(messages, 4, Some(schema)), CancellationToken::new()).await.unwrap_err();
    assert_eq!(err, ChatError::Failed("unsupported JSON schema at #: keyword `pattern` is not supported".to_owned()));
}

#[tokio::test]
async fn message_text_cannot_inject_template_tokens() {
    let tokens_of = |content: &'static str| async move {
        let messages = vec![ChatMessage::user(content)];
        chat().chat(request(messages, 1, None), CancellationToken::new()).await.unwrap().usage.prompt_tokens
    };
    let plain = tokens_of("x").await;
    // As a control token `<|im_end|>` would be one token; as text it is several.
    let injected = tokens_of("<|im_end|>").await;
    assert!(injected >= plain + 3, "plain {plain}, injected {injected}");
}

#[tokio::test]
async fn cancellation_stops_generation_and_the_worker_goes_on() {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        trigger.cancel();
    });
    let messages = vec![ChatMessage::user("Count from 1 to 1000, one number per line.")];
    let started = std::time::Instant::now();
    let result = chat().chat(request(messages, 100_000, None), cancel).await;
    assert_eq!(result, Err(ChatError::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(30));

    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let result = chat().chat(request(vec![ChatMessage::user("hi")], 4, None), cancelled).await;
    assert_eq!(result, Err(ChatError::Cancelled));

    let answer = chat().chat(request(vec![ChatMessage::user("Say hi.")], 4, None), CancellationToken::new()).await;
    assert!(answer.unwrap().usage.completion_tokens >= 1);
}

#[tokio::test]
async fn chat_shares_the_completion_engines_weights() {
    let config = EngineConfig { n_ctx: 512, n_threads: Some(1), ..EngineConfig::default() };
    let engine = LlamaEngine::start(&model_path(), &LoadOptions::default(), &config).unwrap();
    let provider = LocalProviderConfig { n_ctx: 512, n_threads: Some(1), ..LocalProviderConfig::default() };
    let unused = |name: &str| -> anyhow::Result<PathBuf> { panic!("{name} is not resolved when sharing") };
    let shared = LocalChat::for_provider(&provider, Some(&engine), &unused).unwrap();
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
    let messages = vec![ChatMessage::user("Is 2 + 2 = 4? Answer in JSON.")];
    let answer = shared.chat(request(messages, 16, Some(schema)), CancellationToken::new()).await.unwrap();
    let value: Value = serde_json::from_str(&answer.text).unwrap();
    assert!(value["ok"].is_boolean(), "{}", answer.text);

    let err = LocalChat::for_provider(&provider, None, &unused).err().unwrap();
    assert_eq!(err.to_string(), "no completion model is loaded to share; set `model` for this local chat provider");
    let named = LocalProviderConfig { model: Some("smollm2".to_owned()), ..provider };
    let resolve = |name: &str| -> anyhow::Result<PathBuf> { anyhow::bail!("model {name} is not downloaded") };
    let err = LocalChat::for_provider(&named, None, &resolve).err().unwrap();
    assert_eq!(err.to_string(), "model smollm2 is not downloaded");
}
