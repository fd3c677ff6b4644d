//! The llama.cpp engine: one worker thread owns the context and serves
//! concurrent requests, each in a KV-cache slot (a llama.cpp sequence) of
//! its own, decoded together in one batch per step.
//!
//! The async side only sends a job and awaits its answer, so inference never
//! blocks the runtime's threads. A request takes the free slot whose tokens
//! share the longest prefix with its prompt and evaluates only the rest;
//! idle slots keep their tokens (another file's, say) until the least
//! recently used one is needed ([`super::scheduler`]). Each step decodes one
//! token of every generating request and a fair share of the prompts still
//! to prefill. Cancellation is a flag checked between steps (llama.cpp
//! exposes no abort callback here), so a step is kept short: at most
//! `prefill_chunk` tokens.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use llama_cpp_2::DecodeError;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::model::{LoadOptions, LoadedModel, ModelInfo};
use super::scheduler::{Need, Slot, choose_slot, common_prefix, plan};
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
    /// KV-cache cells of all slots together, split equally between them;
    /// `None`: `n_ctx` × 2. One request may use up to `n_ctx` tokens and
    /// at most its slot's share.
    pub kv_size: Option<u32>,
    /// Flash attention: `auto` ([`FlashAttention::resolve`]), `on` or `off`.
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

impl FlashAttention {
    /// The setting a context gets. `auto` is off where the model runs on
    /// the CPU and llama.cpp's own choice (on wherever the device supports
    /// it) where layers are offloaded to a GPU. On the CPU, ggml's flash
    /// attention splits one token's work by head, which a small model has
    /// few of, while the plain path splits it by KV cell: measured with
    /// llama-bench on this project's 2-core machine (docs/performance.md),
    /// decoding after a 1,300-token context ran at 48–55 tokens/s with it
    /// off against 39–43 with it on, and no slower without it at short
    /// contexts or in prompt processing.
    pub fn resolve(self, n_gpu_layers: u32) -> FlashAttention {
        let offloaded = cfg!(any(feature = "cuda", feature = "vulkan")) && n_gpu_layers > 0;
        match self {
            FlashAttention::Auto if !offloaded => FlashAttention::Off,
            chosen => chosen,
        }
    }
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

/// The default thread count: every core but one, at least 1, at most 8.
/// The core left over is the editor's: ggml's threads meet at a barrier
/// after every operation, so one of them preempted stalls them all. On the
/// 2-core development machine with one core busy, 2 threads decoded at
/// 34 tokens/s and 1 thread at 84; idle, 2 threads gave 106 and 1 gave 73
/// (`llama-bench -p 0 -n 64 -t 1,2`, docs/performance.md). Set `n_threads`
/// to every core on a machine that does nothing else.
pub fn default_threads() -> i32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cores.saturating_sub(1).clamp(1, 8) as i32
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
    jobs: Sender<Job>,
    /// Requests sent and not yet given a slot.
    waiting: Arc<AtomicUsize>,
    /// The weights, shared with other contexts (chat) through [`Self::model`].
    model: Arc<LoadedModel>,
    info: Arc<ModelInfo>,
    capacity: usize,
}

impl LlamaEngine {
    /// Loads `path` (or shares the weights already loaded from it, see
    /// [`LoadedModel::shared`]) and starts the worker. Blocks while the
    /// model loads.
    pub fn start(path: &Path, load: &LoadOptions, config: &EngineConfig) -> anyhow::Result<Self> {
        let model = LoadedModel::shared(path, load)?;
        if load.vocab_only {
            anyhow::bail!("a vocab-only model cannot generate");
        }
        let info = Arc::new(model.info().clone());
        let (jobs, queue) = mpsc::channel::<Job>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let config = config.clone();
        let capacity = config.queue_capacity;
        let shared = Arc::clone(&model);
        let counter = Arc::clone(&waiting);
        super::spawn_worker("weft-llama", move |started| {
            let worker = Worker::new(&model, &config, counter)?;
            started.done();
            worker.run(queue);
            Ok(())
        })?;
        Ok(LlamaEngine { jobs, waiting, model: shared, info, capacity })
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
    /// Requests run concurrently, each in a KV-cache slot of its own, and are
    /// decoded together; beyond the slots, up to `queue_capacity` wait and
    /// more are refused with [`CompletionError::Overloaded`].
    pub async fn complete(
        &self,
        request: CompletionRequest,
        cancel: CancellationToken,
    ) -> Result<Completion, CompletionError> {
        let admitted =
            self.waiting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.capacity).then_some(n + 1));
        if admitted.is_err() {
            return Err(CompletionError::Overloaded(self.capacity));
        }
        let (reply, answer) = oneshot::channel();
        let guard = cancel.clone().drop_guard();
        let job = Job { request, cancel, enqueued: Instant::now(), reply };
        if self.jobs.send(job).is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(CompletionError::EngineStopped);
        }
        let result = answer.await.map_err(|_| CompletionError::EngineStopped)?;
        guard.disarm();
        result
    }
}

/// How long an idle worker waits for requests sent together with the one
/// that woke it: until none came for [`GATHER_QUIET`], at most
/// [`GATHER_MAX`].
const GATHER_QUIET: Duration = Duration::from_micros(500);
const GATHER_MAX: Duration = Duration::from_millis(2);

/// A request with a slot: its prompt, how far it is prefilled, and its
/// generation so far.
struct Active {
    job: Job,
    slot: usize,
    prompt: Vec<TokenId>,
    /// Prompt tokens in the slot's KV cache.
    pos: usize,
    reused: usize,
    started: Instant,
    queue_ms: f64,
    tokenize_ms: f64,
    prefill_ms: f64,
    decode_started: Option<Instant>,
    snippet_tokens: Vec<usize>,
    post: Postprocessor,
    mode: LineMode,
    sampler: Option<LlamaSampler>,
    raw: Vec<u8>,
    logprobs: Vec<f32>,
    /// Raw byte length after each generated token.
    ends: Vec<usize>,
    kept_bytes: Option<usize>,
    /// A sampled token to decode in the next batch.
    next: Option<TokenId>,
}

/// Why a job was not admitted.
enum Refusal {
    /// It failed (its prompt, say); answer it.
    Failed(Box<Job>, CompletionError),
    /// Every slot is busy; it waits.
    Wait(Box<Job>),
    /// It needs no model: answer it with this.
    Answered(Box<Job>, Box<Completion>),
}

/// The worker's state: the context, its slots and the requests in flight.
struct Worker<'m> {
    model: &'m LoadedModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    slots: Vec<Slot>,
    /// Tokens one request may use (prompt and generation): `n_ctx` or its
    /// slot's share of the KV cache, whichever is smaller.
    n_ctx: usize,
    n_batch: usize,
    budget: PromptBudget,
    /// Token ids of window and snippet pieces from earlier prompts.
    tokens: TokenCache,
    waiting: Arc<AtomicUsize>,
    /// Counts slot uses, for least-recently-used reuse.
    tick: u64,
    /// Whose turn starts the next batch.
    turn: usize,
}

impl<'m> Worker<'m> {
    fn new(model: &'m LoadedModel, config: &EngineConfig, waiting: Arc<AtomicUsize>) -> anyhow::Result<Self> {
        let threads = config.n_threads.unwrap_or_else(default_threads);
        let n_batch = config.prefill_chunk.clamp(8, 2048);
        let n_ctx = config.n_ctx.max(256);
        let slots = config.slots.clamp(1, 64);
        let kv_size = config.kv_size.unwrap_or(n_ctx.saturating_mul(2)).max(256 * slots as u32);
        let flash = match config.flash_attention.resolve(config.n_gpu_layers) {
            FlashAttention::Auto => -1,
            FlashAttention::Off => 0,
            FlashAttention::On => 1,
        };
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(kv_size))
            .with_n_seq_max(slots as u32)
            // Each slot its own cells (a stream): attention then reads only
            // the slot's own tokens. In one pool shared by all slots it reads
            // every cell up to the highest one in use, other slots' masked
            // out, so an idle slot's cached window made every other request
            // slower (without flash attention, 1.8× slower prefill at a
            // 1,200-token context with three other windows cached).
            .with_kv_unified(false)
            .with_n_batch(n_batch as u32)
            .with_n_ubatch(n_batch as u32)
            .with_flash_attention_policy(flash)
            .with_n_threads(threads)
            .with_n_threads_batch(config.n_threads_batch.unwrap_or(threads));
        let ctx = model.model.new_context(super::model::backend(), params)?;
        let per_slot = ctx.n_ctx() as usize / slots;
        Ok(Worker {
            model,
            ctx,
            batch: LlamaBatch::new(n_batch, 1),
            slots: vec![Slot::default(); slots],
            n_ctx: (n_ctx as usize).min(per_slot),
            n_batch,
            budget: config.budget.into(),
            tokens: TokenCache::default(),
            waiting,
            tick: 0,
            turn: 0,
        })
    }

    /// Serves jobs until every [`LlamaEngine`] handle is dropped. Each turn
    /// takes new jobs, drops cancelled ones, gives waiting jobs free slots,
    /// and decodes one batch holding a token of every generating request and
    /// a share of the prompts still to prefill.
    fn run(mut self, queue: Receiver<Job>) {
        let mut pending = VecDeque::new();
        let mut active: Vec<Active> = Vec::new();
        loop {
            if active.is_empty() && pending.is_empty() {
                match queue.recv() {
                    Ok(job) => pending.push_back(job),
                    Err(_) => return,
                }
                // Requests sent together (several editors, a benchmark's
                // users) start together: prefilled side by side, they then
                // decode in lockstep, where batching pays. Half a millisecond
                // of quiet ends the wait; it never exceeds two.
                let woke = Instant::now();
                while woke.elapsed() < GATHER_MAX {
                    match queue.recv_timeout(GATHER_QUIET) {
                        Ok(job) => pending.push_back(job),
                        Err(_) => break,
                    }
                }
            }
            pending.extend(queue.try_iter());
            for job in take_where(&mut pending, |job| job.cancel.is_cancelled()) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                let _ = job.reply.send(Err(CompletionError::Cancelled));
            }
            for request in take_where(&mut active, |a| a.job.cancel.is_cancelled()) {
                self.release(request.slot);
                let _ = request.job.reply.send(Err(CompletionError::Cancelled));
            }
            while self.slots.iter().any(|slot| !slot.busy) {
                let Some(job) = pending.pop_front() else { break };
                match self.admit(job) {
                    Ok(request) => {
                        self.waiting.fetch_sub(1, Ordering::SeqCst);
                        // In slot order: llama.cpp puts a batch of several
                        // sequences, each in its own KV stream, into one
                        // pass only while their ids follow each other (0, 1,
                        // 2, …); out of order, a step of four tokens ran as
                        // two passes (36 ms instead of 29).
                        let at = active.partition_point(|a| a.slot < request.slot);
                        active.insert(at, request);
                    }
                    Err(Refusal::Failed(job, err)) => {
                        self.waiting.fetch_sub(1, Ordering::SeqCst);
                        let _ = job.reply.send(Err(err));
                    }
                    Err(Refusal::Answered(job, completion)) => {
                        self.waiting.fetch_sub(1, Ordering::SeqCst);
                        let _ = job.reply.send(Ok(*completion));
                    }
                    Err(Refusal::Wait(job)) => {
                        pending.push_front(*job);
                        break;
                    }
                }
            }
            if !active.is_empty() {
                self.step(&mut active);
            }
        }
    }

    /// Gives `job` a slot: builds its prompt, picks the slot that shares the
    /// longest prefix with it ([`choose_slot`]) and removes only the
    /// diverging tail of that slot's cache.
    fn admit(&mut self, job: Job) -> Result<Active, Refusal> {
        let started = Instant::now();
        let queue_ms = ms(job.enqueued.elapsed());
        let request = &job.request;
        let info = self.model.info();
        let built = prompt::build(
            info.detection.format,
            info.fim_order,
            self.model.special_tokens(),
            &self.tokens.tokenizer(self.model),
            &request.prompt_input(),
            fit_budget(self.budget, self.n_ctx, request.max_tokens),
        );
        let prompt = match built {
            Ok(prompt) => prompt,
            Err(err) => return Err(Refusal::Failed(Box::new(job), err.into())),
        };
        let tokens = prompt.tokens;
        if tokens.is_empty() {
            // Nothing to condition on (an empty document without a BOS
            // token, say): an empty answer, not an error.
            let completion = Completion {
                text: String::new(),
                raw_text: String::new(),
                finish_reason: FinishReason::EndOfText,
                model: info.name.clone(),
                prompt_tokens: 0,
                reused_tokens: 0,
                generated_tokens: 0,
                mean_logprob: None,
                logprobs: Vec::new(),
                multiline: false,
                context_snippet_tokens: prompt.snippet_tokens,
                timings: Timings { queue_ms, total_ms: queue_ms + ms(started.elapsed()), ..Timings::default() },
            };
            return Err(Refusal::Answered(Box::new(job), Box::new(completion)));
        }
        if tokens.len() + request.max_tokens.min(16) >= self.n_ctx {
            let err = CompletionError::PromptTooLong { prompt: tokens.len(), n_ctx: self.n_ctx };
            return Err(Refusal::Failed(Box::new(job), err));
        }
        let Some(slot) = choose_slot(&self.slots, &tokens) else { return Err(Refusal::Wait(Box::new(job))) };
        // The last prompt token is always evaluated again: its logits are
        // needed and are not kept between requests.
        let reuse = common_prefix(&self.slots[slot].tokens, &tokens).min(tokens.len() - 1);

        tracing::trace!(slot, prompt = tokens.len(), reuse, held = self.slots[slot].tokens.len(), "admitted");
        self.clear_slot(slot, reuse);
        self.tick += 1;
        self.slots[slot].busy = true;
        self.slots[slot].last_used = self.tick;
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
            None => line_mode(prefix_seen, suffix_seen, request.language),
        };
        let post = Postprocessor::new(prefix_seen, suffix_seen, request.language, mode);
        let sampler = sampler(&request.sampling);
        Ok(Active {
            slot,
            prompt: tokens,
            pos: reuse,
            reused: reuse,
            started,
            queue_ms,
            tokenize_ms,
            prefill_ms: 0.0,
            decode_started: None,
            snippet_tokens: prompt.snippet_tokens,
            post,
            mode,
            sampler,
            raw: Vec::new(),
            logprobs: Vec::new(),
            ends: Vec::new(),
            kept_bytes: None,
            next: None,
            job,
        })
    }

    /// Removes the tokens of `slot` from position `keep` on.
    fn clear_slot(&mut self, slot: usize, keep: usize) {
        if self.slots[slot].tokens.len() > keep {
            // Cannot fail for a whole-sequence tail of a transformer cache;
            // if it did, the slot's mirror is emptied with it.
            if self.ctx.clear_kv_cache_seq(Some(slot as u32), Some(keep as u32), None).is_err() {
                let _ = self.ctx.clear_kv_cache_seq(Some(slot as u32), None, None);
                self.slots[slot].tokens.clear();
                return;
            }
            self.slots[slot].tokens.truncate(keep);
        }
    }

    fn release(&mut self, slot: usize) {
        self.tick += 1;
        self.slots[slot].busy = false;
        self.slots[slot].last_used = self.tick;
    }

    /// Decodes one batch for the requests in flight and moves each on:
    /// prefill progresses, generating requests sample their next token, and
    /// finished ones are answered.
    fn step(&mut self, active: &mut Vec<Active>) {
        let needs: Vec<Need> = active
            .iter()
            .map(|a| if a.pos < a.prompt.len() { Need::Prefill(a.prompt.len() - a.pos) } else { Need::Decode })
            .collect();
        let take = plan(&needs, self.n_batch, self.turn);
        self.turn = self.turn.wrapping_add(1);
        self.batch.clear();
        let mut logits_at = vec![None; active.len()];
        // `active` is in slot order (see `run`).
        for (i, request) in active.iter().enumerate() {
            let seq = request.slot as i32;
            let added = match needs[i] {
                Need::Decode if take[i] > 0 => {
                    let token = request.next.expect("a decoding request has a sampled token");
                    let at = self.slots[request.slot].tokens.len();
                    logits_at[i] = Some(self.batch.n_tokens());
                    self.batch.add(LlamaToken(token), at as i32, &[seq], true)
                }
                Need::Prefill(_) => (request.pos..request.pos + take[i]).try_for_each(|at| {
                    let last = at + 1 == request.prompt.len();
                    if last {
                        logits_at[i] = Some(self.batch.n_tokens());
                    }
                    self.batch.add(LlamaToken(request.prompt[at]), at as i32, &[seq], last)
                }),
                Need::Decode => Ok(()),
            };
            if let Err(err) = added {
                return self.fail_all(active, format!("batch: {err}"));
            }
        }
        let decode_started = Instant::now();
        let decoded = self.ctx.decode(&mut self.batch);
        tracing::trace!(
            tokens = self.batch.n_tokens(),
            requests = active.len(),
            ms = ms(decode_started.elapsed()),
            "decode step"
        );
        match decoded {
            Ok(()) => {}
            Err(DecodeError::NoKvCacheSlot) => {
                // `admit` keeps every request within its slot's cells.
                return self.fail_all(active, "the KV cache is full".into());
            }
            Err(err) => return self.fail_all(active, err.to_string()),
        }

        // The batch is in the cache now.
        for (i, request) in active.iter_mut().enumerate() {
            let slot = &mut self.slots[request.slot];
            match needs[i] {
                Need::Decode if take[i] > 0 => slot.tokens.extend(request.next.take()),
                Need::Prefill(_) => {
                    slot.tokens.extend_from_slice(&request.prompt[request.pos..request.pos + take[i]]);
                    request.pos += take[i];
                    if request.pos == request.prompt.len() {
                        request.prefill_ms = ms(request.started.elapsed()) - request.tokenize_ms;
                        request.decode_started = Some(Instant::now());
                    }
                }
                Need::Decode => {}
            }
        }
        let mut i = 0;
        while i < active.len() {
            let finish = match logits_at[i] {
                Some(index) => self.generate(&mut active[i], index),
                None => None,
            };
            match finish {
                Some(reason) => {
                    let request = active.remove(i);
                    logits_at.remove(i);
                    self.release(request.slot);
                    let completion = self.finish(&request, reason);
                    let _ = request.job.reply.send(Ok(completion));
                }
                None => i += 1,
            }
        }
    }

    /// Samples the request's next token from the logits at batch `index`;
    /// returns why generation ends, or `None` to decode the token next.
    fn generate(&mut self, request: &mut Active, index: i32) -> Option<FinishReason> {
        let logits = self.ctx.get_logits_ith(index);
        let summary = LogitSummary::of(logits);
        let token = match &mut request.sampler {
            Some(sampler) => sampler.sample(&self.ctx, index).0,
            None => summary.argmax(logits),
        };
        let logprob = summary.log_softmax_at(logits, token as usize);
        let job = &request.job.request;
        if self.model.is_stop(token) && !job.ignore_eos {
            return Some(FinishReason::EndOfText);
        }
        self.model.piece(token, &mut request.raw);
        request.logprobs.push(logprob);
        request.ends.push(request.raw.len());
        let text = valid_utf8_prefix(&request.raw);
        if let Some(keep) = request.post.check(text).filter(|_| !job.ignore_eos) {
            request.kept_bytes = Some(keep);
            return Some(FinishReason::Stop);
        }
        if request.logprobs.len() >= job.max_tokens {
            return Some(FinishReason::MaxTokens);
        }
        if request.started.elapsed() >= job.time_budget {
            return Some(FinishReason::TimeBudget);
        }
        if self.slots[request.slot].tokens.len() + 1 >= self.n_ctx {
            return Some(FinishReason::ContextFull);
        }
        request.next = Some(token);
        None
    }

    fn finish(&self, request: &Active, finish_reason: FinishReason) -> Completion {
        let decode_ms = request.decode_started.map_or(0.0, |t| ms(t.elapsed()));
        let raw = &request.raw;
        let raw_text = valid_utf8_prefix(raw).to_owned();
        let text = request.post.finish(&raw_text[..request.kept_bytes.unwrap_or(raw_text.len()).min(raw_text.len())]);
        // Log-probs are cut where the kept text ends.
        let generated_tokens = request.logprobs.len();
        let kept = request.kept_bytes.unwrap_or(raw.len()).min(raw.len());
        let mut logprobs = request.logprobs.clone();
        logprobs.truncate(request.ends.iter().position(|&end| end >= kept).map_or(generated_tokens, |i| i + 1));
        let mean_logprob =
            (!logprobs.is_empty()).then(|| logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len() as f64);
        Completion {
            text,
            raw_text,
            finish_reason,
            model: self.model.info().name.clone(),
            prompt_tokens: request.prompt.len(),
            reused_tokens: request.reused,
            generated_tokens,
            mean_logprob,
            logprobs,
            multiline: request.mode == LineMode::Multi,
            context_snippet_tokens: request.snippet_tokens.clone(),
            timings: Timings {
                queue_ms: request.queue_ms,
                tokenize_ms: request.tokenize_ms,
                prefill_ms: request.prefill_ms,
                decode_ms,
                total_ms: request.queue_ms + ms(request.started.elapsed()),
            },
        }
    }

    /// A failed decode leaves the cache in an unknown state: it is cleared
    /// and every request in flight fails with the reason.
    fn fail_all(&mut self, active: &mut Vec<Active>, message: String) {
        tracing::error!("llama.cpp decode failed: {message}");
        self.ctx.clear_kv_cache();
        for slot in &mut self.slots {
            *slot = Slot::default();
        }
        for request in active.drain(..) {
            let _ = request.job.reply.send(Err(CompletionError::Backend(message.clone())));
        }
    }
}

/// Removes the items matching `pred` from `items`, in order, and returns them.
fn take_where<T, C>(items: &mut C, mut pred: impl FnMut(&T) -> bool) -> Vec<T>
where
    C: Default + Extend<T> + IntoIterator<Item = T>,
{
    let (taken, kept): (Vec<T>, Vec<T>) = std::mem::take(items).into_iter().partition(|item| pred(item));
    items.extend(kept);
    taken
}

/// Shrinks `budget` so that the prompt and up to `max_tokens` of output
/// (at most half the window) fit a context of `n_ctx` tokens, as the engine
/// does for every request.
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

/// What sampling and log-probabilities need of a step's logits: their
/// maximum and `Σ e^(l − max)`, in one pass each over the vocabulary
/// (49k–152k logits), written so that the compiler vectorises them (lanes
/// of 16, comparisons instead of `f32::max`, [`exp_neg`] instead of
/// `f32::exp`, a library call per logit) and compiled a second time for
/// AVX2 + FMA, used where the CPU has them. For SmolLM2's 49k logits the
/// earlier code took 300 µs per token (checked arithmetic and saturating
/// casts kept it scalar), 3–4 % of a decode step on this machine; this
/// takes 39 µs (82 µs with SSE2 only).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogitSummary {
    max: f32,
    sum: f32,
}

impl LogitSummary {
    pub(crate) fn of(logits: &[f32]) -> LogitSummary {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            #[allow(unsafe_code)]
            return unsafe { summary_avx2(logits) };
        }
        summary(logits)
    }

    /// The first index of the largest logit (greedy decoding).
    pub(crate) fn argmax(&self, logits: &[f32]) -> TokenId {
        logits.iter().position(|&l| l == self.max).unwrap_or(0) as TokenId
    }

    /// `log softmax(logits)[index]`.
    pub(crate) fn log_softmax_at(&self, logits: &[f32], index: usize) -> f32 {
        (logits[index] - self.max) - self.sum.ln()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn summary_avx2(logits: &[f32]) -> LogitSummary {
    summary(logits)
}

#[inline(always)]
fn summary(logits: &[f32]) -> LogitSummary {
    const LANES: usize = 16;
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = logits.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &l) in maxima.iter_mut().zip(chunk) {
            *m = if l > *m { l } else { *m };
        }
    }
    let max = maxima.iter().chain(chunks.remainder()).fold(f32::NEG_INFINITY, |m, &l| if l > m { l } else { m });
    let mut sums = [0f32; LANES];
    let mut chunks = logits.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (s, &l) in sums.iter_mut().zip(chunk) {
            *s += exp_neg(l - max);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&l| exp_neg(l - max)).sum();
    LogitSummary { max, sum: sums.iter().sum::<f32>() + tail }
}

/// `e^x` for `x <= 0`, relative error below 1e-5: `2^(x log2 e)` split
/// into an integer part (the float's exponent bits) and a fraction in
/// [-0.5, 0.5] (a degree-7 Taylor polynomial of `2^f`). Underflows to 0
/// below about -87. The integer part is rounded by adding 1.5 · 2^23, whose
/// low mantissa bits then hold it: float arithmetic and integer bit
/// operations only, which vectorise (a float-to-int `as` saturates, and
/// checked integer arithmetic branches, which keep loops scalar).
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23
    let t = x * std::f32::consts::LOG2_E;
    let t = if t < -126.0 { -126.0 } else { t };
    let rounded = t + ROUND;
    let f = t - (rounded - ROUND);
    let whole = rounded.to_bits().wrapping_sub(ROUND.to_bits());
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5
                + f * (0.055_504_11
                    + f * (0.009_618_129 + f * (0.001_333_355 + f * (0.000_154_035_3 + f * 0.000_015_252_73))))));
    f32::from_bits(whole.wrapping_add(127) << 23) * p
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
    fn flash_attention_auto_is_off_on_the_cpu() {
        assert_eq!(FlashAttention::Auto.resolve(0), FlashAttention::Off);
        assert_eq!(FlashAttention::On.resolve(0), FlashAttention::On);
        assert_eq!(FlashAttention::Off.resolve(99), FlashAttention::Off);
        let offloaded =
            if cfg!(any(feature = "cuda", feature = "vulkan")) { FlashAttention::Auto } else { FlashAttention::Off };
        assert_eq!(FlashAttention::Auto.resolve(99), offloaded);
    }

    #[test]
    fn exp_neg_matches_exp() {
        let mut x = 0.0f32;
        while x > -87.0 {
            let (fast, exact) = (exp_neg(x), f64::from(x).exp());
            assert!(((f64::from(fast) - exact) / exact).abs() < 1e-5, "{x}: {fast} vs {exact}");
            x -= 0.0137;
        }
        assert_eq!(exp_neg(0.0), 1.0);
        assert!(exp_neg(-200.0) < 1e-37 && exp_neg(f32::NEG_INFINITY) >= 0.0);
    }

    #[test]
    fn log_softmax_matches_a_direct_computation() {
        // A vocabulary-sized vector, not a multiple of the sixteen lanes.
        let logits: Vec<f32> = (0..49_157).map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0).collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
        // Both the AVX2 build (where the CPU has it) and the portable one.
        for summary in [LogitSummary::of(&logits), summary(&logits)] {
            for i in [0, 1, 4_321, 49_156] {
                let expected = f64::from(logits[i] - max) - z.ln();
                assert!((f64::from(summary.log_softmax_at(&logits, i)) - expected).abs() < 1e-3, "{i}");
            }
            let first_max = logits.iter().position(|&l| l == max).unwrap();
            assert_eq!(summary.argmax(&logits) as usize, first_max);
        }
        let small = [1.0f32, 2.0, 3.0, -1.0, 3.0];
        let z: f64 = small.iter().map(|&l| f64::from(l).exp()).sum();
        let summary = LogitSummary::of(&small);
        for (i, &l) in small.iter().enumerate() {
            let expected = (f64::from(l).exp() / z).ln();
            assert!((f64::from(summary.log_softmax_at(&small, i)) - expected).abs() < 1e-5);
        }
        // The first of equal maxima, as a scan would pick.
        assert_eq!(summary.argmax(&small), 2);
        assert_eq!(LogitSummary::of(&[f32::NAN; 3]).argmax(&[f32::NAN; 3]), 0);
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
