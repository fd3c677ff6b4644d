//! Remote completion backends against a local server speaking
//! `/v1/completions` and llama-server's `/infill`.

mod support;

use std::sync::Arc;

use serde_json::json;
use support::{Reply, Server};
use weft_inference::prompt::ContextSnippet;
use weft_inference::remote_completion::{RemoteCompletion, RemoteCompletionConfig, RemoteCompletionKind};
use weft_inference::resilience::{BreakerConfig, BreakerState, ManualClock};
use weft_inference::{CancellationToken, CompletionError, CompletionRequest, FinishReason, Language, PromptFormat};

fn request() -> CompletionRequest {
    let mut request = CompletionRequest::new("import util\n\ndef add(a, b):\n    return ", "\n", Language::Python);
    request.path = Some("src/math.py".to_owned());
    request.snippets =
        vec![ContextSnippet { path: "src/util.py".into(), text: "def sub(a, b):\n    return a - b\n".into() }];
    request.max_tokens = 16;
    request
}

#[tokio::test]
async fn openai_completions_get_weft_fim_prompt_text() {
    // StarCoder2's default order is SPM: the generated text continues the prefix.
    let answer = json!({
        "id": "cmpl-1", "object": "text_completion", "model": "starcoder2-3b",
        "choices": [{"index": 0, "text": "a + b\nprint(add(1, 2))", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 31, "completion_tokens": 9}
    });
    let server = Server::start(vec![Reply::json(200, answer)]).await;
    let mut config =
        RemoteCompletionConfig::new(RemoteCompletionKind::OpenAiCompletions, &server.base_url, "starcoder2-3b");
    config.format = PromptFormat::Starcoder2;
    config.api_key = Some("sk-test".into());
    let backend = RemoteCompletion::new(config).unwrap();
    let completion = backend.complete(request(), CancellationToken::new()).await.unwrap();
    // Single-line at the end of a line: postprocessing keeps the first line.
    assert_eq!(completion.text, "a + b");
    assert_eq!(completion.raw_text, "a + b\nprint(add(1, 2))");
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert_eq!((completion.prompt_tokens, completion.generated_tokens), (31, 9));
    assert_eq!(completion.model, "starcoder2-3b");

    let [sent] = server.received().try_into().unwrap();
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test");
    assert_eq!(sent.body["model"], "starcoder2-3b");
    assert_eq!(sent.body["max_tokens"], 16);
    assert_eq!(sent.body["stop"], json!(["\n"]));
    expect_test::expect![[r#"
        <repo_name>workspace
        <file_sep>src/util.py
        def sub(a, b):
            return a - b
        <file_sep>src/math.py
        <fim_prefix><fim_suffix>
        <fim_middle>import util

        def add(a, b):
            return "#]]
    .assert_eq(sent.body["prompt"].as_str().unwrap());
}

#[tokio::test]
async fn llama_server_infill_gets_prefix_suffix_and_extra_context() {
    let answer = json!({
        "content": "a + b", "tokens_predicted": 4, "tokens_evaluated": 40,
        "stop_type": "eos", "timings": {"predicted_ms": 12.5}
    });
    let limited =
        json!({"content": "a + b + c + d", "tokens_predicted": 16, "tokens_evaluated": 40, "stop_type": "limit"});
    let server = Server::start(vec![Reply::json(200, answer), Reply::json(200, limited)]).await;
    let config = RemoteCompletionConfig::new(RemoteCompletionKind::LlamaServerInfill, &server.base_url, "qwen-coder");
    let backend = RemoteCompletion::new(config).unwrap();
    let completion = backend.complete(request(), CancellationToken::new()).await.unwrap();
    assert_eq!(completion.text, "a + b");
    assert_eq!(completion.finish_reason, FinishReason::EndOfText);
    assert_eq!((completion.prompt_tokens, completion.generated_tokens), (40, 4));

    let [sent] = server.received().try_into().unwrap();
    assert_eq!(sent.path, "/infill");
    assert!(!sent.headers.contains_key("authorization"));
    assert_eq!(sent.body["input_prefix"], "import util\n\ndef add(a, b):\n    return ");
    assert_eq!(sent.body["input_suffix"], "\n");
    assert_eq!(
        sent.body["input_extra"],
        json!([{"filename": "src/util.py", "text": "def sub(a, b):\n    return a - b\n"}])
    );
    assert_eq!(sent.body["n_predict"], 16);
    assert_eq!(sent.body["cache_prompt"], true);

    let cut = backend.complete(request(), CancellationToken::new()).await.unwrap();
    assert_eq!(cut.finish_reason, FinishReason::MaxTokens);
}

#[tokio::test]
async fn remote_completion_retries_then_opens_its_breaker() {
    let busy = Reply::json(503, json!({"error": {"message": "loading model"}}));
    let ok = Reply::json(200, json!({"content": "a + b", "tokens_predicted": 4, "tokens_evaluated": 40}));
    let server = Server::start(vec![busy.clone(), ok]).await;
    let clock = Arc::new(ManualClock::new());
    let mut config = RemoteCompletionConfig::new(RemoteCompletionKind::LlamaServerInfill, &server.base_url, "m");
    config.breaker = BreakerConfig { failure_threshold: 3, cooldown_ms: 5000 };
    let backend = RemoteCompletion::with_clock(config, clock.clone()).unwrap();
    assert_eq!(backend.complete(request(), CancellationToken::new()).await.unwrap().text, "a + b");
    assert_eq!(clock.sleeps().len(), 1);

    for _ in 0..3 {
        server.push(busy.clone());
    }
    let err = backend.complete(request(), CancellationToken::new()).await.unwrap_err();
    assert!(
        matches!(&err, CompletionError::Remote(m) if m.ends_with("HTTP 503: loading model (after 2 attempts)")),
        "{err}"
    );
    // The third consecutive failure opens the breaker; its retry and the
    // next request are refused without reaching the server.
    for _ in 0..2 {
        let err = backend.complete(request(), CancellationToken::new()).await.unwrap_err();
        assert!(matches!(&err, CompletionError::Remote(m) if m.contains("circuit breaker open")), "{err}");
    }
    assert_eq!(backend.breaker().state(), BreakerState::Open);
    assert_eq!(server.received().len(), 5);

    let cancel = CancellationToken::new();
    cancel.cancel();
    assert!(matches!(backend.complete(request(), cancel).await, Err(CompletionError::Cancelled)));
}
