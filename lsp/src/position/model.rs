//! A deliberately naive reference model of LSP positions over a plain `String`.
//!
//! It shares no code with the rope implementation: it splits lines by hand on
//! `\r\n`, `\r` and `\n` and counts code units by re-encoding each char.

use super::{LspPosition, PositionEncoding};

/// One line of a text, as byte offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    /// The offset of the line's first byte.
    pub start: usize,
    /// The offset just past the line's content, before its line break.
    pub content_end: usize,
}

/// Splits `text` into lines; there is always at least one, possibly empty.
pub(crate) fn lines(text: &str) -> Vec<Line> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let break_len = match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => 2,
            b'\r' | b'\n' => 1,
            _ => 0,
        };
        if break_len == 0 {
            i += 1;
        } else {
            out.push(Line { start, content_end: i });
            i += break_len;
            start = i;
        }
    }
    out.push(Line { start, content_end: bytes.len() });
    out
}

/// Counts the code units of `c` in `enc`.
pub(crate) fn char_units(c: char, enc: PositionEncoding) -> usize {
    match enc {
        PositionEncoding::Utf8 => c.len_utf8(),
        PositionEncoding::Utf16 => c.encode_utf16(&mut [0; 2]).len(),
        PositionEncoding::Utf32 => 1,
    }
}

/// Counts the code units of `s` in `enc`.
pub(crate) fn str_units(s: &str, enc: PositionEncoding) -> usize {
    s.chars().map(|c| char_units(c, enc)).sum()
}

/// Converts a position to a byte offset with the clamping rules of the spec.
pub(crate) fn to_byte(text: &str, pos: LspPosition, enc: PositionEncoding) -> Option<usize> {
    let lines = lines(text);
    let line = pos.line as usize;
    if line > lines.len() {
        return None;
    }
    if line == lines.len() {
        return Some(text.len());
    }
    let l = lines[line];
    let col = pos.character as usize;
    let mut units = 0;
    for (offset, c) in text[l.start..l.content_end].char_indices() {
        let width = char_units(c, enc);
        if units + width > col {
            return Some(l.start + offset);
        }
        units += width;
    }
    Some(l.content_end)
}

/// Returns the row (LSP line) and byte column of a byte offset.
pub(crate) fn byte_to_point(text: &str, byte: usize) -> (usize, usize) {
    let lines = lines(text);
    let row = lines.iter().rposition(|l| l.start <= byte).unwrap_or(0);
    (row, byte - lines[row].start)
}

/// Converts the byte offset of a char boundary to an LSP position.
pub(crate) fn to_lsp(text: &str, byte: usize, enc: PositionEncoding) -> LspPosition {
    let lines = lines(text);
    let row = lines.iter().rposition(|l| l.start <= byte).unwrap_or(0);
    let l = lines[row];
    let end = byte.min(l.content_end);
    LspPosition::new(u32::try_from(row).unwrap(), u32::try_from(str_units(&text[l.start..end], enc)).unwrap())
}

/// Returns whether a byte offset lies between the `\r` and `\n` of a CRLF pair.
pub(crate) fn is_mid_crlf(text: &str, byte: usize) -> bool {
    byte > 0 && text.as_bytes().get(byte - 1) == Some(&b'\r') && text.as_bytes().get(byte) == Some(&b'\n')
}

/// The fragments random texts are built from: ASCII, two-byte, three-byte and
/// four-byte chars (the last a UTF-16 surrogate pair) and all three line breaks.
pub(crate) const FRAGMENTS: &[&str] = &["a", "b", "xy", " ", "é", "ß", "漢", "🦀", "\r\n", "\r", "\n"];

/// Generates texts of up to `max_fragments` fragments.
pub(crate) fn text(max_fragments: usize) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..=max_fragments).prop_map(|parts| parts.concat())
}

/// All three encodings.
pub(crate) const ENCODINGS: [PositionEncoding; 3] =
    [PositionEncoding::Utf8, PositionEncoding::Utf16, PositionEncoding::Utf32];
