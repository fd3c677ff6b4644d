//! Where text can be cut so that tokenizing the pieces gives exactly the
//! ids of tokenizing it whole.
//!
//! A BPE tokenizer first splits text into chunks with its pre-tokenizer and
//! then merges bytes within each chunk only, so the ids of a text are the
//! ids of its chunks in order. A cut that falls on a chunk boundary of the
//! whole text, and that leaves each piece with the same chunks it had in
//! the whole, changes nothing. The cuts below are those that hold for
//! every pre-tokenizer in [`CUT_SAFE_PRE_TOKENIZERS`], as llama.cpp
//! implements them (`unicode.cpp`: the GPT-2, Qwen2 and Llama-3 splitters,
//! StarCoder's digit split before GPT-2's, DeepSeek-Coder's newline, letter
//! and punctuation regexes):
//!
//! 1. Before a space or tab that is followed by an ASCII letter or ASCII
//!    punctuation of Unicode category P (`!"#%&'()*,-./:;?@[\]_{}`): the
//!    last blank of an indentation, or the space before a word. Every
//!    pattern that matches a non-blank stops at a blank, so a whitespace
//!    run starts a chunk; GPT-2 and StarCoder split a run before a
//!    non-space as `\s+(?!\S)`, which leaves the run's last character to
//!    start the next chunk (` ?\p{L}+`, ` ?[^\s\p{L}\p{N}]+`); Qwen2 and
//!    Llama-3 end `\s*[\r\n]+` at the last newline and split the blanks the
//!    same way; DeepSeek-Coder isolates newlines and starts `\s?\p{L}+` and
//!    `\s?\p{P}+` at that blank. Digits are left out because StarCoder
//!    isolates them first (the blanks then end their piece whole), and
//!    symbols such as `=` or `<` because DeepSeek-Coder's regexes do not
//!    take the blank before them.
//! 2. At the start of an unindented line whose first character is ASCII
//!    and not blank, when the previous line ends in an ASCII character that
//!    is not blank either: the newline is then a chunk of its own (or ends a
//!    punctuation chunk in Qwen2 and Llama-3), and a lone newline at the end
//!    of a piece is tokenized as it is before a letter. After a blank line
//!    or trailing blanks GPT-2 would keep two whitespace characters
//!    together at the end of a piece, so no cut is made there.
//!
//! A cut depends only on the characters around it, so it holds in any
//! substring that contains them, and a piece between two cuts contains no
//! cut of its own. Pieces are words and short runs of code: while the user
//! types, every piece but the one being typed is the same as a moment ago.
//! `inference/tests/vocab/cuts.rs` checks the rule against the real
//! vocabularies on real code, on every combination of line ends,
//! indentation and first characters, and on random code.

/// `tokenizer.ggml.pre` values whose pre-tokenizer the cuts are proven for.
pub const CUT_SAFE_PRE_TOKENIZERS: &[&str] = &[
    // GPT-2's regex.
    "gpt-2",
    // StarCoder's digit split, then GPT-2's regex.
    "starcoder",
    "refact",
    "smollm",
    "codeshell",
    // Qwen2's regex.
    "qwen2",
    "deepseek-r1-qwen",
    "megrez",
    // Llama-3's regex (Qwen2's with up to three digits per chunk).
    "llama3",
    "llama-v3",
    "llama-bpe",
    // DeepSeek-Coder's newline, letter, punctuation, CJK and digit regexes.
    "deepseek-coder",
];

/// Whether text may be cut before a blank followed by `byte`.
fn starts_cut_word(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || b"!\"#%&'()*,-./:;?@[\\]_{}".contains(&byte)
}

/// The cut points of `text`, ascending, each strictly inside it.
pub fn cut_points(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut cuts = Vec::new();
    for at in 1..bytes.len() {
        let cut = match bytes[at] {
            // Rule 1: the last blank before a word or punctuation.
            b' ' | b'\t' => bytes.get(at + 1).is_some_and(|&next| starts_cut_word(next)),
            // Rule 2: an unindented line after a line without trailing blanks.
            byte => at >= 2 && bytes[at - 1] == b'\n' && byte.is_ascii_graphic() && bytes[at - 2].is_ascii_graphic(),
        };
        if cut {
            cuts.push(at);
        }
    }
    cuts
}

/// `text` cut at its cut points: consecutive byte ranges covering it.
pub fn pieces(text: &str) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let cuts = cut_points(text);
    let ends = cuts.into_iter().chain(std::iter::once(text.len()));
    let mut start = 0;
    ends.filter_map(move |end| {
        let range = start..end;
        start = end;
        (!range.is_empty()).then_some(range)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> Vec<&str> {
        pieces(text).map(|r| &text[r]).collect()
    }

    #[test]
    fn words_and_indented_lines_are_cut_before_their_last_blank() {
        assert_eq!(
            cut("fn f() {\n    let x = 1;\n\tx\n}\n"),
            ["fn", " f()", " {\n   ", " let", " x = 1;\n", "\tx\n", "}\n"]
        );
    }

    #[test]
    fn unindented_lines_are_cut_only_after_a_line_without_trailing_blanks() {
        assert_eq!(cut("a\nb\n\nc  \nd\ne"), ["a\n", "b\n\nc  \nd\n", "e"]);
    }

    #[test]
    fn digits_symbols_and_non_ascii_starts_are_not_cut() {
        assert_eq!(
            cut("x = [\n    1,\n    + 2,\n    é,\n    ok\n]"),
            ["x =", " [\n    1,\n    + 2,\n    é,\n   ", " ok\n", "]"]
        );
        assert_eq!(cut("é\nx"), ["é\nx"]);
        assert_eq!(cut("x\r\ny"), ["x\r\ny"]);
    }

    #[test]
    fn the_text_is_never_cut_at_its_start() {
        assert_eq!(cut("  x\n y"), [" ", " x\n", " y"]);
        assert_eq!(cut(" x"), [" x"]);
        assert_eq!(cut(""), Vec::<&str>::new());
    }
}
