//! `weft eval`: offline, reproducible evaluation of models and context with
//! the same prompt pipeline the editor uses (`docs/evaluation.md`).
//!
//! A run is a grid of cells, (model, benchmark, context mode), each a list
//! of tasks ([`task::Task`]). Completions come from a model through
//! `weft_inference::LlamaEngine` (prompt format detection, token budgets,
//! postprocessing: what the editor gets), from a remote completion server
//! (`openai:URL#MODEL`, `infill:URL`; [`remote`]), or from the two sanity modes:
//! `--oracle` (the ground truth) and `--empty`. HumanEval completions are
//! run against the problem's tests in a sandbox ([`sandbox`]).
//!
//! Output directory: `run.json` (settings, checked on resume, and the wall
//! time of every invocation), `results.jsonl` (one line per task, appended
//! as tasks finish), `summary.json`, `metrics.svg` and `latency.svg`. The
//! table goes to stdout; progress and logs to stderr.

mod completer;
mod context;
mod humaneval;
mod metrics;
mod post;
mod remote;
mod repo;
mod report;
mod results;
mod run;
mod sandbox;
mod task;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use weft_inference::prompt::PromptBudget;
use weft_inference::{LoadOptions, PromptFormat, SamplingConfig};

use crate::config::{Config, resolve_model};
use completer::{Completer, GenerationSettings, ModelSource, ModelSpec};
use remote::{RemoteModel, RemoteOptions};
use results::ResultStore;
use run::Runner;
use sandbox::{Sandbox, SandboxConfig};
use task::{Benchmark, ContextMode, CursorPlacement, Task};

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A model to evaluate, optionally as LABEL=MODEL; repeat for several.
    /// MODEL is a GGUF file, a registry name, `openai:URL#NAME` (an
    /// OpenAI-compatible server's /v1/completions, given Weft's prompt text)
    /// or `infill:URL` (llama-server's /infill). Defaults to the configured
    /// model unless --oracle or --empty is given.
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// Prompt format of `openai:` models: deepseek-coder, starcoder2,
    /// qwen2.5-coder or prefix-only [default: from the model name: its
    /// family's FIM format, else prefix-only].
    #[arg(long, value_name = "FORMAT")]
    remote_format: Option<PromptFormat>,
    /// The environment variable holding remote models' API key, sent as a
    /// bearer token [default: WEFT_EVAL_API_KEY, when set].
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Sanity check: complete with the ground truth (pass@1 and exact match
    /// must be 1).
    #[arg(long)]
    oracle: bool,
    /// Sanity check: complete with nothing (pass@1 must be near 0).
    #[arg(long)]
    empty: bool,
    /// Benchmarks, comma-separated or repeated.
    #[arg(long = "benchmark", value_enum, value_delimiter = ',', default_value = "humaneval-single")]
    benchmarks: Vec<Benchmark>,
    /// Context modes of the repo-level benchmark (the ablation).
    #[arg(long = "context", value_enum, value_delimiter = ',', default_value = "none,cross-file")]
    contexts: Vec<ContextMode>,
    /// Output directory; a run already there is resumed.
    #[arg(long, default_value = "weft-eval")]
    out: PathBuf,
    /// HumanEval data [default: $WEFT_CACHE/eval/HumanEval.jsonl.gz].
    #[arg(long)]
    humaneval: Option<PathBuf>,
    /// A repository for the repo-level benchmark; repeatable [default:
    /// every directory in $WEFT_CACHE/eval/repos].
    #[arg(long = "repo")]
    repos: Vec<PathBuf>,
    /// Tasks sampled per repository.
    #[arg(long, default_value_t = 100)]
    repo_tasks: usize,
    /// Only these HumanEval problems (e.g. HumanEval/0), comma-separated.
    #[arg(long = "problem", value_delimiter = ',')]
    problems: Vec<String>,
    /// Only the first N tasks of each benchmark.
    #[arg(long)]
    limit: Option<usize>,
    /// Where the cursor of a masked HumanEval line sits.
    #[arg(long, value_enum, default_value = "indented")]
    cursor: CursorPlacement,
    /// Seed of sampling and of the repo-level sample.
    #[arg(long, default_value_t = 42)]
    seed: u32,
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Tokens to generate for single-line tasks [default: the config's
    /// completion.max_tokens].
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Tokens to generate for multi-line tasks.
    #[arg(long, default_value_t = 256)]
    multiline_max_tokens: usize,
    /// Generation stops after this many milliseconds. Large by default so
    /// that results do not depend on the machine's speed.
    #[arg(long, default_value_t = 120_000)]
    time_budget_ms: u64,
    /// Tasks in flight at once [default: twice --jobs].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Test programs running at once [default: the number of cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// CPU-time limit of one test program, in seconds (rounded up); the
    /// wall-clock backstop is four times that plus 10 s.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Memory limit of one test program, in MiB.
    #[arg(long, default_value_t = 1024)]
    memory_mb: u64,
    /// Python interpreter for the tests.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Print the number of tasks of each benchmark and exit.
    #[arg(long)]
    count: bool,
    /// Send the summary to the telemetry API.
    #[arg(long)]
    post: bool,
    /// The telemetry API's base URL.
    #[arg(long, env = "WEFT_TELEMETRY_URL", default_value = "http://127.0.0.1:8787")]
    telemetry_url: String,
    /// Bearer token for --post (from `POST /v1/auth/login`).
    #[arg(long, env = "WEFT_TELEMETRY_TOKEN", hide_env_values = true)]
    telemetry_token: Option<String>,
}

/// Settings that change results; a run is resumed only with the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunSettings {
    seed: u32,
    sampling: SamplingConfig,
    max_tokens: usize,
    multiline_max_tokens: usize,
    time_budget_ms: u64,
    cursor: CursorPlacement,
    test_timeout_s: f64,
    test_memory_mb: u64,
    engine: weft_inference::EngineConfig,
    prompt_format: Option<weft_inference::PromptFormat>,
    fim_order: Option<weft_inference::FimOrder>,
}

/// `run.json`.
#[derive(Debug, Serialize, Deserialize)]
struct RunManifest {
    run_id: uuid::Uuid,
    settings: RunSettings,
    /// What each model label stands for (`ModelSpec::backend`): a label
    /// keeps its model across resumes.
    #[serde(default)]
    models: BTreeMap<String, serde_json::Value>,
    /// Every invocation on this directory.
    invocations: Vec<Invocation>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Invocation {
    command: Vec<String>,
    tasks_run: usize,
    wall_s: f64,
}

pub async fn run(args: EvalArgs, config: Config) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores).max(1);
    let concurrency = args.concurrency.unwrap_or(2 * jobs).max(1);

    let mut engine_config = config.engine.clone();
    // Queued tasks must never be refused as overload.
    engine_config.queue_capacity = engine_config.queue_capacity.max(concurrency + 1);
    let settings = RunSettings {
        seed: args.seed,
        sampling: SamplingConfig { temperature: args.temperature, seed: args.seed, ..config.completion.sampling },
        max_tokens: args.max_tokens.unwrap_or(config.completion.max_tokens),
        multiline_max_tokens: args.multiline_max_tokens,
        time_budget_ms: args.time_budget_ms,
        cursor: args.cursor,
        test_timeout_s: args.timeout,
        test_memory_mb: args.memory_mb,
        engine: weft_inference::EngineConfig {
            queue_capacity: 0,
            n_threads: None,
            n_threads_batch: None,
            ..engine_config.clone()
        },
        prompt_format: config.model.format,
        fim_order: config.model.fim_order,
    };
    let cache = cache_dir();
    let mut benchmarks: Vec<(Benchmark, Vec<Task>)> = Vec::new();
    for &benchmark in &args.benchmarks {
        if benchmarks.iter().any(|(b, _)| *b == benchmark) {
            continue;
        }
        let mut tasks = match benchmark {
            Benchmark::HumanevalSingle | Benchmark::HumanevalMulti => {
                let path = args.humaneval.clone().unwrap_or_else(|| cache.join("eval/HumanEval.jsonl.gz"));
                let mut problems = humaneval::load(&path)?;
                if !args.problems.is_empty() {
                    problems.retain(|p| args.problems.contains(&p.task_id));
                }
                humaneval::tasks(&problems, benchmark, args.cursor)
            }
            Benchmark::Repo => {
                let repos =
                    if args.repos.is_empty() { default_repos(&cache.join("eval/repos"))? } else { args.repos.clone() };
                let mut tasks = Vec::new();
                for root in repos {
                    let options = repo::RepoOptions { tasks_per_repo: args.repo_tasks, seed: args.seed };
                    tasks.extend(repo::tasks(&root, options)?);
                }
                tasks
            }
        };
        if let Some(limit) = args.limit {
            tasks.truncate(limit);
        }
        tracing::info!("{}: {} tasks", benchmark.name(), tasks.len());
        benchmarks.push((benchmark, tasks));
    }

    if args.count {
        let mut stdout = std::io::stdout().lock();
        for (benchmark, tasks) in &benchmarks {
            writeln!(stdout, "{}\t{}", benchmark.name(), tasks.len())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let remote_options = RemoteOptions {
        format: args.remote_format,
        fim_order: config.model.fim_order,
        budget: PromptBudget {
            prefix_tokens: engine_config.budget.prefix_tokens,
            suffix_tokens: engine_config.budget.suffix_tokens,
            context_tokens: engine_config.budget.context_tokens,
        },
        timeout: Duration::from_millis(args.time_budget_ms),
        api_key: remote::api_key(
            args.api_key_env.as_deref().unwrap_or("WEFT_EVAL_API_KEY"),
            args.api_key_env.is_some(),
        )?,
    };
    let mut specs: Vec<ModelSpec> = Vec::new();
    for model in &args.models {
        let spec = model_spec(model, &remote_options)?;
        if specs.iter().any(|s| s.label == spec.label) {
            bail!("two models are labelled {}; give them labels as LABEL=MODEL", spec.label);
        }
        specs.push(spec);
    }
    if specs.is_empty() && !args.oracle && !args.empty {
        let path = config.model_file(None)?;
        specs.push(ModelSpec { label: label_of(&path.to_string_lossy()), source: ModelSource::Gguf(path) });
    }

    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut manifest = open_manifest(&args.out, settings)?;
    for spec in &specs {
        let backend = spec.backend();
        match manifest.models.get(&spec.label) {
            Some(there) if *there != backend => bail!(
                "{} holds results of another model labelled {}; give this one another label, or use another --out\n  there: {there}\n  now:   {backend}",
                args.out.display(),
                spec.label
            ),
            _ => _ = manifest.models.insert(spec.label.clone(), backend),
        }
    }
    // Written now, so that an interrupted run is resumed with its settings.
    write_json(&args.out.join("run.json"), &manifest)?;
    let contexts = args.contexts.clone();

    let sandbox = if benchmarks.iter().any(|(b, _)| b.runs_tests()) {
        let sandbox = Sandbox::detect(SandboxConfig {
            python: args.python.clone(),
            timeout: Duration::from_secs_f64(args.timeout),
            memory_bytes: args.memory_mb << 20,
            output_bytes: 1 << 20,
        })?;
        let info = sandbox.info();
        tracing::info!(
            "tests run in {} {} with network isolation {:?} and limits by {:?}",
            info.python.display(),
            info.python_version,
            info.network,
            info.limits
        );
        Some(Arc::new(sandbox))
    } else {
        None
    };

    let settings = &manifest.settings;
    let runner = Runner {
        store: Mutex::new(ResultStore::open(&args.out)?),
        sandbox: sandbox.clone(),
        test_slots: Arc::new(tokio::sync::Semaphore::new(jobs)),
        prompt_tokens: (engine_config.budget.prefix_tokens, engine_config.budget.suffix_tokens),
        settings: GenerationSettings {
            max_tokens: settings.max_tokens,
            multiline_max_tokens: settings.multiline_max_tokens,
            sampling: settings.sampling,
            time_budget: Duration::from_millis(settings.time_budget_ms),
        },
        concurrency,
    };
    let load = LoadOptions {
        vocab_only: false,
        n_gpu_layers: config.engine.n_gpu_layers,
        format: config.model.format,
        fim_order: config.model.fim_order,
    };

    let mut sanity = Vec::new();
    if args.oracle {
        sanity.push(Completer::Oracle);
    }
    if args.empty {
        sanity.push(Completer::Empty);
    }
    let mut models_info = serde_json::Map::new();
    let mut tasks_run = 0;
    let mut deferred = 0;
    for completer in sanity {
        let progress = run_completer(&runner, &completer, &benchmarks, &contexts).await?;
        tasks_run += progress.recorded;
        deferred += progress.deferred;
    }
    for spec in &specs {
        let completer = Completer::load(spec, load.clone(), engine_config.clone())
            .await
            .with_context(|| format!("cannot load model {}", spec.label))?;
        models_info.insert(spec.label.clone(), completer.info());
        let progress = run_completer(&runner, &completer, &benchmarks, &contexts).await?;
        tasks_run += progress.recorded;
        deferred += progress.deferred;
    }

    let wall_s = started.elapsed().as_secs_f64();
    manifest.invocations.push(Invocation { command: std::env::args().collect(), tasks_run, wall_s });
    write_json(&args.out.join("run.json"), &manifest)?;

    let all = runner.store.lock().expect("result store lock").read_all()?;
    let cells = results::summarize(&all);
    let summary = serde_json::json!({
        "weft_version": env!("CARGO_PKG_VERSION"),
        "run_id": manifest.run_id,
        "settings": manifest.settings,
        "sandbox": sandbox.as_ref().map(|s| s.info()),
        "models": models_info,
        "cores": cores,
        "wall_time_s": manifest.invocations.iter().map(|i| i.wall_s).sum::<f64>(),
        "cells": cells,
    });
    write_json(&args.out.join("summary.json"), &summary)?;
    std::fs::write(args.out.join("metrics.svg"), report::metrics_svg(&cells))?;
    std::fs::write(args.out.join("latency.svg"), report::latency_svg(&all))?;
    writeln!(std::io::stdout().lock(), "{}", report::table(&cells).trim_end())?;
    tracing::info!("{tasks_run} tasks in {wall_s:.1} s; results in {}", args.out.display());

    if args.post {
        let token =
            args.telemetry_token.as_deref().context("--post needs WEFT_TELEMETRY_TOKEN (or --telemetry-token)")?;
        let events = post::events(manifest.run_id, &cells, &all, (wall_s * 1e3) as u64);
        let answer = post::post(&args.telemetry_url, token, events).await?;
        tracing::info!(
            "posted to {}: {} accepted, {} duplicates, {} rejected",
            args.telemetry_url,
            answer.accepted,
            answer.duplicates,
            answer.rejected
        );
    }
    if deferred > 0 {
        tracing::error!(
            "{deferred} tasks failed at a remote server and have no result; run the same command again to retry them"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_completer(
    runner: &Runner,
    completer: &Completer,
    benchmarks: &[(Benchmark, Vec<Task>)],
    contexts: &[ContextMode],
) -> anyhow::Result<run::CellProgress> {
    let mut ran = run::CellProgress::default();
    for (benchmark, tasks) in benchmarks {
        let modes: &[ContextMode] = if *benchmark == Benchmark::Repo { contexts } else { &[ContextMode::None] };
        for &context in modes {
            let started = Instant::now();
            let progress = runner.run_cell(completer, context, tasks).await?;
            let n = progress.recorded;
            if n > 0 {
                let s = started.elapsed().as_secs_f64();
                tracing::info!("{} {} {}: {n} tasks in {s:.1} s", completer.label(), benchmark.name(), context.name());
            }
            ran.recorded += n;
            ran.deferred += progress.deferred;
        }
    }
    Ok(ran)
}

fn open_manifest(dir: &Path, settings: RunSettings) -> anyhow::Result<RunManifest> {
    let path = dir.join("run.json");
    if !path.is_file() {
        return Ok(RunManifest {
            run_id: uuid::Uuid::new_v4(),
            settings,
            models: BTreeMap::new(),
            invocations: Vec::new(),
        });
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: RunManifest =
        serde_json::from_str(&text).with_context(|| format!("{} is not a run manifest", path.display()))?;
    if manifest.settings != settings {
        bail!(
            "{} holds a run with other settings; resume it with the same flags, or use another --out\n  there: {}\n  now:   {}",
            dir.display(),
            serde_json::to_string(&manifest.settings)?,
            serde_json::to_string(&settings)?
        );
    }
    Ok(manifest)
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `LABEL=MODEL` or `MODEL`; the label defaults to the registry name, the
/// file name without `.gguf`, or a remote model's name.
fn model_spec(arg: &str, remote: &RemoteOptions) -> anyhow::Result<ModelSpec> {
    let (label, model) = match arg.split_once('=') {
        Some((label, model)) if !label.is_empty() && !label.contains(['/', ':']) => (Some(label.to_owned()), model),
        _ => (None, arg),
    };
    if let Some(remote) = RemoteModel::parse(model, remote)? {
        return Ok(ModelSpec { label: label.unwrap_or_else(|| remote.label()), source: ModelSource::Remote(remote) });
    }
    let path = resolve_model(model)?;
    Ok(ModelSpec { label: label.unwrap_or_else(|| label_of(model)), source: ModelSource::Gguf(path) })
}

fn label_of(model: &str) -> String {
    let name = Path::new(model).file_name().map_or_else(|| model.to_owned(), |n| n.to_string_lossy().into_owned());
    name.strip_suffix(".gguf").map(str::to_owned).unwrap_or(name)
}

fn default_repos(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut repos: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {} (run models/fetch-test-assets.sh, or pass --repo)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    repos.sort();
    Ok(repos)
}

/// `$WEFT_CACHE`, or `~/.cache/weft`.
fn cache_dir() -> PathBuf {
    std::env::var_os("WEFT_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("weft")))
        .unwrap_or_else(|| PathBuf::from(".cache/weft"))
}
