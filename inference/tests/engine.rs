//! The llama.cpp engine with the real SmolLM2-135M model. One engine is
//! shared by the tests of this file: loading is cheap, but CPU time is not.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use weft_inference::{
    CancellationToken, CompletionError, CompletionRequest, EngineConfig, FinishReason, Language, LlamaEngine,
    LoadOptions, PromptFormat,
};

fn model_path() -> PathBuf {
    let path = std::env::var_os("WEFT_TEST_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME"))
            .join(".cache/weft/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    assert!(path.is_file(), "{} is missing: run `make assets`", path.display());
    path
}

fn start_engine() -> LlamaEngine {
    let config = EngineConfig { n_threads: Some(1), prefill_chunk: 64, ..EngineConfig::default() };
    LlamaEngine::start(&model_path(), &LoadOptions::default(), &config).expect("start engine")
}

fn engine() -> &'static LlamaEngine {
    static ENGINE: OnceLock<LlamaEngine> = OnceLock::new();
    ENGINE.get_or_init(start_engine)
}

fn request(prefix: &str, suffix: &str, max_tokens: usize) -> CompletionRequest {
    let mut request = CompletionRequest::new(prefix, suffix, Language::Python);
    request.max_tokens = max_tokens;
    request
}

/// A counting prompt: the model goes on counting on one line for as long as
/// it may.
fn counting(max_tokens: usize) -> CompletionRequest {
    let mut request =
        CompletionRequest::new("numbers = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, ", "", Language::Python);
    request.max_tokens = max_tokens;
    request.multiline = Some(false);
    request.time_budget = Duration::from_secs(120);
    request
}

#[tokio::test]
async fn smollm2_is_prefix_only_and_completes() {
    let info = engine().info();
    assert_eq!(info.detection.format, PromptFormat::PrefixOnly, "{}", info.detection.reason);
    let completion =
        engine().complete(request("def add(a, b):\n    return ", "\n", 12), CancellationToken::new()).await.unwrap();
    assert!(completion.prompt_tokens > 5);
    assert!(completion.generated_tokens >= 1);
    assert!(!completion.raw_text.is_empty());
    assert!(completion.timings.prefill_ms > 0.0 && completion.timings.decode_ms > 0.0);
    assert!(completion.mean_logprob.is_none_or(|l| l <= 0.0));
    assert!(completion.logprobs.iter().all(|&l| l <= 0.0 && l.is_finite()));
}

#[tokio::test]
async fn max_tokens_ends_generation() {
    let completion = engine().complete(counting(5), CancellationToken::new()).await.unwrap();
    assert_eq!(completion.finish_reason, FinishReason::MaxTokens);
    assert_eq!(completion.generated_tokens, 5);
}

#[tokio::test]
async fn the_time_budget_ends_generation() {
    let mut request = counting(10_000);
    request.time_budget = Duration::from_millis(300);
    let completion = engine().complete(request, CancellationToken::new()).await.unwrap();
    assert_eq!(completion.finish_reason, FinishReason::TimeBudget);
    assert!(completion.generated_tokens < 10_000);
}

#[tokio::test]
async fn the_kv_cache_is_reused_while_typing() {
    // An engine of its own: the shared one serves the other tests' prompts
    // in between, which replace its cache.
    let engine = &start_engine();
    let prefix = "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.";
    let first = engine.complete(request(prefix, "\n", 2), CancellationToken::new()).await.unwrap();
    // The same prompt again: everything but the last token is reused.
    let again = engine.complete(request(prefix, "\n", 2), CancellationToken::new()).await.unwrap();
    assert_eq!(again.reused_tokens, again.prompt_tokens - 1, "{again:?}");
    // One more typed character: only the tail is evaluated.
    let typed = engine.complete(request(&format!("{prefix}a"), "\n", 2), CancellationToken::new()).await.unwrap();
    assert!(typed.reused_tokens + 3 >= typed.prompt_tokens, "{typed:?} after {first:?}");
}

#[tokio::test]
async fn cancellation_stops_decoding_between_steps() {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        trigger.cancel();
    });
    let started = std::time::Instant::now();
    let result = engine().complete(counting(100_000), cancel).await;
    assert!(matches!(result, Err(CompletionError::Cancelled)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // The engine goes on serving.
    engine().complete(counting(2), CancellationToken::new()).await.unwrap();
}

#[tokio::test]
async fn cancellation_stops_prefill_between_chunks_and_keeps_what_was_done() {
    let long: String = (0..300).map(|i| format!("value_{i} = {i} * {i}\n")).collect();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let mut long_request = request(&long, "", 4);
    long_request.multiline = Some(false);
    // An engine of its own: on the shared one, another test's job could hold
    // the worker past the cancel, and this job would never start.
    let own = start_engine();
    let result = own.complete(long_request.clone(), cancel).await;
    assert!(matches!(result, Err(CompletionError::Cancelled)), "{result:?}");
    // The chunks decoded before the cancel stay in the cache (the chunk
    // under way when the cancel came is finished first).
    let done = own.complete(long_request, CancellationToken::new()).await.unwrap();
    assert!(done.reused_tokens > 0, "{done:?}");
}

#[tokio::test]
async fn a_cancelled_request_in_the_queue_never_runs() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let result = engine().complete(counting(4), cancel).await;
    assert!(matches!(result, Err(CompletionError::Cancelled)), "{result:?}");
}

#[tokio::test]
async fn a_full_queue_is_a_clear_error_and_long_prompts_are_fitted() {
    let config = EngineConfig { n_ctx: 256, n_threads: Some(1), queue_capacity: 1, ..EngineConfig::default() };
    let small = LlamaEngine::start(&model_path(), &LoadOptions::default(), &config).unwrap();
    let long: String = (0..200).map(|i| format!("x{i} = {i}\n")).collect();
    // The prompt is fitted to the window, never refused for its length.
    let fitted = small.complete(request(&long, "", 4), CancellationToken::new()).await.unwrap();
    assert!(fitted.prompt_tokens + 4 <= 256, "{fitted:?}");

    let results =
        futures_util::future::join_all((0..4).map(|_| small.complete(counting(30), CancellationToken::new()))).await;
    let overloaded = results.iter().filter(|r| matches!(r, Err(CompletionError::Overloaded(1)))).count();
    assert!(overloaded >= 1, "{results:?}");
    assert!(results.iter().any(Result::is_ok));
    let busy = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(busy.to_string().contains("the inference queue is full"), "{busy}");
}
