//! The in-process llama.cpp backend.

mod engine;
mod model;
pub(crate) mod sequence;

pub use engine::{EngineConfig, FlashAttention, LlamaEngine, PromptBudgetConfig, default_threads, fit_budget};
pub(crate) use model::backend;
pub use model::{LoadOptions, LoadedModel, ModelInfo};
