//! Command-line flags, parsed once, then dispatched.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(name = "weft", version, about = "Code completion with local LLMs, as a language server")]
pub struct Cli {
    /// Configuration file (default: $XDG_CONFIG_HOME/weft/config.toml).
    #[arg(long, global = true, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the language server on stdin/stdout, or over TCP with --listen.
    Lsp {
        /// GGUF model file or registry name (overrides the config).
        #[arg(long)]
        model: Option<String>,
        /// Accepted for compatibility with editors that pass it; stdio is the default.
        #[arg(long, conflicts_with = "listen")]
        stdio: bool,
        /// Serve LSP over TCP on this address (e.g. 127.0.0.1:9257; port 0
        /// picks a free one, printed to stderr). Each connection is its own
        /// session; all share the loaded model.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Allow a --listen address that is not loopback. Anyone who can
        /// connect can have Weft apply workspace edits and run the test command.
        #[arg(long, requires = "listen")]
        listen_any: bool,
    },
    /// Complete at FILE:LINE:COL (1-based; COL counts characters) and print
    /// the completion.
    Complete(crate::complete::CompleteArgs),
    /// Print the prompt the server would send for FILE:LINE:COL (1-based),
    /// with the cross-file context; `--json` lists every source used.
    Prompt(crate::prompt_cmd::PromptArgs),
    /// Evaluate models on benchmarks (HumanEval infilling, repo-level
    /// completion) and write results, a summary and plots.
    Eval(Box<crate::eval::EvalArgs>),
    /// Measurements: `weft bench context` (retrieval + prompt assembly),
    /// `keystrokes` (latency while typing) and `concurrency` (throughput),
    /// the last two against llama-server too.
    Bench {
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    },
    /// Check the configuration, the model file and its family, and print
    /// what to fix.
    Doctor(crate::doctor::DoctorArgs),
    /// List and download models.
    Models {
        #[command(subcommand)]
        command: crate::models::ModelsCommand,
    },
    /// Telemetry pipeline tools: `weft telemetry emit` (synthetic events).
    Telemetry {
        #[command(subcommand)]
        command: crate::telemetry::emit::TelemetryCommand,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The doctor reports a broken configuration instead of failing on it.
    if let Command::Doctor(args) = cli.command {
        return crate::doctor::run(args, cli.config.as_deref());
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Lsp { model, stdio: _, listen, listen_any } => {
            // Before anything is loaded: a refused address is a usage error.
            if let Some(address) = listen {
                crate::listen::check_address(address, listen_any)?;
            }
            init_logging(&config)?;
            // `[[models]]`, unless --model or WEFT_MODEL names one model.
            let models = match config.model_set(model.as_deref())? {
                Some(set) => crate::wiring::LspModels::Set(set),
                None => crate::wiring::LspModels::One(config.model_file(model.as_deref())?),
            };
            let runtime = runtime()?;
            let served = runtime.block_on(serve_lsp(models, config, listen));
            // A read of stdin may still wait on a blocking thread (a client
            // that sent `exit` and keeps the pipe open): do not wait for it.
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Complete(args) => {
            init_logging(&config)?;
            runtime()?.block_on(crate::complete::run(args, config))
        }
        Command::Prompt(args) => {
            init_logging(&config)?;
            crate::prompt_cmd::run(args, config)
        }
        Command::Eval(args) => {
            init_logging(&config)?;
            runtime()?.block_on(crate::eval::run(*args, config))
        }
        Command::Bench { command } => {
            init_logging(&config)?;
            crate::bench::run(command, config)
        }
        Command::Doctor(_) => unreachable!("handled above"),
        Command::Models { command } => {
            init_logging(&config)?;
            runtime()?.block_on(crate::models::run(command))
        }
        Command::Telemetry { command } => {
            init_logging(&config)?;
            runtime()?.block_on(crate::telemetry::emit::run(command, &config.telemetry))
        }
    }
}

/// Serves LSP on stdio, or on TCP when `listen` is given.
async fn serve_lsp(models: crate::wiring::LspModels, config: Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let completers = crate::wiring::Completers::spawn(&config, models);
    let mut server_config = crate::prompt_cmd::server_config(&config, config.lsp.cross_file);
    // Telemetry that cannot start (an unwritable spool) is logged, never
    // fatal: completions matter more.
    let telemetry = crate::telemetry::Telemetry::start(&config.telemetry).unwrap_or_else(|err| {
        tracing::error!("telemetry is off: {err:#}");
        None
    });
    server_config.telemetry = telemetry.as_ref().map(crate::telemetry::Telemetry::settings);
    let agents = crate::wiring::WorkflowAgents::from_config(
        &config,
        completers.shared_engine,
        telemetry.as_ref().map(crate::telemetry::Telemetry::wire_sink),
    );
    let provider = completers.provider;
    let served = match listen {
        Some(address) => crate::listen::serve(address, provider, agents, server_config).await,
        None => {
            weft_lsp::serve_with_agents(tokio::io::stdin(), tokio::io::stdout(), provider, agents, server_config).await;
            Ok(())
        }
    };
    if let Some(telemetry) = telemetry {
        tokio::task::spawn_blocking(move || telemetry.finish()).await?;
    }
    served
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs go to stderr, or to the configured file; never to stdout, which
/// carries the LSP stream or the command's result.
fn init_logging(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let mut filter =
        EnvFilter::try_new(&config.log.level).with_context(|| format!("invalid log level {:?}", config.log.level))?;
    // llama.cpp is chatty at info level; its log shows only where the level
    // names it (`WEFT_LOG=warn,llama-cpp-2=info` shows where layers went).
    if !config.log.level.contains("llama") {
        filter = filter
            .add_directive("llama_cpp_2=warn".parse().expect("static directive"))
            .add_directive("llama-cpp-2=warn".parse().expect("static directive"));
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false);
    match &config.log.file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder.with_writer(std::sync::Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
