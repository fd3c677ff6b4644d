//! Proposed edits: the only way an agent changes a file.
//!
//! A code step answers with whole files; the edit proposed to the editor is
//! the smallest run of whole lines that differs, so the user sees (and can
//! undo) just the change. Positions are zero-based lines and UTF-8 byte
//! columns; the LSP crate converts them to the negotiated encoding.

use serde::{Deserialize, Serialize};

/// A place in a text: zero-based line, UTF-8 byte column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TextPoint {
    pub line: u32,
    pub column: u32,
}

/// A range of a text, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSpan {
    pub start: TextPoint,
    pub end: TextPoint,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditKind {
    /// Replace `range` of an existing file.
    Modify,
    /// Create the file with `new_text` (`range` is empty).
    Create,
}

/// One change to one file, for the editor to apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedEdit {
    /// Relative to the workspace root, `/`-separated.
    pub path: String,
    pub kind: EditKind,
    pub range: TextSpan,
    pub new_text: String,
}

impl ProposedEdit {
    /// The edit that turns `old` (`None`: the file does not exist) into
    /// `new`; `None` when nothing changes.
    pub fn between(path: &str, old: Option<&str>, new: &str) -> Option<ProposedEdit> {
        let Some(old) = old else {
            let origin = TextPoint { line: 0, column: 0 };
            return Some(ProposedEdit {
                path: path.to_owned(),
                kind: EditKind::Create,
                range: TextSpan { start: origin, end: origin },
                new_text: new.to_owned(),
            });
        };
        if old == new {
            return None;
        }
        let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
        let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
        let common_prefix = old_lines.iter().zip(&new_lines).take_while(|(a, b)| a == b).count();
        let max_suffix = old_lines.len().min(new_lines.len()) - common_prefix;
        let common_suffix =
            old_lines.iter().rev().zip(new_lines.iter().rev()).take(max_suffix).take_while(|(a, b)| a == b).count();
        let old_start: usize = old_lines[..common_prefix].iter().map(|l| l.len()).sum();
        let old_end: usize =
            old.len() - old_lines[old_lines.len() - common_suffix..].iter().map(|l| l.len()).sum::<usize>();
        let new_start: usize = new_lines[..common_prefix].iter().map(|l| l.len()).sum();
        let new_end: usize =
            new.len() - new_lines[new_lines.len() - common_suffix..].iter().map(|l| l.len()).sum::<usize>();
        Some(ProposedEdit {
            path: path.to_owned(),
            kind: EditKind::Modify,
            range: TextSpan { start: point_at(old, old_start), end: point_at(old, old_end) },
            new_text: new[new_start..new_end].to_owned(),
        })
    }

    /// `text` with this edit applied; `None` when the range is not in it.
    pub fn apply(&self, text: &str) -> Option<String> {
        let start = offset_of(text, self.range.start)?;
        let end = offset_of(text, self.range.end)?;
        if start > end {
            return None;
        }
        Some(format!("{}{}{}", &text[..start], self.new_text, &text[end..]))
    }
}

/// The byte offset where each line of `text` starts.
pub fn line_start_offsets(text: &str) -> Vec<usize> {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect()
}

fn point_at(text: &str, offset: usize) -> TextPoint {
    let starts = line_start_offsets(text);
    let line = starts.partition_point(|&start| start <= offset) - 1;
    TextPoint { line: line as u32, column: (offset - starts[line]) as u32 }
}

fn offset_of(text: &str, point: TextPoint) -> Option<usize> {
    let starts = line_start_offsets(text);
    let start = *starts.get(point.line as usize)?;
    let offset = start + point.column as usize;
    let line_end = starts.get(point.line as usize + 1).copied().unwrap_or(text.len());
    (offset <= line_end && text.is_char_boundary(offset)).then_some(offset)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn only_the_changed_lines_are_replaced() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nB\nB2\nc\nd\n";
        let edit = ProposedEdit::between("f.py", Some(old), new).unwrap();
        assert_eq!(edit.range.start, TextPoint { line: 1, column: 0 });
        assert_eq!(edit.range.end, TextPoint { line: 2, column: 0 });
        assert_eq!(edit.new_text, "B\nB2\n");
        assert_eq!(edit.apply(old).unwrap(), new);
        assert!(ProposedEdit::between("f.py", Some(old), old).is_none());
    }

    #[test]
    fn a_last_line_without_newline_ends_at_its_column() {
        let edit = ProposedEdit::between("f.py", Some("x = 1\ny = 'é'"), "x = 1\ny = 'ü'\n").unwrap();
        assert_eq!(edit.range.end, TextPoint { line: 1, column: 8 });
        assert_eq!(edit.apply("x = 1\ny = 'é'").unwrap(), "x = 1\ny = 'ü'\n");
    }

    proptest! {
        #[test]
        fn applying_the_edit_gives_the_new_text(
            old in proptest::collection::vec("[ab\u{e9}]{0,3}\n?", 0..8),
            new in proptest::collection::vec("[ab\u{e9}]{0,3}\n?", 0..8),
        ) {
            let (old, new) = (old.concat(), new.concat());
            match ProposedEdit::between("f", Some(&old), &new) {
                Some(edit) => prop_assert_eq!(edit.apply(&old).unwrap(), new),
                None => prop_assert_eq!(old, new),
            }
        }
    }
}
