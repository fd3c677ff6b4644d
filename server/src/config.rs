//! The configuration file: TOML at the XDG location, with environment
//! overrides, validated once into [`Config`].
//!
//! Precedence, lowest first: built-in defaults, the file
//! (`--config`, `$WEFT_CONFIG`, `$XDG_CONFIG_HOME/weft/config.toml`,
//! `~/.config/weft/config.toml`), environment variables, command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use weft_inference::{EngineConfig, FimOrder, PromptFormat, SamplingConfig};

pub mod models;

pub use models::{ComparisonConfig, ModelEntry, ModelSet};

/// The whole configuration, as in the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub model: ModelConfig,
    /// Several completion models for `weft lsp` (instead of `[model]`).
    pub models: Vec<ModelEntry>,
    /// Which of `[[models]]` answer a request.
    pub comparison: ComparisonConfig,
    pub engine: EngineConfig,
    pub completion: CompletionConfig,
    pub lsp: LspConfig,
    pub log: LogConfig,
    pub telemetry: crate::telemetry::TelemetryConfig,
    pub agent: AgentSettings,
    /// Chat models of agent workflows: providers, role routes, prices.
    pub chat: weft_inference::chat::ChatConfig,
}

/// Which model to load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// A GGUF file, or the name of a registry model pulled with
    /// `weft models pull`.
    pub path: Option<String>,
    /// Overrides the prompt format detected from the GGUF metadata.
    pub format: Option<PromptFormat>,
    /// Overrides the FIM order (psm or spm).
    pub fim_order: Option<FimOrder>,
}

/// How completions are generated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompletionConfig {
    pub max_tokens: usize,
    /// Generation stops after this many milliseconds.
    pub time_budget_ms: u64,
    pub sampling: SamplingConfig,
}

impl Default for CompletionConfig {
    fn default() -> Self {
        CompletionConfig { max_tokens: 64, time_budget_ms: 5000, sampling: SamplingConfig::default() }
    }
}

impl CompletionConfig {
    pub fn time_budget(&self) -> Duration {
        Duration::from_millis(self.time_budget_ms)
    }
}

/// The language server's own settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LspConfig {
    pub max_prefix_lines: usize,
    pub max_suffix_lines: usize,
    /// Answer `textDocument/completion` with model completions.
    pub completion_items: bool,
    /// Put context from other files of the workspace into prompts.
    pub cross_file: bool,
    /// Context is retrieved again once the cursor moves this many lines
    /// from where it was last retrieved, or another file changes; until
    /// then prompts keep their snippets, and so their cached start (0:
    /// retrieve at every request).
    pub sticky_context_lines: usize,
    /// How long automatic completion requests wait for the typing to stop:
    /// `"adaptive"` (from the typing rhythm, 0–200 ms) or a number of
    /// milliseconds after the last edit (0 turns debouncing off). Invoked
    /// requests never wait.
    pub debounce: weft_lsp::Debounce,
}

impl Default for LspConfig {
    fn default() -> Self {
        let defaults = weft_lsp::ServerConfig::default();
        LspConfig {
            max_prefix_lines: defaults.max_prefix_lines,
            max_suffix_lines: defaults.max_suffix_lines,
            completion_items: defaults.completion_items,
            cross_file: defaults.cross_file,
            sticky_context_lines: defaults.sticky_context_lines,
            debounce: defaults.debounce,
        }
    }
}

/// Agent workflows (`weft.agent.*` commands).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Offer the agent commands at all.
    pub enabled: bool,
    /// Code → review rounds of `implement` at most.
    pub max_iterations: u32,
    /// How the council decides: `unanimous`, `majority` or
    /// `any-reject-blocks`.
    pub decision_rule: weft_inference::agent::DecisionRule,
    /// Run by `/bin/sh -c` in a scratch copy of the workspace; without it
    /// the test step is skipped.
    pub test_command: Option<String>,
    /// CPU seconds the tests may use.
    pub test_timeout_s: u64,
    pub test_memory_mb: u64,
    /// Test output kept, in KiB.
    pub test_output_kb: u64,
    /// Environment variables passed to the tests (all others are removed).
    pub test_env: Vec<String>,
    pub step_timeout_s: u64,
    pub run_timeout_s: u64,
    /// Tokens one step may generate.
    pub max_tokens: u32,
    pub temperature: f32,
    pub max_concurrent_runs: usize,
    /// The JSON-lines log of runs; the default is `agent-runs.jsonl` in
    /// Weft's cache folder.
    pub run_log: Option<PathBuf>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        let defaults = weft_inference::agent::AgentConfig::default();
        AgentSettings {
            enabled: true,
            max_iterations: defaults.max_iterations,
            decision_rule: defaults.decision_rule,
            test_command: None,
            test_timeout_s: 60,
            test_memory_mb: 2048,
            test_output_kb: 64,
            test_env: Vec::new(),
            step_timeout_s: defaults.step_timeout.as_secs(),
            run_timeout_s: defaults.run_timeout.as_secs(),
            max_tokens: defaults.max_tokens,
            temperature: defaults.temperature,
            max_concurrent_runs: defaults.max_concurrent_runs,
            run_log: None,
        }
    }
}

impl AgentSettings {
    /// The workflows' configuration.
    pub fn workflow_config(&self) -> weft_inference::agent::AgentConfig {
        let test_command = self.test_command.as_ref().filter(|c| !c.trim().is_empty()).map(|command| {
            weft_inference::agent::TestCommand {
                command: command.clone(),
                cpu_time: Duration::from_secs(self.test_timeout_s.max(1)),
                memory_bytes: self.test_memory_mb << 20,
                output_bytes: self.test_output_kb << 10,
                pass_env: self.test_env.clone(),
            }
        });
        weft_inference::agent::AgentConfig {
            max_iterations: self.max_iterations.max(1),
            decision_rule: self.decision_rule,
            test_command,
            step_timeout: Duration::from_secs(self.step_timeout_s.max(1)),
            run_timeout: Duration::from_secs(self.run_timeout_s.max(1)),
            max_concurrent_runs: self.max_concurrent_runs.max(1),
            max_tokens: self.max_tokens.max(1),
            temperature: self.temperature,
            ..weft_inference::agent::AgentConfig::default()
        }
    }

    /// Where finished runs are logged.
    pub fn run_log_path(&self) -> Option<PathBuf> {
        self.run_log.clone().or_else(|| dirs::cache_dir().map(|dir| dir.join("weft").join("agent-runs.jsonl")))
    }
}

/// Logging. Logs go to stderr or a file, never to stdout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `weft=debug`.
    pub level: String,
    /// Append logs to this file instead of stderr.
    pub file: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".to_owned(), file: None }
    }
}

impl Config {
    /// Reads the file (if any) and applies environment overrides.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let path = explicit.map(Path::to_path_buf).or_else(|| env("WEFT_CONFIG").map(PathBuf::from));
        let mut config = match path {
            Some(path) => Config::from_file(&path)?,
            None => match default_path().filter(|p| p.is_file()) {
                Some(path) => Config::from_file(&path)?,
                None => Config::default(),
            },
        };
        config.apply_env(env)?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
        ModelSet::from_config(&config).with_context(|| format!("invalid config file {}", path.display()))?;
        Ok(config)
    }

    /// Environment overrides: `WEFT_MODEL`, `WEFT_N_THREADS`,
    /// `WEFT_N_GPU_LAYERS`, `WEFT_N_CTX`, `WEFT_MAX_TOKENS`, `WEFT_LOG`,
    /// `WEFT_LOG_FILE`, and `WEFT_TELEMETRY_*` ([`crate::telemetry::TelemetryConfig`]).
    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn number<T: std::str::FromStr>(key: &str, value: String) -> anyhow::Result<T> {
            value.parse().map_err(|_| anyhow::anyhow!("{key}={value:?} is not a valid number"))
        }
        if let Some(model) = env("WEFT_MODEL") {
            self.model.path = Some(model);
        }
        if let Some(v) = env("WEFT_N_THREADS") {
            self.engine.n_threads = Some(number("WEFT_N_THREADS", v)?);
        }
        if let Some(v) = env("WEFT_N_GPU_LAYERS") {
            self.engine.n_gpu_layers = number("WEFT_N_GPU_LAYERS", v)?;
        }
        if let Some(v) = env("WEFT_N_CTX") {
            self.engine.n_ctx = number("WEFT_N_CTX", v)?;
        }
        if let Some(v) = env("WEFT_MAX_TOKENS") {
            self.completion.max_tokens = number("WEFT_MAX_TOKENS", v)?;
        }
        if let Some(v) = env("WEFT_LOG") {
            self.log.level = v;
        }
        if let Some(v) = env("WEFT_LOG_FILE") {
            self.log.file = Some(PathBuf::from(v));
        }
        self.telemetry.apply_env(&env)?;
        Ok(())
    }

    /// Resolves the configured model to a file: a path as given, or a
    /// registry name in the models directory. Without `[model]`, the first
    /// local model of `[[models]]` (commands other than `weft lsp` use one
    /// model).
    pub fn model_file(&self, flag: Option<&str>) -> anyhow::Result<PathBuf> {
        let first_local = || self.models.iter().find(|m| m.backend.is_none()).and_then(|m| m.path.as_deref());
        let Some(model) = flag.or(self.model.path.as_deref()).or_else(first_local) else {
            bail!(
                "no model configured: pass --model PATH, set WEFT_MODEL, or set [model] path in {}",
                default_path().map_or_else(|| "the config file".to_owned(), |p| p.display().to_string())
            );
        };
        resolve_model(model)
    }

    /// The models of `weft lsp` when `[[models]]` applies: not when `flag`
    /// (`--model`) or `WEFT_MODEL` names one model, which replaces the list.
    pub fn model_set(&self, flag: Option<&str>) -> anyhow::Result<Option<ModelSet>> {
        if flag.is_some() || self.model.path.is_some() {
            if !self.models.is_empty() {
                tracing::info!("a model was given by --model or WEFT_MODEL: [[models]] is not used");
            }
            return Ok(None);
        }
        ModelSet::from_config(self)
    }
}

/// A model argument: an existing file, or a registry name that has been
/// pulled.
pub fn resolve_model(model: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(model);
    if path.is_file() {
        return Ok(path);
    }
    let registry = weft_inference::registry::Registry::builtin();
    if let Ok(entry) = registry.get(model) {
        let file = weft_inference::hub::Hub::from_env().model_path(entry);
        if file.is_file() {
            return Ok(file);
        }
        bail!("model {model} is not downloaded yet: run `weft models pull {model}`");
    }
    bail!("model file {model} does not exist (and it is not a registry name; see `weft models list`)")
}

/// `$XDG_CONFIG_HOME/weft/config.toml` or `~/.config/weft/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("weft").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../docs/config.example.toml");
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.engine.n_ctx, 4096);
        assert_eq!(config.model.format, Some(PromptFormat::PrefixOnly));
        let chat = &config.chat;
        assert_eq!(chat.default.as_deref(), Some("local"));
        assert_eq!(chat.routes.len(), 2);
        assert!(chat.routes.values().all(|provider| chat.providers.contains_key(provider)));
        assert_eq!(chat.prices["gpt-4o-mini"].completion, 0.6);
    }

    #[test]
    fn the_agent_section_becomes_the_workflow_config() {
        let text = "[agent]\nmax_iterations = 2\ndecision_rule = \"any-reject-blocks\"\ntest_command = \"pytest -q\"\n\
                    test_timeout_s = 30\nstep_timeout_s = 10\n";
        let config: Config = toml::from_str(text).unwrap();
        let workflows = config.agent.workflow_config();
        assert_eq!(workflows.max_iterations, 2);
        assert_eq!(workflows.decision_rule, weft_inference::agent::DecisionRule::AnyRejectBlocks);
        let test = workflows.test_command.unwrap();
        assert_eq!((test.command.as_str(), test.cpu_time), ("pytest -q", Duration::from_secs(30)));
        assert_eq!(workflows.step_timeout, Duration::from_secs(10));
        let err = toml::from_str::<Config>("[agent]\ndecision_rule = \"vibes\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown variant `vibes`"), "{err}");
    }

    #[test]
    fn debounce_is_adaptive_or_milliseconds() {
        assert_eq!(Config::default().lsp.debounce, weft_lsp::Debounce::Adaptive);
        let config: Config = toml::from_str("[lsp]\ndebounce = 40\n").unwrap();
        assert_eq!(config.lsp.debounce, weft_lsp::Debounce::Fixed(Duration::from_millis(40)));
        let config: Config = toml::from_str("[lsp]\ndebounce = \"adaptive\"\n").unwrap();
        assert_eq!(config.lsp.debounce, weft_lsp::Debounce::Adaptive);
        let err = toml::from_str::<Config>("[lsp]\ndebounce = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("\"adaptive\" or a number of milliseconds"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<Config>("[engine]\nn_ctxx = 5\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `n_ctxx`"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config: Config = toml::from_str("[engine]\nn_threads = 4\n").unwrap();
        let env = |key: &str| match key {
            "WEFT_N_THREADS" => Some("1".to_owned()),
            "WEFT_MODEL" => Some("/m.gguf".to_owned()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        assert_eq!(config.engine.n_threads, Some(1));
        assert_eq!(config.model.path.as_deref(), Some("/m.gguf"));
        let bad = |key: &str| (key == "WEFT_N_CTX").then(|| "lots".to_owned());
        assert_eq!(config.apply_env(bad).unwrap_err().to_string(), "WEFT_N_CTX=\"lots\" is not a valid number");
    }
}
