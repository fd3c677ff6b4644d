//! The in-process llama.cpp backend.

mod engine;
mod model;
mod scheduler;
pub(crate) mod sequence;

pub use engine::{EngineConfig, FlashAttention, LlamaEngine, PromptBudgetConfig, default_threads, fit_budget};
pub(crate) use model::backend;
pub use model::{Device, LoadOptions, LoadedModel, ModelInfo, devices};

/// Tells [`spawn_worker`] that the worker's state is built.
pub(crate) struct Started(std::sync::mpsc::Sender<anyhow::Result<()>>);

impl Started {
    pub(crate) fn done(&self) {
        let _ = self.0.send(Ok(()));
    }
}

/// Starts a thread that owns a llama.cpp context: `body` builds its state,
/// calls [`Started::done`], then serves until its queue closes. Returns once
/// the state is built, or with the error that kept it from being built.
pub(crate) fn spawn_worker(
    name: &str,
    body: impl FnOnce(&Started) -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let started = Started(tx);
        if let Err(err) = body(&started) {
            let _ = started.0.send(Err(err));
        }
    })?;
    rx.recv().map_err(|_| anyhow::anyhow!("the {name} thread died while starting"))?
}
