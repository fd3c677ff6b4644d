//! Weft's inference: models, prompts, llama.cpp and HTTP backends.
//!
//! This crate knows nothing of LSP. Its API is plain data in editor-neutral
//! terms: a [`CompletionRequest`] holds the text before and after a cursor,
//! a [`Completion`] holds the text to insert and how it was produced. The
//! `weft` binary converts between these and the protocol.
//!
//! Design decisions:
//! - Prompts are assembled in token ids ([`prompt`]); FIM special tokens never
//!   pass through the tokenizer as text.
//! - One worker thread owns each llama.cpp context ([`llama::LlamaEngine`]);
//!   callers await a channel, so inference never blocks an async runtime.
//! - Work is cancelled between `decode` calls; the prompt is prefilled in
//!   chunks so that a cancel waits for at most one chunk.

pub mod agent;
pub mod chat;
pub mod completion;
pub mod family;
pub mod hub;
pub mod language;
pub mod llama;
pub mod postprocess;
pub mod prompt;
pub mod registry;
pub mod remote_completion;
pub mod resilience;
pub mod sandbox;

pub use completion::{Completion, CompletionError, CompletionRequest, FinishReason, SamplingConfig, Timings};
pub use family::{FimOrder, ModelFamily, PromptFormat};
pub use language::Language;
pub use llama::{EngineConfig, FlashAttention, LlamaEngine, LoadOptions, LoadedModel, ModelInfo};
pub use tokio_util::sync::CancellationToken;
