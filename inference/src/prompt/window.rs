//! Prefix and suffix windows: the text around the cursor that fits a token
//! budget, cut at line starts, and its token ids.
//!
//! With a tokenizer that can be cut ([`Tokenize::can_cut`]),
//! the text is tokenized piece by piece from the cursor outwards, only as
//! far as the budget reaches, and the window's ids are the pieces' ids put
//! together: each byte is tokenized once, and a [`super::TokenCache`] in
//! front of the tokenizer answers the pieces it saw in the last prompt.
//! Other tokenizers count line by line and tokenize the window whole.

use std::collections::HashMap;
use std::ops::Range;

use super::{TokenId, Tokenize, cut};

/// The prefix window's first line moves in steps of this many lines.
pub const LINE_QUANTUM: usize = 32;

/// A window's token ids and the bytes of text left out beyond it.
pub(crate) struct WindowTokens {
    pub tokens: Vec<TokenId>,
    pub clipped_bytes: usize,
}

/// Bytes of text per token assumed when choosing how much text to tokenize
/// in one call; more than most code has, so one call usually suffices.
const BYTES_PER_TOKEN: usize = 4;

/// The token ids of [`prefix_window`]'s window, computed from pieces where
/// the tokenizer allows.
pub(crate) fn prefix_tokens(prefix: &str, budget: usize, tokenizer: &dyn Tokenize) -> WindowTokens {
    if !tokenizer.can_cut() {
        let (window, clipped_bytes) = prefix_window(prefix, budget, tokenizer);
        return WindowTokens { tokens: tokenizer.tokenize(window), clipped_bytes };
    }
    let pieces = Pieces::new(prefix);
    let ranges = &pieces.ranges;
    let starts = line_starts(prefix);
    // Tokenize pieces from the cursor backwards, a batch at a time, until
    // the budget is spent; `ids` holds the ids of pieces `first..`.
    let mut ids: Vec<Vec<TokenId>> = Vec::new();
    let mut first = ranges.len();
    let mut used = 0;
    while first > 0 && used <= budget {
        let from = ranges[first - 1].end.saturating_sub(budget.max(16) * BYTES_PER_TOKEN);
        let start = ranges[..first - 1].partition_point(|r| r.start < from);
        let mut batch = tokenizer.tokenize_pieces(prefix, &ranges[start..first]);
        used += batch.iter().map(Vec::len).sum::<usize>();
        batch.append(&mut ids);
        ids = batch;
        first = start;
    }
    // `after[i]` counts the tokens from piece `first + i` to the end.
    let mut after = vec![0; ids.len() + 1];
    for i in (0..ids.len()).rev() {
        after[i] = after[i + 1] + ids[i].len();
    }
    if first == 0 && after[0] <= budget {
        return WindowTokens { tokens: ids.concat(), clipped_bytes: 0 };
    }
    let covered = ranges.get(first).map_or(prefix.len(), |r| r.start);
    // The window that starts at a line start: the text up to the next cut,
    // then whole pieces. Heads are mostly indentation, counted once each.
    let mut head_counts: HashMap<&str, usize> = HashMap::new();
    let mut count_at = |start: usize| -> usize {
        let next = pieces.next_cut(start);
        let head = &prefix[start..ranges.get(next).map_or(prefix.len(), |r| r.start)];
        let head_count = *head_counts.entry(head).or_insert_with(|| tokenizer.tokenize(head).len());
        head_count + after[next - first]
    };
    // The earliest line start from which everything up to the cursor fits.
    let mut first_fitting = starts.len();
    for (i, &start) in starts.iter().enumerate().rev() {
        if start < covered || count_at(start) > budget {
            break;
        }
        first_fitting = i;
    }
    let mut line = quantized_first_line(first_fitting, starts.len());
    loop {
        // The cursor's own line is always kept, clipped by characters if
        // it alone is over budget.
        if line >= starts.len() - 1 {
            let start = starts[starts.len() - 1];
            let tail = clip_front_chars(&prefix[start..], budget * 2);
            return WindowTokens { tokens: tokenizer.tokenize(tail), clipped_bytes: prefix.len() - tail.len() };
        }
        let start = starts[line];
        if count_at(start) <= budget {
            let next = pieces.next_cut(start);
            let mut tokens = tokenizer.tokenize(&prefix[start..ranges.get(next).map_or(prefix.len(), |r| r.start)]);
            for piece in &ids[next - first..] {
                tokens.extend_from_slice(piece);
            }
            return WindowTokens { tokens, clipped_bytes: start };
        }
        line += LINE_QUANTUM;
    }
}

/// The token ids of [`suffix_window`]'s window, computed from pieces where
/// the tokenizer allows.
pub(crate) fn suffix_tokens(suffix: &str, budget: usize, tokenizer: &dyn Tokenize) -> WindowTokens {
    if !tokenizer.can_cut() || budget == 0 {
        let (window, clipped_bytes) = suffix_window(suffix, budget, tokenizer);
        return WindowTokens { tokens: tokenizer.tokenize(window), clipped_bytes };
    }
    let pieces = Pieces::new(suffix);
    let ranges = &pieces.ranges;
    // Tokenize pieces from the cursor onwards, a batch at a time, until the
    // budget is spent.
    let mut ids: Vec<Vec<TokenId>> = Vec::new();
    let mut used = 0;
    while ids.len() < ranges.len() && used <= budget {
        let to = ranges[ids.len()].start + budget.max(16) * BYTES_PER_TOKEN;
        let end = ids.len() + 1 + ranges[ids.len() + 1..].partition_point(|r| r.end <= to);
        let batch = tokenizer.tokenize_pieces(suffix, &ranges[ids.len()..end]);
        used += batch.iter().map(Vec::len).sum::<usize>();
        ids.extend(batch);
    }
    let covered = ranges.get(ids.len()).map_or(suffix.len(), |r| r.start);
    if covered == suffix.len() && used <= budget {
        return WindowTokens { tokens: ids.concat(), clipped_bytes: 0 };
    }
    // The latest line end within the tokenized pieces whose window fits:
    // whole pieces, then the text from the last cut to the line end.
    let mut before = vec![0; ids.len() + 1];
    for (i, piece) in ids.iter().enumerate() {
        before[i + 1] = before[i] + piece.len();
    }
    let ends = suffix[..covered].match_indices('\n').map(|(i, _)| i + 1).rev();
    for end in ends {
        let last = pieces.last_cut(end);
        if before[last] > budget {
            continue;
        }
        let tail = tokenizer.tokenize(&suffix[ranges[last].start..end]);
        if before[last] + tail.len() <= budget {
            let mut tokens: Vec<TokenId> = ids[..last].concat();
            tokens.extend(tail);
            return WindowTokens { tokens, clipped_bytes: suffix.len() - end };
        }
    }
    // The rest of the cursor's line alone is over budget.
    let line = suffix.split_inclusive('\n').next().unwrap_or("");
    let head = clip_back_chars(line, budget * 2);
    WindowTokens { tokens: tokenizer.tokenize(head), clipped_bytes: suffix.len() - head.len() }
}

/// A text cut at its cut points.
struct Pieces {
    ranges: Vec<Range<usize>>,
}

impl Pieces {
    fn new(text: &str) -> Pieces {
        Pieces { ranges: cut::pieces(text).collect() }
    }

    /// The index of the first piece that starts at or after `at`.
    fn next_cut(&self, at: usize) -> usize {
        self.ranges.partition_point(|r| r.start < at)
    }

    /// The index of the piece that holds the byte before `end`.
    fn last_cut(&self, end: usize) -> usize {
        self.ranges.partition_point(|r| r.start < end) - 1
    }
}

/// The first line of the prefix window, given the first line from which
/// the rest fits: rounded up to a multiple of the quantum, which is halved
/// while that would throw away more than half of what fits.
fn quantized_first_line(first_fitting: usize, lines: usize) -> usize {
    let fitting = lines - first_fitting;
    let mut quantum = LINE_QUANTUM;
    while quantum > 1 && quantum * 2 > fitting {
        quantum /= 2;
    }
    first_fitting.div_ceil(quantum) * quantum
}

/// The end of `prefix` that fits `budget` tokens, starting at a line start
/// that moves in steps of [`LINE_QUANTUM`] lines. Returns the window and the
/// number of bytes left out before it.
pub fn prefix_window<'a>(prefix: &'a str, budget: usize, tokenizer: &dyn Tokenize) -> (&'a str, usize) {
    let starts = line_starts(prefix);
    // Count tokens line by line from the cursor backwards until the budget
    // is spent. Line-wise counts can differ slightly from the window's own
    // count, so the window is checked again below.
    let mut used = 0;
    let mut first_fitting = starts.len();
    for (i, &start) in starts.iter().enumerate().rev() {
        let end = starts.get(i + 1).copied().unwrap_or(prefix.len());
        used += tokenizer.tokenize(&prefix[start..end]).len();
        if used > budget {
            break;
        }
        first_fitting = i;
    }
    if first_fitting == 0 {
        return (prefix, 0);
    }
    let mut line = quantized_first_line(first_fitting, starts.len());
    loop {
        if line >= starts.len() - 1 {
            let start = starts[starts.len() - 1];
            let tail = clip_front_chars(&prefix[start..], budget * 2);
            return (tail, prefix.len() - tail.len());
        }
        let start = starts[line];
        if tokenizer.tokenize(&prefix[start..]).len() <= budget {
            return (&prefix[start..], start);
        }
        line += LINE_QUANTUM;
    }
}

/// The start of `suffix` that fits `budget` tokens, ending at a line end.
pub fn suffix_window<'a>(suffix: &'a str, budget: usize, tokenizer: &dyn Tokenize) -> (&'a str, usize) {
    if budget == 0 {
        return ("", suffix.len());
    }
    let mut used = 0;
    let mut end = 0;
    for line in suffix.split_inclusive('\n') {
        used += tokenizer.tokenize(line).len();
        if used > budget {
            break;
        }
        end += line.len();
    }
    if end == 0 {
        // The rest of the cursor's line alone is over budget.
        let line = suffix.split_inclusive('\n').next().unwrap_or("");
        let head = clip_back_chars(line, budget * 2);
        return (head, suffix.len() - head.len());
    }
    (&suffix[..end], suffix.len() - end)
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1).filter(|&i| i < text.len())).collect()
}

/// The last `max_chars` characters of `text`.
fn clip_front_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().rev().nth(max_chars.saturating_sub(1)) {
        Some((i, _)) if max_chars > 0 => &text[i..],
        _ if max_chars == 0 => "",
        _ => text,
    }
}

/// The first `max_chars` characters of `text`.
fn clip_back_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
