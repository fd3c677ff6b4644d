//! Remote models of `weft eval`: `openai:URL#MODEL` (an OpenAI-compatible
//! `/v1/completions` endpoint, given Weft's own prompt text) and
//! `infill:URL` (llama-server's `/infill`), through
//! `weft_inference::remote_completion`.

use std::time::Duration;

use anyhow::bail;
use weft_inference::prompt::PromptBudget;
use weft_inference::remote_completion::{
    RemoteCompletionConfig, RemoteCompletionKind, check_base_url, format_of_model_name,
};
use weft_inference::resilience::{BreakerConfig, RetryConfig};
use weft_inference::{FimOrder, PromptFormat};

/// Settings every remote model of a run shares.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// The prompt format for `/v1/completions`; detected from the model
    /// name when not given.
    pub format: Option<PromptFormat>,
    pub fim_order: Option<FimOrder>,
    pub budget: PromptBudget,
    /// Per attempt, answer included.
    pub timeout: Duration,
    pub api_key: Option<String>,
}

/// A remote model, ready to connect to.
#[derive(Clone, Debug)]
pub struct RemoteModel {
    pub config: RemoteCompletionConfig,
    /// Where the prompt format came from: `flag` or `model name`.
    format_from: &'static str,
}

/// The model name reported for an `/infill` server given none.
const INFILL_MODEL: &str = "llama-server";

impl RemoteModel {
    /// Parses `openai:URL#MODEL` or `infill:URL[#MODEL]`; `None` when `spec`
    /// names no remote model.
    pub fn parse(spec: &str, options: &RemoteOptions) -> anyhow::Result<Option<RemoteModel>> {
        let Some((kind, rest)) = spec.split_once(':') else { return Ok(None) };
        let kind = match kind {
            "openai" => RemoteCompletionKind::OpenAiCompletions,
            "infill" => RemoteCompletionKind::LlamaServerInfill,
            _ => return Ok(None),
        };
        let (url, model) = match rest.split_once('#') {
            Some((url, model)) => (url, Some(model).filter(|m| !m.is_empty())),
            None => (rest, None),
        };
        let url = check_base_url(url).map_err(|err| anyhow::anyhow!("remote model {spec}: {err}"))?;
        let model = match (kind, model) {
            (_, Some(model)) => model.to_owned(),
            (RemoteCompletionKind::LlamaServerInfill, None) => INFILL_MODEL.to_owned(),
            (RemoteCompletionKind::OpenAiCompletions, None) => {
                bail!("remote model {spec}: name the model, as in openai:{url}#MODEL")
            }
        };
        let (format, format_from) = match options.format {
            Some(format) => (format, "flag"),
            None => (format_of_model_name(&model), "model name"),
        };
        let mut config = RemoteCompletionConfig::new(kind, url, model);
        config.api_key = options.api_key.clone();
        config.format = format;
        config.fim_order = options.fim_order;
        config.budget = options.budget;
        config.timeout = options.timeout;
        // A run is long and unattended: wait out short outages. Tasks that
        // still fail are retried by the next invocation.
        config.retry =
            RetryConfig { max_attempts: 3, base_delay_ms: 1000, max_delay_ms: 10_000, max_retry_after_ms: 60_000 };
        config.breaker = BreakerConfig { failure_threshold: 10, cooldown_ms: 10_000 };
        Ok(Some(RemoteModel { config, format_from }))
    }

    /// The default label: the model name without an organisation.
    pub fn label(&self) -> String {
        let model = &self.config.model;
        model.rsplit('/').next().unwrap_or(model).to_owned()
    }

    /// What the model is, for the summary and resume checks.
    pub fn backend(&self) -> serde_json::Value {
        let config = &self.config;
        let kind = match config.kind {
            RemoteCompletionKind::OpenAiCompletions => "openai-completions",
            RemoteCompletionKind::LlamaServerInfill => "llama-server-infill",
        };
        let mut backend = serde_json::json!({
            "kind": kind,
            "url": config.base_url,
            "model": config.model,
        });
        if config.kind == RemoteCompletionKind::OpenAiCompletions {
            let order = config.fim_order.unwrap_or_else(|| config.format.default_order());
            backend["format"] = config.format.name().into();
            backend["format_from"] = self.format_from.into();
            if config.format.is_fim() {
                backend["fim_order"] = serde_json::to_value(order).unwrap_or_default();
            }
        }
        backend
    }
}

/// The API key in the environment variable `var`, if it is set. A variable
/// named explicitly must be set.
pub fn api_key(var: &str, explicit: bool) -> anyhow::Result<Option<String>> {
    match std::env::var(var) {
        Ok(key) if !key.is_empty() => Ok(Some(key)),
        _ if explicit => bail!("--api-key-env: the API key variable {var} is not set"),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(format: Option<PromptFormat>) -> RemoteOptions {
        RemoteOptions {
            format,
            fim_order: None,
            budget: PromptBudget::default(),
            timeout: Duration::from_secs(5),
            api_key: None,
        }
    }

    #[test]
    fn parses_both_kinds_and_detects_the_format_from_the_model_name() {
        let openai =
            RemoteModel::parse("openai:http://127.0.0.1:8080/#bigcode/starcoder2-3b", &options(None)).unwrap().unwrap();
        assert_eq!(openai.label(), "starcoder2-3b");
        assert_eq!(
            openai.backend(),
            serde_json::json!({
                "kind": "openai-completions",
                "url": "http://127.0.0.1:8080",
                "model": "bigcode/starcoder2-3b",
                "format": "starcoder2",
                "format_from": "model name",
                "fim_order": "spm",
            })
        );
        let forced =
            RemoteModel::parse("openai:https://h#gpt-3.5-turbo-instruct", &options(Some(PromptFormat::Qwen25Coder)))
                .unwrap()
                .unwrap();
        assert_eq!(forced.backend()["format"], "qwen2.5-coder");
        assert_eq!(forced.backend()["format_from"], "flag");

        let infill = RemoteModel::parse("infill:http://127.0.0.1:9000", &options(None)).unwrap().unwrap();
        assert_eq!(infill.config.kind, RemoteCompletionKind::LlamaServerInfill);
        assert_eq!(infill.label(), "llama-server");
        assert!(infill.backend().get("format").is_none());
    }

    #[test]
    fn other_arguments_are_not_remote_and_bad_ones_are_refused() {
        assert!(RemoteModel::parse("models/a.gguf", &options(None)).unwrap().is_none());
        assert!(RemoteModel::parse("C:\\models\\a.gguf", &options(None)).unwrap().is_none());
        let err = |spec| RemoteModel::parse(spec, &options(None)).unwrap_err().to_string();
        assert!(err("openai:http://h:1").contains("name the model"));
        assert!(err("openai:h:1#m").contains("http://"));
        assert!(err("infill:http://h:1/infill").contains("without /infill"));
    }

    #[test]
    fn model_names_give_their_familys_format() {
        assert_eq!(format_of_model_name("deepseek-ai/deepseek-coder-1.3b-base"), PromptFormat::DeepseekCoder);
        assert_eq!(format_of_model_name("Qwen/Qwen2.5-Coder-1.5B"), PromptFormat::Qwen25Coder);
        assert_eq!(format_of_model_name("Qwen/Qwen2.5-7B-Instruct"), PromptFormat::PrefixOnly);
        assert_eq!(format_of_model_name("smollm2"), PromptFormat::PrefixOnly);
    }
}
