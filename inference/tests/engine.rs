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
    // Greedy SmolLM2 closes the list at 20 (24 tokens), which a fast
    // machine reaches within the budget; without stops only the budget
    // ends it.
    request.ignore_eos = true;
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
    long_request.time_budget = Duration::from_secs(600);
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
    let config =
        EngineConfig { n_ctx: 256, n_threads: Some(1), slots: 1, queue_capacity: 1, ..EngineConfig::default() };
    let small = LlamaEngine::start(&model_path(), &LoadOptions::default(), &config).unwrap();
    let long: String = (0..200).map(|i| format!("x{i} = {i}\n")).collect();
    // The prompt is fitted to the window, never refused for its length.
    let fitted = small.complete(request(&long, "", 4), CancellationToken::new()).await.unwrap();
    assert!(fitted.prompt_tokens + 4 <= 256, "{fitted:?}");

    let results =
        futures_util::future::join_all((0..4).map(|_| small.complete(counting(30), CancellationToken::new()))).await;
    // One runs, one waits for the slot, the others are refused at once.
    let overloaded = results.iter().filter(|r| matches!(r, Err(CompletionError::Overloaded(1)))).count();
    assert!(overloaded >= 2, "{results:?}");
    assert!(results.iter().any(Result::is_ok));
    let busy = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(busy.to_string().contains("the inference queue is full"), "{busy}");
}

/// A prompt of about `lines` × 8 tokens, distinct for each `tag`.
fn file(tag: &str, lines: usize) -> String {
    (0..lines).map(|i| format!("{tag}_{i} = {i} + {i}\n")).collect()
}

#[tokio::test]
async fn switching_files_keeps_the_other_files_cache_in_its_slot() {
    let config = EngineConfig { n_threads: Some(1), slots: 2, ..EngineConfig::default() };
    let engine = LlamaEngine::start(&model_path(), &LoadOptions::default(), &config).unwrap();
    let a = file("alpha", 12);
    let b = file("beta", 12);
    let first = engine.complete(request(&a, "", 1), CancellationToken::new()).await.unwrap();
    engine.complete(request(&b, "", 1), CancellationToken::new()).await.unwrap();
    // Back in the first file, one character typed: its slot still holds it.
    let back = engine.complete(request(&format!("{a}a"), "", 1), CancellationToken::new()).await.unwrap();
    assert!(back.reused_tokens + 3 >= back.prompt_tokens, "{back:?} after {first:?}");
    // And the second file's slot was not given up either.
    let b_again = engine.complete(request(&format!("{b}b"), "", 1), CancellationToken::new()).await.unwrap();
    assert!(b_again.reused_tokens + 3 >= b_again.prompt_tokens, "{b_again:?}");

    // With one slot, the other file's prompt replaces the cache.
    let config = EngineConfig { n_threads: Some(1), slots: 1, ..EngineConfig::default() };
    let single = LlamaEngine::start(&model_path(), &LoadOptions::default(), &config).unwrap();
    single.complete(request(&a, "", 1), CancellationToken::new()).await.unwrap();
    single.complete(request(&b, "", 1), CancellationToken::new()).await.unwrap();
    let lost = single.complete(request(&format!("{a}a"), "", 1), CancellationToken::new()).await.unwrap();
    assert!(lost.reused_tokens * 2 < lost.prompt_tokens, "{lost:?}");
}

#[tokio::test]
async fn concurrent_requests_are_decoded_together_and_a_short_prompt_does_not_wait_for_a_long_one() {
    let config = EngineConfig { n_threads: Some(1), slots: 4, prefill_chunk: 64, ..EngineConfig::default() };
    let engine = LlamaEngine::start(&model_path(), &LoadOptions::default(), &config).unwrap();
    let order = std::sync::Mutex::new(Vec::new());
    let run = |name: &'static str, request: CompletionRequest| {
        let engine = engine.clone();
        let order = &order;
        async move {
            let completion = engine.complete(request, CancellationToken::new()).await;
            order.lock().unwrap().push(name);
            completion
        }
    };
    // The long prompt (~800 tokens) is sent first; served first come, first
    // served, the short one would wait for all of its prefill.
    let mut long = request(&file("long", 100), "", 4);
    long.ignore_eos = true;
    // The time budget counts prefill; a loaded machine must not cut it short.
    long.time_budget = Duration::from_secs(600);
    let mut short = request("x = 1\ny = ", "", 4);
    short.ignore_eos = true;
    short.time_budget = Duration::from_secs(600);
    let mut count = counting(24);
    count.ignore_eos = true;
    let (long, short, counted) = tokio::join!(run("long", long), run("short", short), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        run("counting", count).await
    });
    let (long, short, counted) = (long.unwrap(), short.unwrap(), counted.unwrap());
    assert_eq!((long.generated_tokens, short.generated_tokens, counted.generated_tokens), (4, 4, 24));
    let order = order.into_inner().unwrap();
    assert_eq!(order.first(), Some(&"short"), "{order:?}: long {long:?} short {short:?}");
    assert!(short.prompt_tokens < 20 && long.prompt_tokens > 500, "{short:?} {long:?}");
}

#[tokio::test]
async fn ignore_eos_generates_exactly_max_tokens() {
    let mut request = request("def add(a, b):\n    return a + b\n", "", 20);
    request.ignore_eos = true;
    let completion = engine().complete(request, CancellationToken::new()).await.unwrap();
    assert_eq!(completion.generated_tokens, 20, "{completion:?}");
    assert_eq!(completion.finish_reason, FinishReason::MaxTokens);
}

#[tokio::test]
async fn an_empty_prompt_gets_an_empty_answer() {
    // SmolLM2 adds no BOS token: an empty document is an empty prompt.
    let completion = engine().complete(request("", "", 8), CancellationToken::new()).await.unwrap();
    assert_eq!((completion.text.as_str(), completion.generated_tokens), ("", 0), "{completion:?}");
}

#[tokio::test]
async fn engines_of_one_file_share_its_weights() {
    let config = EngineConfig { n_threads: Some(1), slots: 1, ..EngineConfig::default() };
    let other = LlamaEngine::start(&model_path(), &LoadOptions::default(), &config).expect("second engine");
    assert!(std::sync::Arc::ptr_eq(&engine().model(), &other.model()), "the weights are loaded once");
    // Other load options are another model.
    let vocab_only = LoadOptions { vocab_only: true, ..LoadOptions::default() };
    let vocab = weft_inference::LoadedModel::shared(&model_path(), &vocab_only).expect("vocabulary");
    assert!(!std::sync::Arc::ptr_eq(&vocab, &other.model()));
    // Each engine has its own context and slots on the shared weights.
    let completion = other.complete(request("def add(a, b):\n    return ", "\n", 4), CancellationToken::new()).await;
    assert!(completion.expect("the second engine completes").generated_tokens >= 1);
}
