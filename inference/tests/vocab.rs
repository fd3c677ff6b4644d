//! FIM prompts of the families, checked against llama.cpp's real vocab-only
//! GGUF files (fetched by `models/fetch-test-assets.sh`).
//!
//! llama.cpp ships `ggml-vocab-qwen2.gguf`, Qwen2's vocabulary, which
//! predates the FIM and repository tokens that Qwen2.5-Coder added. The
//! Qwen2.5-Coder case uses `ggml-vocab-qwen2.5-coder.gguf`, built by
//! `models/fetch-test-assets.sh` from that file with llama.cpp's gguf-py:
//! the same BPE, with Qwen2.5's special tokens in their slots
//! (`models/qwen25-coder-vocab.py`). Qwen2's own vocabulary is checked for
//! what must hold without FIM tokens: prefix-only, and the Qwen2.5-Coder
//! format refused with a clear error.

use std::path::PathBuf;

#[path = "vocab/cuts.rs"]
mod cuts;

use weft_inference::prompt::{self, PromptBudget, PromptInput, Tokenize};
use weft_inference::{FimOrder, LoadOptions, LoadedModel, PromptFormat};

fn vocab(name: &str) -> LoadedModel {
    let dir = std::env::var_os("WEFT_VOCAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/weft/vocab"));
    let path = dir.join(format!("ggml-vocab-{name}.gguf"));
    assert!(path.is_file(), "{} is missing: run `make assets`", path.display());
    LoadedModel::load(&path, &LoadOptions { vocab_only: true, ..LoadOptions::default() }).expect("load vocab")
}

/// Renders prompt tokens with special tokens shown as their text.
fn render(model: &LoadedModel, tokens: &[i32]) -> String {
    tokens.iter().map(|&t| model.token_text(t)).collect()
}

struct Case {
    vocab: &'static str,
    format: PromptFormat,
    texts: [&'static str; 3],
}

/// The vocabularies that carry their family's FIM tokens.
const CASES: [Case; 3] = [
    Case {
        vocab: "deepseek-coder",
        format: PromptFormat::DeepseekCoder,
        texts: ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"],
    },
    Case {
        vocab: "starcoder",
        format: PromptFormat::Starcoder2,
        texts: ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
    },
    Case {
        vocab: "qwen2.5-coder",
        format: PromptFormat::Qwen25Coder,
        texts: ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"],
    },
];

#[test]
fn each_family_is_detected_from_its_vocabulary() {
    for case in &CASES {
        let model = vocab(case.vocab);
        let detection = &model.info().detection;
        assert_eq!(detection.format, case.format, "{}: {}", case.vocab, detection.reason);
    }
}

#[test]
fn fim_tokens_are_single_special_ids_with_the_family_texts() {
    for case in &CASES {
        let model = vocab(case.vocab);
        let special = model.special_tokens();
        let ids = [special.fim_prefix, special.fim_suffix, special.fim_middle];
        for (id, text) in ids.iter().zip(case.texts) {
            let id = id.unwrap_or_else(|| panic!("{}: no token for {text}", case.vocab));
            assert_eq!(model.token_text(id), text, "{}", case.vocab);
            assert!(model.is_stop(id), "{}: generation must stop at {text}", case.vocab);
        }
    }
}

#[test]
fn psm_prompts_render_exactly_in_each_family_format() {
    let input = PromptInput {
        prefix: "def add(a, b):\n    return ",
        suffix: "\n\nprint(add(1, 2))\n",
        ..PromptInput::default()
    };
    for case in &CASES {
        let model = vocab(case.vocab);
        let prompt =
            prompt::build(case.format, FimOrder::Psm, model.special_tokens(), &model, &input, PromptBudget::default())
                .unwrap();
        let bos = model.special_tokens().bos.map(|b| model.token_text(b)).unwrap_or_default();
        let [pre, suf, mid] = case.texts;
        let expected = format!("{bos}{pre}{}{suf}{}{mid}", input.prefix, input.suffix);
        assert_eq!(render(&model, &prompt.tokens), expected, "{}", case.vocab);
        // The special tokens appear as ids exactly once each.
        for text in case.texts {
            let id = prompt.tokens.iter().filter(|&&t| model.token_text(t) == text).count();
            assert_eq!(id, 1, "{}: {text}", case.vocab);
        }
    }
}

#[test]
fn spm_prompt_of_starcoder_puts_the_suffix_first() {
    let model = vocab("starcoder");
    let input = PromptInput { prefix: "x = ", suffix: "\ny = 2\n", ..PromptInput::default() };
    let prompt = prompt::build(
        PromptFormat::Starcoder2,
        FimOrder::Spm,
        model.special_tokens(),
        &model,
        &input,
        PromptBudget::default(),
    )
    .unwrap();
    assert_eq!(render(&model, &prompt.tokens), "<fim_prefix><fim_suffix>\ny = 2\n<fim_middle>x = ");
}

#[test]
fn special_token_text_in_user_code_is_not_a_control_token() {
    for case in &CASES {
        let model = vocab(case.vocab);
        let special = model.special_tokens();
        let [pre, _, mid] = case.texts;
        let tokens = model.tokenize(&format!("s = \"{pre}\" + \"{mid}\""));
        assert!(!tokens.contains(&special.fim_prefix.unwrap()), "{}: {tokens:?}", case.vocab);
        assert!(!tokens.contains(&special.fim_middle.unwrap()), "{}: {tokens:?}", case.vocab);
        // The text survives a round trip through the vocabulary.
        assert_eq!(detokenize(&model, &tokens), format!("s = \"{pre}\" + \"{mid}\""), "{}", case.vocab);
    }
}

#[test]
fn repo_level_tokens_exist_where_the_family_has_them() {
    let starcoder = vocab("starcoder");
    let special = starcoder.special_tokens();
    assert_eq!(special.repo_name.map(|t| starcoder.token_text(t)).as_deref(), Some("<repo_name>"));
    assert_eq!(special.file_sep.map(|t| starcoder.token_text(t)).as_deref(), Some("<file_sep>"));
    let coder = vocab("qwen2.5-coder");
    let special = coder.special_tokens();
    assert_eq!(special.repo_name.map(|t| coder.token_text(t)).as_deref(), Some("<|repo_name|>"));
    assert_eq!(special.file_sep.map(|t| coder.token_text(t)).as_deref(), Some("<|file_sep|>"));
    assert_eq!((special.fim_prefix, special.repo_name, special.file_sep), (Some(151659), Some(151663), Some(151664)));
    // Qwen2's vocabulary predates Qwen2.5-Coder's repository tokens.
    let qwen = vocab("qwen2");
    assert_eq!(qwen.special_tokens().repo_name, None);
    assert_eq!(qwen.special_tokens().file_sep, None);
}

#[test]
fn qwen2_vocabulary_without_fim_tokens_is_prefix_only_and_refuses_fim() {
    let model = vocab("qwen2");
    let detection = &model.info().detection;
    assert_eq!(detection.format, PromptFormat::PrefixOnly, "{}", detection.reason);
    assert!(detection.reason.contains("no complete set of FIM tokens"), "{}", detection.reason);
    let input = PromptInput { prefix: "x = ", suffix: "\n", ..PromptInput::default() };
    let err = prompt::build(
        PromptFormat::Qwen25Coder,
        FimOrder::Psm,
        model.special_tokens(),
        &model,
        &input,
        PromptBudget::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("fim prefix"), "{err}");
    // Qwen2.5-Coder's FIM markers in user code stay plain text.
    let code = "s = \"<|fim_prefix|>\" + \"<|fim_middle|>\"";
    let tokens = model.tokenize(code);
    assert!(tokens.len() > 6, "{tokens:?}");
    assert_eq!(detokenize(&model, &tokens), code);
}

fn detokenize(model: &LoadedModel, tokens: &[i32]) -> String {
    let mut bytes = Vec::new();
    for &t in tokens {
        model.piece(t, &mut bytes);
    }
    String::from_utf8(bytes).expect("UTF-8")
}

#[test]
fn multibyte_text_tokenizes_and_renders_back_unchanged() {
    let text = "// Grüße, 日本語, 🦀\nfn main() {}\n";
    for name in ["deepseek-coder", "starcoder", "qwen2", "qwen2.5-coder"] {
        let model = vocab(name);
        assert_eq!(detokenize(&model, &model.tokenize(text)), text, "{name}");
    }
}
