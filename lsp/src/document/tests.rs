use expect_test::expect;
use proptest::prelude::*;

use super::*;
use crate::position::model::{self, ENCODINGS};

use PositionEncoding::{Utf8, Utf16, Utf32};

fn pos(line: u32, character: u32) -> LspPosition {
    LspPosition::new(line, character)
}

fn point((row, column_byte): (usize, usize)) -> Point {
    Point { row, column_byte }
}

/// One edit of a random edit sequence.
#[derive(Debug, Clone)]
struct Edit {
    range: Option<(LspPosition, LspPosition)>,
    text: String,
}

/// Generates edits whose positions fall on lines `0..max_line` (some of them
/// past the end) and whose ranges are sometimes reversed.
fn edit(max_line: u32, max_insert: usize) -> impl Strategy<Value = Edit> {
    let ranged = move || {
        let position = || (0..max_line, 0..14_u32).prop_map(|(l, c)| pos(l, c));
        (position(), position(), model::text(max_insert))
            .prop_map(|(start, end, text)| Edit { range: Some((start, end)), text })
    };
    let ordered = ranged().prop_map(|mut e| {
        if let Some((s, t)) = e.range {
            e.range = Some((s.min(t), s.max(t)));
        }
        e
    });
    let full = model::text(max_insert).prop_map(|text| Edit { range: None, text });
    prop_oneof![6 => ordered, 3 => ranged(), 1 => full]
}

/// Applies `edits` to a document and to a `String` model and compares them.
fn run_edits(initial: &str, edits: &[Edit], enc: PositionEncoding) -> Result<(), TestCaseError> {
    let mut doc = Document::new(initial, 0, "plaintext");
    let mut text = initial.to_owned();
    for edit in edits {
        let expected = match edit.range {
            None => Ok((0, text.len())),
            Some((start, end)) if start > end => Err(DocumentError::ReversedRange { start, end }),
            Some((start, end)) => {
                let line_count = model::lines(&text).len();
                let byte = |p: LspPosition| {
                    model::to_byte(&text, p, enc).ok_or(DocumentError::LineOutOfRange { line: p.line, line_count })
                };
                byte(start).and_then(|s| Ok((s, byte(end)?)))
            }
        };
        let got = doc.apply_change(edit.range, &edit.text, enc);
        match expected {
            Err(err) => prop_assert_eq!(got, Err(err)),
            Ok((start, old_end)) => {
                let old = text.clone();
                text.replace_range(start..old_end, &edit.text);
                let new_end = start + edit.text.len();
                let expected = TextEdit {
                    start_byte: start,
                    old_end_byte: old_end,
                    new_end_byte: new_end,
                    start_point: point(model::byte_to_point(&old, start)),
                    old_end_point: point(model::byte_to_point(&old, old_end)),
                    new_end_point: point(model::byte_to_point(&text, new_end)),
                };
                prop_assert_eq!(got, Ok(expected), "{:?} on {:?}", edit, old);
            }
        }
        prop_assert_eq!(doc.text().to_string(), text.as_str());
        prop_assert_eq!(doc.text().len_lines(), model::lines(&text).len());
    }
    doc.text().assert_invariants();
    Ok(())
}

proptest! {
    #[test]
    fn random_edits_match_string_model(
        initial in model::text(30),
        edits in proptest::collection::vec(edit(7, 6), 1..24),
    ) {
        for enc in ENCODINGS {
            run_edits(&initial, &edits, enc)?;
        }
    }
}

proptest! {
    // Texts of several kilobytes span many rope chunks, so edits hit chunk
    // seams, including CRLF pairs split across chunks.
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_edits_on_large_texts_match_string_model(
        initial in model::text(2500),
        edits in proptest::collection::vec(edit(600, 300), 1..12),
    ) {
        for enc in ENCODINGS {
            run_edits(&initial, &edits, enc)?;
        }
    }
}

#[test]
fn edit_reports_tree_sitter_data() {
    let mut doc = Document::new("fn é() {}\n漢🦀", 1, "rust");
    let edit = doc.apply_change(Some((pos(1, 1), pos(1, 3))), "x\r\ny", Utf16).unwrap();
    assert_eq!(doc.text().to_string(), "fn é() {}\n漢x\r\ny");
    expect![[r#"
        TextEdit {
            start_byte: 14,
            old_end_byte: 18,
            new_end_byte: 18,
            start_point: Point {
                row: 1,
                column_byte: 3,
            },
            old_end_point: Point {
                row: 1,
                column_byte: 7,
            },
            new_end_point: Point {
                row: 2,
                column_byte: 1,
            },
        }
    "#]]
    .assert_debug_eq(&edit);
}

#[test]
fn full_replacement() {
    let mut doc = Document::new("ab\ncd", 1, "rust");
    let edit = doc.apply_change(None, "é", Utf8).unwrap();
    assert_eq!(doc.text().to_string(), "é");
    assert_eq!(edit.start_byte, 0);
    assert_eq!(edit.old_end_byte, 5);
    assert_eq!(edit.new_end_byte, 2);
    assert_eq!(edit.old_end_point, Point { row: 1, column_byte: 2 });
    assert_eq!(edit.new_end_point, Point { row: 0, column_byte: 2 });
}

#[test]
fn bad_ranges_are_errors_and_leave_the_text_alone() {
    let mut doc = Document::new("abc\ndef", 1, "rust");
    let reversed = doc.apply_change(Some((pos(1, 0), pos(0, 2))), "x", Utf32).unwrap_err();
    expect!["range start 1:0 is after its end 0:2"].assert_eq(&reversed.to_string());
    let past = doc.apply_change(Some((pos(0, 0), pos(3, 0))), "x", Utf32).unwrap_err();
    expect!["line 3 is out of range for a document of 2 lines"].assert_eq(&past.to_string());
    assert_eq!(doc.text().to_string(), "abc\ndef");
    // One past the last line is the end of the document.
    doc.apply_change(Some((pos(2, 0), pos(2, 0))), "!", Utf32).unwrap();
    assert_eq!(doc.text().to_string(), "abc\ndef!");
}

#[test]
fn edits_never_split_crlf() {
    let mut doc = Document::new("ab\r\ncd", 1, "rust");
    // Column 3 of line 0 would be between `\r` and `\n`; it clamps to column 2.
    doc.apply_change(Some((pos(0, 3), pos(0, 3))), "X", Utf8).unwrap();
    assert_eq!(doc.text().to_string(), "abX\r\ncd");
    doc.apply_change(Some((pos(0, 0), pos(0, 99))), "", Utf8).unwrap();
    assert_eq!(doc.text().to_string(), "\r\ncd");
    assert_eq!(doc.text().len_lines(), 2);
}

#[test]
fn store_applies_changes_in_order() {
    let mut store = DocumentStore::new();
    assert!(store.is_empty());
    assert!(store.open("file:///a.rs", Document::new("hello", 1, "rust")).is_none());
    let changes = [
        ContentChange { range: Some((pos(0, 5), pos(0, 5))), text: "\nworld".into() },
        ContentChange { range: Some((pos(1, 0), pos(1, 1))), text: "W".into() },
    ];
    let edits = store.change("file:///a.rs", 2, &changes, Utf16).unwrap();
    assert_eq!(edits.len(), 2);
    let doc = store.get("file:///a.rs").unwrap();
    assert_eq!(doc.text().to_string(), "hello\nWorld");
    assert_eq!(doc.version(), 2);
    assert_eq!(doc.language_id(), "rust");

    // A stale version is still applied.
    let resend = [ContentChange { range: None, text: "again".into() }];
    store.change("file:///a.rs", 2, &resend, Utf16).unwrap();
    assert_eq!(store.get("file:///a.rs").unwrap().text().to_string(), "again");

    store.get_mut("file:///a.rs").unwrap().set_version(7);
    assert_eq!(store.get("file:///a.rs").unwrap().version(), 7);
    assert_eq!(store.len(), 1);
    assert!(store.close("file:///a.rs").is_some());
    assert!(store.get("file:///a.rs").is_none());
    let err = store.change("file:///a.rs", 3, &resend, Utf16).unwrap_err();
    expect!["document file:///a.rs is not open"].assert_eq(&err.to_string());
}

#[test]
fn store_changes_are_all_or_nothing() {
    let mut store = DocumentStore::new();
    store.open("u", Document::new("abc", 1, "rust"));
    let changes = [
        ContentChange { range: None, text: "replaced".into() },
        ContentChange { range: Some((pos(5, 0), pos(5, 0))), text: "x".into() },
    ];
    let err = store.change("u", 2, &changes, Utf8).unwrap_err();
    assert_eq!(err, DocumentError::LineOutOfRange { line: 5, line_count: 1 });
    let doc = store.get("u").unwrap();
    assert_eq!(doc.text().to_string(), "abc");
    assert_eq!(doc.version(), 1);
}

#[test]
fn content_change_from_ls_types() {
    use tower_lsp_server::ls_types::{Position, Range, TextDocumentContentChangeEvent};
    let event = TextDocumentContentChangeEvent {
        range: Some(Range::new(Position::new(1, 2), Position::new(3, 4))),
        range_length: None,
        text: "t".into(),
    };
    let change = ContentChange::from(event);
    assert_eq!(change.range, Some((pos(1, 2), pos(3, 4))));
    assert_eq!(change.text, "t");
}

#[test]
fn prefix_suffix_prefers_line_boundaries() {
    let doc = Document::new("one\ntwo\nthree\nfour", 1, "plaintext");
    let ps = |i, p, s| doc.prefix_suffix(i, p, s);
    let owned = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(ps(10, 100, 100), owned("one\ntwo\nth", "ree\nfour"));
    assert_eq!(ps(10, 5, 5), owned("th", "ree\n"));
    // Within the cursor's own line the windows cut mid-line.
    assert_eq!(ps(10, 1, 2), owned("h", "re"));
    assert_eq!(ps(10, 0, 0), owned("", ""));
    // Cursor at a line start keeps part of the line above rather than nothing.
    assert_eq!(ps(8, 2, 100), owned("o\n", "three\nfour"));
    assert_eq!(ps(100, 6, 6), owned("four", ""));
}

#[test]
fn prefix_suffix_respects_chars_and_crlf() {
    let doc = Document::new("🦀é\r\n漢字", 1, "plaintext");
    assert_eq!(doc.prefix_suffix(2, 1, 1), ("é".to_owned(), String::new()));
    assert_eq!(doc.prefix_suffix(5, 1, 1), ("漢".to_owned(), "字".to_owned()));
    // The prefix window starts inside the CRLF pair: the lone `\n` is dropped.
    assert_eq!(doc.prefix_suffix(4, 1, 9), (String::new(), "漢字".to_owned()));
    // The suffix window ends inside the CRLF pair: the lone `\r` is dropped.
    assert_eq!(doc.prefix_suffix(1, 9, 2), ("🦀".to_owned(), "é".to_owned()));
}

proptest! {
    #[test]
    fn prefix_suffix_stays_in_windows(
        text in model::text(40),
        cursor in 0..60_usize,
        max_prefix in 0..30_usize,
        max_suffix in 0..30_usize,
    ) {
        let doc = Document::new(&text, 1, "plaintext");
        let chars: Vec<char> = text.chars().collect();
        let cursor_clamped = cursor.min(chars.len());
        let before: String = chars[..cursor_clamped].iter().collect();
        let after: String = chars[cursor_clamped..].iter().collect();
        let (prefix, suffix) = doc.prefix_suffix(cursor, max_prefix, max_suffix);
        prop_assert!(before.ends_with(&prefix));
        prop_assert!(after.starts_with(&suffix));
        prop_assert!(prefix.chars().count() <= max_prefix);
        prop_assert!(suffix.chars().count() <= max_suffix);
        if !prefix.is_empty() {
            prop_assert!(!model::is_mid_crlf(&text, before.len() - prefix.len()));
        }
        if !suffix.is_empty() {
            prop_assert!(!model::is_mid_crlf(&text, before.len() + suffix.len()));
        }
        // A window that fits everything is not shrunk.
        if before.chars().count() <= max_prefix {
            prop_assert_eq!(&prefix, &before);
        }
        if after.chars().count() <= max_suffix {
            prop_assert_eq!(&suffix, &after);
        }
    }
}
