//! Code completion by a remote server: an OpenAI-compatible
//! `/v1/completions` endpoint given Weft's own FIM prompt as text, or
//! llama-server's `/infill`, which builds the FIM prompt itself.
//!
//! The prompt is assembled by [`prompt::build`], the function local models
//! use, on a byte-level stand-in tokenizer ([`ByteTokens`]): windows are cut
//! at the same line starts, snippets and path headers are the same, and FIM
//! tokens are written as the format's token texts. Budgets are given in
//! tokens and converted at [`BYTES_PER_TOKEN`]. The answer goes through the
//! same [`Postprocessor`] as local completions. Every request goes through
//! the backend's retry policy and circuit breaker (`crate::resilience`).
//!
//! A [`Completion`] from a server carries what the server reports: token
//! counts, the log-probabilities of the generated tokens (asked for with
//! `logprobs` / `n_probs`), prompt tokens it reused from its cache, and,
//! where llama-server reports its own timings, prefill and decode time apart
//! from the time the request spent on the network and in the server's queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::completion::{Completion, CompletionError, CompletionRequest, FinishReason, Timings};
use crate::family::{FimOrder, PromptFormat};
use crate::postprocess::{LineMode, Postprocessor, line_mode};
use crate::prompt::{self, PromptBudget, SpecialTokens, TokenId, Tokenize};
use crate::resilience::{
    AttemptError, BreakerConfig, CallError, CircuitBreaker, Clock, RetryConfig, RetryPolicy, SystemClock, http,
};

/// Bytes of source per token when budgets in tokens are applied to text
/// (code averages 3–4 bytes per token in the BPE vocabularies Weft knows).
pub const BYTES_PER_TOKEN: usize = 3;

/// The protocol of a remote completion server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteCompletionKind {
    /// `POST {base_url}/v1/completions` with the whole prompt as text.
    OpenAiCompletions,
    /// `POST {base_url}/infill` with `input_prefix`, `input_suffix` and
    /// `input_extra` (llama.cpp's server).
    LlamaServerInfill,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoteCompletionConfig {
    pub kind: RemoteCompletionKind,
    /// Without the path, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// The model name sent to `/v1/completions` and reported in results.
    pub model: String,
    /// The remote model's prompt format (for `/v1/completions`).
    pub format: PromptFormat,
    pub fim_order: Option<FimOrder>,
    /// In tokens, converted at [`BYTES_PER_TOKEN`].
    pub budget: PromptBudget,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
}

impl RemoteCompletionConfig {
    pub fn new(kind: RemoteCompletionKind, base_url: impl Into<String>, model: impl Into<String>) -> Self {
        RemoteCompletionConfig {
            kind,
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            format: PromptFormat::PrefixOnly,
            fim_order: None,
            budget: PromptBudget::default(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            // Completions are stale quickly: retry once, soon.
            retry: RetryConfig { max_attempts: 2, base_delay_ms: 100, max_delay_ms: 500, max_retry_after_ms: 2000 },
            breaker: BreakerConfig::default(),
        }
    }
}

/// A remote completion server. Cheap to clone; clones share the breaker.
#[derive(Clone)]
pub struct RemoteCompletion {
    shared: Arc<Shared>,
}

struct Shared {
    config: RemoteCompletionConfig,
    url: String,
    client: reqwest::Client,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
}

/// What the server answered.
#[derive(Debug, PartialEq)]
struct Answer {
    text: String,
    finish: FinishReason,
    prompt_tokens: usize,
    generated_tokens: usize,
    /// Prompt tokens the server took from its cache, when it says.
    reused_tokens: Option<usize>,
    /// The generated tokens' texts and log-probabilities, when reported.
    tokens: Vec<(String, f32)>,
    /// The server's own prefill and decode milliseconds (llama-server).
    server_ms: Option<(f64, f64)>,
}

impl RemoteCompletion {
    pub fn new(config: RemoteCompletionConfig) -> anyhow::Result<Self> {
        RemoteCompletion::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(config: RemoteCompletionConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| anyhow::anyhow!("the API key is not a valid HTTP header value"))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()?;
        let path = match config.kind {
            RemoteCompletionKind::OpenAiCompletions => "/v1/completions",
            RemoteCompletionKind::LlamaServerInfill => "/infill",
        };
        let url = format!("{}{path}", config.base_url.trim_end_matches('/'));
        let retry = RetryPolicy::new(config.retry.clone(), clock.clone());
        let breaker = CircuitBreaker::new(config.breaker.clone(), clock);
        Ok(RemoteCompletion { shared: Arc::new(Shared { config, url, client, retry, breaker }) })
    }

    pub fn model(&self) -> &str {
        &self.shared.config.model
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.shared.breaker
    }

    /// Completes `request`; cancelling `cancel` abandons the HTTP request.
    pub async fn complete(
        &self,
        request: CompletionRequest,
        cancel: CancellationToken,
    ) -> Result<Completion, CompletionError> {
        let shared = &self.shared;
        let config = &shared.config;
        let started = Instant::now();
        let lang = request.language;
        let input = request.prompt_input();
        let budget = PromptBudget {
            prefix_tokens: config.budget.prefix_tokens * BYTES_PER_TOKEN,
            suffix_tokens: config.budget.suffix_tokens * BYTES_PER_TOKEN,
            context_tokens: config.budget.context_tokens * BYTES_PER_TOKEN,
        };
        let (mut body, prefix_seen, suffix_seen) = match config.kind {
            RemoteCompletionKind::OpenAiCompletions => {
                let order = config.fim_order.unwrap_or_else(|| config.format.default_order());
                let built = prompt::build(config.format, order, &text_specials(), &ByteTokens, &input, budget)?;
                let prefix_seen = &request.prefix[built.prefix_clipped_bytes..];
                let suffix_seen = if config.format.is_fim() {
                    &request.suffix[..request.suffix.len() - built.suffix_clipped_bytes]
                } else {
                    request.suffix.as_str()
                };
                let body = json!({
                    "model": config.model,
                    "prompt": render(config.format, &built.tokens),
                    "max_tokens": request.max_tokens,
                    "temperature": request.sampling.temperature,
                    "top_p": request.sampling.top_p,
                    // The chosen tokens' log-probabilities (and one alternative).
                    "logprobs": 1,
                });
                (body, prefix_seen, suffix_seen)
            }
            RemoteCompletionKind::LlamaServerInfill => {
                let (prefix_seen, _) = prompt::prefix_window(&request.prefix, budget.prefix_tokens, &ByteTokens);
                let (suffix_seen, _) = prompt::suffix_window(&request.suffix, budget.suffix_tokens, &ByteTokens);
                let mut used = 0;
                let extra: Vec<Value> = request
                    .snippets
                    .iter()
                    .filter(|snippet| {
                        used += snippet.text.len();
                        used <= budget.context_tokens
                    })
                    .map(|snippet| json!({"filename": snippet.path, "text": snippet.text}))
                    .collect();
                let body = json!({
                    "input_prefix": prefix_seen,
                    "input_suffix": suffix_seen,
                    "input_extra": extra,
                    "prompt": "",
                    "n_predict": request.max_tokens,
                    "temperature": request.sampling.temperature,
                    "top_k": request.sampling.top_k,
                    "top_p": request.sampling.top_p,
                    "seed": request.sampling.seed,
                    "cache_prompt": true,
                    "n_probs": 1,
                });
                (body, prefix_seen, suffix_seen)
            }
        };
        let mode = match request.multiline {
            Some(true) => LineMode::Multi,
            Some(false) => LineMode::Single,
            None => line_mode(prefix_seen, suffix_seen, lang),
        };
        if mode == LineMode::Single {
            body["stop"] = json!(["\n"]);
        }
        let tokenize_ms = ms(started.elapsed());

        let kind = config.kind;
        let (client, url, body_ref) = (&shared.client, shared.url.as_str(), &body);
        let sent = Instant::now();
        let answer = shared
            .retry
            .run(&format!("{} ({url})", config.model), &shared.breaker, &cancel, move || async move {
                let answer = http::send_json(client.post(url).json(body_ref)).await?;
                parse_answer(kind, &answer)
            })
            .await
            .map_err(|err| match err {
                CallError::Cancelled => CompletionError::Cancelled,
                other => CompletionError::Remote(other.to_string()),
            })?;
        let request_ms = ms(sent.elapsed());

        let post = Postprocessor::new(prefix_seen, suffix_seen, lang, mode);
        let text = post.finish(&answer.text);
        let finish_reason = if text.len() < answer.text.trim_end().len() { FinishReason::Stop } else { answer.finish };
        let logprobs = kept_logprobs(&answer.tokens, &answer.text, &text);
        let mean_logprob =
            (!logprobs.is_empty()).then(|| logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len() as f64);
        // With the server's own timings, the rest of the request's time was
        // spent on the network and in the server's queue.
        let (queue_ms, prefill_ms, decode_ms) = match answer.server_ms {
            Some((prefill, decode)) => ((request_ms - prefill - decode).max(0.0), prefill, decode),
            None => (0.0, 0.0, request_ms),
        };
        Ok(Completion {
            text,
            raw_text: answer.text,
            finish_reason,
            model: config.model.clone(),
            prompt_tokens: answer.prompt_tokens,
            reused_tokens: answer.reused_tokens.unwrap_or(0),
            generated_tokens: answer.generated_tokens,
            mean_logprob,
            logprobs,
            multiline: mode == LineMode::Multi,
            context_snippet_tokens: Vec::new(),
            timings: Timings { queue_ms, tokenize_ms, prefill_ms, decode_ms, total_ms: ms(started.elapsed()) },
        })
    }
}

/// The log-probabilities of the tokens that produced the kept text, as the
/// local engine reports them: cut after the token where `kept` ends. When
/// the token texts do not spell `raw` (a server that sends no texts), all.
fn kept_logprobs(tokens: &[(String, f32)], raw: &str, kept: &str) -> Vec<f32> {
    let spelled: usize = tokens.iter().map(|(text, _)| text.len()).sum();
    let mut logprobs: Vec<f32> = tokens.iter().map(|&(_, logprob)| logprob).collect();
    if spelled != raw.len() {
        return logprobs;
    }
    let common = raw.bytes().zip(kept.bytes()).take_while(|(a, b)| a == b).count();
    let mut end = 0;
    let last = tokens.iter().position(|(text, _)| {
        end += text.len();
        end >= common
    });
    logprobs.truncate(last.map_or(tokens.len(), |i| i + 1));
    logprobs
}

fn parse_answer(kind: RemoteCompletionKind, body: &Value) -> Result<Answer, AttemptError> {
    let number = |pointer: &str| body.pointer(pointer).and_then(Value::as_u64).map(|n| n as usize);
    let count = |pointer: &str| number(pointer).unwrap_or(0);
    let malformed = |what: &str| AttemptError::Permanent(format!("malformed answer: {what} missing in {body}"));
    // llama-server reports its own timings on both endpoints; `prompt_n`
    // is the prompt tokens it computed, the others came from its cache.
    let server_ms = match (
        body.pointer("/timings/prompt_ms").and_then(Value::as_f64),
        body.pointer("/timings/predicted_ms").and_then(Value::as_f64),
    ) {
        (Some(prefill), Some(decode)) => Some((prefill, decode)),
        _ => None,
    };
    let computed = number("/timings/prompt_n");
    match kind {
        RemoteCompletionKind::OpenAiCompletions => {
            let text =
                body.pointer("/choices/0/text").and_then(Value::as_str).ok_or_else(|| malformed("choices[0].text"))?;
            let finish = match body.pointer("/choices/0/finish_reason").and_then(Value::as_str) {
                Some("length") => FinishReason::MaxTokens,
                _ => FinishReason::EndOfText,
            };
            let prompt_tokens = count("/usage/prompt_tokens");
            let reused_tokens = number("/usage/prompt_tokens_details/cached_tokens")
                .or_else(|| computed.map(|n| prompt_tokens.saturating_sub(n)));
            Ok(Answer {
                text: text.to_owned(),
                finish,
                prompt_tokens,
                generated_tokens: count("/usage/completion_tokens"),
                reused_tokens,
                tokens: body.pointer("/choices/0/logprobs").map(openai_logprobs).unwrap_or_default(),
                server_ms,
            })
        }
        RemoteCompletionKind::LlamaServerInfill => {
            let text = body.get("content").and_then(Value::as_str).ok_or_else(|| malformed("content"))?;
            let limited = body.get("stop_type").and_then(Value::as_str) == Some("limit")
                || body.get("stopped_limit").and_then(Value::as_bool) == Some(true);
            let prompt_tokens = count("/tokens_evaluated");
            Ok(Answer {
                text: text.to_owned(),
                finish: if limited { FinishReason::MaxTokens } else { FinishReason::EndOfText },
                prompt_tokens,
                generated_tokens: count("/tokens_predicted"),
                reused_tokens: computed.map(|n| prompt_tokens.saturating_sub(n)),
                tokens: body.get("completion_probabilities").map(token_list).unwrap_or_default(),
                server_ms,
            })
        }
    }
}

/// `choices[0].logprobs` of `/v1/completions`: OpenAI's `tokens` and
/// `token_logprobs` arrays, or the `content` list of token objects that
/// llama-server answers with.
fn openai_logprobs(logprobs: &Value) -> Vec<(String, f32)> {
    if let Some(content) = logprobs.get("content") {
        return token_list(content);
    }
    let (Some(tokens), Some(values)) =
        (logprobs.get("tokens").and_then(Value::as_array), logprobs.get("token_logprobs").and_then(Value::as_array))
    else {
        return Vec::new();
    };
    tokens
        .iter()
        .zip(values)
        .filter_map(|(token, value)| Some((token.as_str()?.to_owned(), value.as_f64()? as f32)))
        .collect()
}

/// A list of `{"token": text, "logprob": number}` objects (llama-server).
fn token_list(list: &Value) -> Vec<(String, f32)> {
    let Some(list) = list.as_array() else { return Vec::new() };
    list.iter()
        .filter_map(|entry| {
            let logprob = entry.get("logprob")?.as_f64()? as f32;
            Some((entry.get("token").and_then(Value::as_str).unwrap_or_default().to_owned(), logprob))
        })
        .collect()
}

/// A server's base URL as configured: `http://` or `https://`, without the
/// endpoint's path; returned without a trailing slash.
pub fn check_base_url(url: &str) -> Result<&str, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("the URL must start with http:// or https://".to_owned());
    }
    let url = url.trim_end_matches('/');
    for path in ["/v1/completions", "/infill"] {
        if url.ends_with(path) {
            return Err(format!("give the server's base URL, without {path}"));
        }
    }
    Ok(url)
}

/// The prompt format of a model known by name only (a served model):
/// the FIM format of its family, else prefix-only.
pub fn format_of_model_name(model: &str) -> PromptFormat {
    let name = model.to_lowercase();
    if name.contains("deepseek") && name.contains("coder") {
        PromptFormat::DeepseekCoder
    } else if name.contains("starcoder") {
        PromptFormat::Starcoder2
    } else if name.contains("qwen") && name.contains("coder") {
        PromptFormat::Qwen25Coder
    } else {
        PromptFormat::PrefixOnly
    }
}

/// Text as "tokens": one per byte, so prompt budgets count bytes. Special
/// tokens get ids above the byte range and are rendered as their texts.
struct ByteTokens;

const FIM_PREFIX: TokenId = 256;
const FIM_SUFFIX: TokenId = 257;
const FIM_MIDDLE: TokenId = 258;
const REPO_NAME: TokenId = 259;
const FILE_SEP: TokenId = 260;

impl Tokenize for ByteTokens {
    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        text.bytes().map(TokenId::from).collect()
    }
}

fn text_specials() -> SpecialTokens {
    SpecialTokens {
        bos: None,
        fim_prefix: Some(FIM_PREFIX),
        fim_suffix: Some(FIM_SUFFIX),
        fim_middle: Some(FIM_MIDDLE),
        repo_name: Some(REPO_NAME),
        file_sep: Some(FILE_SEP),
    }
}

/// The prompt text of `tokens` made by [`ByteTokens`] for `format`.
fn render(format: PromptFormat, tokens: &[TokenId]) -> String {
    let fim = format.fim_token_texts().unwrap_or(["", "", ""]);
    let repo = format.repo_token_texts().unwrap_or(["", ""]);
    let mut bytes = Vec::with_capacity(tokens.len());
    for &token in tokens {
        match token {
            0..=255 => bytes.push(token as u8),
            FIM_PREFIX => bytes.extend_from_slice(fim[0].as_bytes()),
            FIM_SUFFIX => bytes.extend_from_slice(fim[1].as_bytes()),
            FIM_MIDDLE => bytes.extend_from_slice(fim[2].as_bytes()),
            REPO_NAME => bytes.extend_from_slice(repo[0].as_bytes()),
            FILE_SEP => bytes.extend_from_slice(repo[1].as_bytes()),
            _ => {}
        }
    }
    // Windows are cut at line starts, so the bytes stay valid UTF-8.
    String::from_utf8_lossy(&bytes).into_owned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Language;
    use crate::prompt::ContextSnippet;
    use crate::prompt::PromptInput;

    fn prompt_text(format: PromptFormat, order: FimOrder, request: &CompletionRequest) -> String {
        let input = PromptInput {
            prefix: &request.prefix,
            suffix: &request.suffix,
            path: request.path.as_deref(),
            line_comment: request.language.line_comment(),
            repo_name: None,
            snippets: &request.snippets,
        };
        let budget = PromptBudget { prefix_tokens: 1000, suffix_tokens: 1000, context_tokens: 1000 };
        render(format, &prompt::build(format, order, &text_specials(), &ByteTokens, &input, budget).unwrap().tokens)
    }

    #[test]
    fn fim_prompts_are_written_with_the_formats_token_texts() {
        let mut request =
            CompletionRequest::new("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n", Language::Python);
        request.path = Some("src/math.py".to_owned());
        request.snippets =
            vec![ContextSnippet { path: "src/util.py".into(), text: "def sub(a, b):\n    return a - b\n".into() }];
        expect_test::expect![[r#"
            <repo_name>workspace
            <file_sep>src/util.py
            def sub(a, b):
                return a - b
            <file_sep>src/math.py
            <fim_prefix>def add(a, b):
                return <fim_suffix>

            print(add(1, 2))
            <fim_middle>"#]]
        .assert_eq(&prompt_text(PromptFormat::Starcoder2, FimOrder::Psm, &request));
        expect_test::expect![[r#"
            # src/util.py
            def sub(a, b):
                return a - b

            # src/math.py
            <｜fim▁begin｜><｜fim▁hole｜>

            print(add(1, 2))
            <｜fim▁end｜>def add(a, b):
                return "#]]
        .assert_eq(&prompt_text(PromptFormat::DeepseekCoder, FimOrder::Spm, &request));
    }

    #[test]
    fn openai_answers_give_logprobs_cached_tokens_and_server_timings() {
        let answer = json!({
            "choices": [{"text": "a + b\nprint()", "finish_reason": "stop", "logprobs": {
                "tokens": ["a", " +", " b", "\n", "print", "()"],
                "token_logprobs": [-0.5, -0.25, -0.75, -1.0, -2.0, -3.0]
            }}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 6, "prompt_tokens_details": {"cached_tokens": 24}},
        });
        let parsed = parse_answer(RemoteCompletionKind::OpenAiCompletions, &answer).unwrap();
        assert_eq!((parsed.prompt_tokens, parsed.generated_tokens, parsed.reused_tokens), (30, 6, Some(24)));
        assert_eq!(parsed.tokens.len(), 6);
        assert_eq!(parsed.server_ms, None);
        // Postprocessing kept the first line: only its three tokens count.
        assert_eq!(kept_logprobs(&parsed.tokens, &parsed.text, "a + b"), vec![-0.5, -0.25, -0.75]);

        // llama-server's flavour: token objects, and its own timings.
        let answer = json!({
            "choices": [{"text": "x", "finish_reason": "length", "logprobs": {"content": [
                {"id": 87, "token": "x", "logprob": -0.125, "top_logprobs": []}
            ]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1},
            "timings": {"prompt_n": 2, "prompt_ms": 3.5, "predicted_n": 1, "predicted_ms": 1.5},
        });
        let parsed = parse_answer(RemoteCompletionKind::OpenAiCompletions, &answer).unwrap();
        assert_eq!(parsed.finish, FinishReason::MaxTokens);
        assert_eq!(parsed.tokens, vec![("x".to_owned(), -0.125)]);
        assert_eq!(parsed.reused_tokens, Some(10));
        assert_eq!(parsed.server_ms, Some((3.5, 1.5)));
    }

    #[test]
    fn infill_answers_give_completion_probabilities() {
        let answer = json!({
            "content": "a + b", "tokens_predicted": 2, "tokens_evaluated": 40, "stop_type": "eos",
            "completion_probabilities": [{"token": "a +", "logprob": -0.5}, {"token": " b", "logprob": -1.5}],
            "timings": {"prompt_n": 5, "prompt_ms": 10.0, "predicted_ms": 4.0},
        });
        let parsed = parse_answer(RemoteCompletionKind::LlamaServerInfill, &answer).unwrap();
        assert_eq!(parsed.reused_tokens, Some(35));
        assert_eq!(kept_logprobs(&parsed.tokens, &parsed.text, "a + b"), vec![-0.5, -1.5]);
        // Token texts that do not spell the answer: every log-prob counts.
        assert_eq!(kept_logprobs(&[("?".to_owned(), -1.0)], "a + b", "a"), vec![-1.0]);
        assert_eq!(kept_logprobs(&[], "a + b", "a"), Vec::<f32>::new());
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(check_base_url("http://127.0.0.1:8080/"), Ok("http://127.0.0.1:8080"));
        assert!(check_base_url("127.0.0.1:8080").unwrap_err().contains("http://"));
        assert!(check_base_url("http://h/v1/completions").unwrap_err().contains("without /v1/completions"));
    }
}
