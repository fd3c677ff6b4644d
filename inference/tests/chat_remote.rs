//! Remote chat providers against a local HTTP server that speaks their wire
//! formats: success, schema repair, 429 with Retry-After, 500, timeouts,
//! connection failures, and the circuit breaker. Waits between retries go
//! through a `ManualClock`, so no test sleeps for a backoff.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Reply, Server};
use tokio::net::TcpListener;
use weft_inference::CancellationToken;
use weft_inference::chat::{
    ChatBackend, ChatError, ChatMessage, ChatRequest, ChatUsage, RemoteChat, RemoteChatConfig, RemoteKind,
};
use weft_inference::resilience::{BreakerConfig, BreakerState, ManualClock, RetryConfig};

fn openai_answer(content: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-test-2025",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        }),
    )
}

fn anthropic_answer(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 20, "output_tokens": 7}
        }),
    )
}

fn config(kind: RemoteKind, server: &Server) -> RemoteChatConfig {
    let mut config = RemoteChatConfig::new(kind, "test-model");
    config.base_url = format!("{}/", server.base_url);
    config.api_key = Some("sk-test".to_owned());
    config.timeout = Duration::from_secs(10);
    config.retry = RetryConfig { max_attempts: 3, base_delay_ms: 100, max_delay_ms: 1000, max_retry_after_ms: 5000 };
    config
}

fn verdict_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"verdict": {"enum": ["APPROVE", "REVISE", "REJECT"]}},
        "required": ["verdict"]
    })
}

fn request(schema: Option<Value>) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::system("You review code."), ChatMessage::user("Review: x = 1")],
        max_tokens: 64,
        temperature: 0.0,
        schema,
    }
}

#[tokio::test]
async fn openai_chat_sends_the_schema_and_reads_the_answer() {
    let server = Server::start(vec![openai_answer("{\"verdict\": \"APPROVE\"}")]).await;
    let chat = RemoteChat::new(config(RemoteKind::OpenAi, &server)).unwrap();
    assert_eq!(chat.model(), "test-model");
    let answer = chat.chat(request(Some(verdict_schema())), CancellationToken::new()).await.unwrap();
    assert_eq!(answer.text, "{\"verdict\": \"APPROVE\"}");
    assert_eq!(answer.model, "gpt-test-2025");
    assert_eq!(answer.usage, ChatUsage { prompt_tokens: 12, completion_tokens: 5 });

    let [sent] = server.received().try_into().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test");
    assert_eq!(sent.body["model"], "test-model");
    assert_eq!(sent.body["max_tokens"], 64);
    assert_eq!(sent.body["messages"][0], json!({"role": "system", "content": "You review code."}));
    assert_eq!(sent.body["response_format"]["type"], "json_schema");
    assert_eq!(sent.body["response_format"]["json_schema"]["schema"], verdict_schema());
}

#[tokio::test]
async fn anthropic_messages_use_their_headers_and_system_field() {
    let server = Server::start(vec![anthropic_answer("Here you go:\n```json\n{\"verdict\": \"REVISE\"}\n```")]).await;
    let chat = RemoteChat::new(config(RemoteKind::Anthropic, &server)).unwrap();
    let answer = chat.chat(request(Some(verdict_schema())), CancellationToken::new()).await.unwrap();
    // The JSON is taken out of the fence.
    assert_eq!(answer.text, "{\"verdict\": \"REVISE\"}");
    assert_eq!(answer.usage, ChatUsage { prompt_tokens: 20, completion_tokens: 7 });

    let [sent] = server.received().try_into().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], "sk-test");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert!(!sent.headers.contains_key("authorization"));
    assert_eq!(sent.body["messages"], json!([{"role": "user", "content": "Review: x = 1"}]));
    let system = sent.body["system"].as_str().unwrap();
    assert!(system.starts_with("You review code.\n\nAnswer with a single JSON value"), "{system}");
    assert!(system.contains("\"REJECT\""), "{system}");
}

#[tokio::test]
async fn an_invalid_answer_gets_one_repair_request() {
    let server =
        Server::start(vec![openai_answer("{\"verdict\": \"MAYBE\"}"), openai_answer("{\"verdict\": \"REJECT\"}")])
            .await;
    let chat = RemoteChat::new(config(RemoteKind::OpenAi, &server)).unwrap();
    let answer = chat.chat(request(Some(verdict_schema())), CancellationToken::new()).await.unwrap();
    assert_eq!(answer.text, "{\"verdict\": \"REJECT\"}");
    assert_eq!(answer.usage, ChatUsage { prompt_tokens: 24, completion_tokens: 10 });

    let received = server.received();
    assert_eq!(received.len(), 2);
    let messages = received[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2], json!({"role": "assistant", "content": "{\"verdict\": \"MAYBE\"}"}));
    let repair = messages[3]["content"].as_str().unwrap();
    assert!(
        repair.starts_with(
            "Your answer is not valid: #/verdict: expected one of \"APPROVE\", \"REVISE\", \"REJECT\", found \"MAYBE\"."
        ),
        "{repair}"
    );

    // A second invalid answer is the end.
    server.push(openai_answer("I approve."));
    server.push(openai_answer("{\"verdict\": 3}"));
    let err = chat.chat(request(Some(verdict_schema())), CancellationToken::new()).await.unwrap_err();
    assert!(
        matches!(&err, ChatError::InvalidOutput(m, _) if m.ends_with("found 3 (after one repair request)")),
        "{err}"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_the_servers_delay() {
    let rate_limited = Reply::json(429, json!({"error": {"message": "Rate limit reached", "type": "requests"}}));
    let server = Server::start(vec![rate_limited.header("retry-after", "2"), openai_answer("hello")]).await;
    let clock = Arc::new(ManualClock::new());
    let chat = RemoteChat::with_clock(config(RemoteKind::OpenAi, &server), clock.clone()).unwrap();
    let answer = chat.chat(request(None), CancellationToken::new()).await.unwrap();
    assert_eq!(answer.text, "hello");
    assert_eq!(server.received().len(), 2);
    assert_eq!(clock.sleeps(), [Duration::from_secs(2)]);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_reported() {
    let error = Reply::json(500, json!({"error": {"message": "internal"}}));
    let overloaded =
        Reply::json(529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    let server = Server::start(vec![error.clone(), overloaded.clone(), anthropic_answer("fine")]).await;
    let clock = Arc::new(ManualClock::new());
    let chat = RemoteChat::with_clock(config(RemoteKind::Anthropic, &server), clock.clone()).unwrap();
    assert_eq!(chat.chat(request(None), CancellationToken::new()).await.unwrap().text, "fine");
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 2);
    // Equal jitter: half to all of 100 ms, then of 200 ms.
    assert!(sleeps[0] >= Duration::from_millis(50) && sleeps[0] <= Duration::from_millis(100), "{sleeps:?}");
    assert!(sleeps[1] >= Duration::from_millis(100) && sleeps[1] <= Duration::from_millis(200), "{sleeps:?}");

    for _ in 0..3 {
        server.push(error.clone());
    }
    let err = chat.chat(request(None), CancellationToken::new()).await.unwrap_err();
    let ChatError::Transient(message) = err else { panic!("{err}") };
    assert!(message.ends_with("HTTP 500: internal (after 3 attempts)"), "{message}");
}

#[tokio::test]
async fn client_errors_fail_at_once() {
    let bad = Reply::json(400, json!({"error": {"message": "Unknown model test-model"}}));
    let server = Server::start(vec![bad]).await;
    let chat = RemoteChat::new(config(RemoteKind::OpenAi, &server)).unwrap();
    let err = chat.chat(request(None), CancellationToken::new()).await.unwrap_err();
    let ChatError::Failed(message) = err else { panic!("{err}") };
    assert!(message.ends_with("HTTP 400: Unknown model test-model"), "{message}");
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transient() {
    let slow = openai_answer("late").delayed(Duration::from_secs(30));
    let server = Server::start(vec![slow.clone(), slow]).await;
    let mut settings = config(RemoteKind::OpenAi, &server);
    settings.timeout = Duration::from_millis(300);
    settings.retry.max_attempts = 2;
    let chat = RemoteChat::with_clock(settings, Arc::new(ManualClock::new())).unwrap();
    let err = chat.chat(request(None), CancellationToken::new()).await.unwrap_err();
    let ChatError::Transient(message) = err else { panic!("{err}") };
    assert!(message.contains("timed out") && message.ends_with("(after 2 attempts)"), "{message}");
    assert_eq!(server.received().len(), 2);

    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = config(RemoteKind::OpenAi, &server);
    settings.base_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    settings.retry.max_attempts = 1;
    let chat = RemoteChat::new(settings).unwrap();
    let err = chat.chat(request(None), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, ChatError::Transient(_)), "{err}");
}

#[tokio::test]
async fn the_breaker_opens_refuses_and_half_opens_after_its_cooldown() {
    let error = Reply::json(503, json!({"error": {"message": "down"}}));
    let server = Server::start(vec![error.clone(), error.clone()]).await;
    let clock = Arc::new(ManualClock::new());
    let mut settings = config(RemoteKind::OpenAi, &server);
    settings.retry.max_attempts = 1;
    settings.breaker = BreakerConfig { failure_threshold: 2, cooldown_ms: 10_000 };
    let chat = RemoteChat::with_clock(settings, clock.clone()).unwrap();

    for _ in 0..2 {
        let err = chat.chat(request(None), CancellationToken::new()).await.unwrap_err();
        assert!(matches!(err, ChatError::Transient(_)), "{err}");
    }
    assert_eq!(chat.breaker().state(), BreakerState::Open);
    // Refused without a request reaching the server.
    let err = chat.chat(request(None), CancellationToken::new()).await.unwrap_err();
    let ChatError::Unavailable(message) = err else { panic!("{err}") };
    assert!(message.contains("circuit breaker open") && message.contains("next try in 10.0 s"), "{message}");
    assert_eq!(server.received().len(), 2);

    // After the cooldown one probe goes through; it fails, the breaker reopens.
    clock.advance(Duration::from_secs(10));
    assert_eq!(chat.breaker().state(), BreakerState::HalfOpen);
    server.push(error);
    assert!(matches!(chat.chat(request(None), CancellationToken::new()).await, Err(ChatError::Transient(_))));
    assert_eq!(chat.breaker().state(), BreakerState::Open);
    assert_eq!(server.received().len(), 3);

    // The next probe succeeds and closes it.
    clock.advance(Duration::from_secs(10));
    server.push(openai_answer("back"));
    assert_eq!(chat.chat(request(None), CancellationToken::new()).await.unwrap().text, "back");
    assert_eq!(chat.breaker().state(), BreakerState::Closed);
}

#[tokio::test]
async fn cancellation_abandons_a_hanging_request() {
    let server = Server::start(vec![openai_answer("late").delayed(Duration::from_secs(60))]).await;
    let chat = RemoteChat::new(config(RemoteKind::OpenAi, &server)).unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    assert_eq!(chat.chat(request(None), cancel).await, Err(ChatError::Cancelled));
    // A cancelled request is no failure of the provider.
    assert_eq!(chat.breaker().state(), BreakerState::Closed);
}
