//! [`ChatRouter`]: which backend answers each agent role, and what answers
//! cost ([`PriceTable`], [`UsageTotals`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::config::{AgentRole, ChatConfig, LocalProviderConfig, ModelPrice, ProviderConfig};
use super::remote::RemoteChat;
use super::wire::RemoteKind;
use super::{ChatBackend, ChatUsage};

/// Makes the backend of a local provider from its name and settings.
pub type LocalBackendFactory<'a> = dyn FnMut(&str, &LocalProviderConfig) -> anyhow::Result<Arc<dyn ChatBackend>> + 'a;

/// The provider name of the implicit local provider.
pub const LOCAL: &str = "local";

/// Backends by provider name, and the provider of each role.
#[derive(Clone)]
pub struct ChatRouter {
    backends: BTreeMap<String, Arc<dyn ChatBackend>>,
    routes: BTreeMap<AgentRole, String>,
    default: String,
    prices: PriceTable,
}

impl ChatRouter {
    /// A router that sends every role to `backend`.
    pub fn single(name: impl Into<String>, backend: Arc<dyn ChatBackend>) -> Self {
        let name = name.into();
        ChatRouter {
            backends: BTreeMap::from([(name.clone(), backend)]),
            routes: BTreeMap::new(),
            default: name,
            prices: PriceTable::default(),
        }
    }

    /// Builds every configured provider. Remote ones read their API key
    /// through `env`; local ones are made by `local` (given the provider's
    /// name and settings), so the caller decides how a GGUF is found and
    /// whether the completion model's weights are shared, for example
    /// `LocalChat::with_model(engine.model(), cfg.chat_config())` when
    /// `cfg.model` is `None`, else `LocalChat::load(path, cfg.chat_config())`.
    /// With no provider configured, one local provider named `local` with
    /// default settings is made. Loading a local model blocks.
    pub fn from_config(
        config: &ChatConfig,
        env: &dyn Fn(&str) -> Option<String>,
        local: &mut LocalBackendFactory<'_>,
    ) -> anyhow::Result<Self> {
        let mut providers = config.providers.clone();
        if providers.is_empty() {
            providers.insert(LOCAL.to_owned(), ProviderConfig::Local(LocalProviderConfig::default()));
        }
        let default = config.default.clone().unwrap_or_else(|| LOCAL.to_owned());
        let known = || providers.keys().cloned().collect::<Vec<_>>().join(", ");
        if !providers.contains_key(&default) {
            bail!("[chat] default = \"{default}\" is not a configured provider (known: {})", known());
        }
        for (role, name) in &config.routes {
            if !providers.contains_key(name) {
                bail!("[chat.routes] {role} = \"{name}\" is not a configured provider (known: {})", known());
            }
        }
        let mut backends = BTreeMap::new();
        for (name, provider) in &providers {
            let backend: Arc<dyn ChatBackend> = match provider {
                ProviderConfig::Local(local_config) => local(name, local_config),
                ProviderConfig::OpenAi(remote) => remote
                    .resolve(RemoteKind::OpenAi, config, env)
                    .and_then(RemoteChat::new)
                    .map(|chat| Arc::new(chat) as Arc<dyn ChatBackend>),
                ProviderConfig::Anthropic(remote) => remote
                    .resolve(RemoteKind::Anthropic, config, env)
                    .and_then(RemoteChat::new)
                    .map(|chat| Arc::new(chat) as Arc<dyn ChatBackend>),
            }
            .with_context(|| format!("chat provider `{name}`"))?;
            backends.insert(name.clone(), backend);
        }
        Ok(ChatRouter {
            backends,
            routes: config.routes.clone(),
            default,
            prices: PriceTable::new(config.prices.clone()),
        })
    }

    pub fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// The provider name that answers `role`.
    pub fn provider(&self, role: AgentRole) -> &str {
        self.routes.get(&role).unwrap_or(&self.default)
    }

    /// The backend that answers `role`.
    pub fn backend(&self, role: AgentRole) -> Arc<dyn ChatBackend> {
        Arc::clone(&self.backends[self.provider(role)])
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }
}

/// Model prices in dollars per million tokens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    pub fn new(prices: BTreeMap<String, ModelPrice>) -> Self {
        PriceTable { prices }
    }

    /// The price of `model`: its own entry, else the longest entry that
    /// prefixes it (providers answer `gpt-4o-mini-2024-07-18` for
    /// `gpt-4o-mini`).
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        self.prices.get(model).copied().or_else(|| {
            self.prices
                .iter()
                .filter(|(name, _)| model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, price)| *price)
        })
    }

    /// Dollars for `usage` of `model`; `None` when the model has no price.
    pub fn cost(&self, model: &str, usage: ChatUsage) -> Option<f64> {
        self.price(model).map(|price| {
            (f64::from(usage.prompt_tokens) * price.prompt + f64::from(usage.completion_tokens) * price.completion)
                / 1e6
        })
    }
}

/// Tokens and cost summed over the requests of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Dollars, over the requests whose model has a price.
    pub cost_usd: f64,
    /// Models that answered without a price (their tokens are counted, not
    /// their cost).
    pub unpriced_models: BTreeSet<String>,
}

impl UsageTotals {
    /// Adds one answer; returns its cost.
    pub fn add(&mut self, prices: &PriceTable, model: &str, usage: ChatUsage) -> Option<f64> {
        self.prompt_tokens += u64::from(usage.prompt_tokens);
        self.completion_tokens += u64::from(usage.completion_tokens);
        let cost = prices.cost(model, usage);
        match cost {
            Some(cost) => self.cost_usd += cost,
            None => {
                self.unpriced_models.insert(model.to_owned());
            }
        }
        cost
    }
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::chat::{ChatError, ChatRequest, ChatResponse};

    /// A backend that only has a name: routing never calls it.
    struct Named(&'static str);

    impl ChatBackend for Named {
        fn model(&self) -> String {
            self.0.to_owned()
        }

        fn chat(&self, _: ChatRequest, _: CancellationToken) -> BoxFuture<'static, Result<ChatResponse, ChatError>> {
            Box::pin(async { Err(ChatError::Failed("not called in these tests".into())) })
        }
    }

    fn config(text: &str) -> ChatConfig {
        toml::from_str(text).unwrap()
    }

    fn local_named(name: &str, _: &LocalProviderConfig) -> anyhow::Result<Arc<dyn ChatBackend>> {
        Ok(Arc::new(Named(if name == "local" { "local-model" } else { "other-local" })))
    }

    #[test]
    fn roles_follow_their_routes_and_the_default() {
        let config = config(
            r#"
            default = "small"
            [providers.small]
            kind = "local"
            [providers.big]
            kind = "openai"
            model = "gpt-4o"
            base_url = "http://127.0.0.1:9"
            [routes]
            planner = "big"
            reviewer = "big"
            "#,
        );
        let router = ChatRouter::from_config(&config, &|_| None, &mut local_named).unwrap();
        assert_eq!(router.provider(AgentRole::Planner), "big");
        assert_eq!(router.backend(AgentRole::Reviewer).model(), "gpt-4o");
        assert_eq!(router.provider(AgentRole::Coder), "small");
        assert_eq!(router.backend(AgentRole::Explainer).model(), "other-local");
    }

    #[test]
    fn without_providers_everything_goes_to_the_local_model() {
        let router = ChatRouter::from_config(&ChatConfig::default(), &|_| None, &mut local_named).unwrap();
        for role in AgentRole::ALL {
            assert_eq!(router.provider(role), LOCAL);
            assert_eq!(router.backend(role).model(), "local-model");
        }
    }

    #[test]
    fn unknown_providers_and_missing_keys_are_errors() {
        let build = |text: &str| {
            ChatRouter::from_config(&config(text), &|_| None, &mut local_named).err().map(|e| format!("{e:#}"))
        };
        assert_eq!(
            build("[routes]\ncoder = \"gpt\"\n").unwrap(),
            "[chat.routes] coder = \"gpt\" is not a configured provider (known: local)"
        );
        assert_eq!(
            build("default = \"x\"\n").unwrap(),
            "[chat] default = \"x\" is not a configured provider (known: local)"
        );
        assert_eq!(
            build("default = \"c\"\n[providers.c]\nkind = \"anthropic\"\nmodel = \"claude\"\n").unwrap(),
            "chat provider `c`: `api_key_env` is required for kind anthropic"
        );
    }

    #[test]
    fn costs_come_from_the_price_table() {
        let prices = PriceTable::new(BTreeMap::from([
            ("gpt-4o".to_owned(), ModelPrice { prompt: 2.5, completion: 10.0 }),
            ("gpt-4o-mini".to_owned(), ModelPrice { prompt: 0.15, completion: 0.6 }),
        ]));
        let usage = ChatUsage { prompt_tokens: 1_000_000, completion_tokens: 500_000 };
        assert_eq!(prices.cost("gpt-4o", usage), Some(7.5));
        // The longest prefix wins: a dated mini is priced as mini.
        let mini = prices.cost("gpt-4o-mini-2024-07-18", usage).unwrap();
        assert!((mini - 0.45).abs() < 1e-12, "{mini}");
        assert_eq!(prices.cost("SmolLM2 135M", usage), None);

        let mut totals = UsageTotals::default();
        let small = ChatUsage { prompt_tokens: 2000, completion_tokens: 100 };
        assert_eq!(totals.add(&prices, "gpt-4o", small), Some(0.006));
        totals.add(&prices, "SmolLM2 135M", small);
        assert_eq!(totals.prompt_tokens, 4000);
        assert_eq!(totals.completion_tokens, 200);
        assert!((totals.cost_usd - 0.006).abs() < 1e-12);
        assert_eq!(totals.unpriced_models, BTreeSet::from(["SmolLM2 135M".to_owned()]));
    }
}
