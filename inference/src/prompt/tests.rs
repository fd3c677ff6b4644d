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
