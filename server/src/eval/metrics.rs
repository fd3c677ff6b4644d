//! Text metrics of one completion against its ground truth, and summary
//! statistics.
//!
//! Exact match follows SantaCoder's "HumanEval FIM" metric: both texts are
//! compared with surrounding whitespace stripped (and, for several lines,
//! trailing whitespace of each line). Edit similarity is the telemetry
//! service's definition, 1 − Levenshtein / max length over characters on at
//! most the first 2,000 characters of each text, so offline and online
//! numbers agree. Identifier match is CrossCodeEval's: the identifiers of
//! both texts, compared as sequences (exact match) and as multisets (F1).

use std::collections::HashMap;

/// Texts longer than this many characters are cut before the edit distance.
const EDIT_SIMILARITY_CHARS: usize = 2000;

/// Python keywords, which are not identifiers for identifier match.
const KEYWORDS: [&str; 35] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
    "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
    "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

/// The text as metrics see it: trailing whitespace of every line removed,
/// then leading and trailing blank space of the whole.
pub fn normalize(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim().to_owned()
}

pub fn exact_match(prediction: &str, truth: &str) -> bool {
    normalize(prediction) == normalize(truth)
}

/// 1 − Levenshtein distance / the longer length, over characters of the
/// normalized texts; 1 when both are empty.
pub fn edit_similarity(prediction: &str, truth: &str) -> f64 {
    let a: Vec<char> = normalize(prediction).chars().take(EDIT_SIMILARITY_CHARS).collect();
    let b: Vec<char> = normalize(truth).chars().take(EDIT_SIMILARITY_CHARS).collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    1.0 - levenshtein(&a, &b) as f64 / longest as f64
}

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The identifiers of `text` in order: words of letters, digits and `_`
/// that do not start with a digit, keywords excluded.
pub fn identifiers(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        let word_char = c == '_' || c.is_alphanumeric();
        match (start, word_char) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let word = &text[s..i];
                if !word.starts_with(|c: char| c.is_ascii_digit()) && !KEYWORDS.contains(&word) {
                    out.push(word);
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Identifier exact match and F1 of `prediction` against `truth`. Two texts
/// without identifiers match fully.
pub fn identifier_match(prediction: &str, truth: &str) -> (bool, f64) {
    let predicted = identifiers(prediction);
    let expected = identifiers(truth);
    if predicted.is_empty() && expected.is_empty() {
        return (true, 1.0);
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &expected {
        *counts.entry(id).or_default() += 1;
    }
    let mut common = 0;
    for id in &predicted {
        if let Some(n) = counts.get_mut(id).filter(|n| **n > 0) {
            *n -= 1;
            common += 1;
        }
    }
    let f1 = if common == 0 {
        0.0
    } else {
        let precision = common as f64 / predicted.len() as f64;
        let recall = common as f64 / expected.len() as f64;
        2.0 * precision * recall / (precision + recall)
    };
    (predicted == expected, f1)
}

/// The `p`-th percentile (0–100) of `values`, interpolating linearly between
/// the two nearest ranks; `None` when there are no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn exact_match_ignores_surrounding_whitespace_only() {
        assert!(exact_match("    return x  \n", "return x"));
        assert!(exact_match("a\n  b   \n\n", "a\n  b"));
        assert!(!exact_match("return  x", "return x"));
        assert!(!exact_match("a\nb", "a\n  b"));
    }

    #[test]
    fn edit_similarity_is_one_minus_normalized_levenshtein() {
        let cases = [("kitten", "sitting"), ("", ""), ("", "abc"), ("return x", "return x"), ("héllo", "hello")];
        let text: Vec<String> =
            cases.iter().map(|(a, b)| format!("{a:?} {b:?} {:.4}", edit_similarity(a, b))).collect();
        expect![[r#"
            "kitten" "sitting" 0.5714
            "" "" 1.0000
            "" "abc" 0.0000
            "return x" "return x" 1.0000
            "héllo" "hello" 0.8000"#]]
        .assert_eq(&text.join("\n"));
    }

    #[test]
    fn identifiers_skip_keywords_and_numbers() {
        expect![[r#"["x", "self", "_cache", "get", "key2", "default"]"#]]
            .assert_eq(&format!("{:?}", identifiers("return x or self._cache.get(key2, default=3.5e2)")));
        assert_eq!(identifier_match("f(a, b)", "f(a, b)"), (true, 1.0));
        assert_eq!(identifier_match("", "  "), (true, 1.0));
        let (em, f1) = identifier_match("f(a)", "f(a, b)");
        assert!(!em);
        assert!((f1 - 0.8).abs() < 1e-9, "{f1}");
        assert_eq!(identifier_match("g()", "f()"), (false, 0.0));
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let values = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&values, 50.0), Some(2.5));
        assert_eq!(percentile(&values, 100.0), Some(4.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(mean([1.0, 2.0]), Some(1.5));
        assert_eq!(mean([]), None);
    }
}
