//! `weft prompt FILE:LINE:COL`: the exact prompt the server would send for
//! a cursor, and, with `--json`, every context source that went into it.
//!
//! It runs what `weft lsp` runs, on one file: the workspace is indexed
//! (here in the foreground), the file is opened, the windows are cut as the
//! server cuts them, context is retrieved and the prompt is assembled by
//! the inference crate with the model's own tokenizer. Only the vocabulary
//! of the model is loaded, so this is fast even for large models.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;
use weft_inference::llama::fit_budget;
use weft_inference::prompt::{self, ContextSnippet, PromptInput, Tokenize};
use weft_inference::{Language, LoadOptions, LoadedModel};
use weft_lsp::context::{ContextConfig, ContextEngine, ContextQuery, Retrieval};
use weft_lsp::document::Document;

use crate::complete::Location;
use crate::config::Config;

/// Bytes of code per token, to turn the context token budget into the
/// byte budget of retrieval (the prompt builder enforces the tokens).
pub(crate) const BYTES_PER_TOKEN: usize = 3;

#[derive(clap::Args, Debug)]
pub struct PromptArgs {
    /// GGUF model file or registry name whose tokenizer and prompt format
    /// are used (only its vocabulary is loaded).
    #[arg(long)]
    model: Option<String>,
    /// The workspace root (default: the nearest directory above the file
    /// with a `.git`, or the file's directory).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Print the prompt and every context source as JSON.
    #[arg(long)]
    json: bool,
    /// Leave out the context from other files (for ablations).
    #[arg(long)]
    no_cross_file: bool,
    /// Where the cursor is: FILE:LINE:COL, 1-based, COL in characters.
    location: String,
}

/// The context engine's settings from the configuration.
pub fn context_config(config: &Config, cross_file: bool) -> ContextConfig {
    ContextConfig {
        cross_file,
        max_bytes: config.engine.budget.context_tokens * BYTES_PER_TOKEN,
        sticky_lines: config.lsp.sticky_context_lines,
        ..ContextConfig::default()
    }
}

/// The LSP server's settings from the configuration.
pub fn server_config(config: &Config, cross_file: bool) -> weft_lsp::ServerConfig {
    weft_lsp::ServerConfig {
        max_prefix_lines: config.lsp.max_prefix_lines,
        max_suffix_lines: config.lsp.max_suffix_lines,
        completion_items: config.lsp.completion_items,
        cross_file,
        context_bytes: config.engine.budget.context_tokens * BYTES_PER_TOKEN,
        sticky_context_lines: config.lsp.sticky_context_lines,
        debounce: config.lsp.debounce,
        ..weft_lsp::ServerConfig::default()
    }
}

/// The configured model's vocabulary (no weights): what `weft prompt` and
/// `weft bench context` tokenize with, in the format the engine would use.
pub fn load_vocab(config: &Config, flag: Option<&str>) -> anyhow::Result<LoadedModel> {
    let model_path = config.model_file(flag)?;
    let load = LoadOptions {
        vocab_only: true,
        format: config.model.format,
        fim_order: config.model.fim_order,
        ..LoadOptions::default()
    };
    LoadedModel::load(&model_path, &load)
}

/// Retrieved snippets in the prompt builder's terms.
pub fn context_snippets(retrieval: &Retrieval) -> Vec<ContextSnippet> {
    retrieval.snippets.iter().map(|s| ContextSnippet { path: s.path.clone(), text: s.text.clone() }).collect()
}

pub fn run(args: PromptArgs, config: Config) -> anyhow::Result<ExitCode> {
    let location: Location = args.location.parse()?;
    let file =
        std::fs::canonicalize(&location.file).with_context(|| format!("cannot read {}", location.file.display()))?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let workspace = match &args.workspace {
        Some(dir) => std::fs::canonicalize(dir).with_context(|| format!("no workspace directory {}", dir.display()))?,
        None => default_root(&file),
    };
    let model = load_vocab(&config, args.model.as_deref())?;
    let info = model.info();

    let cross_file = config.lsp.cross_file && !args.no_cross_file;
    let server = server_config(&config, cross_file);
    let engine = ContextEngine::new(context_config(&config, cross_file));
    let index_started = Instant::now();
    engine.set_roots_blocking(vec![workspace.clone()]);
    let index_ms = index_started.elapsed().as_secs_f64() * 1e3;
    engine.open(&file, "", &text);

    let document = Document::new(&text, 0, "");
    let rope = document.text();
    let line = (location.line - 1).min(rope.len_lines().saturating_sub(1));
    let line_text = rope.line(line).to_string();
    let line_len = line_text.trim_end_matches(['\n', '\r']).chars().count();
    let char_idx = rope.line_to_char(line) + (location.column - 1).min(line_len);
    let windows = weft_lsp::server::prompt_windows(&document, char_idx, &server);
    let retrieval = engine.retrieve(&ContextQuery {
        path: &file,
        cursor: rope.char_to_byte(char_idx),
        window: windows.bytes.clone(),
    });

    let snippets = context_snippets(&retrieval);
    let language = Language::from_path(&file);
    let relative = file.strip_prefix(&workspace).unwrap_or(&file).to_string_lossy().replace('\\', "/");
    let input = PromptInput {
        prefix: &windows.prefix,
        suffix: &windows.suffix,
        path: Some(&relative),
        line_comment: language.line_comment(),
        repo_name: None,
        snippets: &snippets,
    };
    let budget = fit_budget(config.engine.budget.into(), config.engine.n_ctx as usize, config.completion.max_tokens);
    let assembled =
        prompt::build(info.detection.format, info.fim_order, model.special_tokens(), &model, &input, budget)?;
    let prompt_text = render(&model, &assembled.tokens);

    let mut stdout = std::io::stdout().lock();
    if !args.json {
        write!(stdout, "{prompt_text}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let included = fitting(&model, &input, info.detection.format, budget.context_tokens);
    let sources: Vec<serde_json::Value> = retrieval
        .snippets
        .iter()
        .zip(&included)
        .map(|(s, (tokens, included))| {
            json!({
                "file": s.path,
                "source": s.source,
                "symbol": s.symbol,
                "lines": [s.first_line, s.last_line],
                "tokens": tokens,
                "included": included,
                "reason": s.reason,
                "score": s.score,
                "source_micros": source_micros(&retrieval, s.source),
            })
        })
        .collect();
    let value = json!({
        "model": { "name": info.name, "format": info.detection.format, "fim_order": info.fim_order },
        "file": relative,
        "workspace": workspace,
        "cross_file": cross_file,
        "prompt": prompt_text,
        "tokens": {
            "total": assembled.tokens.len(),
            "prefix": assembled.prefix_tokens,
            "suffix": assembled.suffix_tokens,
            "context": assembled.context_tokens,
            "budget": { "prefix": budget.prefix_tokens, "suffix": budget.suffix_tokens, "context": budget.context_tokens },
        },
        "sources": sources,
        "retrieval": {
            "micros": retrieval.micros,
            "index_ready": retrieval.index_ready,
            "indexed_files": retrieval.indexed_files,
            "timings": retrieval.timings,
        },
        "index_ms": index_ms,
    });
    writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The workspace of a file: the nearest directory above it with a `.git`.
pub(crate) fn default_root(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("/"));
    dir.ancestors().find(|d| d.join(".git").exists()).unwrap_or(dir).to_path_buf()
}

/// The prompt's tokens as text, special tokens shown by name. Pieces are
/// joined as bytes, so characters split across tokens come out whole.
fn render(model: &LoadedModel, tokens: &[i32]) -> String {
    let special = model.special_tokens();
    let specials =
        [special.bos, special.fim_prefix, special.fim_suffix, special.fim_middle, special.repo_name, special.file_sep];
    let mut bytes = Vec::new();
    for &token in tokens {
        if specials.contains(&Some(token)) {
            bytes.extend_from_slice(model.token_text(token).as_bytes());
        } else {
            model.piece(token, &mut bytes);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Each snippet's token count as the prompt builder counts it, and whether
/// it fitted the context budget (the builder leaves out whole snippets).
fn fitting(
    model: &LoadedModel,
    input: &PromptInput<'_>,
    format: weft_inference::PromptFormat,
    budget: usize,
) -> Vec<(usize, bool)> {
    let special = model.special_tokens();
    let repo = format.repo_token_texts().is_some() && special.repo_name.is_some() && special.file_sep.is_some();
    let mut used =
        if repo { 1 + model.tokenize(&format!("{}\n", input.repo_name.unwrap_or("workspace"))).len() } else { 0 };
    input
        .snippets
        .iter()
        .map(|s| {
            let tokens = if repo {
                1 + model.tokenize(&format!("{}\n{}\n", s.path, s.text.trim_end())).len()
            } else {
                let comment = input.line_comment.unwrap_or("//");
                model.tokenize(&format!("{comment} {}\n{}\n\n", s.path, s.text.trim_end())).len()
            };
            let fits = used + tokens <= budget;
            if fits {
                used += tokens;
            }
            (tokens, fits)
        })
        .collect()
}

fn source_micros(retrieval: &Retrieval, source: weft_lsp::context::SnippetSource) -> u64 {
    retrieval.timings.iter().filter(|t| t.source == source).map(|t| t.micros).sum()
}
