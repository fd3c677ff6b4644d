//! `weft bench context` times what a completion request costs before the
//! model runs: the prompt windows, retrieval from the workspace index, and
//! prompt assembly with the model's own tokenizer, at cursors in many files
//! of a workspace.
//!
//! Three cases are measured at every cursor. Cold: the first request at
//! the cursor, with an empty token cache. Cold, new file: the same request
//! with the token cache as earlier files left it (common words and
//! indentation are in it), as in a server that has been running. Typing:
//! the requests that follow
//! while the user opens a new line below the cursor and types a short
//! statement, one request per keystroke, each edit applied to the document
//! and to the context engine (not timed: that is `didChange`'s work) and
//! the token cache kept as the inference engine keeps it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use weft_inference::language::Language;
use weft_inference::llama::fit_budget;
use weft_inference::prompt::{self, PromptBudget, PromptInput, TokenCache};
use weft_inference::{LoadedModel, ModelInfo};
use weft_lsp::context::{ContextEngine, ContextQuery, Lang, read_source, source_files};
use weft_lsp::document::{ContentChange, Document};
use weft_lsp::position::{LspPosition, PositionEncoding};

use super::{percentiles, print_json};
use crate::config::Config;
use crate::prompt_cmd::{context_config, context_snippets, load_vocab, server_config};

/// The keystrokes of the typing case: a new line with the cursor line's
/// indentation, then a statement one character at a time.
const TYPED: &str = "total += 1";

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

/// Latencies of one case, in milliseconds, and prompt sizes in tokens.
/// `retrieval_ms` includes the windows: both come before assembly.
#[derive(Default)]
struct Samples {
    windows_ms: Vec<f64>,
    retrieval_ms: Vec<f64>,
    /// Retrieval time by context source, as the engine reports it.
    source_ms: BTreeMap<String, Vec<f64>>,
    assembly_ms: Vec<f64>,
    total_ms: Vec<f64>,
    prompt_tokens: Vec<f64>,
    /// The slowest retrievals: milliseconds and file.
    slowest: Vec<(f64, String)>,
}

impl Samples {
    fn summary(&mut self) -> serde_json::Value {
        let sources: serde_json::Map<String, serde_json::Value> =
            self.source_ms.iter_mut().map(|(source, ms)| (source.clone(), percentiles(ms))).collect();
        json!({
            "requests": self.total_ms.len(),
            "windows_ms": percentiles(&mut self.windows_ms),
            "retrieval_ms": percentiles(&mut self.retrieval_ms),
            "retrieval_by_source_ms": sources,
            "assembly_ms": percentiles(&mut self.assembly_ms),
            "retrieval_and_assembly_ms": percentiles(&mut self.total_ms),
            "prompt_tokens": percentiles(&mut self.prompt_tokens),
            "slowest_retrievals": self.slowest.iter().map(|(ms, file)| json!({ "ms": ms, "file": file })).collect::<Vec<_>>(),
        })
    }
}

/// What every request of the run shares.
struct Bench<'a> {
    workspace: &'a Path,
    engine: &'a ContextEngine,
    model: &'a LoadedModel,
    info: &'a ModelInfo,
    server: weft_lsp::ServerConfig,
    budget: PromptBudget,
}

impl Bench<'_> {
    /// One completion request's work before the model runs, timed.
    fn request(
        &self,
        path: &Path,
        document: &Document,
        char_idx: usize,
        cache: &TokenCache,
        samples: &mut Samples,
    ) -> anyhow::Result<()> {
        let rope = document.text();
        let t0 = Instant::now();
        let windows = weft_lsp::server::prompt_windows(document, char_idx, &self.server);
        let tw = Instant::now();
        let retrieval = self.engine.retrieve(&ContextQuery {
            path,
            cursor: rope.char_to_byte(char_idx),
            window: windows.bytes.clone(),
        });
        let t1 = Instant::now();
        let snippets = context_snippets(&retrieval);
        let relative = path.strip_prefix(self.workspace).unwrap_or(path).to_string_lossy().into_owned();
        let input = PromptInput {
            prefix: &windows.prefix,
            suffix: &windows.suffix,
            path: Some(&relative),
            line_comment: Language::from_path(path).line_comment(),
            repo_name: None,
            snippets: &snippets,
        };
        let tokenizer = cache.tokenizer(self.model);
        let assembled = prompt::build(
            self.info.detection.format,
            self.info.fim_order,
            self.model.special_tokens(),
            &tokenizer,
            &input,
            self.budget,
        )?;
        let t2 = Instant::now();
        samples.windows_ms.push((tw - t0).as_secs_f64() * 1e3);
        samples.retrieval_ms.push((t1 - t0).as_secs_f64() * 1e3);
        samples.slowest.push(((t1 - t0).as_secs_f64() * 1e3, relative.clone()));
        samples.slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        samples.slowest.truncate(5);
        for timing in &retrieval.timings {
            let source = serde_json::to_value(timing.source)?.as_str().unwrap_or("other").to_owned();
            samples.source_ms.entry(source).or_default().push(timing.micros as f64 / 1e3);
        }
        samples.assembly_ms.push((t2 - t1).as_secs_f64() * 1e3);
        samples.total_ms.push((t2 - t0).as_secs_f64() * 1e3);
        samples.prompt_tokens.push(assembled.tokens.len() as f64);
        Ok(())
    }
}

pub fn run(args: ContextArgs, config: Config) -> anyhow::Result<ExitCode> {
    let workspace = match args.workspace {
        Some(dir) => dir,
        None => dirs::home_dir().context("no home directory")?.join(".cargo/registry/src"),
    };
    let workspace =
        std::fs::canonicalize(&workspace).with_context(|| format!("no workspace {}", workspace.display()))?;
    let model = load_vocab(&config, args.model.as_deref())?;
    let engine = ContextEngine::new(context_config(&config, config.lsp.cross_file));
    let started = Instant::now();
    engine.set_roots_blocking(vec![workspace.clone()]);
    let index_s = started.elapsed().as_secs_f64();
    let bench = Bench {
        workspace: &workspace,
        engine: &engine,
        model: &model,
        info: model.info(),
        server: server_config(&config, config.lsp.cross_file),
        budget: fit_budget(config.engine.budget.into(), config.engine.n_ctx as usize, config.completion.max_tokens),
    };
    // The inference engine's cache, kept across files as a server keeps
    // it, and an empty one for the strictly cold case.
    let (cache, empty) = (TokenCache::default(), TokenCache::default());

    let files: Vec<PathBuf> =
        source_files(&workspace, 1 << 20).into_iter().filter(|p| Lang::from_path(p).is_some()).collect();
    let step = (files.len() / args.cursors.max(1)).max(1);
    let (mut cold, mut new_file, mut typing) = (Samples::default(), Samples::default(), Samples::default());
    let mut typing_cache = (0, 0);
    for path in files.iter().step_by(step).take(args.cursors) {
        let Ok(text) = read_source(path, 1 << 20) else { continue };
        engine.open(path, "", &text);
        let mut document = Document::new(&text, 0, "");
        // The cursor at the end of the middle line.
        let line = document.text().len_lines() / 2;
        let line_text = document.text().line(line).to_string();
        let content = line_text.trim_end_matches(['\n', '\r']);
        let column = content.chars().count();
        let mut char_idx = document.text().line_to_char(line) + column;
        empty.clear();
        bench.request(path, &document, char_idx, &empty, &mut cold)?;
        bench.request(path, &document, char_idx, &cache, &mut new_file)?;

        let indent: String = content.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
        let before = cache.stats();
        let mut position = LspPosition::new(line as u32, column as u32);
        for keystroke in std::iter::once(format!("\n{indent}")).chain(TYPED.chars().map(String::from)) {
            let change = ContentChange { range: Some((position, position)), text: keystroke.clone() };
            let edit = document.apply_change(change.range, &change.text, PositionEncoding::Utf32)?;
            engine.change(path, &[edit], &[change], document.text());
            char_idx += keystroke.chars().count();
            position = match keystroke.strip_prefix('\n') {
                Some(indent) => LspPosition::new(position.line + 1, indent.chars().count() as u32),
                None => LspPosition::new(position.line, position.character + 1),
            };
            bench.request(path, &document, char_idx, &cache, &mut typing)?;
        }
        let after = cache.stats();
        typing_cache.0 += after.hit_bytes - before.hit_bytes;
        typing_cache.1 += after.miss_bytes - before.miss_bytes;
        engine.close(path);
    }
    let info = bench.info;
    let value = json!({
        "workspace": workspace,
        "model": info.name,
        "format": info.detection.format,
        "indexed_in_s": index_s,
        "cursors": cold.total_ms.len(),
        "cold": cold.summary(),
        "cold_new_file": new_file.summary(),
        "typing": typing.summary(),
        "typing_keystrokes": 1 + TYPED.len(),
        "typing_token_cache_hit_rate": typing_cache.0 as f64 / (typing_cache.0 + typing_cache.1).max(1) as f64,
    });
    print_json(&value)?;
    Ok(ExitCode::SUCCESS)
}
