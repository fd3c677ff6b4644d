//! The one place where LSP positions are converted to and from rope indices.
//!
//! An LSP position is a zero-based line and a zero-based column counted in the
//! code units of the negotiated [`PositionEncoding`]. Lines are separated by
//! `\n`, `\r\n` or `\r`, which is exactly what ropey counts as line breaks when
//! it is built with the `cr_lines` feature and without `unicode_lines`.
//!
//! Every conversion here runs in O(log n) time: ropey indexes lines, chars,
//! bytes and UTF-16 code units in its tree, so no conversion walks the
//! document or even the line.

use std::fmt;
use std::ops::Range;

use ropey::Rope;

/// The unit in which the `character` of an LSP position is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PositionEncoding {
    /// Columns count UTF-8 bytes.
    Utf8,
    /// Columns count UTF-16 code units; the protocol's default.
    #[default]
    Utf16,
    /// Columns count Unicode scalar values, which are ropey's chars.
    Utf32,
}

impl PositionEncoding {
    /// Parses an LSP `PositionEncodingKind` string such as `"utf-8"`.
    pub fn from_lsp_kind(kind: &str) -> Option<Self> {
        match kind {
            "utf-8" => Some(Self::Utf8),
            "utf-16" => Some(Self::Utf16),
            "utf-32" => Some(Self::Utf32),
            _ => None,
        }
    }

    /// Returns the LSP `PositionEncodingKind` string for this encoding.
    pub fn as_lsp_kind(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Utf16 => "utf-16",
            Self::Utf32 => "utf-32",
        }
    }
}

/// Picks the position encoding from the client's `general.positionEncodings`.
///
/// UTF-8 is preferred because the rope stores UTF-8, then UTF-32 because it
/// counts chars, and UTF-16 is the fallback that every client must support
/// and the default when the client offers nothing.
pub fn negotiate(client_offers: Option<&[String]>) -> PositionEncoding {
    let offers = client_offers.unwrap_or_default();
    let offered = |enc: PositionEncoding| offers.iter().any(|o| o == enc.as_lsp_kind());
    if offered(PositionEncoding::Utf8) {
        PositionEncoding::Utf8
    } else if offered(PositionEncoding::Utf32) {
        PositionEncoding::Utf32
    } else {
        PositionEncoding::Utf16
    }
}

/// A zero-based LSP position whose column is counted in some [`PositionEncoding`].
///
/// The derived ordering compares the line first and then the column, which is
/// the document order of positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LspPosition {
    /// The zero-based line.
    pub line: u32,
    /// The zero-based column in code units of the negotiated encoding.
    pub character: u32,
}

impl LspPosition {
    /// Creates a position from a line and a column.
    pub const fn new(line: u32, character: u32) -> Self {
        Self { line, character }
    }
}

impl fmt::Display for LspPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.character)
    }
}

impl From<tower_lsp_server::ls_types::Position> for LspPosition {
    fn from(pos: tower_lsp_server::ls_types::Position) -> Self {
        Self::new(pos.line, pos.character)
    }
}

impl From<LspPosition> for tower_lsp_server::ls_types::Position {
    fn from(pos: LspPosition) -> Self {
        Self::new(pos.line, pos.character)
    }
}

/// Returns the char index just past the content of `line`, before its line break.
///
/// `line` must be less than `rope.len_lines()`.
fn line_content_end(rope: &Rope, line: usize) -> usize {
    let line_start = rope.line_to_char(line);
    let next_start = rope.line_to_char(line + 1);
    if line + 1 == rope.len_lines() {
        // The last line has no line break.
        return next_start;
    }
    // Every other line ends with exactly one of `\n`, `\r\n` or `\r`.
    let crlf = next_start >= line_start + 2 && rope.char(next_start - 1) == '\n' && rope.char(next_start - 2) == '\r';
    if crlf { next_start - 2 } else { next_start - 1 }
}

/// Converts an LSP position to a rope char index.
///
/// The LSP specification says: "If the character value is greater than the
/// line length it defaults back to the line length." So a column past the end
/// of the line's content clamps to the end of that content, before the line
/// break; a column inside a multi-byte UTF-8 char or inside a UTF-16 surrogate
/// pair rounds down to the start of that char. The result therefore never
/// lies between the `\r` and the `\n` of a CRLF pair.
///
/// A line equal to the number of lines (one past the last line) clamps to the
/// end of the document, which lets clients address "the end" as the start of
/// a line that does not exist; a line further out returns `None`.
pub fn to_char_idx(rope: &Rope, pos: LspPosition, enc: PositionEncoding) -> Option<usize> {
    let line = pos.line as usize;
    let line_count = rope.len_lines();
    if line > line_count {
        return None;
    }
    if line == line_count {
        return Some(rope.len_chars());
    }
    let line_start = rope.line_to_char(line);
    let content_end = line_content_end(rope, line);
    let col = pos.character as usize;
    let idx = match enc {
        PositionEncoding::Utf32 => line_start + col.min(content_end - line_start),
        PositionEncoding::Utf8 => {
            let start = rope.char_to_byte(line_start);
            let end = rope.char_to_byte(content_end);
            if col >= end - start {
                content_end
            } else {
                // A byte inside a char maps to that char, which rounds down.
                rope.byte_to_char(start + col)
            }
        }
        PositionEncoding::Utf16 => {
            let start = rope.char_to_utf16_cu(line_start);
            let end = rope.char_to_utf16_cu(content_end);
            if col >= end - start {
                content_end
            } else {
                // A code unit inside a surrogate pair maps to its char, which rounds down.
                rope.utf16_cu_to_char(start + col)
            }
        }
    };
    Some(idx)
}

/// Converts a rope char index to an LSP position.
///
/// Returns `None` when `char_idx` is past the end of the rope or when the line
/// or column does not fit in a `u32`. An index between the `\r` and the `\n`
/// of a CRLF pair is not a valid LSP position; it maps to the end of the
/// line's content, before the `\r`, which is what [`to_char_idx`] clamps to.
pub fn to_lsp(rope: &Rope, char_idx: usize, enc: PositionEncoding) -> Option<LspPosition> {
    if char_idx > rope.len_chars() {
        return None;
    }
    let line = rope.char_to_line(char_idx);
    let line_start = rope.line_to_char(line);
    let idx = char_idx.min(line_content_end(rope, line));
    let col = match enc {
        PositionEncoding::Utf32 => idx - line_start,
        PositionEncoding::Utf8 => rope.char_to_byte(idx) - rope.char_to_byte(line_start),
        PositionEncoding::Utf16 => rope.char_to_utf16_cu(idx) - rope.char_to_utf16_cu(line_start),
    };
    Some(LspPosition::new(u32::try_from(line).ok()?, u32::try_from(col).ok()?))
}

/// Converts an LSP position to a rope byte offset, clamping like [`to_char_idx`].
pub fn to_byte_offset(rope: &Rope, pos: LspPosition, enc: PositionEncoding) -> Option<usize> {
    to_char_idx(rope, pos, enc).map(|idx| rope.char_to_byte(idx))
}

/// Converts an LSP range to a rope char range, clamping like [`to_char_idx`].
///
/// Returns `None` when `start` comes after `end` in document order (even if
/// both clamp to the same index) or when either line is out of range.
pub fn range_to_char_range(
    rope: &Rope,
    start: LspPosition,
    end: LspPosition,
    enc: PositionEncoding,
) -> Option<Range<usize>> {
    if start > end {
        return None;
    }
    // Clamping is monotonic, so ordered positions give an ordered range.
    Some(to_char_idx(rope, start, enc)?..to_char_idx(rope, end, enc)?)
}

/// Converts a byte offset to a (row, byte column) pair, as tree-sitter points are.
///
/// Rows are LSP lines, so a lone `\r` starts a new row here, whereas
/// tree-sitter itself only counts `\n`; the two agree for `\n` and `\r\n`
/// text. A byte inside a char is not rejected, because the column is bytes.
/// Returns `None` when `byte` is past the end of the rope.
pub fn byte_to_row_col(rope: &Rope, byte: usize) -> Option<(usize, usize)> {
    if byte > rope.len_bytes() {
        return None;
    }
    let row = rope.byte_to_line(byte);
    Some((row, byte - rope.line_to_byte(row)))
}

#[cfg(test)]
pub(crate) mod model;
#[cfg(test)]
mod tests;
