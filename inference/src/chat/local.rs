//! [`LocalChat`]: a llama.cpp instruct model as a [`ChatBackend`].
//!
//! Construct it with [`LocalChat::load`] (`LocalChat::load(path,
//! LocalChatConfig::default())`, which blocks while the GGUF loads: call it
//! from `spawn_blocking` or a start-up thread), or with
//! [`LocalChat::with_model`] to share weights already loaded by a
//! [`crate::LlamaEngine`] (`LocalChat::with_model(engine.model(), config)`),
//! or from a `[chat.providers.NAME]` entry with [`LocalChat::for_provider`].
//!
//! Threads: on a loaded 2-core machine, two llama.cpp threads wait on each
//! other at every ggml barrier; one thread decoded 36 tokens in 1.8 s where
//! two took 34.5 s (load average 8). Set `n_threads = 1` where the cores are
//! shared (tests, CI).
//!
//! Sharing the weights is cheap: `LlamaModel` is `Sync`, so the completion
//! engine and the chat worker read the same tensors. The context is never
//! shared: chat runs on its own worker thread with its own `LlamaContext`
//! and KV cache, so agent runs do not evict the completion engine's cached
//! prefix, and completions do not wait behind a long agent step. The cost is
//! a second KV cache (about 90 MiB for SmolLM2-135M at 4,096 tokens).
//!
//! The prompt comes from the GGUF's own chat template. Message contents are
//! tokenized with special-token parsing off: the template is rendered with a
//! marker in place of each content, the template's text around the markers
//! is tokenized with special tokens, the contents without. A user message
//! containing `<|im_end|>` therefore stays text.
//!
//! A request with a `schema` is sampled under a GBNF grammar made from it
//! ([`super::grammar`]), so the answer is JSON that satisfies the schema,
//! unless `max_tokens` cuts it first (then the answer is
//! [`ChatError::InvalidOutput`]). The schema itself is not added to the
//! prompt: the grammar forces the keys, and prefill is the expensive part on
//! a CPU; callers say in their own prompt what each field should hold.
//! Generation stops at end of turn, at
//! `max_tokens`, or when the context is full; cancellation is checked between
//! `decode` calls, and the prompt is prefilled in chunks so a cancel waits for
//! at most one chunk.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use futures_util::future::BoxFuture;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::config::LocalProviderConfig;
use super::grammar;
use super::schema::Schema;
use super::{ChatBackend, ChatError, ChatMessage, ChatRequest, ChatResponse, ChatUsage, Role};
use crate::llama::sequence::{self, StepError};
use crate::llama::{LlamaEngine, LoadOptions, LoadedModel, default_threads};
use crate::prompt::{TokenId, Tokenize};

/// Settings of a local chat model and its context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalChatConfig {
    /// Context window in tokens: the conversation and the answer.
    pub n_ctx: u32,
    /// CPU threads; `None` picks a default from the core count.
    pub n_threads: Option<i32>,
    /// Layers offloaded to the GPU by [`LocalChat::load`] (GPU builds only).
    pub n_gpu_layers: u32,
    /// Prompt tokens decoded per `decode` call; a cancel waits for at most one.
    pub prefill_chunk: usize,
    /// Requests waiting beyond this many are refused.
    pub queue_capacity: usize,
    /// Sampling when a request's temperature is above 0.
    pub top_k: i32,
    pub top_p: f32,
    pub seed: u32,
}

impl Default for LocalChatConfig {
    fn default() -> Self {
        LocalChatConfig {
            n_ctx: 4096,
            n_threads: None,
            n_gpu_layers: 0,
            prefill_chunk: 128,
            queue_capacity: 16,
            top_k: 40,
            top_p: 0.95,
            seed: 42,
        }
    }
}

struct Job {
    request: ChatRequest,
    /// The grammar of the request's schema, converted on the caller's side.
    constraint: Option<(Schema, String)>,
    cancel: CancellationToken,
    reply: oneshot::Sender<Result<ChatResponse, ChatError>>,
}

/// A local instruct model answering conversations on its own thread.
/// Cheap to clone.
#[derive(Clone)]
pub struct LocalChat {
    jobs: SyncSender<Job>,
    name: String,
    capacity: usize,
}

impl LocalChat {
    /// Loads the GGUF at `path` and starts the worker. Blocks while the
    /// model loads.
    pub fn load(path: &Path, config: LocalChatConfig) -> anyhow::Result<Self> {
        let load = LoadOptions { n_gpu_layers: config.n_gpu_layers, ..LoadOptions::default() };
        LocalChat::with_model(LoadedModel::shared(path, &load)?, config)
    }

    /// The backend of a `[chat.providers.NAME]` of kind `local`: the GGUF
    /// that `resolve` finds for `config.model`, or, when `model` is unset,
    /// the weights of `engine` (the completion model), shared.
    pub fn for_provider(
        config: &LocalProviderConfig,
        engine: Option<&LlamaEngine>,
        resolve: &dyn Fn(&str) -> anyhow::Result<PathBuf>,
    ) -> anyhow::Result<Self> {
        match (&config.model, engine) {
            (Some(model), _) => LocalChat::load(&resolve(model)?, config.chat_config()),
            (None, Some(engine)) => LocalChat::with_model(engine.model(), config.chat_config()),
            (None, None) => {
                anyhow::bail!("no completion model is loaded to share; set `model` for this local chat provider")
            }
        }
    }

    /// Starts a worker on weights loaded elsewhere (for example
    /// [`crate::LlamaEngine::model`]), with a context of its own.
    pub fn with_model(model: Arc<LoadedModel>, config: LocalChatConfig) -> anyhow::Result<Self> {
        if model.info().n_params == 0 {
            anyhow::bail!("{} is loaded vocabulary-only and cannot generate", model.info().path.display());
        }
        if !model.info().has_chat_template {
            anyhow::bail!(
                "{} has no chat template in its GGUF metadata; chat needs an instruct model",
                model.info().path.display()
            );
        }
        let name = model.info().name.clone();
        let capacity = config.queue_capacity.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(capacity);
        crate::llama::spawn_worker("weft-chat", move |started| {
            let mut worker = ChatWorker::new(&model, &config)?;
            started.done();
            while let Ok(job) = queue.recv() {
                let result = if job.cancel.is_cancelled() {
                    Err(ChatError::Cancelled)
                } else {
                    worker.answer(&job.request, job.constraint.as_ref(), &job.cancel)
                };
                let _ = job.reply.send(result);
            }
            Ok(())
        })?;
        Ok(LocalChat { jobs, name, capacity })
    }
}

impl ChatBackend for LocalChat {
    fn model(&self) -> String {
        self.name.clone()
    }

    fn chat(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<ChatResponse, ChatError>> {
        let jobs = self.jobs.clone();
        let capacity = self.capacity;
        Box::pin(async move {
            let constraint = match &request.schema {
                Some(schema) => {
                    let schema = Schema::parse(schema).map_err(|e| ChatError::Failed(e.to_string()))?;
                    let grammar = grammar::to_gbnf(&schema);
                    Some((schema, grammar))
                }
                None => None,
            };
            let (reply, answer) = oneshot::channel();
            // Dropping the future cancels the work.
            let guard = cancel.clone().drop_guard();
            match jobs.try_send(Job { request, constraint, cancel, reply }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    return Err(ChatError::Transient(format!("the local model has {capacity} requests waiting")));
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(ChatError::Failed("the local chat worker has stopped".to_owned()));
                }
            }
            let result = answer.await.map_err(|_| ChatError::Failed("the local chat worker has stopped".to_owned()));
            guard.disarm();
            result?
        })
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Finish {
    EndOfTurn,
    MaxTokens,
    ContextFull,
}

/// The worker's state: the context and the tokens its KV cache holds.
struct ChatWorker<'m> {
    model: &'m LoadedModel,
    template: LlamaChatTemplate,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// Tokens in the KV cache of sequence 0, in order; consecutive agent
    /// steps share their system prompt.
    cached: Vec<TokenId>,
    n_ctx: usize,
    chunk: usize,
    config: LocalChatConfig,
}

impl<'m> ChatWorker<'m> {
    fn new(model: &'m LoadedModel, config: &LocalChatConfig) -> anyhow::Result<Self> {
        let template = model.model.chat_template(None)?;
        let threads = config.n_threads.unwrap_or_else(default_threads);
        let chunk = config.prefill_chunk.clamp(8, 2048);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(config.n_ctx.max(256)))
            .with_n_batch(chunk as u32)
            .with_n_ubatch(chunk as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model.model.new_context(crate::llama::backend(), params)?;
        let n_ctx = ctx.n_ctx() as usize;
        Ok(ChatWorker {
            model,
            template,
            ctx,
            batch: LlamaBatch::new(chunk, 1),
            cached: Vec::new(),
            n_ctx,
            chunk,
            config: config.clone(),
        })
    }

    fn answer(
        &mut self,
        request: &ChatRequest,
        constraint: Option<&(Schema, String)>,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, ChatError> {
        let tokens = self.prompt(&request.messages)?;
        if tokens.len() + 1 >= self.n_ctx {
            return Err(ChatError::Failed(format!(
                "the conversation is {} tokens long; the local model's context holds {}",
                tokens.len(),
                self.n_ctx
            )));
        }
        let mut sampling = self.sampling(constraint.map(|(_, grammar)| grammar.as_str()), request.temperature)?;
        self.prefill(&tokens, cancel)?;

        let mut raw = Vec::<u8>::new();
        let mut generated = 0u32;
        let finish = loop {
            if cancel.is_cancelled() {
                return Err(ChatError::Cancelled);
            }
            let Some(token) = sampling.next(&self.ctx, self.batch.n_tokens() - 1) else {
                break Finish::EndOfTurn;
            };
            if self.model.is_stop(token.0) {
                break Finish::EndOfTurn;
            }
            self.model.piece(token.0, &mut raw);
            generated += 1;
            if generated >= request.max_tokens {
                break Finish::MaxTokens;
            }
            if self.cached.len() + 1 >= self.n_ctx {
                break Finish::ContextFull;
            }
            self.decode_one(token.0)?;
        };
        let text = String::from_utf8_lossy(&raw).trim_end().to_owned();
        let usage = ChatUsage { prompt_tokens: tokens.len() as u32, completion_tokens: generated };
        if let Some((schema, _)) = constraint {
            check_answer(schema, &text, finish, request.max_tokens)
                .map_err(|reason| ChatError::InvalidOutput(reason, usage))?;
        }
        Ok(ChatResponse { text, model: self.model.info().name.clone(), usage })
    }

    /// The conversation as token ids, through the model's chat template,
    /// ending with the opening of the assistant's turn.
    fn prompt(&self, messages: &[ChatMessage]) -> Result<Vec<TokenId>, ChatError> {
        // Private-use characters: no template rewrites them, no message
        // content is mistaken for them (it is never rendered).
        let markers: Vec<String> = (0..messages.len()).map(|i| format!("\u{E000}{i}\u{E001}")).collect();
        let chat = messages
            .iter()
            .zip(&markers)
            .map(|(message, marker)| LlamaChatMessage::new(role_name(message.role).to_owned(), marker.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ChatError::Failed(e.to_string()))?;
        let rendered = self
            .model
            .model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| ChatError::Failed(format!("the model's chat template failed: {e}")))?;

        let mut tokens = Vec::new();
        let mut rest = rendered.as_str();
        for (message, marker) in messages.iter().zip(&markers) {
            let Some(at) = rest.find(marker.as_str()) else {
                return Err(ChatError::Failed(
                    "the model's chat template drops or reorders messages; it cannot be used safely".to_owned(),
                ));
            };
            tokens.extend(self.tokenize_template(&rest[..at]));
            tokens.extend(self.model.tokenize(&message.content));
            rest = &rest[at + marker.len()..];
        }
        tokens.extend(self.tokenize_template(rest));
        if let Some(bos) = self.model.special_tokens().bos
            && tokens.first() != Some(&bos)
        {
            tokens.insert(0, bos);
        }
        Ok(tokens)
    }

    /// Template text: special tokens such as `<|im_start|>` are parsed.
    fn tokenize_template(&self, text: &str) -> Vec<TokenId> {
        if text.is_empty() {
            return Vec::new();
        }
        self.model.model.vocab().tokenize(text.as_bytes(), false, true).into_iter().map(|t| t.0).collect()
    }

    fn sampling(&self, grammar: Option<&str>, temperature: f32) -> Result<Sampling, ChatError> {
        let grammar = grammar
            .map(|grammar| {
                LlamaSampler::grammar(&self.model.model, grammar, "root").map_err(|e| {
                    ChatError::Failed(format!("llama.cpp rejected the grammar made from the schema ({e}):\n{grammar}"))
                })
            })
            .transpose()?;
        let chain = if temperature <= 0.0 {
            LlamaSampler::greedy()
        } else {
            LlamaSampler::chain_simple([
                LlamaSampler::top_k(self.config.top_k.max(1)),
                LlamaSampler::top_p(self.config.top_p.clamp(0.01, 1.0), 1),
                LlamaSampler::temp(temperature),
                LlamaSampler::dist(self.config.seed),
            ])
        };
        Ok(Sampling { grammar, chain })
    }

    /// Brings the KV cache to `tokens` ([`sequence::prefill`]).
    fn prefill(&mut self, tokens: &[TokenId], cancel: &CancellationToken) -> Result<(), ChatError> {
        sequence::prefill(&mut self.ctx, &mut self.batch, &mut self.cached, self.chunk, tokens, cancel)
            .map(|_reused| ())
            .map_err(chat_error)
    }

    fn decode_one(&mut self, token: TokenId) -> Result<(), ChatError> {
        sequence::decode_one(&mut self.ctx, &mut self.batch, &mut self.cached, token).map_err(chat_error)
    }
}

fn chat_error(err: StepError) -> ChatError {
    match err {
        StepError::Cancelled => ChatError::Cancelled,
        StepError::Backend(message) => ChatError::Failed(format!("llama.cpp decode failed: {message}")),
    }
}

/// Token selection: a sampler chain (greedy, or top-k/top-p/temperature),
/// and a grammar that has the last word.
///
/// The grammar is applied second, as llama.cpp's own `common_sampler`
/// does: the chain picks from the unconstrained logits, and only when the
/// grammar rejects that token is the grammar run over the whole vocabulary
/// and the chain run again on what it allows. The answer is the same for
/// greedy decoding; running the grammar over all 49,152 candidates at every
/// step was 1.2–1.8× slower with SmolLM2 (a 64-token review answer: 2.6–2.7 s
/// against 3.0–4.7 s on one loaded core).
struct Sampling {
    grammar: Option<LlamaSampler>,
    chain: LlamaSampler,
}

impl Sampling {
    /// The next token; `None` if the grammar allows nothing (which a
    /// grammar made by [`grammar::to_gbnf`] never does).
    fn next(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Option<LlamaToken> {
        let Some(grammar) = &mut self.grammar else {
            return Some(self.chain.sample(ctx, idx));
        };
        let mut candidates = ctx.token_data_array_ith(idx);
        candidates.apply_sampler(&mut self.chain);
        let picked = candidates.selected_token();
        let allowed = picked.is_some_and(|token| {
            let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 1.0)], false);
            single.apply_sampler(grammar);
            single.data.first().is_some_and(|d| d.logit().is_finite())
        });
        let token = match picked {
            Some(token) if allowed => token,
            _ => {
                let mut candidates = ctx.token_data_array_ith(idx);
                candidates.apply_sampler(grammar);
                candidates.apply_sampler(&mut self.chain);
                candidates.selected_token()?
            }
        };
        grammar.accept(token);
        self.chain.accept(token);
        Some(token)
    }
}

/// A grammar-constrained answer is valid JSON unless generation was cut;
/// it is checked anyway, so a grammar bug cannot pass unnoticed.
fn check_answer(schema: &Schema, text: &str, finish: Finish, max_tokens: u32) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|err| match finish {
        Finish::MaxTokens => {
            format!("the answer was cut at max_tokens ({max_tokens}) before its JSON was complete")
        }
        Finish::ContextFull => "the answer filled the context before its JSON was complete".to_owned(),
        Finish::EndOfTurn => format!("the grammar-constrained answer is not JSON ({err}): {text}"),
    })?;
    schema.validate(&value).map_err(|violations| {
        let listed: Vec<String> = violations.iter().map(ToString::to_string).collect();
        listed.join("; ")
    })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}
