//! Open documents, stored as ropes and edited with LSP content changes.

use std::collections::HashMap;
use std::fmt;

use ropey::Rope;

use crate::position::{self, LspPosition, PositionEncoding};

/// A location in a document as tree-sitter counts it: a row and a byte column.
///
/// Rows are LSP lines (see [`position::byte_to_row_col`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Point {
    /// The zero-based row.
    pub row: usize,
    /// The zero-based column in bytes from the start of the row.
    pub column_byte: usize,
}

/// The effect of one edit, holding exactly what a tree-sitter `InputEdit` needs.
///
/// The start and old end are positions in the text before the edit; the new
/// end is a position in the text after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextEdit {
    /// The byte offset where the edit starts.
    pub start_byte: usize,
    /// The byte offset where the replaced text ended.
    pub old_end_byte: usize,
    /// The byte offset where the inserted text ends.
    pub new_end_byte: usize,
    /// The point where the edit starts.
    pub start_point: Point,
    /// The point where the replaced text ended.
    pub old_end_point: Point,
    /// The point where the inserted text ends.
    pub new_end_point: Point,
}

/// Why an edit or a lookup could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// A position names a line beyond the end of the document.
    LineOutOfRange {
        /// The line that was asked for.
        line: u32,
        /// The number of lines in the document.
        line_count: usize,
    },
    /// A range starts after it ends.
    ReversedRange {
        /// The start of the range.
        start: LspPosition,
        /// The end of the range.
        end: LspPosition,
    },
    /// No document is open under this URI.
    UnknownDocument {
        /// The URI that was asked for.
        uri: String,
    },
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineOutOfRange { line, line_count } => {
                write!(f, "line {line} is out of range for a document of {line_count} lines")
            }
            Self::ReversedRange { start, end } => {
                write!(f, "range start {start} is after its end {end}")
            }
            Self::UnknownDocument { uri } => write!(f, "document {uri} is not open"),
        }
    }
}

impl std::error::Error for DocumentError {}

/// One content change of a `textDocument/didChange` notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentChange {
    /// The replaced range, or `None` to replace the whole document.
    pub range: Option<(LspPosition, LspPosition)>,
    /// The new text of the range or of the document.
    pub text: String,
}

impl From<tower_lsp_server::ls_types::TextDocumentContentChangeEvent> for ContentChange {
    fn from(event: tower_lsp_server::ls_types::TextDocumentContentChangeEvent) -> Self {
        Self { range: event.range.map(|r| (r.start.into(), r.end.into())), text: event.text }
    }
}

/// An open document.
#[derive(Debug, Clone)]
pub struct Document {
    text: Rope,
    version: i32,
    language_id: String,
}

impl Document {
    /// Creates a document from the text of a `textDocument/didOpen` notification.
    pub fn new(text: &str, version: i32, language_id: impl Into<String>) -> Self {
        Self { text: Rope::from_str(text), version, language_id: language_id.into() }
    }

    /// Returns the text; cloning a rope is cheap.
    pub fn text(&self) -> &Rope {
        &self.text
    }

    /// Returns the version the client last gave.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// Sets the version.
    pub fn set_version(&mut self, version: i32) {
        self.version = version;
    }

    /// Returns the LSP language identifier, such as `rust`.
    pub fn language_id(&self) -> &str {
        &self.language_id
    }

    /// Returns the point of a byte offset that is known to be in range.
    fn point(&self, byte: usize) -> Point {
        let (row, column_byte) =
            position::byte_to_row_col(&self.text, byte).expect("byte offsets passed here are within the document");
        Point { row, column_byte }
    }

    /// Replaces `range`, or the whole text when `range` is `None`, by `new_text`.
    ///
    /// Positions are clamped as [`position::to_char_idx`] describes. A range
    /// that starts after it ends, or that names a line beyond the end of the
    /// document, is an error and leaves the document unchanged.
    pub fn apply_change(
        &mut self,
        range: Option<(LspPosition, LspPosition)>,
        new_text: &str,
        enc: PositionEncoding,
    ) -> Result<TextEdit, DocumentError> {
        let chars = match range {
            None => 0..self.text.len_chars(),
            Some((start, end)) => {
                if start > end {
                    return Err(DocumentError::ReversedRange { start, end });
                }
                let idx = |p: LspPosition| {
                    position::to_char_idx(&self.text, p, enc)
                        .ok_or(DocumentError::LineOutOfRange { line: p.line, line_count: self.text.len_lines() })
                };
                idx(start)?..idx(end)?
            }
        };
        let start_byte = self.text.char_to_byte(chars.start);
        let old_end_byte = self.text.char_to_byte(chars.end);
        let start_point = self.point(start_byte);
        let old_end_point = self.point(old_end_byte);
        if range.is_none() {
            self.text = Rope::from_str(new_text);
        } else {
            self.text.remove(chars.clone());
            self.text.insert(chars.start, new_text);
        }
        let new_end_byte = start_byte + new_text.len();
        Ok(TextEdit {
            start_byte,
            old_end_byte,
            new_end_byte,
            start_point,
            old_end_point,
            new_end_point: self.point(new_end_byte),
        })
    }

    /// Returns the text before and after `char_idx`, clipped to char windows.
    ///
    /// The prefix holds at most `max_prefix_chars` chars and the suffix at
    /// most `max_suffix_chars`. When a window cuts a line, it shrinks to the
    /// nearest line start inside it, unless that would leave it empty, so the
    /// model sees whole lines where possible; it never keeps half of a CRLF
    /// pair. An index past the end is treated as the end. This costs O(log n)
    /// plus the size of the windows.
    pub fn prefix_suffix(&self, char_idx: usize, max_prefix_chars: usize, max_suffix_chars: usize) -> (String, String) {
        let rope = &self.text;
        let len = rope.len_chars();
        let cursor = char_idx.min(len);
        let mid_crlf = |i: usize| i > 0 && rope.char(i - 1) == '\r' && rope.get_char(i) == Some('\n');

        let mut start = cursor.saturating_sub(max_prefix_chars);
        let start_line = rope.char_to_line(start);
        if rope.line_to_char(start_line) != start {
            // The window starts mid-line: move it to the next line start if
            // that keeps some text before the cursor.
            let next_line_start = rope.line_to_char(start_line + 1);
            if next_line_start < cursor {
                start = next_line_start;
            } else if start < cursor && mid_crlf(start) {
                start += 1;
            }
        }

        let mut end = cursor + max_suffix_chars;
        if end >= len {
            end = len;
        } else {
            let end_line_start = rope.line_to_char(rope.char_to_line(end));
            if end_line_start > cursor {
                // The window ends mid-line: cut it back to that line's start.
                end = end_line_start;
            } else if end > cursor && mid_crlf(end) {
                end -= 1;
            }
        }

        (rope.slice(start..cursor).to_string(), rope.slice(cursor..end).to_string())
    }
}

/// The documents that the client has opened, by URI.
#[derive(Debug, Clone, Default)]
pub struct DocumentStore {
    documents: HashMap<String, Document>,
}

impl DocumentStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a document, returning the one it replaces if the URI was open.
    pub fn open(&mut self, uri: impl Into<String>, document: Document) -> Option<Document> {
        self.documents.insert(uri.into(), document)
    }

    /// Closes a document, returning it if it was open.
    pub fn close(&mut self, uri: &str) -> Option<Document> {
        self.documents.remove(uri)
    }

    /// Returns an open document.
    pub fn get(&self, uri: &str) -> Option<&Document> {
        self.documents.get(uri)
    }

    /// Returns an open document mutably.
    pub fn get_mut(&mut self, uri: &str) -> Option<&mut Document> {
        self.documents.get_mut(uri)
    }

    /// Every open document with its URI.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Document)> {
        self.documents.iter().map(|(uri, document)| (uri.as_str(), document))
    }

    /// Returns the number of open documents.
    pub fn len(&self) -> usize {
        self.documents.len()
    }

    /// Returns whether no document is open.
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Applies the changes of one `textDocument/didChange` notification in order.
    ///
    /// The changes are applied all or none: if one fails, the document is
    /// restored (cloning a rope is O(1)) and keeps its version. On success the
    /// version is set to `version` even when it is not newer than the stored
    /// one, because editors sometimes resend, and the edits are returned in
    /// order for incremental reparsing.
    pub fn change(
        &mut self,
        uri: &str,
        version: i32,
        changes: &[ContentChange],
        enc: PositionEncoding,
    ) -> Result<Vec<TextEdit>, DocumentError> {
        let document =
            self.documents.get_mut(uri).ok_or_else(|| DocumentError::UnknownDocument { uri: uri.to_owned() })?;
        let backup = document.text.clone();
        let mut edits = Vec::with_capacity(changes.len());
        for change in changes {
            match document.apply_change(change.range, &change.text, enc) {
                Ok(edit) => edits.push(edit),
                Err(err) => {
                    document.text = backup;
                    return Err(err);
                }
            }
        }
        document.version = version;
        Ok(edits)
    }
}

#[cfg(test)]
mod tests;
