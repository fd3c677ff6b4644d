//! Model families and their fill-in-the-middle formats.
//!
//! Detection works on plain data read from a GGUF file ([`ModelTraits`]), so
//! it is unit-tested without llama.cpp; `llama.rs` fills the struct from a
//! loaded model.

use serde::{Deserialize, Serialize};

/// The families Weft knows how to prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFamily {
    DeepSeekCoder,
    StarCoder2,
    #[serde(rename = "qwen2.5-coder")]
    Qwen25Coder,
    /// Any other model: SmolLM2, Llama, Gemma and so on.
    Generic,
}

/// How a completion prompt is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptFormat {
    /// `<｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>`.
    DeepseekCoder,
    /// `<fim_prefix>prefix<fim_suffix>suffix<fim_middle>`.
    Starcoder2,
    /// `<|fim_prefix|>prefix<|fim_suffix|>suffix<|fim_middle|>`.
    #[serde(rename = "qwen2.5-coder")]
    Qwen25Coder,
    /// The model continues the prefix; the suffix is not shown to it.
    PrefixOnly,
}

/// The order of the FIM parts in the prompt.
///
/// PSM is what every supported family was trained on. SPM puts the suffix
/// first, so that a keystroke (which changes the end of the prefix) leaves
/// the KV cache of everything before it valid; only StarCoder2 was trained
/// with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FimOrder {
    Psm,
    Spm,
}

/// What a GGUF file says about a model, as far as prompting is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelTraits {
    /// `general.architecture`, e.g. `llama`, `starcoder2`, `qwen2`.
    pub architecture: Option<String>,
    /// `tokenizer.ggml.pre`, e.g. `deepseek-coder`, `starcoder`, `qwen2`.
    pub tokenizer_pre: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// Text of the FIM prefix token, when the vocabulary has one.
    pub fim_prefix_text: Option<String>,
    /// Whether the FIM prefix, suffix and middle tokens all exist.
    pub has_fim_tokens: bool,
    /// Whether the vocabulary has a chat template.
    pub has_chat_template: bool,
}

/// The family and format chosen for a model, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub family: ModelFamily,
    pub format: PromptFormat,
    pub reason: String,
}

impl ModelFamily {
    pub fn name(self) -> &'static str {
        match self {
            ModelFamily::DeepSeekCoder => "deepseek-coder",
            ModelFamily::StarCoder2 => "starcoder2",
            ModelFamily::Qwen25Coder => "qwen2.5-coder",
            ModelFamily::Generic => "generic",
        }
    }

    /// The FIM format the family was trained with.
    pub fn fim_format(self) -> PromptFormat {
        match self {
            ModelFamily::DeepSeekCoder => PromptFormat::DeepseekCoder,
            ModelFamily::StarCoder2 => PromptFormat::Starcoder2,
            ModelFamily::Qwen25Coder => PromptFormat::Qwen25Coder,
            ModelFamily::Generic => PromptFormat::PrefixOnly,
        }
    }
}

impl PromptFormat {
    pub fn name(self) -> &'static str {
        match self {
            PromptFormat::DeepseekCoder => "deepseek-coder",
            PromptFormat::Starcoder2 => "starcoder2",
            PromptFormat::Qwen25Coder => "qwen2.5-coder",
            PromptFormat::PrefixOnly => "prefix-only",
        }
    }

    pub fn is_fim(self) -> bool {
        self != PromptFormat::PrefixOnly
    }

    /// The order used unless the configuration says otherwise.
    pub fn default_order(self) -> FimOrder {
        match self {
            PromptFormat::Starcoder2 => FimOrder::Spm,
            _ => FimOrder::Psm,
        }
    }

    /// The texts of the prefix, suffix and middle tokens.
    pub fn fim_token_texts(self) -> Option<[&'static str; 3]> {
        match self {
            PromptFormat::DeepseekCoder => Some(["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"]),
            PromptFormat::Starcoder2 => Some(["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]),
            PromptFormat::Qwen25Coder => Some(["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]),
            PromptFormat::PrefixOnly => None,
        }
    }

    /// Repository-level tokens (`repo name`, `file separator`), where the
    /// family has them.
    pub fn repo_token_texts(self) -> Option<[&'static str; 2]> {
        match self {
            PromptFormat::Starcoder2 => Some(["<repo_name>", "<file_sep>"]),
            PromptFormat::Qwen25Coder => Some(["<|repo_name|>", "<|file_sep|>"]),
            _ => None,
        }
    }
}

impl std::str::FromStr for PromptFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deepseek-coder" => Ok(PromptFormat::DeepseekCoder),
            "starcoder2" | "starcoder" => Ok(PromptFormat::Starcoder2),
            "qwen2.5-coder" | "qwen" => Ok(PromptFormat::Qwen25Coder),
            "prefix-only" | "none" => Ok(PromptFormat::PrefixOnly),
            other => Err(format!(
                "unknown prompt format `{other}` (expected deepseek-coder, starcoder2, qwen2.5-coder or prefix-only)"
            )),
        }
    }
}

/// Picks the family and prompt format from GGUF metadata.
///
/// The FIM prefix token's text decides first, because it is what the model
/// was trained to see; the tokenizer pre-type and architecture name the family
/// of models without FIM tokens. A model without all three FIM tokens always
/// gets the prefix-only format, whatever its family.
pub fn detect(traits: &ModelTraits) -> Detection {
    let by_token = traits.fim_prefix_text.as_deref().and_then(|text| match text {
        "<｜fim▁begin｜>" => Some(ModelFamily::DeepSeekCoder),
        "<fim_prefix>" => Some(ModelFamily::StarCoder2),
        "<|fim_prefix|>" => Some(ModelFamily::Qwen25Coder),
        _ => None,
    });
    let pre = traits.tokenizer_pre.as_deref().unwrap_or("");
    let arch = traits.architecture.as_deref().unwrap_or("");
    let by_meta = match (pre, arch) {
        ("deepseek-coder", _) => Some(ModelFamily::DeepSeekCoder),
        (_, "starcoder2") => Some(ModelFamily::StarCoder2),
        ("qwen2", _) | (_, "qwen2") => Some(ModelFamily::Qwen25Coder),
        _ => None,
    };
    match (by_token, by_meta) {
        (Some(family), _) if traits.has_fim_tokens => Detection {
            family,
            format: family.fim_format(),
            reason: format!(
                "FIM prefix token {:?} (tokenizer pre-type `{pre}`, architecture `{arch}`)",
                traits.fim_prefix_text.as_deref().unwrap_or_default()
            ),
        },
        (by_token, by_meta) => {
            let family = by_token.or(by_meta).unwrap_or(ModelFamily::Generic);
            Detection {
                family,
                format: PromptFormat::PrefixOnly,
                reason: format!(
                    "no complete set of FIM tokens (tokenizer pre-type `{pre}`, architecture `{arch}`): prefix-only"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traits(fim: Option<&str>, pre: &str, arch: &str) -> ModelTraits {
        ModelTraits {
            architecture: Some(arch.to_owned()),
            tokenizer_pre: Some(pre.to_owned()),
            name: None,
            fim_prefix_text: fim.map(str::to_owned),
            has_fim_tokens: fim.is_some(),
            has_chat_template: false,
        }
    }

    #[test]
    fn detects_each_family_from_its_fim_token() {
        let cases = [
            (traits(Some("<｜fim▁begin｜>"), "deepseek-coder", "llama"), PromptFormat::DeepseekCoder),
            (traits(Some("<fim_prefix>"), "starcoder", "starcoder2"), PromptFormat::Starcoder2),
            (traits(Some("<|fim_prefix|>"), "qwen2", "qwen2"), PromptFormat::Qwen25Coder),
            (traits(None, "smollm", "llama"), PromptFormat::PrefixOnly),
            (traits(None, "qwen2", "qwen2"), PromptFormat::PrefixOnly),
        ];
        for (traits, expected) in cases {
            assert_eq!(detect(&traits).format, expected, "{traits:?}");
        }
    }

    #[test]
    fn a_model_without_fim_tokens_keeps_its_family_name() {
        let detection = detect(&traits(None, "deepseek-coder", "llama"));
        assert_eq!(detection.family, ModelFamily::DeepSeekCoder);
        assert_eq!(detection.format, PromptFormat::PrefixOnly);
    }

    #[test]
    fn formats_parse_from_registry_names() {
        for format in
            [PromptFormat::DeepseekCoder, PromptFormat::Starcoder2, PromptFormat::Qwen25Coder, PromptFormat::PrefixOnly]
        {
            assert_eq!(format.name().parse::<PromptFormat>(), Ok(format));
        }
        assert!("gpt".parse::<PromptFormat>().is_err());
    }
}
