//! `weft bench`: measurements a user can rerun. `weft bench context` times
//! what a completion request costs before the model runs: the prompt
//! windows, retrieval from the workspace index, and prompt assembly with the
//! model's own tokenizer, at cursors in many files of a workspace.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use weft_inference::language::Language;

use weft_inference::prompt::{self, PromptInput};
use weft_lsp::context::{ContextEngine, ContextQuery, Lang, read_source, source_files};
use weft_lsp::document::Document;

use crate::config::Config;
use crate::prompt_cmd::{context_config, context_snippets, load_vocab, server_config};
use weft_inference::llama::fit_budget;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Retrieval + prompt assembly latency over cursors in a workspace.
    Context(ContextArgs),
}

#[derive(Args, Debug)]
pub struct ContextArgs {
    /// GGUF model or vocab-only GGUF whose tokenizer counts the budget.
    #[arg(long)]
    model: Option<String>,
    /// The workspace to index (default: ~/.cargo/registry/src).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Files whose middle line gets a cursor.
    #[arg(long, default_value_t = 300)]
    cursors: usize,
}

pub fn run(command: BenchCommand, config: Config) -> anyhow::Result<ExitCode> {
    let BenchCommand::Context(args) = command;
    let workspace = match args.workspace {
        Some(dir) => dir,
        None => dirs::home_dir().context("no home directory")?.join(".cargo/registry/src"),
    };
    let workspace =
        std::fs::canonicalize(&workspace).with_context(|| format!("no workspace {}", workspace.display()))?;
    let model = load_vocab(&config, args.model.as_deref())?;
    let info = model.info();
    let server = server_config(&config, config.lsp.cross_file);
    let engine = ContextEngine::new(context_config(&config, config.lsp.cross_file));
    let started = Instant::now();
    engine.set_roots_blocking(vec![workspace.clone()]);
    let index_s = started.elapsed().as_secs_f64();
    let budget = fit_budget(config.engine.budget.into(), config.engine.n_ctx as usize, config.completion.max_tokens);

    let files: Vec<PathBuf> =
        source_files(&workspace, 1 << 20).into_iter().filter(|p| Lang::from_path(p).is_some()).collect();
    let step = (files.len() / args.cursors.max(1)).max(1);
    let (mut retrieval_ms, mut total_ms, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    for path in files.iter().step_by(step).take(args.cursors) {
        let Ok(text) = read_source(path, 1 << 20) else { continue };
        engine.open(path, "", &text);
        let document = Document::new(&text, 0, "");
        let rope = document.text();
        let line = rope.len_lines() / 2;
        let char_idx = rope.line_to_char(line);
        let t0 = Instant::now();
        let windows = weft_lsp::server::prompt_windows(&document, char_idx, &server);
        let retrieval =
            engine.retrieve(&ContextQuery { path, cursor: rope.char_to_byte(char_idx), window: windows.bytes.clone() });
        let t1 = Instant::now();
        let snippets = context_snippets(&retrieval);
        let language = Language::from_path(path);
        let relative = path.strip_prefix(&workspace).unwrap_or(path).to_string_lossy().into_owned();
        let input = PromptInput {
            prefix: &windows.prefix,
            suffix: &windows.suffix,
            path: Some(&relative),
            line_comment: language.line_comment(),
            repo_name: None,
            snippets: &snippets,
        };
        let assembled =
            prompt::build(info.detection.format, info.fim_order, model.special_tokens(), &model, &input, budget)?;
        let t2 = Instant::now();
        engine.close(path);
        retrieval_ms.push((t1 - t0).as_secs_f64() * 1e3);
        total_ms.push((t2 - t0).as_secs_f64() * 1e3);
        tokens.push(assembled.tokens.len() as f64);
    }
    let value = json!({
        "workspace": workspace,
        "model": info.name,
        "format": info.detection.format,
        "indexed_in_s": index_s,
        "cursors": total_ms.len(),
        "retrieval_ms": percentiles(&mut retrieval_ms),
        "retrieval_and_assembly_ms": percentiles(&mut total_ms),
        "prompt_tokens": percentiles(&mut tokens),
    });
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(ExitCode::SUCCESS)
}

fn percentiles(values: &mut [f64]) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values.get(((values.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    json!({ "p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": at(1.0) })
}
