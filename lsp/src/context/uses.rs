//! The identifiers used near the cursor, closest first, with what a
//! lookup needs of each: the qualifier before it (`shapes.` in
//! `shapes.area`), whether it is called, whether it is assigned.
//!
//! This is a lexer, not a parser: it skips strings and line comments and
//! reads `a.b`, `a::b` and `a->b`, which is all retrieval needs, and it
//! works on text that does not parse yet.

use std::collections::HashSet;

use super::lang::Lang;

/// Lines above the cursor that count as near.
const LINES_BEFORE: usize = 24;
/// Lines below the cursor that count as near.
const LINES_AFTER: usize = 6;

/// One use of an identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Use<'t> {
    pub qualifier: Option<&'t str>,
    /// Empty for a qualifier followed by the cursor, as in `shapes.|`.
    pub name: &'t str,
    /// Followed by `(`.
    pub call: bool,
    /// Assigned to somewhere near the cursor: a local variable.
    pub assigned: bool,
    /// Touching the cursor: the identifier being typed.
    pub at_cursor: bool,
    distance: usize,
}

impl Use<'_> {
    /// Whether the name probably refers to something defined elsewhere: a
    /// call, a capitalized type or constant, a member of something; and not
    /// a local variable.
    pub fn looks_external(&self) -> bool {
        let capitalized = self.name.starts_with(|c: char| c.is_ascii_uppercase());
        !self.assigned && (self.call || capitalized || self.qualifier.is_some())
    }
}

/// The identifiers used near byte `cursor` of `text`, closest first.
pub fn uses_near(text: &str, cursor: usize, lang: Lang) -> Vec<Use<'_>> {
    let bytes = text.as_bytes();
    let mut start = cursor;
    for _ in 0..=LINES_BEFORE {
        start = text[..start].rfind('\n').unwrap_or_default();
        if start == 0 {
            break;
        }
    }
    let mut end = cursor;
    for _ in 0..LINES_AFTER {
        match text[end..].find('\n') {
            Some(i) => end += i + 1,
            None => {
                end = text.len();
                break;
            }
        }
    }
    // Lines are counted from `start`; only differences matter.
    let cursor_line = text[start..cursor].matches('\n').count();
    let mut line = 0;
    let mut out: Vec<Use<'_>> = Vec::new();
    let mut assigned = HashSet::new();
    // The previous two significant tokens: an identifier and a separator.
    let mut previous_ident: Option<&str> = None;
    let mut after_separator = false;
    let mut i = start;
    while i < end {
        let b = bytes[i];
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'"' | b'`' => i = skip_string(bytes, i, b),
            b'\'' if lang != Lang::Rust => i = skip_string(bytes, i, b),
            b'#' if lang == Lang::Python => i = skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => i = skip_line(bytes, i),
            b'.' => {
                after_separator = previous_ident.is_some();
                i += 1;
                if after_separator && i == cursor {
                    out.push(at(previous_ident, "", cursor_line.abs_diff(line), true));
                }
                continue;
            }
            b':' if bytes.get(i + 1) == Some(&b':') => {
                after_separator = previous_ident.is_some();
                i += 2;
                if after_separator && i == cursor {
                    out.push(at(previous_ident, "", cursor_line.abs_diff(line), true));
                }
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'>') => {
                after_separator = previous_ident.is_some();
                i += 2;
                continue;
            }
            _ if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                let word_start = i;
                while i < end && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80) {
                    i += 1;
                }
                let word = &text[word_start..i];
                let rest = text[i..end].trim_start_matches([' ', '\t']);
                let qualifier = if after_separator { previous_ident } else { None };
                if rest.starts_with('=') && !rest.starts_with("==") || rest.starts_with(":=") {
                    assigned.insert(word);
                }
                if word.len() >= 2 && !lang.is_keyword(word) && !word.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
                    let mut u = at(qualifier, word, cursor_line.abs_diff(line), i == cursor);
                    u.call = rest.starts_with('(');
                    // Lines below the cursor count a little less than lines above.
                    u.distance = cursor_line.abs_diff(line) * 2 + usize::from(word_start > cursor);
                    out.push(u);
                }
                previous_ident = Some(word);
                after_separator = false;
                continue;
            }
            _ => i += 1,
        }
        previous_ident = None;
        after_separator = false;
    }
    for u in &mut out {
        u.assigned = u.qualifier.is_none() && assigned.contains(u.name);
    }
    // Closest first; on one line, the later use first (it is closer to the
    // end of the typed text).
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by_key(|&k| (out[k].distance, std::cmp::Reverse(k)));
    order.into_iter().map(|k| out[k]).collect()
}

fn at<'t>(qualifier: Option<&'t str>, name: &'t str, lines: usize, at_cursor: bool) -> Use<'t> {
    Use { qualifier, name, call: false, assigned: false, at_cursor, distance: lines * 2 }
}

/// The index after a string that starts at `i`, or the end of its line.
fn skip_string(bytes: &[u8], i: usize, quote: u8) -> usize {
    let mut j = i + 1;
    while j < bytes.len() && bytes[j] != b'\n' {
        match bytes[j] {
            b'\\' => j += 2,
            b if b == quote => return j + 1,
            _ => j += 1,
        }
    }
    j.min(bytes.len())
}

fn skip_line(bytes: &[u8], i: usize) -> usize {
    bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p)
}
