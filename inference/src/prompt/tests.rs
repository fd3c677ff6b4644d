use super::*;

/// One token per character, ids are code points: easy to read in failures.
struct CharTokenizer;

impl Tokenize for CharTokenizer {
    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        text.chars().map(|c| c as TokenId).collect()
    }
}

const SPECIAL: SpecialTokens = SpecialTokens {
    bos: Some(-1),
    fim_prefix: Some(-2),
    fim_suffix: Some(-3),
    fim_middle: Some(-4),
    repo_name: Some(-5),
    file_sep: Some(-6),
};

/// Renders ids back to text, special tokens in brackets.
fn render(tokens: &[TokenId]) -> String {
    tokens
        .iter()
        .map(|&t| match t {
            -1 => "[BOS]".to_owned(),
            -2 => "[PRE]".to_owned(),
            -3 => "[SUF]".to_owned(),
            -4 => "[MID]".to_owned(),
            -5 => "[REPO]".to_owned(),
            -6 => "[SEP]".to_owned(),
            t => char::from_u32(t as u32).unwrap().to_string(),
        })
        .collect()
}

fn check(
    format: PromptFormat,
    order: FimOrder,
    fixture: &str,
    snippets: &[ContextSnippet],
    expect: expect_test::Expect,
) {
    let (prefix, suffix) = fixture.split_once("$0").unwrap();
    let input = PromptInput {
        prefix,
        suffix,
        path: Some("src/main.rs"),
        line_comment: Some("//"),
        repo_name: Some("demo"),
        snippets,
    };
    let prompt = build(format, order, &SPECIAL, &CharTokenizer, &input, PromptBudget::default()).unwrap();
    expect.assert_eq(&render(&prompt.tokens));
}

#[test]
fn psm_puts_special_tokens_as_ids_around_text() {
    check(
        PromptFormat::DeepseekCoder,
        FimOrder::Psm,
        "fn add(a: i32) -> i32 {\n    $0\n}\n",
        &[],
        expect_test::expect![[r#"
            [BOS][PRE]fn add(a: i32) -> i32 {
                [SUF]
            }
            [MID]"#]],
    );
}

#[test]
fn spm_puts_the_suffix_first() {
    check(
        PromptFormat::Starcoder2,
        FimOrder::Spm,
        "let x = $0;\n",
        &[],
        expect_test::expect![[r#"
            [BOS][PRE][SUF];
            [MID]let x = "#]],
    );
}

#[test]
fn prefix_only_ignores_the_suffix() {
    check(PromptFormat::PrefixOnly, FimOrder::Psm, "print($0)", &[], expect_test::expect!["[BOS]print("]);
}

#[test]
fn repo_level_format_uses_file_separators() {
    let snippets = [ContextSnippet { path: "src/lib.rs".into(), text: "pub fn one() -> u8 { 1 }\n".into() }];
    check(
        PromptFormat::Qwen25Coder,
        FimOrder::Psm,
        "one($0",
        &snippets,
        expect_test::expect![[r#"
            [BOS][REPO]demo
            [SEP]src/lib.rs
            pub fn one() -> u8 { 1 }
            [SEP]src/main.rs
            [PRE]one([SUF][MID]"#]],
    );
}

#[test]
fn other_formats_use_path_comments() {
    let snippets = [ContextSnippet { path: "src/lib.rs".into(), text: "pub fn one() {}".into() }];
    check(
        PromptFormat::DeepseekCoder,
        FimOrder::Psm,
        "one($0",
        &snippets,
        expect_test::expect![[r#"
            [BOS]// src/lib.rs
            pub fn one() {}

            // src/main.rs
            [PRE]one([SUF][MID]"#]],
    );
}

#[test]
fn each_snippet_reports_the_tokens_it_took_and_left_out_ones_take_none() {
    let big = "x".repeat(600);
    let snippets = [
        ContextSnippet { path: "a.rs".into(), text: "fn a() {}".into() },
        ContextSnippet { path: "big.rs".into(), text: big },
        ContextSnippet { path: "b.rs".into(), text: "fn b() {}".into() },
    ];
    let input = PromptInput {
        prefix: "a(",
        suffix: "",
        path: None,
        line_comment: Some("//"),
        repo_name: None,
        snippets: &snippets,
    };
    let prompt =
        build(PromptFormat::DeepseekCoder, FimOrder::Psm, &SPECIAL, &CharTokenizer, &input, PromptBudget::default())
            .unwrap();
    // "// a.rs\nfn a() {}\n\n": one token per character here.
    assert_eq!(prompt.snippet_tokens, [19, 0, 19]);
    assert_eq!(prompt.context_tokens, 38);
}

#[test]
fn a_missing_fim_token_is_an_error() {
    let special = SpecialTokens { fim_middle: None, ..SPECIAL };
    let input = PromptInput { prefix: "a", suffix: "b", ..PromptInput::default() };
    let err = build(PromptFormat::Starcoder2, FimOrder::Psm, &special, &CharTokenizer, &input, PromptBudget::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "prompt format starcoder2 needs the special token fim middle, which this vocabulary lacks"
    );
}

#[test]
fn the_prefix_window_starts_at_a_line_start_and_fits_the_budget() {
    let prefix: String = (0..200).map(|i| format!("line {i:03}\n")).collect::<String>() + "tail";
    let (window, clipped) = prefix_window(&prefix, 300, &CharTokenizer);
    assert!(window.len() <= 300, "{}", window.len());
    assert!(window.starts_with("line "), "{window:?}");
    assert_eq!(clipped + window.len(), prefix.len());
    assert!(window.ends_with("tail"));
}

#[test]
fn the_prefix_window_stays_put_while_typing() {
    let mut prefix: String = (0..500).map(|i| format!("line {i:03}\n")).collect();
    let (first, _) = prefix_window(&prefix, 1000, &CharTokenizer);
    let first_line = first.lines().next().unwrap().to_owned();
    let mut moves = 0;
    let mut last = first_line.clone();
    for c in "let value = compute(1, 2);\nnext".chars() {
        prefix.push(c);
        let (window, _) = prefix_window(&prefix, 1000, &CharTokenizer);
        let line = window.lines().next().unwrap().to_owned();
        if line != last {
            moves += 1;
            last = line;
        }
    }
    assert!(moves <= 1, "the window start moved {moves} times");
}

#[test]
fn a_huge_cursor_line_is_clipped_by_characters_at_char_boundaries() {
    let prefix = "é".repeat(5000);
    let (window, clipped) = prefix_window(&prefix, 100, &CharTokenizer);
    assert_eq!(window.chars().count(), 200);
    assert_eq!(clipped + window.len(), prefix.len());
    let suffix = "🦀".repeat(5000);
    let (window, clipped) = suffix_window(&suffix, 10, &CharTokenizer);
    assert_eq!(window.chars().count(), 20);
    assert_eq!(clipped + window.len(), suffix.len());
}

#[test]
fn the_suffix_window_ends_at_a_line_end() {
    let suffix = "a\nbb\nccc\ndddd\n";
    assert_eq!(suffix_window(suffix, 6, &CharTokenizer), ("a\nbb\n", 9));
    assert_eq!(suffix_window(suffix, 0, &CharTokenizer), ("", 14));
}

/// [`CharTokenizer`] that says it can be cut, so windows are built from
/// pieces; it counts the characters it tokenizes.
#[derive(Default)]
struct CuttableChars {
    tokenized: std::cell::Cell<usize>,
}

impl Tokenize for CuttableChars {
    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        self.tokenized.set(self.tokenized.get() + text.chars().count());
        CharTokenizer.tokenize(text)
    }

    fn can_cut(&self) -> bool {
        true
    }
}

fn code(lines: usize) -> String {
    (0..lines)
        .map(|i| match i % 5 {
            0 => format!("fn f{i}() {{\n"),
            1 => format!("    let x = {i};\n"),
            2 => "\n".to_owned(),
            3 => "\tif é { x }\n".to_owned(),
            _ => "}\n".to_owned(),
        })
        .collect()
}

#[test]
fn windows_from_pieces_equal_windows_from_whole_text() {
    let text = code(400);
    for at in [0, 1, 17, text.len() / 3, text.len() / 2, text.len() - 3, text.len()] {
        let (prefix, suffix) = text.split_at(at);
        for budget in [0, 1, 5, 40, 300, 1000, 100_000] {
            let (window, clipped) = prefix_window(prefix, budget, &CharTokenizer);
            let from_pieces = window::prefix_tokens(prefix, budget, &CuttableChars::default());
            assert_eq!((from_pieces.tokens, from_pieces.clipped_bytes), (CharTokenizer.tokenize(window), clipped));
            let (window, clipped) = suffix_window(suffix, budget, &CharTokenizer);
            let from_pieces = window::suffix_tokens(suffix, budget, &CuttableChars::default());
            assert_eq!(
                (from_pieces.tokens, from_pieces.clipped_bytes),
                (CharTokenizer.tokenize(window), clipped),
                "suffix at {at}, budget {budget}"
            );
        }
    }
}

#[test]
fn the_prefix_is_tokenized_only_about_as_far_back_as_the_budget_reaches() {
    let text = code(2000);
    let counting = CuttableChars::default();
    window::prefix_tokens(&text, 300, &counting);
    assert!(counting.tokenized.get() < 1500, "{} characters tokenized", counting.tokenized.get());
}

#[test]
fn a_keystroke_tokenizes_only_the_piece_it_changed() {
    let counting = CuttableChars::default();
    let cache = TokenCache::default();
    let tokenizer = cache.tokenizer(&counting);
    let mut prefix = code(200) + "    let value = ";
    let suffix = "\n    value\n}\n";
    let build_with = |prefix: &str, tokenizer: &dyn Tokenize| {
        let input = PromptInput { prefix, suffix, ..PromptInput::default() };
        build(PromptFormat::DeepseekCoder, FimOrder::Psm, &SPECIAL, tokenizer, &input, PromptBudget::default())
    };
    let first = build_with(&prefix, &tokenizer);
    let cold = counting.tokenized.replace(0);
    prefix.push('c');
    let second = build_with(&prefix, &tokenizer);
    let warm = counting.tokenized.get();
    // Repeated lines hit the cache even in the first prompt.
    assert!(cold > 300 && warm <= " let value = c".chars().count(), "cold {cold}, warm {warm}");
    let whole = build_with(&prefix, &CharTokenizer);
    assert_eq!(second, whole);
    assert_ne!(first, second);
}

#[test]
fn the_cache_evicts_the_least_recently_used_half() {
    let cache = TokenCache::with_capacity(4);
    let tokenizer = cache.tokenizer(&CharTokenizer);
    for text in ["a", "b", "c", "d"] {
        tokenizer.tokenize(text);
    }
    tokenizer.tokenize("a");
    tokenizer.tokenize("e");
    assert_eq!(cache.len(), 3, "d and a stay, e is added");
    let before = cache.stats();
    tokenizer.tokenize("a");
    tokenizer.tokenize("d");
    assert_eq!(cache.stats().hit_bytes - before.hit_bytes, 2);
    assert_eq!(cache.stats().miss_bytes, before.miss_bytes);
}
