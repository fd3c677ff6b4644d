//! Open documents as the context engine holds them: text and syntax tree,
//! kept in step with the editor by tree-sitter's incremental reparse.
//!
//! Each LSP content change is replayed on the text and described to the
//! old tree as an `InputEdit` (byte offsets and row/column points), and
//! the whole notification is then reparsed once against the edited tree.

use tree_sitter::{InputEdit, Point, Tree};

use super::lang::Lang;
use super::symbols::FileSymbols;
use crate::document::TextEdit;

/// An open document: its text, its tree and its symbols.
pub struct ParsedFile {
    pub lang: Lang,
    text: String,
    tree: Tree,
    symbols: FileSymbols,
    /// The number of `\r` bytes in `text`. While it is zero, LSP lines are
    /// tree-sitter rows and the points of a [`TextEdit`] can be used as is.
    carriage_returns: usize,
    /// Set by the owner on every change, so that caches can tell texts apart.
    pub revision: u64,
}

impl ParsedFile {
    /// Parses `text` from scratch.
    pub fn new(lang: Lang, text: String) -> Self {
        let tree = parse(lang, &text, None);
        let symbols = FileSymbols::extract(lang, &tree, &text);
        let carriage_returns = count(&text, b'\r');
        ParsedFile { lang, text, tree, symbols, carriage_returns, revision: 0 }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    pub fn symbols(&self) -> &FileSymbols {
        &self.symbols
    }

    /// Applies the edits of one `didChange` notification, each with the text
    /// it inserted, then reparses incrementally and extracts the symbols.
    ///
    /// Returns false, and leaves the document as it was, when an edit does
    /// not fit the text (the caller then replaces the whole text).
    pub fn apply(&mut self, edits: &[(TextEdit, &str)]) -> bool {
        let fits = |text: &str, e: &TextEdit| {
            e.start_byte <= e.old_end_byte
                && e.old_end_byte <= text.len()
                && text.is_char_boundary(e.start_byte)
                && text.is_char_boundary(e.old_end_byte)
        };
        let mut text = self.text.clone();
        let mut carriage_returns = self.carriage_returns;
        let mut input_edits = Vec::with_capacity(edits.len());
        for (edit, inserted) in edits {
            if !fits(&text, edit) || edit.new_end_byte != edit.start_byte + inserted.len() {
                return false;
            }
            let exact = carriage_returns == 0;
            let (start_position, old_end_position) = if exact {
                (point(edit.start_point), point(edit.old_end_point))
            } else {
                (point_at(&text, edit.start_byte), point_at(&text, edit.old_end_byte))
            };
            carriage_returns -= count(&text[edit.start_byte..edit.old_end_byte], b'\r');
            carriage_returns += count(inserted, b'\r');
            text.replace_range(edit.start_byte..edit.old_end_byte, inserted);
            let new_end_position = if exact && !inserted.contains('\r') {
                point(edit.new_end_point)
            } else {
                point_at(&text, edit.new_end_byte)
            };
            input_edits.push(InputEdit {
                start_byte: edit.start_byte,
                old_end_byte: edit.old_end_byte,
                new_end_byte: edit.new_end_byte,
                start_position,
                old_end_position,
                new_end_position,
            });
        }
        for input_edit in &input_edits {
            self.tree.edit(input_edit);
        }
        self.tree = parse(self.lang, &text, Some(&self.tree));
        self.symbols = FileSymbols::extract(self.lang, &self.tree, &text);
        self.text = text;
        self.carriage_returns = carriage_returns;
        true
    }

    /// Replaces the whole text, parsing from scratch.
    pub fn replace(&mut self, text: String) {
        let revision = self.revision;
        *self = ParsedFile::new(self.lang, text);
        self.revision = revision;
    }
}

/// Parses `text`, reusing `old` (already edited) when given.
pub fn parse(lang: Lang, text: &str, old: Option<&Tree>) -> Tree {
    thread_local! {
        static PARSERS: std::cell::RefCell<Vec<(Lang, tree_sitter::Parser)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PARSERS.with(|parsers| {
        let mut parsers = parsers.borrow_mut();
        let slot = match parsers.iter().position(|(l, _)| *l == lang) {
            Some(slot) => slot,
            None => {
                parsers.push((lang, lang.parser()));
                parsers.len() - 1
            }
        };
        let parser = &mut parsers[slot].1;
        // Without a timeout or cancellation flag, parsing always returns a tree.
        parser.parse(text, old).expect("a parser with a language and no timeout returns a tree")
    })
}

fn point(p: crate::document::Point) -> Point {
    Point { row: p.row, column: p.column_byte }
}

/// The tree-sitter point of `byte`: rows end at `\n` only.
pub fn point_at(text: &str, byte: usize) -> Point {
    let before = &text.as_bytes()[..byte];
    let row = count_bytes(before, b'\n');
    let column = before.iter().rposition(|&b| b == b'\n').map_or(byte, |i| byte - i - 1);
    Point { row, column }
}

fn count(text: &str, byte: u8) -> usize {
    count_bytes(text.as_bytes(), byte)
}

fn count_bytes(bytes: &[u8], byte: u8) -> usize {
    bytes.iter().filter(|&&b| b == byte).count()
}
