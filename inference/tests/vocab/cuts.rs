//! Text cut at `prompt::cut`'s points tokenizes, piece by piece, to exactly
//! the ids of the whole text, with each family's real vocabulary; prompts
//! assembled from pieces (and from the token cache) are the prompts
//! assembled from whole windows.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use weft_inference::prompt::{self, PromptBudget, PromptInput, TokenCache, TokenId, Tokenize, cut};
use weft_inference::{FimOrder, LoadedModel, PromptFormat};

use super::vocab;

/// Each vocabulary once, for the property tests.
fn models() -> &'static [(&'static str, LoadedModel)] {
    static MODELS: OnceLock<Vec<(&'static str, LoadedModel)>> = OnceLock::new();
    MODELS.get_or_init(|| VOCABS.iter().map(|&name| (name, vocab(name))).collect())
}

fn char_boundary_at_or_before(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

const VOCABS: [&str; 4] = ["deepseek-coder", "starcoder", "qwen2", "qwen2.5-coder"];

fn pieces_tokens(model: &LoadedModel, text: &str) -> Vec<TokenId> {
    cut::pieces(text).flat_map(|range| model.tokenize(&text[range])).collect()
}

/// Checks one text; on a difference, names the first piece that differs.
fn assert_cuts_hold(model: &LoadedModel, name: &str, what: &str, text: &str) {
    if model.tokenize(text) == pieces_tokens(model, text) {
        return;
    }
    let cuts = cut::cut_points(text);
    for &at in &cuts {
        let mut whole = model.tokenize(&text[..at]);
        whole.extend(model.tokenize(&text[at..]));
        if whole != model.tokenize(text) {
            panic!("{name}: {what}: the cut at byte {at} changes the ids: {:?} | {:?}", &text[..at], &text[at..]);
        }
    }
    panic!("{name}: {what}: the pieces tokenize differently, though no single cut does");
}

/// This repository's own sources and fixtures: Rust, Python, TypeScript,
/// Go and Java written by people, with comments in several scripts.
fn real_code() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    let mut dirs = vec![root.join("inference/src"), root.join("lsp/src"), root.join("tests/fixtures/context")];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(&dir).expect("source directory").map(|e| e.expect("entry").path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("rs" | "py" | "ts" | "go" | "java")) {
                let text = std::fs::read_to_string(&path).expect("source file");
                files.push((path, text));
            }
        }
    }
    assert!(files.len() > 40, "{} files", files.len());
    files
}

#[test]
fn every_tested_vocabulary_can_be_cut() {
    for name in VOCABS {
        assert!(vocab(name).can_cut(), "{name}");
    }
}

#[test]
fn pieces_of_real_code_tokenize_like_the_whole_file() {
    let files = real_code();
    for name in VOCABS {
        let model = vocab(name);
        for (path, text) in &files {
            assert_cuts_hold(&model, name, &path.display().to_string(), text);
        }
    }
}

/// Every pairing of a previous word or line's end, line break and blank
/// lines, indentation or spaces, first character and rest of line.
#[test]
fn pieces_tokenize_like_the_whole_text_at_every_kind_of_line_start() {
    let ends = ["x", "x ", "x\t", "{", "1", "é", "", "  "];
    let breaks = ["", "\n", "\n\n", "\n  \n", "\n\t\n", "\r\n"];
    let indents = ["", " ", "  ", "    ", "\t", " \t", "\t "];
    let firsts = [
        "f", "F", "'s", "_", "(", "}", "#", "\"", "/", "@", "*", "-", ".", "\\", "1", "+", "=", "<", "|", "$", "`",
        "^", "~", "é", "日", "🦀", "\u{a0}",
    ];
    let rests = ["oo(1, 2);", "", " x\u{3000}y"];
    let mut texts = Vec::new();
    for end in ends {
        for line_break in breaks {
            for indent in indents {
                for first in firsts {
                    for rest in rests {
                        texts.push(format!("a{end}{line_break}{indent}{first}{rest}\nz"));
                    }
                }
            }
        }
    }
    for name in VOCABS {
        let model = vocab(name);
        // One text of them all first; each alone only if that differs.
        let all: String = texts.concat();
        if model.tokenize(&all) == pieces_tokens(&model, &all) {
            continue;
        }
        for text in &texts {
            assert_cuts_hold(&model, name, "combination", text);
        }
    }
}

/// A tokenizer that cannot be cut: it tokenizes every text whole.
struct Whole<'a>(&'a LoadedModel);

impl Tokenize for Whole<'_> {
    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        self.0.tokenize(text)
    }
}

/// Prompts built from pieces hold exactly the ids of their windows'
/// texts tokenized whole, and the cache changes nothing. (The windows
/// themselves may differ from those chosen with whole texts: pieces give
/// exact counts where whole texts are counted line by line first.)
#[test]
fn prompts_from_pieces_and_the_cache_hold_the_ids_of_their_windows() {
    let files = real_code();
    let budgets = [
        PromptBudget { prefix_tokens: 1024, suffix_tokens: 128, context_tokens: 512 },
        PromptBudget { prefix_tokens: 97, suffix_tokens: 13, context_tokens: 40 },
    ];
    for (name, format) in [("qwen2.5-coder", PromptFormat::Qwen25Coder), ("starcoder", PromptFormat::Starcoder2)] {
        let model = vocab(name);
        let cache = TokenCache::default();
        let cached = cache.tokenizer(&model);
        for (path, text) in files.iter().step_by(3) {
            for at in [text.len() / 3, text.len() / 2, text.len() * 9 / 10] {
                let at = char_boundary_at_or_before(text, at);
                let snippets = [prompt::ContextSnippet { path: "a/b.rs".into(), text: text[..at / 4].to_owned() }];
                let input = PromptInput {
                    prefix: &text[..at],
                    suffix: &text[at..],
                    path: Some("src/x.rs"),
                    line_comment: Some("//"),
                    repo_name: None,
                    snippets: &snippets,
                };
                for budget in budgets {
                    let what = format!("{name}: {} at byte {at}, budget {budget:?}", path.display());
                    let build = |tokenizer: &dyn Tokenize, input: &PromptInput<'_>, budget| {
                        prompt::build(format, FimOrder::Psm, model.special_tokens(), tokenizer, input, budget)
                            .expect("prompt")
                    };
                    let from_pieces = build(&model, &input, budget);
                    // The same windows, given whole and tokenized whole.
                    let windows = PromptInput {
                        prefix: &input.prefix[from_pieces.prefix_clipped_bytes..],
                        suffix: &input.suffix[..input.suffix.len() - from_pieces.suffix_clipped_bytes],
                        ..input.clone()
                    };
                    let unclipped = PromptBudget { prefix_tokens: 1 << 20, suffix_tokens: 1 << 20, ..budget };
                    assert_eq!(from_pieces.tokens, build(&Whole(&model), &windows, unclipped).tokens, "{what}");
                    // Windows of whole lines fit; the cursor's line alone is
                    // clipped by characters, a little over or under budget.
                    if windows.prefix.contains('\n') {
                        assert!(from_pieces.prefix_tokens <= budget.prefix_tokens, "{what}");
                    }
                    if windows.suffix.trim_end_matches('\n').contains('\n') {
                        assert!(from_pieces.suffix_tokens <= budget.suffix_tokens, "{what}");
                    }
                    assert_eq!(build(&cached, &input, budget), from_pieces, "{what}, cold cache");
                    assert_eq!(build(&cached, &input, budget), from_pieces, "{what}, warm cache");
                }
            }
        }
        assert!(cache.stats().hit_bytes > 0 && cache.stats().miss_bytes > 0, "{:?}", cache.stats());
    }
}

/// Lines of code-like text: indentation, first characters and endings of
/// every kind, multi-byte text, blank lines, trailing blanks and CRLF.
fn code_line() -> impl Strategy<Value = String> {
    let indent = prop::sample::select(vec!["", " ", "  ", "    ", "\t", "\t ", "        "]);
    let body = prop::sample::select(vec![
        "fn f(x: u32) -> u32 {",
        "return x + 1;",
        "}",
        "# Grüße, 日本語 🦀",
        "'s a string's end",
        "1234 + 5",
        "= value",
        "<div>",
        "| a | b |",
        "",
        "é = 1",
        "\"quoted\\n\"",
        "@decorator(1)",
        "x  ",
        "y\t",
        "z\r",
        "\u{a0}nbsp",
        "a  =  b",
        "if\t(a) {",
    ]);
    (indent, body).prop_map(|(indent, body)| format!("{indent}{body}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn pieces_of_random_code_tokenize_like_the_whole_text(lines in prop::collection::vec(code_line(), 1..40)) {
        let text = lines.join("\n");
        for (name, model) in models() {
            prop_assert_eq!(model.tokenize(&text), pieces_tokens(model, &text), "{}: {:?}", name, text);
        }
    }
}
