//! The llama.cpp engine: one worker thread owns the context and runs
//! requests from a bounded queue.
//!
//! The async side only sends a job and awaits its answer, so inference never
//! blocks the runtime's threads. Cancellation is a flag checked between
//! `decode` calls (llama.cpp exposes no abort callback here), so the prompt is
//! prefilled in chunks to keep the latency of a cancel short.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::model::{LoadOptions, LoadedModel, ModelInfo};
use super::sequence::{self, StepError};
use crate::completion::{Completion, CompletionError, CompletionRequest, FinishReason, Timings};
use crate::postprocess::{LineMode, Postprocessor, line_mode};
use crate::prompt::{self, PromptBudget, TokenCache, TokenId};

/// Settings of one loaded model and its context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Context window in tokens.
    pub n_ctx: u32,
    /// CPU threads for generation; `None` picks a default from the core count.
    pub n_threads: Option<i32>,
    /// CPU threads for prompt processing; defaults to `n_threads`.
    pub n_threads_batch: Option<i32>,
    /// Layers offloaded to the GPU (GPU builds only).
    pub n_gpu_layers: u32,
    /// Prompt tokens decoded per `decode` call; a cancel waits for at most one.
    pub prefill_chunk: usize,
    /// Requests waiting beyond this many are refused.
    pub queue_capacity: usize,
    /// KV-cache slots: sequences kept with their token histories and
    /// decoded together in one batch. Requests pick the slot with the
    /// longest common prefix; idle slots are reused least recently used first.
    pub slots: usize,
    /// KV-cache cells shared by all slots; `None`: `n_ctx` × 2. One request
    /// may use up to `n_ctx` of them.
    pub kv_size: Option<u32>,
    /// Flash attention: `auto` (llama.cpp decides), `on` or `off`.
    pub flash_attention: FlashAttention,
    pub budget: PromptBudgetConfig,
}

/// The flash-attention policy of a context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashAttention {
    #[default]
    Auto,
    On,
    Off,
}

/// [`PromptBudget`] in the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptBudgetConfig {
    pub prefix_tokens: usize,
    pub suffix_tokens: usize,
    pub context_tokens: usize,
}

impl Default for PromptBudgetConfig {
    fn default() -> Self {
        let budget = PromptBudget::default();
        PromptBudgetConfig {
            prefix_tokens: budget.prefix_tokens,
            suffix_tokens: budget.suffix_tokens,
            context_tokens: budget.context_tokens,
        }
    }
}

impl From<PromptBudgetConfig> for PromptBudget {
    fn from(c: PromptBudgetConfig) -> Self {
        PromptBudget {
            prefix_tokens: c.prefix_tokens,
            suffix_tokens: c.suffix_tokens,
            context_tokens: c.context_tokens,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            n_ctx: 4096,
            n_threads: None,
            n_threads_batch: None,
            n_gpu_layers: 0,
            prefill_chunk: 128,
            queue_capacity: 16,
            slots: 4,
            kv_size: None,
            flash_attention: FlashAttention::Auto,
            budget: PromptBudgetConfig::default(),
        }
    }
}

/// The default thread count: every core, at most 8. On 2 cores, using both
/// is measurably faster even with an editor running (docs/performance.md).
pub fn default_threads() -> i32 {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8) as i32)
}

struct Job {
    request: CompletionRequest,
    cancel: CancellationToken,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Completion, CompletionError>>,
}

/// A handle to a model running on its own thread. Cheap to clone.
#[derive(Clone)]
pub struct LlamaEngine {
    jobs: SyncSender<Job>,
    /// The weights, shared with other contexts (chat) through [`Self::model`].
    model: Arc<LoadedModel>,
    info: Arc<ModelInfo>,
    capacity: usize,
}

impl LlamaEngine {
    /// Loads `path` and starts the worker. Blocks while the model loads.
    pub fn start(path: &Path, load: &LoadOptions, config: &EngineConfig) -> anyhow::Result<Self> {
        let model = Arc::new(LoadedModel::load(path, load)?);
        if load.vocab_only {
            anyhow::bail!("a vocab-only model cannot generate");
        }
        let info = Arc::new(model.info().clone());
        let (jobs, queue) = mpsc::sync_channel::<Job>(config.queue_capacity);
        let (ready_tx, ready_rx) = mpsc::channel();
        let capacity = config.queue_capacity;
        let config = config.clone();
        let shared = Arc::clone(&model);
        std::thread::Builder::new().name("weft-llama".into()).spawn(move || {
            let mut worker = match Worker::new(&model, &config) {
                Ok(worker) => {
                    let _ = ready_tx.send(Ok(()));
                    worker
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            while let Ok(job) = queue.recv() {
                worker.run(job);
            }
        })?;
        ready_rx.recv().map_err(|_| anyhow::anyhow!("the llama.cpp worker thread died while starting"))??;
        Ok(LlamaEngine { jobs, model: shared, info, capacity })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The loaded weights, for another context on the same model
    /// ([`crate::chat::LocalChat::with_model`]).
    pub fn model(&self) -> Arc<LoadedModel> {
        Arc::clone(&self.model)
    }

    /// Completes `request`. Cancelling `cancel` (or dropping the returned
    /// future, which cancels it) stops the work at the next decode step.
    pub async fn complete(
        &self,
        request: CompletionRequest,
        cancel: CancellationToken,
    ) -> Result<Completion, CompletionError> {
        let (reply, answer) = oneshot::channel();
        let guard = cancel.clone().drop_guard();
        let job = Job { request, cancel, enqueued: Instant::now(), reply };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(CompletionError::Overloaded(self.capacity)),
            Err(TrySendError::Disconnected(_)) => return Err(CompletionError::EngineStopped),
        }
        let result = answer.await.map_err(|_| CompletionError::EngineStopped)?;
        guard.disarm();
        result
    }
}

/// The worker's state: the context and the tokens its KV cache holds.
struct Worker<'m> {
    model: &'m LoadedModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// Tokens in the KV cache of sequence 0, in order.
    cached: Vec<TokenId>,
    n_ctx: usize,
    chunk: usize,
    budget: PromptBudget,
    /// Token ids of window and snippet pieces from earlier prompts.
    tokens: TokenCache,
}

impl<'m> Worker<'m> {
    fn new(model: &'m LoadedModel, config: &EngineConfig) -> anyhow::Result<Self> {
        let threads = config.n_threads.unwrap_or_else(default_threads);
        let chunk = config.prefill_chunk.clamp(8, 2048);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(config.n_ctx.max(256)))
            .with_n_batch(chunk as u32)
            .with_n_ubatch(chunk as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(config.n_threads_batch.unwrap_or(threads));
        let ctx = model.model.new_context(super::model::backend(), params)?;
        let n_ctx = ctx.n_ctx() as usize;
        Ok(Worker {
            model,
            ctx,
            batch: LlamaBatch::new(chunk, 1),
            cached: Vec::new(),
            n_ctx,
            chunk,
            budget: config.budget.into(),
            tokens: TokenCache::default(),
        })
    }

    fn run(&mut self, job: Job) {
        let queue_ms = ms(job.enqueued.elapsed());
        let result = if job.cancel.is_cancelled() {
            Err(CompletionError::Cancelled)
        } else {
            self.complete(&job.request, &job.cancel, queue_ms)
        };
        let _ = job.reply.send(result);
    }

    fn complete(
        &mut self,
        request: &CompletionRequest,
        cancel: &CancellationToken,
        queue_ms: f64,
    ) -> Result<Completion, CompletionError> {
        let started = Instant::now();
        let info = self.model.info();
        let lang = request.language;
        let input = request.prompt_input();
        let prompt = prompt::build(
            info.detection.format,
            info.fim_order,
            self.model.special_tokens(),
            &self.tokens.tokenizer(self.model),
            &input,
            fit_budget(self.budget, self.n_ctx, request.max_tokens),
        )?;
        let tokens = prompt.tokens;
        let context_snippet_tokens = prompt.snippet_tokens;
        if tokens.len() + request.max_tokens.min(16) >= self.n_ctx {
            return Err(CompletionError::PromptTooLong { prompt: tokens.len(), n_ctx: self.n_ctx });
        }
        let tokenize_ms = ms(started.elapsed());

        // Postprocessing sees the text the model sees, not the whole file.
        let prefix_seen = &request.prefix[prompt.prefix_clipped_bytes..];
        let suffix_seen = if info.detection.format.is_fim() {
            &request.suffix[..request.suffix.len() - prompt.suffix_clipped_bytes]
        } else {
            request.suffix.as_str()
        };
        let mode = match request.multiline {
            Some(true) => LineMode::Multi,
            Some(false) => LineMode::Single,
            None => line_mode(prefix_seen, suffix_seen, lang),
        };
        let post = Postprocessor::new(prefix_seen, suffix_seen, lang, mode);

        let prefill_started = Instant::now();
        let reused = self.prefill(&tokens, cancel)?;
        let prefill_ms = ms(prefill_started.elapsed());

        let decode_started = Instant::now();
        let mut sampler = sampler(&request.sampling);
        let mut raw = Vec::<u8>::new();
        let mut logprobs = Vec::new();
        // Raw byte length after each generated token.
        let mut ends = Vec::new();
        let mut kept_bytes = None;
        let finish_reason = loop {
            if cancel.is_cancelled() {
                return Err(CompletionError::Cancelled);
            }
            let (token, logprob) = self.sample(&mut sampler, &request.sampling);
            if self.model.is_stop(token) && !request.ignore_eos {
                break FinishReason::EndOfText;
            }
            self.model.piece(token, &mut raw);
            logprobs.push(logprob);
            ends.push(raw.len());
            let text = valid_utf8_prefix(&raw);
            if let Some(keep) = post.check(text).filter(|_| !request.ignore_eos) {
                kept_bytes = Some(keep);
                break FinishReason::Stop;
            }
            if logprobs.len() >= request.max_tokens {
                break FinishReason::MaxTokens;
            }
            if started.elapsed() >= request.time_budget {
                break FinishReason::TimeBudget;
            }
            if self.cached.len() + 1 >= self.n_ctx {
                break FinishReason::ContextFull;
            }
            self.decode_one(token)?;
        };
        let decode_ms = ms(decode_started.elapsed());

        let raw_text = valid_utf8_prefix(&raw).to_owned();
        let text = post.finish(&raw_text[..kept_bytes.unwrap_or(raw_text.len())]);
        // Log-probs are cut where the kept text ends.
        let generated_tokens = logprobs.len();
        let kept = kept_bytes.unwrap_or(raw.len()).min(raw.len());
        logprobs.truncate(ends.iter().position(|&end| end >= kept).map_or(generated_tokens, |i| i + 1));
        let mean_logprob =
            (!logprobs.is_empty()).then(|| logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len() as f64);
        Ok(Completion {
            text,
            raw_text,
            finish_reason,
            model: info.name.clone(),
            prompt_tokens: tokens.len(),
            reused_tokens: reused,
            generated_tokens,
            mean_logprob,
            logprobs,
            multiline: mode == LineMode::Multi,
            context_snippet_tokens,
            timings: Timings {
                queue_ms,
                tokenize_ms,
                prefill_ms,
                decode_ms,
                total_ms: queue_ms + ms(started.elapsed()),
            },
        })
    }

    /// Brings the KV cache to `tokens` ([`sequence::prefill`]); returns the
    /// number of reused tokens.
    fn prefill(&mut self, tokens: &[TokenId], cancel: &CancellationToken) -> Result<usize, CompletionError> {
        sequence::prefill(&mut self.ctx, &mut self.batch, &mut self.cached, self.chunk, tokens, cancel)
            .map_err(completion_error)
    }

    fn decode_one(&mut self, token: TokenId) -> Result<(), CompletionError> {
        sequence::decode_one(&mut self.ctx, &mut self.batch, &mut self.cached, token).map_err(completion_error)
    }

    /// Picks the next token from the logits of the last batch entry and
    /// returns it with its log-probability under the model (before any
    /// temperature).
    fn sample(&mut self, sampler: &mut Option<LlamaSampler>, _config: &crate::SamplingConfig) -> (TokenId, f32) {
        let last = self.batch.n_tokens() - 1;
        let logits = self.ctx.get_logits_ith(last);
        let token = match sampler {
            Some(sampler) => sampler.sample(&self.ctx, last).0,
            None => argmax(logits),
        };
        (token, log_softmax_at(logits, token as usize))
    }
}

/// Shrinks `budget` so that the prompt and up to `max_tokens` of output
/// (at most half the window) fit a context of `n_ctx` tokens. Extra context
/// goes first, then the suffix, then the prefix.
/// Shrinks `budget` to fit a context of `n_ctx` tokens with room for
/// `max_tokens` of generation, as the engine does for every request.
fn completion_error(err: StepError) -> CompletionError {
    match err {
        StepError::Cancelled => CompletionError::Cancelled,
        StepError::Backend(message) => CompletionError::Backend(message),
    }
}

pub fn fit_budget(budget: PromptBudget, n_ctx: usize, max_tokens: usize) -> PromptBudget {
    // Special tokens, BOS and path headers.
    const OVERHEAD: usize = 16;
    let room = n_ctx.saturating_sub(max_tokens.min(n_ctx / 2) + OVERHEAD);
    let mut fitted = budget;
    let mut excess = (budget.prefix_tokens + budget.suffix_tokens + budget.context_tokens).saturating_sub(room);
    // Extra context goes first, then the far end of the prefix; the suffix
    // window is short and goes last.
    for part in [&mut fitted.context_tokens, &mut fitted.prefix_tokens, &mut fitted.suffix_tokens] {
        let cut = excess.min(*part);
        *part -= cut;
        excess -= cut;
    }
    fitted
}

fn sampler(config: &crate::SamplingConfig) -> Option<LlamaSampler> {
    if config.is_greedy() {
        return None;
    }
    Some(LlamaSampler::chain_simple([
        LlamaSampler::top_k(config.top_k.max(1)),
        LlamaSampler::top_p(config.top_p.clamp(0.01, 1.0), 1),
        LlamaSampler::temp(config.temperature),
        LlamaSampler::dist(config.seed),
    ]))
}

fn argmax(logits: &[f32]) -> TokenId {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as TokenId
}

/// `log softmax(logits)[index]`, computed stably.
pub(crate) fn log_softmax_at(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    (f64::from(logits[index] - max) - sum.ln()) as f32
}

/// The longest prefix of `bytes` that is valid UTF-8: a multi-byte character
/// split across tokens waits for its last byte.
fn valid_utf8_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => std::str::from_utf8(&bytes[..err.valid_up_to()]).unwrap_or_default(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_matches_a_direct_computation() {
        let logits = [1.0f32, 2.0, 3.0, -1.0];
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let expected = (f64::from(l).exp() / z).ln();
            assert!((f64::from(log_softmax_at(&logits, i)) - expected).abs() < 1e-5);
        }
        assert_eq!(argmax(&logits), 2);
    }

    #[test]
    fn the_budget_shrinks_to_the_context_window() {
        let budget = PromptBudget { prefix_tokens: 1024, suffix_tokens: 128, context_tokens: 512 };
        assert_eq!(fit_budget(budget, 4096, 64), budget);
        let fitted = fit_budget(budget, 1024, 64);
        assert_eq!(fitted, PromptBudget { prefix_tokens: 816, suffix_tokens: 128, context_tokens: 0 });
        let tiny = fit_budget(budget, 256, 10_000);
        assert_eq!(tiny.prefix_tokens + tiny.suffix_tokens + tiny.context_tokens, 256 - 128 - 16);
    }

    #[test]
    fn a_split_multibyte_character_waits_for_its_last_byte() {
        let crab = "a🦀".as_bytes();
        assert_eq!(valid_utf8_prefix(&crab[..3]), "a");
        assert_eq!(valid_utf8_prefix(crab), "a🦀");
    }
}
