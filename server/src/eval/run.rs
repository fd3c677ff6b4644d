//! Runs the tasks of one (model, benchmark, context) cell: context,
//! completion, metrics, tests, one result line each.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use super::completer::{Completer, GenerationSettings};
use super::context::ContextSource;
use super::metrics::{edit_similarity, exact_match, identifier_match};
use super::results::{ResultStore, TaskResult};
use super::sandbox::{RunStatus, Sandbox};
use super::task::{ContextMode, Task};

/// The tasks of a cell that ran.
#[derive(Clone, Copy, Debug, Default)]
pub struct CellProgress {
    /// Written to `results.jsonl`.
    pub recorded: usize,
    /// Failed for a reason outside the model (a remote server that did not
    /// answer): not recorded, so the next run retries them.
    pub deferred: usize,
}

/// What every cell of a run shares.
pub struct Runner {
    pub store: Mutex<ResultStore>,
    pub sandbox: Option<Arc<Sandbox>>,
    /// Test programs running at once.
    pub test_slots: Arc<Semaphore>,
    pub settings: GenerationSettings,
    /// The prompt's prefix and suffix budgets, in tokens, for the context
    /// engine's window.
    pub prompt_tokens: (usize, usize),
    /// Tasks in flight at once (completion and tests overlap).
    pub concurrency: usize,
}

impl Runner {
    /// Runs the tasks of a cell that have no result yet.
    pub async fn run_cell(
        &self,
        completer: &Completer,
        context: ContextMode,
        tasks: &[Task],
    ) -> anyhow::Result<CellProgress> {
        let label = completer.label();
        let todo: Vec<&Task> = {
            let store = self.store.lock().expect("result store lock");
            tasks.iter().filter(|t| !store.is_done(&key(label, t, context))).collect()
        };
        let Some(first) = todo.first() else { return Ok(CellProgress::default()) };
        let name = format!("{label} {} {}", first.benchmark.name(), context.name());
        if todo.len() < tasks.len() {
            tracing::info!("{name}: resuming, {} of {} tasks done", tasks.len() - todo.len(), tasks.len());
        }
        let bar = ProgressBar::new(todo.len() as u64).with_message(name.clone());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        let log_every = (todo.len() / 20).max(1);
        let total = todo.len();
        let source = ContextSource::for_mode(context, self.prompt_tokens.0, self.prompt_tokens.1).map(Arc::new);
        let mut results = futures_util::stream::iter(todo)
            .map(|task| self.run_task(completer, context, source.clone(), task))
            .buffer_unordered(self.concurrency.max(1));
        let mut progress = CellProgress::default();
        while let Some(result) = results.next().await {
            let (result, retry_later) = result?;
            if retry_later {
                if progress.deferred == 0 {
                    tracing::warn!(
                        "{name}: {} failed, to be retried by the next run: {}",
                        result.task_id,
                        result.error.as_deref().unwrap_or_default()
                    );
                }
                progress.deferred += 1;
            } else {
                self.store.lock().expect("result store lock").append(&result)?;
                progress.recorded += 1;
            }
            let done = progress.recorded + progress.deferred;
            bar.inc(1);
            // Without a terminal (a run under nohup), progress goes to the log.
            if bar.is_hidden() && (done % log_every == 0 || done == total) {
                tracing::info!("{name}: {done}/{total} tasks");
            }
        }
        bar.finish_and_clear();
        if progress.deferred > 0 {
            tracing::warn!("{name}: {} tasks failed at the server and were not recorded", progress.deferred);
        }
        Ok(progress)
    }

    async fn run_task(
        &self,
        completer: &Completer,
        context: ContextMode,
        source: Option<Arc<ContextSource>>,
        task: &Task,
    ) -> anyhow::Result<(TaskResult, bool)> {
        let mut errors = Vec::new();
        let (snippets, context_ms) = match (source, &task.workspace) {
            (Some(source), Some(workspace)) => {
                let workspace = workspace.clone();
                let (path, prefix, suffix) =
                    (task.path.clone().unwrap_or_default(), task.prefix.clone(), task.suffix.clone());
                let started = Instant::now();
                let found =
                    tokio::task::spawn_blocking(move || source.snippets(&workspace, &path, &prefix, &suffix)).await?;
                if !found.index_ready {
                    errors.push("the context engine's index was not ready".to_owned());
                }
                (found.snippets, started.elapsed().as_secs_f64() * 1e3)
            }
            _ => (Vec::new(), 0.0),
        };
        let context_snippets = snippets.len();
        let generated = completer.complete(task, snippets, &self.settings).await;
        errors.extend(generated.error.clone());
        let text = generated.text;
        let raw_completion = generated.raw_text;
        let (identifier_em, identifier_f1) = identifier_match(&text, &task.ground_truth);
        let run = match (&task.tests, &self.sandbox, generated.error.is_some()) {
            (Some(tests), Some(sandbox), false) => {
                let program = tests.program(&task.prefix, &text, &task.suffix);
                let sandbox = sandbox.clone();
                let _slot = self.test_slots.acquire().await?;
                Some(tokio::task::spawn_blocking(move || sandbox.run(&program)).await??)
            }
            _ => None,
        };
        let passed = task.tests.as_ref().map(|_| run.as_ref().is_some_and(|r| r.status == RunStatus::Passed));
        let result = TaskResult {
            model: completer.label().to_owned(),
            benchmark: task.benchmark.name().to_owned(),
            context: context.name().to_owned(),
            task_id: task.id.clone(),
            exact_match: exact_match(&text, &task.ground_truth),
            edit_similarity: edit_similarity(&text, &task.ground_truth),
            identifier_em,
            identifier_f1,
            completion: text,
            raw_completion,
            ground_truth: task.ground_truth.clone(),
            passed,
            run,
            finish_reason: generated.finish_reason,
            prompt_tokens: generated.prompt_tokens,
            generated_tokens: generated.generated_tokens,
            reused_tokens: generated.reused_tokens,
            context_snippets,
            context_ms,
            timings: generated.timings,
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        };
        Ok((result, generated.retry_later))
    }
}

fn key(label: &str, task: &Task, context: ContextMode) -> super::results::ResultKey {
    (label.to_owned(), task.benchmark.name().to_owned(), context.name().to_owned(), task.id.clone())
}
