//! Several completion models: the `[[models]]` list and the `[comparison]`
//! policy, checked once into a [`ModelSet`].
//!
//! Each entry is a local GGUF (`path`, with optional engine overrides) or a
//! remote server (`backend = "openai" | "infill"`, `url`, …). The policy
//! says which of them answer a request: one (`single`), one per document
//! chosen by weight (`ab`), or every one (`all`). Checking is pure (no files,
//! no environment) so that a broken list is reported when the file is read;
//! files and API keys are looked up when the models start.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};
use weft_inference::remote_completion::{
    RemoteCompletionConfig, RemoteCompletionKind, check_base_url, format_of_model_name,
};
use weft_inference::{EngineConfig, FimOrder, LoadOptions, PromptFormat};

use super::Config;

/// One `[[models]]` entry, as in the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelEntry {
    /// How the model is named in completions, logs and `[comparison]`.
    pub name: String,
    /// A local GGUF file, or the name of a registry model.
    pub path: Option<String>,
    /// Overrides the prompt format (local: detected from the GGUF; remote:
    /// guessed from the model name).
    pub format: Option<PromptFormat>,
    pub fim_order: Option<FimOrder>,
    /// Local only: overrides of `[engine]`.
    pub n_ctx: Option<u32>,
    pub n_threads: Option<i32>,
    pub n_gpu_layers: Option<u32>,
    /// A remote server: `openai` (`/v1/completions`) or `infill`
    /// (llama-server's `/infill`).
    pub backend: Option<String>,
    /// The server's base URL, without `/v1/completions` or `/infill`.
    pub url: Option<String>,
    /// The model name the server knows (required for `openai`).
    pub model: Option<String>,
    /// The environment variable that holds the API key, never the key.
    pub api_key_env: Option<String>,
    /// Per attempt, answer included.
    pub timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
}

/// Which of the models answer a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonMode {
    /// One model answers every request.
    #[default]
    Single,
    /// Each document is assigned one model, by weight (an A/B test).
    Ab,
    /// Every model answers every request, concurrently (side by side).
    All,
}

/// `[comparison]`: the policy over `[[models]]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComparisonConfig {
    pub mode: ComparisonMode,
    /// The model of `single` mode; the first of `[[models]]` by default.
    pub model: Option<String>,
    /// `ab` mode: relative weights by model name; 1 for models not named.
    pub weights: BTreeMap<String, f64>,
    /// `ab` mode: mixed into the assignment hash. Without it each server
    /// start draws one, so assignments hold only until a restart.
    pub session: Option<String>,
}

/// A model of the set, checked.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: String,
    pub source: ModelSource,
}

#[derive(Clone, Debug)]
pub enum ModelSource {
    /// A GGUF run by its own `LlamaEngine`.
    Local {
        /// As configured: a file or a registry name, resolved at start.
        path: String,
        load: LoadOptions,
        engine: EngineConfig,
    },
    /// A remote server; the API key is read from `api_key_env` at start.
    Remote { config: RemoteCompletionConfig, api_key_env: Option<String> },
}

impl ModelSource {
    /// `local`, `openai` or `infill`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSource::Local { .. } => "local",
            ModelSource::Remote { config, .. } => match config.kind {
                RemoteCompletionKind::OpenAiCompletions => "openai",
                RemoteCompletionKind::LlamaServerInfill => "infill",
            },
        }
    }
}

/// Which models answer, by index into [`ModelSet::models`].
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    Single(usize),
    /// One weight per model.
    Ab {
        weights: Vec<f64>,
        session: Option<String>,
    },
    All,
}

/// `[[models]]` and `[comparison]`, checked.
#[derive(Clone, Debug)]
pub struct ModelSet {
    pub models: Vec<ModelSpec>,
    pub policy: Policy,
}

impl ModelSet {
    /// The set of `config`; `None` when `[[models]]` is empty (the single
    /// `[model]` applies).
    pub fn from_config(config: &Config) -> anyhow::Result<Option<ModelSet>> {
        let comparison = &config.comparison;
        if config.models.is_empty() {
            if *comparison != ComparisonConfig::default() {
                bail!("[comparison] needs a list of models: add [[models]] entries");
            }
            return Ok(None);
        }
        if config.model != super::ModelConfig::default() {
            bail!(
                "[model] and [[models]] cannot both be set: move the [model] settings into a [[models]] entry \
                 (or drop [[models]] for a single model)"
            );
        }
        let mut seen = HashSet::new();
        let mut models = Vec::with_capacity(config.models.len());
        for (index, entry) in config.models.iter().enumerate() {
            let name = entry.name.trim();
            if name.is_empty() {
                bail!("[[models]] entry {} has no name: set name = \"...\"", index + 1);
            }
            if !seen.insert(name) {
                bail!("[[models]]: the name \"{name}\" is used twice; each model needs a name of its own");
            }
            let source = source(entry, config).map_err(|err| anyhow!("model \"{name}\": {err}"))?;
            models.push(ModelSpec { name: name.to_owned(), source });
        }
        let names = || models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
        let index_of = |name: &str| models.iter().position(|m| m.name == name);
        for (name, weight) in &comparison.weights {
            if index_of(name).is_none() {
                bail!("[comparison.weights] names \"{name}\", which is not in [[models]] ({})", names());
            }
            if !weight.is_finite() || *weight < 0.0 {
                bail!("[comparison.weights] \"{name}\" = {weight}: a weight is a number, 0 or more");
            }
        }
        let policy = match comparison.mode {
            ComparisonMode::Single => match &comparison.model {
                None => Policy::Single(0),
                Some(name) => Policy::Single(
                    index_of(name)
                        .ok_or_else(|| anyhow!("[comparison] model = \"{name}\" is not in [[models]] ({})", names()))?,
                ),
            },
            ComparisonMode::Ab => {
                let weights: Vec<f64> =
                    models.iter().map(|m| comparison.weights.get(&m.name).copied().unwrap_or(1.0)).collect();
                if weights.iter().all(|&w| w == 0.0) {
                    bail!("[comparison.weights]: every weight is 0; give at least one model a weight above 0");
                }
                Policy::Ab { weights, session: comparison.session.clone() }
            }
            ComparisonMode::All => Policy::All,
        };
        if comparison.model.is_some() && comparison.mode != ComparisonMode::Single {
            bail!("[comparison] model applies to mode = \"single\" only");
        }
        Ok(Some(ModelSet { models, policy }))
    }

    /// For status reports: `a` (single), `a|b (ab)`, `a+b` (all).
    pub fn describe(&self) -> String {
        let names = |sep: &str| self.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(sep);
        match &self.policy {
            Policy::Single(index) => self.models[*index].name.clone(),
            Policy::Ab { .. } => format!("{} (ab)", names("|")),
            Policy::All => names("+"),
        }
    }

    /// The models a request may use: in `single` mode only the chosen one.
    pub fn used(&self) -> impl Iterator<Item = &ModelSpec> {
        let only = match self.policy {
            Policy::Single(index) => Some(index),
            _ => None,
        };
        self.models.iter().enumerate().filter(move |(i, _)| only.is_none_or(|o| o == *i)).map(|(_, m)| m)
    }
}

/// An entry's source: local or remote, with the keys of the other kind
/// refused.
fn source(entry: &ModelEntry, config: &Config) -> anyhow::Result<ModelSource> {
    let local_keys = [
        ("n_ctx", entry.n_ctx.is_some()),
        ("n_threads", entry.n_threads.is_some()),
        ("n_gpu_layers", entry.n_gpu_layers.is_some()),
    ];
    let remote_keys = [
        ("url", entry.url.is_some()),
        ("model", entry.model.is_some()),
        ("api_key_env", entry.api_key_env.is_some()),
        ("timeout_ms", entry.timeout_ms.is_some()),
        ("connect_timeout_ms", entry.connect_timeout_ms.is_some()),
    ];
    match (&entry.path, &entry.backend) {
        (Some(_), Some(_)) => {
            bail!("set either path (a local GGUF) or backend (a remote server), not both")
        }
        (None, None) => {
            bail!("set path (a GGUF file or registry name) or backend = \"openai\" | \"infill\" (a remote server)")
        }
        (Some(path), None) => {
            if let Some((key, _)) = remote_keys.iter().find(|(_, set)| *set) {
                bail!("{key} applies to remote models (backend = ...) only");
            }
            if path.trim().is_empty() {
                bail!("path is empty");
            }
            let mut engine = config.engine.clone();
            engine.n_ctx = entry.n_ctx.unwrap_or(engine.n_ctx);
            engine.n_threads = entry.n_threads.or(engine.n_threads);
            engine.n_gpu_layers = entry.n_gpu_layers.unwrap_or(engine.n_gpu_layers);
            let load = LoadOptions {
                vocab_only: false,
                n_gpu_layers: engine.n_gpu_layers,
                format: entry.format,
                fim_order: entry.fim_order,
            };
            Ok(ModelSource::Local { path: path.clone(), load, engine })
        }
        (None, Some(backend)) => {
            let kind = match backend.as_str() {
                "openai" => RemoteCompletionKind::OpenAiCompletions,
                "infill" => RemoteCompletionKind::LlamaServerInfill,
                other => bail!("unknown backend \"{other}\" (expected \"openai\" or \"infill\")"),
            };
            if let Some((key, _)) = local_keys.iter().find(|(_, set)| *set) {
                bail!("{key} applies to local models (path = ...) only");
            }
            let url = entry.url.as_deref().ok_or_else(|| {
                anyhow!("backend \"{backend}\" needs url, the server's base URL (e.g. \"http://127.0.0.1:8080\")")
            })?;
            let url = check_base_url(url).map_err(|err| anyhow!("url {url:?}: {err}"))?;
            let model = match (kind, entry.model.as_deref().filter(|m| !m.trim().is_empty())) {
                (_, Some(model)) => model.to_owned(),
                (RemoteCompletionKind::LlamaServerInfill, None) => entry.name.trim().to_owned(),
                (RemoteCompletionKind::OpenAiCompletions, None) => {
                    bail!("backend \"openai\" needs model, the name the server knows the model by")
                }
            };
            if entry.api_key_env.as_deref().is_some_and(|v| v.trim().is_empty()) {
                bail!("api_key_env is empty: name the environment variable that holds the key");
            }
            let mut remote = RemoteCompletionConfig::new(kind, url, model.clone());
            remote.format = entry.format.unwrap_or_else(|| format_of_model_name(&model));
            remote.fim_order = entry.fim_order;
            remote.budget = config.engine.budget.into();
            if let Some(ms) = entry.timeout_ms {
                remote.timeout = Duration::from_millis(ms.max(1));
            }
            if let Some(ms) = entry.connect_timeout_ms {
                remote.connect_timeout = Duration::from_millis(ms.max(1));
            }
            Ok(ModelSource::Remote { config: remote, api_key_env: entry.api_key_env.clone() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> anyhow::Result<Option<ModelSet>> {
        let config: Config = toml::from_str(text)?;
        ModelSet::from_config(&config)
    }

    fn error(text: &str) -> String {
        format!("{:#}", set(text).unwrap_err())
    }

    const THREE: &str = r#"
        [engine]
        n_ctx = 2048
        n_threads = 2
        [[models]]
        name = "a"
        path = "a.gguf"
        n_ctx = 1024
        [[models]]
        name = "b"
        path = "qwen2.5-coder-1.5b"
        format = "qwen2.5-coder"
        [[models]]
        name = "c"
        backend = "openai"
        url = "http://127.0.0.1:8080/"
        model = "bigcode/starcoder2-3b"
        api_key_env = "C_KEY"
        timeout_ms = 2500
    "#;

    #[test]
    fn the_documented_example_parses_once_uncommented() {
        let text = include_str!("../../../docs/config.example.toml");
        let block =
            text.split("# BEGIN MODELS EXAMPLE\n").nth(1).unwrap().split("# END MODELS EXAMPLE").next().unwrap();
        let block: String = block.lines().map(|line| format!("{}\n", line.strip_prefix('#').unwrap_or(line))).collect();
        let set = set(&block).unwrap().unwrap();
        assert_eq!(set.describe(), "qwen|starcoder|server (ab)");
        assert_eq!(set.policy, Policy::Ab { weights: vec![2.0, 1.0, 0.0], session: Some("study-1".into()) });
        assert_eq!(set.models.iter().map(|m| m.source.kind()).collect::<Vec<_>>(), ["local", "openai", "infill"]);
    }

    #[test]
    fn a_model_flag_or_weft_model_replaces_the_list() {
        let mut config: Config = toml::from_str(THREE).unwrap();
        assert_eq!(config.model_set(None).unwrap().unwrap().models.len(), 3);
        assert!(config.model_set(Some("other.gguf")).unwrap().is_none());
        config.apply_env(|key| (key == "WEFT_MODEL").then(|| "other.gguf".to_owned())).unwrap();
        assert!(config.model_set(None).unwrap().is_none());
        // Other commands use the first local model of the list.
        let config: Config = toml::from_str(THREE).unwrap();
        let err = config.model_file(None).unwrap_err().to_string();
        assert!(err.contains("model file a.gguf does not exist"), "{err}");
    }

    #[test]
    fn no_list_is_no_set_and_the_single_model_applies() {
        assert!(set("[model]\npath = \"a.gguf\"\n").unwrap().is_none());
        assert!(set("").unwrap().is_none());
    }

    #[test]
    fn a_list_of_local_and_remote_models_parses_with_overrides() {
        let set = set(THREE).unwrap().unwrap();
        assert_eq!(set.policy, Policy::Single(0));
        assert_eq!(set.describe(), "a");
        assert_eq!(set.used().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["a"]);
        let ModelSource::Local { path, engine, load } = &set.models[0].source else { panic!("a is local") };
        assert_eq!((path.as_str(), engine.n_ctx, engine.n_threads), ("a.gguf", 1024, Some(2)));
        assert_eq!(load.format, None);
        let ModelSource::Local { engine, load, .. } = &set.models[1].source else { panic!("b is local") };
        assert_eq!((engine.n_ctx, load.format), (2048, Some(PromptFormat::Qwen25Coder)));
        let ModelSource::Remote { config, api_key_env } = &set.models[2].source else { panic!("c is remote") };
        assert_eq!(set.models[2].source.kind(), "openai");
        assert_eq!(config.base_url, "http://127.0.0.1:8080");
        assert_eq!(config.model, "bigcode/starcoder2-3b");
        assert_eq!(config.format, PromptFormat::Starcoder2, "guessed from the model name");
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(api_key_env.as_deref(), Some("C_KEY"));
    }

    #[test]
    fn the_modes_describe_themselves() {
        let all = set(&format!("{THREE}\n[comparison]\nmode = \"all\"\n")).unwrap().unwrap();
        assert_eq!(all.policy, Policy::All);
        assert_eq!(all.describe(), "a+b+c");
        assert_eq!(all.used().count(), 3);
        let ab = set(&format!("{THREE}\n[comparison]\nmode = \"ab\"\nsession = \"s\"\nweights = {{ a = 3, c = 0 }}\n"))
            .unwrap()
            .unwrap();
        assert_eq!(ab.policy, Policy::Ab { weights: vec![3.0, 1.0, 0.0], session: Some("s".into()) });
        assert_eq!(ab.describe(), "a|b|c (ab)");
        let single = set(&format!("{THREE}\n[comparison]\nmode = \"single\"\nmodel = \"c\"\n")).unwrap().unwrap();
        assert_eq!(single.policy, Policy::Single(2));
        assert_eq!(single.describe(), "c");
    }

    #[test]
    fn mistakes_get_messages_that_name_the_model_and_the_fix() {
        let one = |body: &str| error(&format!("[[models]]\nname = \"x\"\n{body}\n"));
        expect_test::expect![[r#"model "x": unknown backend "ollama" (expected "openai" or "infill")"#]]
            .assert_eq(&one("backend = \"ollama\"\nurl = \"http://h\""));
        expect_test::expect![[
            r#"model "x": backend "openai" needs url, the server's base URL (e.g. "http://127.0.0.1:8080")"#
        ]]
        .assert_eq(&one("backend = \"openai\"\nmodel = \"m\""));
        expect_test::expect![[r#"model "x": backend "openai" needs model, the name the server knows the model by"#]]
            .assert_eq(&one("backend = \"openai\"\nurl = \"http://h\""));
        expect_test::expect![[r#"model "x": url "h:8080": the URL must start with http:// or https://"#]]
            .assert_eq(&one("backend = \"infill\"\nurl = \"h:8080\""));
        expect_test::expect![[r#"model "x": url "http://h/infill": give the server's base URL, without /infill"#]]
            .assert_eq(&one("backend = \"infill\"\nurl = \"http://h/infill\""));
        expect_test::expect![[r#"model "x": set either path (a local GGUF) or backend (a remote server), not both"#]]
            .assert_eq(&one("backend = \"infill\"\npath = \"a.gguf\""));
        expect_test::expect![[
            r#"model "x": set path (a GGUF file or registry name) or backend = "openai" | "infill" (a remote server)"#
        ]]
        .assert_eq(&one(""));
        expect_test::expect![[r#"model "x": url applies to remote models (backend = ...) only"#]]
            .assert_eq(&one("path = \"a.gguf\"\nurl = \"http://h\""));
        expect_test::expect![[r#"model "x": n_ctx applies to local models (path = ...) only"#]]
            .assert_eq(&one("backend = \"infill\"\nurl = \"http://h\"\nn_ctx = 512"));

        let two = "[[models]]\nname = \"a\"\npath = \"a.gguf\"\n[[models]]\nname = \"a\"\npath = \"b.gguf\"\n";
        expect_test::expect![[r#"[[models]]: the name "a" is used twice; each model needs a name of its own"#]]
            .assert_eq(&error(two));
        expect_test::expect![[r#"[[models]] entry 1 has no name: set name = "...""#]]
            .assert_eq(&error("[[models]]\npath = \"a.gguf\"\n"));
        expect_test::expect![[r#"[model] and [[models]] cannot both be set: move the [model] settings into a [[models]] entry (or drop [[models]] for a single model)"#]]
            .assert_eq(&error("[model]\npath = \"m.gguf\"\n[[models]]\nname = \"a\"\npath = \"a.gguf\"\n"));
        expect_test::expect![[r#"[comparison] needs a list of models: add [[models]] entries"#]]
            .assert_eq(&error("[comparison]\nmode = \"all\"\n"));
        let a = "[[models]]\nname = \"a\"\npath = \"a.gguf\"\n";
        expect_test::expect![[r#"[comparison] model = "b" is not in [[models]] (a)"#]]
            .assert_eq(&error(&format!("{a}[comparison]\nmodel = \"b\"\n")));
        expect_test::expect![[r#"[comparison.weights] names "b", which is not in [[models]] (a)"#]]
            .assert_eq(&error(&format!("{a}[comparison]\nmode = \"ab\"\nweights = {{ b = 1 }}\n")));
        expect_test::expect![[r#"[comparison.weights] "a" = -1: a weight is a number, 0 or more"#]]
            .assert_eq(&error(&format!("{a}[comparison]\nmode = \"ab\"\nweights = {{ a = -1 }}\n")));
        expect_test::expect![[r#"[comparison.weights]: every weight is 0; give at least one model a weight above 0"#]]
            .assert_eq(&error(&format!("{a}[comparison]\nmode = \"ab\"\nweights = {{ a = 0 }}\n")));
        expect_test::expect![[r#"[comparison] model applies to mode = "single" only"#]]
            .assert_eq(&error(&format!("{a}[comparison]\nmode = \"all\"\nmodel = \"a\"\n")));
        let mode = error(&format!("{a}[comparison]\nmode = \"best\"\n"));
        assert!(mode.contains("unknown variant `best`, expected one of `single`, `ab`, `all`"), "{mode}");
    }
}
