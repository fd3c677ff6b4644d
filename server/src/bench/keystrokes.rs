//! `weft bench keystrokes`: completion latency while a user types.
//!
//! A region of a real file is removed and typed back in, key by key, on a
//! seeded trace with realistic delays ([`super::trace`]); the text after
//! the region stays as the suffix. At every key the document and the
//! context engine are edited as `didChange` edits them, the windows are cut
//! and context retrieved as the LSP server does, and a completion request
//! goes out; the document's request still in flight is cancelled first, as
//! the server's supersession cancels it. All requests are prepared before
//! the replay, so both sides are timed on the same requests at the same
//! moments; a request's latency runs from its key to its answer. On both
//! sides an answer still out when the next key comes counts as cancelled.
//!
//! The peer is `llama-server` with the same model, threads and context, one
//! slot (`-np 1`) and `cache_prompt`. For models without FIM tokens it gets
//! `/completion` with the prompt as the very token ids Weft's engine
//! builds; for FIM models `/infill` with the same windows and snippets as
//! text (`--peer-endpoint completion` sends token ids there too). Both
//! generate exactly `--max-tokens` tokens greedily (Weft's `ignore_eos`,
//! llama-server's `ignore_eos` and `n_predict`), so both do the same work.
//! Cancellation is mirrored: the peer's request is streamed, and at the
//! next key the client drops it, closing the connection; llama-server
//! notices at its next token (or within a second while it is still
//! prefilling: it polls the connection once a second then) and frees the
//! slot, as an editor's client abandoning a request makes it do.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde_json::json;
use weft_inference::llama::fit_budget;
use weft_inference::prompt::{self, Prompt, TokenCache};
use weft_inference::{CancellationToken, CompletionError, CompletionRequest, Language, LlamaEngine, SamplingConfig};
use weft_lsp::context::{ContextEngine, ContextQuery};
use weft_lsp::document::{ContentChange, Document};
use weft_lsp::position::{LspPosition, PositionEncoding};

use super::peer::{PeerOptions, PeerServer};
use super::trace::{self, TypingModel};
use super::{PeerFlash, engine_config, percentiles, print_json, ratio, start_engine, threads};
use crate::config::Config;
use crate::prompt_cmd::{context_config, context_snippets, default_root, server_config};

#[derive(Args, Debug)]
pub struct KeystrokesArgs {
    /// GGUF model file or registry name.
    #[arg(long)]
    model: Option<String>,
    /// The file whose region is typed back in.
    #[arg(long)]
    file: PathBuf,
    /// The workspace for cross-file context (default: the nearest directory
    /// above the file with a `.git`, or the file's directory).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// First line of the typed region, 1-based (default: the middle line).
    #[arg(long)]
    line: Option<usize>,
    /// Characters in the typed region (fewer where the file ends).
    #[arg(long, default_value_t = 240)]
    chars: usize,
    /// Median delay between ordinary keys, in milliseconds.
    #[arg(long, default_value_t = 150.0)]
    key_ms: f64,
    /// Seed of the typing trace.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tokens generated per request, by both sides.
    #[arg(long, default_value_t = 16)]
    max_tokens: usize,
    /// CPU threads of both sides (default: WEFT_N_THREADS or the config).
    #[arg(long)]
    threads: Option<i32>,
    /// llama-server binary: replay the same trace against it.
    #[arg(long)]
    llama_server: Option<PathBuf>,
    /// Replays of the trace on each side, alternating which side goes
    /// first; the figures pool every round's requests.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Skip the peer even where `--llama-server` is given.
    #[arg(long)]
    no_peer: bool,
    /// Flash attention of llama.cpp's side: `same` as Weft's engine, or
    /// llama.cpp's `auto`, `on`, `off`.
    #[arg(long, value_enum, default_value_t = PeerFlash::Same)]
    peer_flash_attention: PeerFlash,
    /// What the peer is asked: `auto` is `/infill` for FIM models and
    /// `/completion` with token ids otherwise.
    #[arg(long, value_enum, default_value_t = PeerEndpoint::Auto)]
    peer_endpoint: PeerEndpoint,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PeerEndpoint {
    Auto,
    Completion,
    Infill,
}

impl PeerEndpoint {
    fn path(self) -> &'static str {
        match self {
            PeerEndpoint::Infill => "/infill",
            PeerEndpoint::Auto | PeerEndpoint::Completion => "/completion",
        }
    }
}

/// Who replays the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Weft,
    Peer,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Weft => "weft",
            Side::Peer => "peer",
        }
    }
}

/// One request of the replay: when it goes out, what Weft is asked, and
/// what the peer is asked.
struct Step {
    at_ms: f64,
    request: CompletionRequest,
    peer_body: serde_json::Value,
}

/// What became of one request.
enum Outcome {
    Completed(Sample),
    Cancelled,
    Failed(String),
}

/// A completed request, as the server reports it.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    prompt_tokens: usize,
    reused_tokens: usize,
    generated_tokens: usize,
    /// The server's own time for the request.
    server_ms: f64,
    /// Its parts: waiting (Weft only), prompt, generation.
    queue_ms: f64,
    prefill_ms: f64,
    decode_ms: f64,
}

/// An outcome with its timing on the client's clock.
struct Timed {
    outcome: Outcome,
    issued_ms: f64,
    latency_ms: f64,
}

pub async fn run(args: KeystrokesArgs, config: Config) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.chars >= 1, "--chars must be at least 1");
    anyhow::ensure!(args.max_tokens >= 1, "--max-tokens must be at least 1");
    anyhow::ensure!(args.key_ms > 0.0, "--key-ms must be positive");
    let threads = threads(args.threads, &config)?;
    let model_path = config.model_file(args.model.as_deref())?;
    let file = std::fs::canonicalize(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let workspace = match &args.workspace {
        Some(dir) => std::fs::canonicalize(dir).with_context(|| format!("no workspace directory {}", dir.display()))?,
        None => default_root(&file),
    };
    let (first_line, region) = region(&text, args.line, args.chars)?;

    let settings = engine_config(&config, threads);
    let engine = start_engine(&config, &model_path, settings.clone()).await?;
    let info = engine.info().clone();
    let endpoint = match args.peer_endpoint {
        PeerEndpoint::Auto if info.detection.format.is_fim() => PeerEndpoint::Infill,
        PeerEndpoint::Auto => PeerEndpoint::Completion,
        chosen => chosen,
    };
    let model = TypingModel::with_key_ms(args.key_ms);
    let keys = trace::keystrokes(&text[region.clone()], &model, args.seed);
    let typing = Typing { config: &config, file: &file, workspace: &workspace, text: &text, region: region.clone() };
    let prepared = typing.prepare(&engine, &keys, args.max_tokens, endpoint)?;
    let warm_up = warm_up_step(&engine, &config, args.max_tokens, endpoint)?;
    drop(engine);

    // Each round replays the trace on both sides, each from a fresh start
    // (a new engine, a new llama-server) after a warm-up request, in
    // alternating order, so that a machine whose speed drifts over minutes
    // does not favour the side that runs first.
    let peer_options = args.llama_server.as_ref().filter(|_| !args.no_peer).map(|binary| PeerOptions {
        binary: binary.clone(),
        model: model_path.clone(),
        threads,
        ctx: settings.n_ctx.max(256),
        parallel: 1,
        n_gpu_layers: config.engine.n_gpu_layers,
        flash_attention: args.peer_flash_attention.arg(&settings),
    });
    let mut weft = Vec::new();
    let mut peer = Vec::new();
    let mut peer_command = None;
    let mut rounds = Vec::new();
    for round in 0..args.rounds.max(1) {
        let mut sides = vec![Side::Weft];
        if peer_options.is_some() {
            sides.insert(round % 2, Side::Peer);
        }
        let mut figures = json!({ "order": sides.iter().map(|s| s.name()).collect::<Vec<_>>() });
        for side in sides {
            let outcomes = match (side, &peer_options) {
                (Side::Weft, _) => {
                    let engine = start_engine(&config, &model_path, settings.clone()).await?;
                    let warm = complete_weft(&engine, warm_up.request.clone(), CancellationToken::new()).await;
                    if let Outcome::Failed(message) = warm {
                        bail!("the warm-up request failed: {message}");
                    }
                    replay(&prepared.steps, |step, cancel| complete_weft(&engine, step.request.clone(), cancel)).await
                }
                (Side::Peer, Some(options)) => {
                    let server = Arc::new(PeerServer::start(options).await?);
                    let warm = complete_peer(&server, endpoint, warm_up.peer_body.clone()).await;
                    if let Outcome::Failed(message) = warm {
                        bail!("the warm-up request to llama-server failed: {message}");
                    }
                    // The replay drops a request at the next key, which
                    // closes its connection.
                    let outcomes =
                        replay(&prepared.steps, |step, _| complete_peer(&server, endpoint, step.peer_body.clone()))
                            .await;
                    peer_command = Some(server.command.clone());
                    outcomes
                }
                (Side::Peer, None) => unreachable!("the peer runs only with its options"),
            };
            let mut latency = completed_latency(&outcomes);
            figures[side.name()] = json!({ "completed": latency.len(), "latency_ms": percentiles(&mut latency) });
            match side {
                Side::Weft => weft.extend(outcomes),
                Side::Peer => peer.extend(outcomes),
            }
        }
        rounds.push(figures);
    }
    let peer = peer_command.map(|command| (peer, command));

    // When the next key of each request's round came.
    let next_key: Vec<f64> = prepared.steps.iter().skip(1).map(|s| s.at_ms).chain([f64::INFINITY]).collect();
    let weft_summary = Summary::of(&weft, &next_key);
    let peer_summary = peer.as_ref().map(|(outcomes, _)| Summary::of(outcomes, &next_key));
    let compared = peer.as_ref().map(|(outcomes, _)| prompts_compared(&weft, outcomes));
    let mut retrieval_ms = prepared.retrieval_ms;
    let value = json!({
        "model": info.name,
        "format": info.detection.format,
        "file": file,
        "workspace": workspace,
        "region": { "first_line": first_line, "chars": text[region.clone()].chars().count() },
        "trace": {
            "seed": args.seed,
            "keystrokes": keys.len(),
            "duration_s": keys.last().map_or(0.0, |k| k.at_ms / 1e3),
            "key_ms_median": model.key_ms,
            "model": "log-normal delays (sigma 0.4) around key_ms; x2 after punctuation, x1.3 after a space, x4 after a line end; 3% thinking pauses around 1.2 s; a line end and the next indentation are one key",
        },
        "threads": threads,
        "flash_attention": {
            "weft": settings.flash_attention.resolve(settings.n_gpu_layers),
            "peer": args.peer_flash_attention.arg(&settings),
        },
        "max_tokens": args.max_tokens,
        "rounds": rounds,
        "ignore_eos": true,
        "retrieval_ms": percentiles(&mut retrieval_ms),
        "prompt_start_changes": {
            "snippets_changed_at_keys": prepared.snippet_changes,
            "window_moved_at_keys": prepared.window_moves,
        },
        "weft": weft_summary.json,
        "peer": match (&peer, &peer_summary) {
            (Some((_, command)), Some(summary)) => {
                let mut value = summary.json.clone();
                value["endpoint"] = json!(endpoint.path());
                value["command"] = json!(command);
                value["prompt_tokens_compared"] = json!(compared.map(|c| c.0));
                value["prompt_tokens_differ"] = json!(compared.map(|c| c.1));
                value
            }
            _ => serde_json::Value::Null,
        },
        "ratio_weft_to_peer": peer_summary.as_ref().map(|peer| json!({
            "latency_p50": ratio(weft_summary.p50, peer.p50),
            "latency_p95": ratio(weft_summary.p95, peer.p95),
        })),
    });
    print_json(&value)?;
    Ok(ExitCode::SUCCESS)
}

/// The byte range of the region to type: `chars` characters from the start
/// of line `line` (1-based; default the middle line), and that line.
fn region(text: &str, line: Option<usize>, chars: usize) -> anyhow::Result<(usize, std::ops::Range<usize>)> {
    let lines = text.lines().count();
    let line = line.unwrap_or(lines / 2 + 1);
    if line == 0 || line > lines {
        bail!("--line {line} is outside the file, which has {lines} lines");
    }
    let start: usize = text.split_inclusive('\n').take(line - 1).map(str::len).sum();
    let end = text[start..].char_indices().nth(chars).map_or(text.len(), |(i, _)| start + i);
    if start == end {
        bail!("the file has no text to type from line {line}");
    }
    Ok((line, start..end))
}

/// The document being typed into.
struct Typing<'a> {
    config: &'a Config,
    file: &'a Path,
    workspace: &'a Path,
    text: &'a str,
    region: std::ops::Range<usize>,
}

struct Prepared {
    steps: Vec<Step>,
    retrieval_ms: Vec<f64>,
    /// Keys after which the retrieved snippets differ from the previous
    /// key's, and after which the prefix window starts elsewhere: each
    /// changes the prompt near its start, so both sides prefill it again.
    snippet_changes: Vec<usize>,
    window_moves: Vec<usize>,
}

impl Typing<'_> {
    /// Types `keys` into the document with the region removed and prepares
    /// the request after each key, as the LSP server would make it.
    fn prepare(
        &self,
        engine: &LlamaEngine,
        keys: &[trace::Keystroke],
        max_tokens: usize,
        endpoint: PeerEndpoint,
    ) -> anyhow::Result<Prepared> {
        let config = self.config;
        let initial = format!("{}{}", &self.text[..self.region.start], &self.text[self.region.end..]);
        let server = server_config(config, config.lsp.cross_file);
        let context = ContextEngine::new(context_config(config, config.lsp.cross_file));
        context.set_roots_blocking(vec![self.workspace.to_owned()]);
        context.open(self.file, "", &initial);
        let mut document = Document::new(&initial, 0, "");
        let mut char_idx = document.text().byte_to_char(self.region.start);
        let relative = match self.file.strip_prefix(self.workspace) {
            Ok(relative) => relative.to_string_lossy().into_owned(),
            Err(_) => self.file.file_name().unwrap_or_default().to_string_lossy().into_owned(),
        };
        let language = Language::from_path(self.file);
        let builder = PromptBuilder::new(engine, config, max_tokens);

        let mut prepared = Prepared {
            steps: Vec::with_capacity(keys.len()),
            retrieval_ms: Vec::new(),
            snippet_changes: Vec::new(),
            window_moves: Vec::new(),
        };
        let mut window_start = None;
        for (index, key) in keys.iter().enumerate() {
            let rope = document.text();
            let line = rope.char_to_line(char_idx);
            let position = LspPosition::new(line as u32, (char_idx - rope.line_to_char(line)) as u32);
            let change = ContentChange { range: Some((position, position)), text: key.text.clone() };
            let edit = document.apply_change(change.range, &change.text, PositionEncoding::Utf32)?;
            context.change(self.file, &[edit], &[change], document.text());
            char_idx += key.text.chars().count();

            let windows = weft_lsp::server::prompt_windows(&document, char_idx, &server);
            let started = Instant::now();
            let retrieval = context.retrieve(&ContextQuery {
                path: self.file,
                cursor: document.text().char_to_byte(char_idx),
                window: windows.bytes.clone(),
            });
            prepared.retrieval_ms.push(started.elapsed().as_secs_f64() * 1e3);
            if window_start.is_some_and(|start| start != windows.bytes.start) {
                prepared.window_moves.push(index);
            }
            window_start = Some(windows.bytes.start);
            let mut request = bench_request(windows.prefix, windows.suffix, language, max_tokens);
            request.path = Some(relative.clone());
            request.snippets = context_snippets(&retrieval);
            if prepared.steps.last().is_some_and(|previous| previous.request.snippets != request.snippets) {
                prepared.snippet_changes.push(index);
            }
            let peer_body = builder.peer_body(&request, endpoint)?;
            prepared.steps.push(Step { at_ms: key.at_ms, request, peer_body });
        }
        Ok(prepared)
    }
}

/// A request that generates exactly `max_tokens` tokens, greedily.
pub(super) fn bench_request(
    prefix: String,
    suffix: String,
    language: Language,
    max_tokens: usize,
) -> CompletionRequest {
    let mut request = CompletionRequest::new(prefix, suffix, language);
    request.max_tokens = max_tokens;
    request.ignore_eos = true;
    request.sampling = SamplingConfig { temperature: 0.0, ..SamplingConfig::default() };
    // The work, not a deadline, ends every request.
    request.time_budget = Duration::from_secs(600);
    request
}

/// A short unrelated request run on both sides before the replay, so that
/// neither is timed on its first allocation of compute buffers.
fn warm_up_step(
    engine: &LlamaEngine,
    config: &Config,
    max_tokens: usize,
    endpoint: PeerEndpoint,
) -> anyhow::Result<Step> {
    let request = bench_request("// warm-up\nfn warm_up() {\n".to_owned(), String::new(), Language::Rust, max_tokens);
    let peer_body = PromptBuilder::new(engine, config, max_tokens).peer_body(&request, endpoint)?;
    Ok(Step { at_ms: 0.0, request, peer_body })
}

/// Builds prompts as the engine builds them, for the peer.
pub(super) struct PromptBuilder {
    model: Arc<weft_inference::LoadedModel>,
    info: weft_inference::ModelInfo,
    budget: weft_inference::prompt::PromptBudget,
    max_tokens: usize,
    cache: TokenCache,
}

impl PromptBuilder {
    pub(super) fn new(engine: &LlamaEngine, config: &Config, max_tokens: usize) -> Self {
        PromptBuilder::with_budget(engine, config.engine.budget.into(), config.engine.n_ctx, max_tokens)
    }

    pub(super) fn with_budget(
        engine: &LlamaEngine,
        budget: weft_inference::prompt::PromptBudget,
        n_ctx: u32,
        max_tokens: usize,
    ) -> Self {
        PromptBuilder {
            model: engine.model(),
            info: engine.info().clone(),
            budget: fit_budget(budget, n_ctx.max(256) as usize, max_tokens),
            max_tokens,
            cache: TokenCache::default(),
        }
    }

    /// The prompt Weft's engine builds for `request`.
    pub(super) fn prompt(&self, request: &CompletionRequest) -> anyhow::Result<Prompt> {
        let info = &self.info;
        Ok(prompt::build(
            info.detection.format,
            info.fim_order,
            self.model.special_tokens(),
            &self.cache.tokenizer(&*self.model),
            &request.prompt_input(),
            self.budget,
        )?)
    }

    /// The llama-server request body doing the same work as `request`.
    fn peer_body(&self, request: &CompletionRequest, endpoint: PeerEndpoint) -> anyhow::Result<serde_json::Value> {
        let prompt = self.prompt(request)?;
        let mut body = peer_generation(self.max_tokens, true);
        if endpoint == PeerEndpoint::Infill {
            let prefix = &request.prefix[prompt.prefix_clipped_bytes..];
            let suffix = &request.suffix[..request.suffix.len() - prompt.suffix_clipped_bytes];
            let extra: Vec<serde_json::Value> = request
                .snippets
                .iter()
                .zip(&prompt.snippet_tokens)
                .filter(|(_, tokens)| **tokens > 0)
                .map(|(s, _)| json!({ "filename": s.path, "text": s.text }))
                .collect();
            body["input_prefix"] = json!(prefix);
            body["input_suffix"] = json!(suffix);
            body["input_extra"] = json!(extra);
            body["prompt"] = json!("");
        } else {
            body["prompt"] = json!(prompt.tokens);
        }
        Ok(body)
    }
}

/// The generation settings of a llama-server request: exactly `n_predict`
/// tokens, greedy, the prompt cache on.
pub(super) fn peer_generation(n_predict: usize, stream: bool) -> serde_json::Value {
    json!({
        "n_predict": n_predict,
        "ignore_eos": true,
        "cache_prompt": true,
        "temperature": 0.0,
        "top_k": 1,
        "samplers": ["top_k"],
        "stream": stream,
    })
}

fn complete_weft(
    engine: &LlamaEngine,
    request: CompletionRequest,
    cancel: CancellationToken,
) -> impl Future<Output = Outcome> + Send + use<> {
    let engine = engine.clone();
    async move {
        match engine.complete(request, cancel).await {
            Ok(completion) => Outcome::Completed(Sample {
                prompt_tokens: completion.prompt_tokens,
                reused_tokens: completion.reused_tokens,
                generated_tokens: completion.generated_tokens,
                server_ms: completion.timings.total_ms,
                queue_ms: completion.timings.queue_ms,
                prefill_ms: completion.timings.prefill_ms,
                decode_ms: completion.timings.decode_ms,
            }),
            Err(CompletionError::Cancelled) => Outcome::Cancelled,
            Err(err) => Outcome::Failed(err.to_string()),
        }
    }
}

fn complete_peer(
    server: &Arc<PeerServer>,
    endpoint: PeerEndpoint,
    body: serde_json::Value,
) -> impl Future<Output = Outcome> + Send + use<> {
    let server = Arc::clone(server);
    async move {
        match server.complete(endpoint.path(), &body).await {
            Ok(timings) => Outcome::Completed(Sample {
                prompt_tokens: timings.prompt_n + timings.cache_n,
                reused_tokens: timings.cache_n,
                generated_tokens: timings.predicted_n,
                server_ms: timings.prompt_ms + timings.predicted_ms,
                queue_ms: 0.0,
                prefill_ms: timings.prompt_ms,
                decode_ms: timings.predicted_ms,
            }),
            Err(err) => Outcome::Failed(format!("{err:#}")),
        }
    }
}

/// Sends each step's request at its time, cancelling the request before
/// it, and waits for all of them. On both sides an answer still out when
/// the cancel comes counts as cancelled, as the editor would drop it (the
/// engine finishes a request whose last step was under way; the peer's
/// request is dropped, closing its connection).
async fn replay<F, Fut>(steps: &[Step], mut start: F) -> Vec<Timed>
where
    F: FnMut(&Step, CancellationToken) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let origin = tokio::time::Instant::now();
    let mut previous: Option<CancellationToken> = None;
    let mut tasks = Vec::with_capacity(steps.len());
    for step in steps {
        tokio::time::sleep_until(origin + Duration::from_secs_f64(step.at_ms / 1e3)).await;
        if let Some(cancel) = previous.take() {
            cancel.cancel();
        }
        let cancel = CancellationToken::new();
        let request = start(step, cancel.clone());
        let issued = tokio::time::Instant::now();
        let issued_ms = (issued - origin).as_secs_f64() * 1e3;
        let cancelled = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = tokio::select! {
                biased;
                outcome = request => outcome,
                () = cancelled.cancelled() => Outcome::Cancelled,
            };
            Timed { outcome, issued_ms, latency_ms: issued.elapsed().as_secs_f64() * 1e3 }
        }));
        previous = Some(cancel);
    }
    let mut timed = Vec::with_capacity(tasks.len());
    for task in tasks {
        timed.push(task.await.unwrap_or_else(|err| Timed {
            outcome: Outcome::Failed(format!("the request's task failed: {err}")),
            issued_ms: 0.0,
            latency_ms: 0.0,
        }));
    }
    timed
}

/// The figures of one side's replay.
struct Summary {
    json: serde_json::Value,
    p50: Option<f64>,
    p95: Option<f64>,
}

impl Summary {
    /// `next_key[i]`: when the key after request `i` of a round came
    /// (`timed` holds whole rounds, one after another).
    fn of(timed: &[Timed], next_key: &[f64]) -> Summary {
        let mut latency = Vec::new();
        let mut server = Vec::new();
        let (mut cancelled, mut late, mut hits) = (0, 0, 0);
        let (mut prompt_tokens, mut reused, mut generated) = (0, 0, 0);
        let mut errors: Vec<String> = Vec::new();
        for (i, t) in timed.iter().enumerate() {
            match &t.outcome {
                Outcome::Completed(sample) => {
                    latency.push(t.latency_ms);
                    server.push(sample.server_ms);
                    prompt_tokens += sample.prompt_tokens;
                    reused += sample.reused_tokens;
                    generated += sample.generated_tokens;
                    hits += usize::from(sample.reused_tokens > 0);
                    let next = next_key.get(i % next_key.len().max(1)).copied().unwrap_or(f64::INFINITY);
                    late += usize::from(t.issued_ms + t.latency_ms > next);
                }
                Outcome::Cancelled => cancelled += 1,
                Outcome::Failed(message) => {
                    if errors.len() < 3 && !errors.contains(message) {
                        errors.push(message.clone());
                    }
                }
            }
        }
        let completed = latency.len();
        let failed = timed.len() - completed - cancelled;
        // The slowest answers with their parts, to tell where time went.
        let mut slowest: Vec<(f64, Sample)> = timed
            .iter()
            .filter_map(|t| match &t.outcome {
                Outcome::Completed(sample) => Some((t.latency_ms, *sample)),
                _ => None,
            })
            .collect();
        slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        let slowest: Vec<serde_json::Value> = slowest
            .iter()
            .take(3)
            .map(|(latency, s)| {
                json!({
                    "latency_ms": latency,
                    "server_ms": s.server_ms,
                    "queue_ms": s.queue_ms,
                    "prefill_ms": s.prefill_ms,
                    "decode_ms": s.decode_ms,
                    "evaluated": s.prompt_tokens - s.reused_tokens,
                    "generated": s.generated_tokens,
                })
            })
            .collect();
        let summary = percentiles(&mut latency);
        let (p50, p95) = if completed > 0 { (summary["p50"].as_f64(), summary["p95"].as_f64()) } else { (None, None) };
        let json = json!({
            "requests": timed.len(),
            "completed": completed,
            "cancelled": cancelled,
            "failed": failed,
            "errors": errors,
            "completed_after_next_key": late,
            "latency_ms": summary,
            "server_ms": percentiles(&mut server),
            "prompt_tokens": {
                "total": prompt_tokens,
                "evaluated": prompt_tokens - reused,
                "reused": reused,
                "reuse_pct": if prompt_tokens > 0 { 100.0 * reused as f64 / prompt_tokens as f64 } else { 0.0 },
            },
            "cache_hits": hits,
            "generated_tokens": generated,
            "slowest": slowest,
        });
        Summary { json, p50, p95 }
    }
}

/// The latencies of the completed requests.
fn completed_latency(timed: &[Timed]) -> Vec<f64> {
    timed.iter().filter(|t| matches!(t.outcome, Outcome::Completed(_))).map(|t| t.latency_ms).collect()
}

/// Requests both sides completed, and how many of them had prompts of
/// different lengths (none where the peer got the same token ids).
fn prompts_compared(weft: &[Timed], peer: &[Timed]) -> (usize, usize) {
    let mut compared = 0;
    let mut differ = 0;
    for (w, p) in weft.iter().zip(peer) {
        if let (Outcome::Completed(w), Outcome::Completed(p)) = (&w.outcome, &p.outcome) {
            compared += 1;
            differ += usize::from(w.prompt_tokens != p.prompt_tokens);
        }
    }
    (compared, differ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_starts_at_a_line_and_counts_characters() {
        let text = "one\ntwo é\nthree\n";
        let (line, range) = region(text, Some(2), 5).unwrap();
        assert_eq!(line, 2);
        assert_eq!(&text[range], "two é");
        let (line, range) = region(text, None, 100).unwrap();
        assert_eq!(line, 2);
        assert_eq!(&text[range], "two é\nthree\n");
    }

    #[test]
    fn a_region_outside_the_file_is_a_clear_error() {
        let err = region("one\n", Some(3), 5).unwrap_err().to_string();
        assert_eq!(err, "--line 3 is outside the file, which has 1 lines");
        assert!(region("", None, 5).is_err());
    }

    #[test]
    fn summaries_count_every_request_once() {
        let sample = |reused| Sample {
            prompt_tokens: 10,
            reused_tokens: reused,
            generated_tokens: 4,
            server_ms: 5.0,
            ..Sample::default()
        };
        let timed = vec![
            Timed { outcome: Outcome::Completed(sample(0)), issued_ms: 0.0, latency_ms: 50.0 },
            Timed { outcome: Outcome::Cancelled, issued_ms: 100.0, latency_ms: 10.0 },
            Timed { outcome: Outcome::Completed(sample(8)), issued_ms: 200.0, latency_ms: 150.0 },
            Timed { outcome: Outcome::Failed("boom".into()), issued_ms: 300.0, latency_ms: 1.0 },
        ];
        let summary = Summary::of(&timed, &[100.0, 200.0, 300.0, f64::INFINITY]);
        let json = &summary.json;
        assert_eq!((json["requests"].as_u64(), json["completed"].as_u64()), (Some(4), Some(2)));
        assert_eq!((json["cancelled"].as_u64(), json["failed"].as_u64()), (Some(1), Some(1)));
        assert_eq!(json["errors"][0], "boom");
        assert_eq!(json["completed_after_next_key"], 1);
        assert_eq!(json["prompt_tokens"]["evaluated"], 12);
        assert_eq!(json["prompt_tokens"]["reuse_pct"], 40.0);
        assert_eq!(json["cache_hits"], 1);
        assert_eq!(summary.p50, Some(150.0));
    }
}
