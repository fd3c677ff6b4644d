//! `weft doctor`: checks the set-up an editor depends on and prints, for each
//! problem, what to do about it.
//!
//! Checks, in order: the configuration file, the log file, the model setting,
//! the model file (present, a GGUF), its vocabulary and family (FIM tokens,
//! base or instruct), and the engine settings against this machine. With
//! `[[models]]`, every model of the list: local ones as above, remote ones
//! for their API key variable and whether their server answers. The exit
//! code is 1 when any check failed; warnings alone exit 0.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use weft_inference::llama::LoadedModel;
use weft_inference::remote_completion::{RemoteCompletionConfig, RemoteCompletionKind};
use weft_inference::{FimOrder, LoadOptions, ModelFamily, PromptFormat};

use crate::config::models::ModelSource;
use crate::config::{Config, default_path};

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// GGUF model file or registry name (overrides the config).
    #[arg(long)]
    model: Option<String>,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Ok,
    Warning,
    Failed,
}

/// One finding: what was checked, what was found, and what to do.
#[derive(Debug, Serialize)]
struct Finding {
    check: &'static str,
    /// The `[[models]]` entry the finding is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    verdict: Verdict,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding { check, model: None, verdict: Verdict::Ok, detail: detail.into(), fix: None }
    }
    fn warning(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check, model: None, verdict: Verdict::Warning, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn failed(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check, model: None, verdict: Verdict::Failed, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Runs every check. `config_file` is the file given with `--config` or
/// `$WEFT_CONFIG`, if any.
pub fn run(args: DoctorArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let findings = diagnose(&args, config_file);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &findings)?;
        use std::io::Write as _;
        writeln!(out)?;
    } else {
        print_report(&mut out, &findings)?;
    }
    let failed = findings.iter().any(|f| f.verdict == Verdict::Failed);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn print_report(out: &mut impl std::io::Write, findings: &[Finding]) -> std::io::Result<()> {
    for finding in findings {
        let mark = match finding.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warning => "warn",
            Verdict::Failed => "FAIL",
        };
        match &finding.model {
            Some(model) => writeln!(out, "[{mark}] {} ({model}): {}", finding.check, finding.detail)?,
            None => writeln!(out, "[{mark}] {}: {}", finding.check, finding.detail)?,
        }
        if let Some(fix) = &finding.fix {
            writeln!(out, "       fix: {fix}")?;
        }
    }
    let failed = findings.iter().filter(|f| f.verdict == Verdict::Failed).count();
    let warnings = findings.iter().filter(|f| f.verdict == Verdict::Warning).count();
    writeln!(out, "{failed} failed, {warnings} warnings")
}

fn diagnose(args: &DoctorArgs, config_file: Option<&Path>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let explicit = config_file.map(Path::to_path_buf);
    let shown = explicit.clone().or_else(|| default_path().filter(|p| p.is_file()));
    let config = match Config::load(explicit.as_deref()) {
        Ok(config) => {
            findings.push(match &shown {
                Some(path) => Finding::ok("config", format!("{} parses", path.display())),
                None => Finding::ok(
                    "config",
                    format!(
                        "no file at {}; built-in defaults and environment variables apply",
                        default_path().map_or_else(|| "the XDG location".to_owned(), |p| p.display().to_string())
                    ),
                ),
            });
            config
        }
        Err(err) => {
            findings.push(Finding::failed(
                "config",
                format!("{err:#}"),
                "correct the file; every key is listed in docs/config.example.toml",
            ));
            return findings;
        }
    };
    if let Some(path) = &config.log.file {
        let writable = std::fs::OpenOptions::new().create(true).append(true).open(path).is_ok();
        findings.push(if writable {
            Finding::ok("log file", path.display().to_string())
        } else {
            Finding::failed(
                "log file",
                format!("{} cannot be opened for writing", path.display()),
                "set [log] file to a writable path, or remove it to log to stderr",
            )
        });
    }
    match config.model_set(args.model.as_deref()) {
        Ok(Some(set)) => {
            findings.push(Finding::ok("models", set.describe()));
            for spec in &set.models {
                let start = findings.len();
                match &spec.source {
                    ModelSource::Local { path, load, engine } => match crate::config::resolve_model(path) {
                        Ok(file) => check_model(&file, load.format, load.fim_order, engine.n_ctx, &mut findings),
                        Err(err) => findings.push(Finding::failed(
                            "model",
                            format!("{err:#}"),
                            "correct path in this [[models]] entry, or `weft models pull NAME` for a registry name",
                        )),
                    },
                    ModelSource::Remote { config, api_key_env } => {
                        check_remote(config, api_key_env.as_deref(), &mut findings);
                    }
                }
                for finding in &mut findings[start..] {
                    finding.model = Some(spec.name.clone());
                }
            }
        }
        Ok(None) => match config.model_file(args.model.as_deref()) {
            Ok(path) => {
                check_model(&path, config.model.format, config.model.fim_order, config.engine.n_ctx, &mut findings);
            }
            Err(err) => findings.push(Finding::failed(
                "model",
                format!("{err:#}"),
                "`weft models list` shows the registry; `weft models pull NAME` downloads one, then set [model] path = \"NAME\"",
            )),
        },
        Err(err) => findings.push(Finding::failed(
            "models",
            format!("{err:#}"),
            "correct [[models]] and [comparison]; docs/config.example.toml has an example",
        )),
    }
    check_engine(&config, &mut findings);
    findings
}

fn check_model(
    path: &PathBuf,
    format: Option<PromptFormat>,
    fim_order: Option<FimOrder>,
    n_ctx: u32,
    findings: &mut Vec<Finding>,
) {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut magic));
    if read.is_err() || &magic != b"GGUF" {
        findings.push(Finding::failed(
            "model file",
            format!("{} is not a GGUF file", path.display()),
            "download the model again (`weft models pull NAME` verifies its SHA-256) or point [model] path at a .gguf",
        ));
        return;
    }
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    findings.push(Finding::ok("model file", format!("{} ({:.1} MB, GGUF)", path.display(), size as f64 / 1e6)));
    let options = LoadOptions { vocab_only: true, format, fim_order, ..LoadOptions::default() };
    let model = match LoadedModel::load(path, &options) {
        Ok(model) => model,
        Err(err) => {
            findings.push(Finding::failed(
                "model vocabulary",
                format!("llama.cpp cannot read it: {err:#}"),
                "the file is damaged or of a newer GGUF version; download it again",
            ));
            return;
        }
    };
    let info = model.info();
    let format = info.detection.format;
    let family = info.detection.family.name();
    if format.is_fim() {
        findings.push(Finding::ok(
            "prompt format",
            format!(
                "{family}, fill-in-the-middle ({}, {:?}); {}",
                format.name(),
                info.fim_order,
                info.detection.reason
            ),
        ));
    } else {
        findings.push(Finding::warning(
            "prompt format",
            format!("{family} has no FIM tokens: completions continue the prefix and ignore the text after the cursor"),
            "for fill-in-the-middle use a base coder model, e.g. `weft models pull qwen2.5-coder-1.5b`",
        ));
    }
    // Base GGUFs of the coder families carry a chat template too, so for
    // them only the name tells.
    let name = info.name.to_lowercase();
    let named_instruct = name.contains("instruct") || name.contains("chat");
    let instruct = named_instruct || (info.has_chat_template && info.detection.family == ModelFamily::Generic);
    if instruct && info.detection.family != ModelFamily::Generic {
        findings.push(Finding::warning(
            "model kind",
            format!("{} looks like an instruct model", info.name),
            "instruct models complete code worse than their base models; prefer the -base GGUF of the same family",
        ));
    } else {
        findings.push(Finding::ok("model kind", if instruct { "instruct (chat template present)" } else { "base" }));
    }
    if n_ctx > info.n_ctx_train && info.n_ctx_train > 0 {
        findings.push(Finding::warning(
            "context size",
            format!("n_ctx = {n_ctx} exceeds the model's training context {}", info.n_ctx_train),
            format!("set n_ctx to at most {}", info.n_ctx_train),
        ));
    }
}

/// A remote model: its API key variable, whether its server answers, and
/// (for `/v1/completions`) whether it lists the model.
fn check_remote(config: &RemoteCompletionConfig, api_key_env: Option<&str>, findings: &mut Vec<Finding>) {
    let mut key = None;
    if let Some(var) = api_key_env {
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => {
                findings.push(Finding::ok("api key", format!("{var} is set")));
                key = Some(value);
            }
            _ => findings.push(Finding::failed(
                "api key",
                format!("the variable {var} (api_key_env) is not set"),
                format!("export {var}=KEY in the editor's environment; the key itself never goes in the config"),
            )),
        }
    }
    let (probe, openai) = match config.kind {
        RemoteCompletionKind::OpenAiCompletions => ("/v1/models", true),
        RemoteCompletionKind::LlamaServerInfill => ("/health", false),
    };
    let url = format!("{}{probe}", config.base_url);
    let answer = probe_url(&url, key.as_deref(), config.connect_timeout);
    let (status, body) = match answer {
        Ok(answer) => answer,
        Err(err) => {
            findings.push(Finding::failed(
                "remote server",
                format!("{} cannot be reached: {err}", config.base_url),
                "start the server, or correct url in this [[models]] entry",
            ));
            return;
        }
    };
    if status == 401 || status == 403 {
        findings.push(Finding::failed(
            "remote server",
            format!("{} refused the request (HTTP {status}): the API key is missing or not accepted", config.base_url),
            "set api_key_env to the variable that holds a valid key",
        ));
        return;
    }
    findings.push(Finding::ok("remote server", format!("{} answers (HTTP {status} to GET {probe})", config.base_url)));
    if openai {
        let listed: Vec<String> = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("data")?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m.get("id")?.as_str().map(str::to_owned))
            .collect();
        if !listed.is_empty() && !listed.contains(&config.model) {
            findings.push(Finding::warning(
                "remote model",
                format!("the server does not list {} (it lists {})", config.model, listed.join(", ")),
                "set model in this [[models]] entry to one of the listed names",
            ));
        }
        if !config.format.is_fim() {
            findings.push(Finding::warning(
                "prompt format",
                format!("{} gets prefix-only prompts: the text after the cursor is not shown", config.model),
                "if the served model has FIM tokens, set format (deepseek-coder, starcoder2, qwen2.5-coder)",
            ));
        } else {
            findings.push(Finding::ok("prompt format", format!("{}, fill-in-the-middle", config.format.name())));
        }
    }
}

/// `GET url`: the status and body, or why there was no answer.
fn probe_url(url: &str, key: Option<&str>, connect_timeout: Duration) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(connect_timeout + Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let mut request = client.get(url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|err| error_chain(&err))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    })
}

/// An error and its sources, as one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn check_engine(config: &Config, findings: &mut Vec<Finding>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = config.engine.n_threads.unwrap_or_else(weft_inference::llama::default_threads);
    if threads as usize > cores {
        findings.push(Finding::warning(
            "threads",
            format!("[engine] n_threads = {threads} but this machine has {cores} cores"),
            format!("set [engine] n_threads to at most {cores}"),
        ));
    } else {
        findings.push(Finding::ok("threads", format!("{threads} of {cores} cores")));
    }
    let gpu_build = cfg!(any(feature = "cuda", feature = "vulkan"));
    let devices = weft_inference::llama::devices();
    let listed: Vec<String> = devices
        .iter()
        .map(|d| {
            let memory = if d.memory_total > 0 {
                format!(", {:.1} GiB", d.memory_total as f64 / (1u64 << 30) as f64)
            } else {
                String::new()
            };
            format!("{} ({}: {}{memory})", d.name, d.backend, d.description)
        })
        .collect();
    let gpus = devices.iter().filter(|d| d.gpu).count();
    findings.push(Finding::ok("devices", listed.join("; ")));
    if config.engine.n_gpu_layers > 0 && !gpu_build {
        findings.push(Finding::warning(
            "gpu",
            format!("[engine] n_gpu_layers = {} but this build has no GPU backend", config.engine.n_gpu_layers),
            "build with `cargo build --release -p weft --features cuda` (or vulkan), or set n_gpu_layers = 0",
        ));
    } else if config.engine.n_gpu_layers > 0 && gpus == 0 {
        findings.push(Finding::warning(
            "gpu",
            format!("[engine] n_gpu_layers = {} but llama.cpp finds no GPU device", config.engine.n_gpu_layers),
            "install the GPU's driver (for Vulkan, its ICD: `vulkaninfo --summary` lists devices; llama.cpp skips \
             CPU devices such as Mesa's lavapipe unless GGML_VK_VISIBLE_DEVICES names them), or set n_gpu_layers = 0",
        ));
    } else if config.engine.n_gpu_layers > 0 {
        findings.push(Finding::ok(
            "gpu",
            format!("{} layers at most go to {gpus} GPU device(s)", config.engine.n_gpu_layers),
        ));
    }
}
