//! The `[chat]` section of the configuration file: providers, which one
//! answers each agent role, retry and breaker settings, and prices.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::local::LocalChatConfig;
use super::remote::RemoteChatConfig;
use super::wire::RemoteKind;
use crate::resilience::{BreakerConfig, RetryConfig};

/// `[chat]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// The provider of roles without a route; `local` when unset.
    pub default: Option<String>,
    /// Providers by name. With none configured, `local` is the completion
    /// model.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The provider of each role.
    pub routes: BTreeMap<AgentRole, String>,
    /// Prices by model name, in dollars per million tokens.
    pub prices: BTreeMap<String, ModelPrice>,
    /// Retries of every remote provider.
    pub retry: RetryConfig,
    /// Each remote provider has a breaker with these settings.
    pub breaker: BreakerConfig,
}

/// The roles of agent workflows, each routable to its own provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentRole {
    Planner,
    Coder,
    Tester,
    Analyzer,
    Reviewer,
    Security,
    Performance,
    Maintainability,
    Explainer,
}

impl AgentRole {
    pub const ALL: [AgentRole; 9] = [
        AgentRole::Planner,
        AgentRole::Coder,
        AgentRole::Tester,
        AgentRole::Analyzer,
        AgentRole::Reviewer,
        AgentRole::Security,
        AgentRole::Performance,
        AgentRole::Maintainability,
        AgentRole::Explainer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AgentRole::Planner => "planner",
            AgentRole::Coder => "coder",
            AgentRole::Tester => "tester",
            AgentRole::Analyzer => "analyzer",
            AgentRole::Reviewer => "reviewer",
            AgentRole::Security => "security",
            AgentRole::Performance => "performance",
            AgentRole::Maintainability => "maintainability",
            AgentRole::Explainer => "explainer",
        }
    }
}

impl std::fmt::Display for AgentRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AgentRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentRole::ALL.into_iter().find(|role| role.name() == s).ok_or_else(|| {
            let known: Vec<&str> = AgentRole::ALL.iter().map(|r| r.name()).collect();
            format!("unknown agent role `{s}` (known: {})", known.join(", "))
        })
    }
}

/// `[chat.providers.NAME]`, by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProviderConfig {
    /// A llama.cpp instruct model in this process.
    Local(LocalProviderConfig),
    /// An OpenAI-compatible `/v1/chat/completions` server.
    #[serde(rename = "openai")]
    OpenAi(RemoteProviderConfig),
    /// The Anthropic Messages API.
    Anthropic(RemoteProviderConfig),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalProviderConfig {
    /// A GGUF file or a registry name; unset means the completion model
    /// (`[model] path`), whose weights are then shared.
    pub model: Option<String>,
    pub n_ctx: u32,
    pub n_threads: Option<i32>,
    pub n_gpu_layers: u32,
}

impl Default for LocalProviderConfig {
    fn default() -> Self {
        let chat = LocalChatConfig::default();
        LocalProviderConfig { model: None, n_ctx: chat.n_ctx, n_threads: None, n_gpu_layers: 0 }
    }
}

impl LocalProviderConfig {
    pub fn chat_config(&self) -> LocalChatConfig {
        LocalChatConfig {
            n_ctx: self.n_ctx,
            n_threads: self.n_threads,
            n_gpu_layers: self.n_gpu_layers,
            ..LocalChatConfig::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteProviderConfig {
    /// Without the `/v1/…` path; defaults to the vendor's API.
    pub base_url: Option<String>,
    /// The environment variable that holds the API key (never the key).
    pub api_key_env: Option<String>,
    /// The model name the provider knows (required).
    pub model: String,
    /// Per attempt, answer included; default 120 000.
    pub timeout_ms: Option<u64>,
}

impl RemoteProviderConfig {
    /// The provider's settings, the key read through `env`.
    pub fn resolve(
        &self,
        kind: RemoteKind,
        chat: &ChatConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<RemoteChatConfig> {
        if self.model.is_empty() {
            anyhow::bail!("`model` is required");
        }
        let api_key = match &self.api_key_env {
            Some(var) => Some(
                env(var)
                    .filter(|key| !key.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("the API key variable {var} is not set"))?,
            ),
            None if kind == RemoteKind::Anthropic => anyhow::bail!("`api_key_env` is required for kind anthropic"),
            None => None,
        };
        let mut config = RemoteChatConfig::new(kind, &self.model);
        if let Some(base_url) = &self.base_url {
            config.base_url = base_url.clone();
        }
        config.api_key = api_key;
        if let Some(ms) = self.timeout_ms {
            config.timeout = Duration::from_millis(ms);
        }
        config.retry = chat.retry.clone();
        config.breaker = chat.breaker.clone();
        Ok(config)
    }
}

/// `[chat.prices."MODEL"]`: dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelPrice {
    pub prompt: f64,
    pub completion: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_by_kind() {
        let config: ChatConfig = toml::from_str(
            r#"
            default = "claude"
            [providers.small]
            kind = "local"
            n_ctx = 2048
            [providers.gpt]
            kind = "openai"
            model = "gpt-4o-mini"
            api_key_env = "OPENAI_API_KEY"
            [providers.claude]
            kind = "anthropic"
            model = "claude-3-5-haiku-latest"
            api_key_env = "ANTHROPIC_API_KEY"
            timeout_ms = 30000
            [routes]
            planner = "gpt"
            security = "small"
            [prices."gpt-4o-mini"]
            prompt = 0.15
            completion = 0.6
            [breaker]
            failure_threshold = 2
            "#,
        )
        .unwrap();
        assert_eq!(
            config.providers["small"],
            ProviderConfig::Local(LocalProviderConfig { n_ctx: 2048, ..LocalProviderConfig::default() })
        );
        assert_eq!(config.routes[&AgentRole::Security], "small");
        assert_eq!(config.breaker, BreakerConfig { failure_threshold: 2, ..BreakerConfig::default() });
        let ProviderConfig::Anthropic(claude) = &config.providers["claude"] else { panic!() };
        let env = |var: &str| (var == "ANTHROPIC_API_KEY").then(|| "sk-test".to_owned());
        let resolved = claude.resolve(RemoteKind::Anthropic, &config, &env).unwrap();
        assert_eq!(resolved.api_key.as_deref(), Some("sk-test"));
        assert_eq!(resolved.base_url, "https://api.anthropic.com");
        assert_eq!(resolved.timeout, Duration::from_secs(30));
        assert_eq!(resolved.breaker.failure_threshold, 2);
        let ProviderConfig::OpenAi(gpt) = &config.providers["gpt"] else { panic!() };
        let err = gpt.resolve(RemoteKind::OpenAi, &config, &env).unwrap_err();
        assert_eq!(err.to_string(), "the API key variable OPENAI_API_KEY is not set");
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| toml::from_str::<ChatConfig>(text).unwrap_err().to_string();
        assert!(
            err("[routes]\nplaner = \"x\"\n").contains("unknown variant `planer`"),
            "{}",
            err("[routes]\nplaner = \"x\"\n")
        );
        assert!(err("[providers.x]\nkind = \"gemini\"\n").contains("unknown variant `gemini`"));
        assert!(err("[providers.x]\nkind = \"openai\"\nmodle = \"m\"\n").contains("unknown field `modle`"));
        assert_eq!("reviewer".parse::<AgentRole>(), Ok(AgentRole::Reviewer));
        assert!("judge".parse::<AgentRole>().unwrap_err().starts_with("unknown agent role `judge`"));
    }
}
