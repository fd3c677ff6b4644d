//! Similar snippets: sliding windows of lines compared with the lines
//! before the cursor by the Jaccard similarity of their identifier sets.
//!
//! Identifiers are hashed to `u32` and kept as sorted, deduplicated
//! vectors, so a comparison is one merge; a file's windows are computed
//! once per version of its text.

use std::ops::Range;

/// Lines in one window.
pub const WINDOW_LINES: usize = 16;
/// Lines between the starts of consecutive windows.
pub const WINDOW_STRIDE: usize = 8;

/// One window of a file.
#[derive(Clone, Debug)]
pub struct Window {
    /// Zero-based lines.
    pub lines: Range<u32>,
    /// Bytes of the text.
    pub bytes: Range<usize>,
    pub tokens: Vec<u32>,
}

/// The windows of `text`.
pub fn windows(text: &str) -> Vec<Window> {
    let starts: Vec<usize> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).filter(|&i| i < text.len()).collect();
    let mut out = Vec::new();
    let mut first = 0;
    while first < starts.len() {
        let last = (first + WINDOW_LINES).min(starts.len());
        let end = starts.get(last).copied().unwrap_or(text.len());
        let bytes = starts[first]..end;
        let tokens = token_set(&text[bytes.clone()]);
        if !tokens.is_empty() {
            out.push(Window { lines: first as u32..last as u32, bytes, tokens });
        }
        if last == starts.len() {
            break;
        }
        first += WINDOW_STRIDE;
    }
    out
}

/// The sorted, deduplicated hashes of the identifiers in `text`.
pub fn token_set(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80) {
                i += 1;
            }
            if i - start >= 2 {
                out.push(fnv1a(&bytes[start..i]));
            }
        } else {
            i += 1;
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// |a ∩ b| / |a ∪ b| of two sorted sets.
pub fn jaccard(a: &[u32], b: &[u32]) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f32 / (a.len() + b.len() - common) as f32
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_windows_score_one_and_disjoint_ones_zero() {
        let a = token_set("let total = price * quantity;");
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(jaccard(&a, &token_set("fn other() {}")), 0.0);
        let half = jaccard(&token_set("alpha beta"), &token_set("beta gamma"));
        assert!((half - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn windows_cover_the_text_with_overlap() {
        let text: String = (0..40).map(|i| format!("line{i}\n")).collect();
        let lines: Vec<_> = windows(&text).iter().map(|w| w.lines.clone()).collect();
        assert_eq!(lines, vec![0..16, 8..24, 16..32, 24..40]);
    }
}
