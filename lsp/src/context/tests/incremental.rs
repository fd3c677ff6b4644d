//! Incremental reparsing keeps the tree, the symbols and the workspace
//! index equal to those of a fresh parse of the same text.
//!
//! Edits go through the same path as the server's: LSP content changes in
//! UTF-16 positions, applied by [`DocumentStore::change`], whose
//! [`TextEdit`](crate::document::TextEdit)s the parsed file and the context
//! engine replay. The texts hold multi-byte characters and, in some cases,
//! CRLF line endings.

use proptest::prelude::*;
use tree_sitter::Tree;

use std::path::Path;

use crate::context::{ContextConfig, ContextEngine, FileSymbols, Index, Lang, ParsedFile, parse};
use crate::document::{ContentChange, Document, DocumentStore};
use crate::position::{LspPosition, PositionEncoding};

/// Well-formed top-level pieces of code; any sequence of them parses.
fn blocks(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::Python => &[
            "import os\n",
            "from .shapes import Circle, area as a\n",
            "MAX_SIZE = 10\n",
            "def scale(v: float) -> float:\n    \"\"\"Doc é.\"\"\"\n    return v * 2\n",
            "class Point:\n    x: int = 0\n\n    def norm(self):\n        return \"🦀\"\n",
            "s = \"日本語\"\n",
            "# A comment: ünïcödé.\n",
        ],
        Lang::Rust => &[
            "use crate::a::{b, c as d};\n",
            "/// Doc é.\npub fn f(x: u32) -> u32 {\n    x + 1\n}\n",
            "pub struct S {\n    pub name: String,\n}\n",
            "impl S {\n    fn new() -> Self {\n        S { name: \"🦀\".into() }\n    }\n}\n",
            "const C: &str = \"日本\";\n",
            "// ünïcödé\n",
        ],
        _ => &[
            "import { area } from \"./shapes\";\n",
            "/** Doc é. */\nexport function f(x: number): number {\n  return x + 1;\n}\n",
            "export interface Shape {\n  area(): number;\n}\n",
            "export class K {\n  m(): string {\n    return \"🦀\";\n  }\n}\n",
            "const s = \"日本語\";\n",
        ],
    }
}

/// Text typed into string literals.
const TYPED: &[&str] = &["é", "日本", "🦀", "x", "ü\u{308}", " "];

/// One edit of the block model.
#[derive(Clone, Debug)]
enum Op {
    /// Replaces a block by a piece of code.
    Replace(usize, usize),
    /// Inserts a piece of code before a block.
    Insert(usize, usize),
    Delete(usize),
    /// Types text right after the first quote of a block.
    Type(usize, usize),
    /// Deletes the character after the first quote of a block.
    Backspace(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..8usize, 0..8usize).prop_map(|(b, k)| Op::Replace(b, k)),
        (0..8usize, 0..8usize).prop_map(|(b, k)| Op::Insert(b, k)),
        (0..8usize).prop_map(Op::Delete),
        (0..8usize, 0..TYPED.len()).prop_map(|(b, t)| Op::Type(b, t)),
        (0..8usize).prop_map(Op::Backspace),
    ]
}

/// The LSP position (UTF-16) of a byte of a text without lone `\r`.
fn lsp_position(text: &str, byte: usize) -> LspPosition {
    let line_start = text[..byte].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..byte].matches('\n').count() as u32;
    LspPosition::new(line, text[line_start..byte].encode_utf16().count() as u32)
}

/// Turns an op into a content change on `model`, and applies it there.
fn change(model: &mut Vec<String>, op: &Op, lang: Lang, eol: &str) -> Option<ContentChange> {
    let pieces = blocks(lang);
    let piece = |k: usize| pieces[k % pieces.len()].replace('\n', eol);
    let text: String = model.concat();
    let start_of = |model: &[String], b: usize| model[..b].iter().map(String::len).sum::<usize>();
    let (start, end, new_text) = match *op {
        Op::Replace(b, k) if !model.is_empty() => {
            let b = b % model.len();
            let new = piece(k);
            let edit = (start_of(model, b), start_of(model, b) + model[b].len(), new.clone());
            model[b] = new;
            edit
        }
        Op::Insert(b, k) => {
            let b = b % (model.len() + 1);
            let new = piece(k);
            let at = start_of(model, b);
            model.insert(b, new.clone());
            (at, at, new)
        }
        Op::Delete(b) if model.len() > 1 => {
            let b = b % model.len();
            let edit = (start_of(model, b), start_of(model, b) + model[b].len(), String::new());
            model.remove(b);
            edit
        }
        Op::Type(b, t) if !model.is_empty() => {
            let b = b % model.len();
            let quote = model[b].find('"')? + 1;
            model[b].insert_str(quote, TYPED[t]);
            (start_of(model, b) + quote, start_of(model, b) + quote, TYPED[t].to_owned())
        }
        Op::Backspace(b) if !model.is_empty() => {
            let b = b % model.len();
            let quote = model[b].find('"')? + 1;
            let next = model[b][quote..].chars().next().filter(|c| *c != '"' && *c != '\\')?;
            model[b].replace_range(quote..quote + next.len_utf8(), "");
            (start_of(model, b) + quote, start_of(model, b) + quote + next.len_utf8(), String::new())
        }
        _ => return None,
    };
    Some(ContentChange { range: Some((lsp_position(&text, start), lsp_position(&text, end))), text: new_text })
}

/// The tree as text: every node's kind, bytes and points, in preorder.
fn dump(tree: &Tree) -> String {
    let mut out = String::new();
    let mut cursor = tree.walk();
    let mut depth = 0;
    loop {
        let node = cursor.node();
        let (s, e) = (node.start_position(), node.end_position());
        out.push_str(&format!(
            "{:depth$}{} {:?} ({},{})-({},{}){}\n",
            "",
            node.kind(),
            node.byte_range(),
            s.row,
            s.column,
            e.row,
            e.column,
            if node.is_missing() { " missing" } else { "" },
        ));
        if cursor.goto_first_child() {
            depth += 1;
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return out;
            }
            depth -= 1;
        }
    }
}

fn run(lang: Lang, initial: &[usize], notifications: &[Vec<Op>], crlf: bool) -> Result<(), TestCaseError> {
    let eol = if crlf { "\r\n" } else { "\n" };
    let pieces = blocks(lang);
    let mut model: Vec<String> = initial.iter().map(|&k| pieces[k % pieces.len()].replace('\n', eol)).collect();
    let uri = "file:///test";
    let mut store = DocumentStore::new();
    store.open(uri, Document::new(&model.concat(), 0, "test"));
    let mut parsed = ParsedFile::new(lang, model.concat());
    let path = Path::new("/workspace/test.src");
    let engine = ContextEngine::new(ContextConfig::default());
    engine.open(path, lang_id(lang), &model.concat());
    // Every name any block defines, to find stale entries of the index.
    let names = FileSymbols::extract(lang, &parse(lang, &pieces.concat(), None), &pieces.concat());
    let names: Vec<&str> = names.definitions.iter().map(|d| &*d.name).collect();
    for (version, ops) in notifications.iter().enumerate() {
        let changes: Vec<ContentChange> = ops.iter().filter_map(|op| change(&mut model, op, lang, eol)).collect();
        let edits = store.change(uri, version as i32 + 1, &changes, PositionEncoding::Utf16).expect("valid edits");
        let pairs: Vec<_> = edits.iter().copied().zip(changes.iter().map(|c| c.text.as_str())).collect();
        prop_assert!(parsed.apply(&pairs), "the edits fit the text");
        let text = model.concat();
        prop_assert_eq!(parsed.text(), text.as_str());
        prop_assert_eq!(store.get(uri).expect("open").text().to_string(), text.clone());
        let fresh = parse(lang, &text, None);
        prop_assert_eq!(dump(parsed.tree()), dump(&fresh));
        prop_assert_eq!(parsed.symbols(), &FileSymbols::extract(lang, &fresh, &text));
        engine.change(path, &edits, &changes, store.get(uri).expect("open").text());
        let fresh_engine = ContextEngine::new(ContextConfig::default());
        fresh_engine.open(path, lang_id(lang), &text);
        let dump = |engine: &ContextEngine| engine.with_index(|index| index_dump(index, path, &names));
        prop_assert_eq!(dump(&engine), dump(&fresh_engine));
    }
    Ok(())
}

fn lang_id(lang: Lang) -> &'static str {
    match lang {
        Lang::Python => "python",
        Lang::Rust => "rust",
        _ => "typescript",
    }
}

/// What the index holds for `path`: its symbols, and the definitions it
/// finds for each of `names`.
fn index_dump(index: &Index, path: &Path, names: &[&str]) -> String {
    let Some(file) = index.file(path) else { return "not indexed".to_owned() };
    let mut out = format!("{} files, {} bytes\n{:?}\n", index.len(), index.source_bytes(), file.symbols);
    for name in names {
        let found: Vec<u32> = index.named(name).iter().map(|r| r.def).collect();
        out.push_str(&format!("{name}: {found:?}\n"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn python_edits_match_a_fresh_parse(
        initial in prop::collection::vec(0..8usize, 0..6),
        notifications in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..8),
        crlf in any::<bool>(),
    ) {
        run(Lang::Python, &initial, &notifications, crlf)?;
    }

    #[test]
    fn rust_edits_match_a_fresh_parse(
        initial in prop::collection::vec(0..8usize, 0..6),
        notifications in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..8),
        crlf in any::<bool>(),
    ) {
        run(Lang::Rust, &initial, &notifications, crlf)?;
    }

    #[test]
    fn typescript_edits_match_a_fresh_parse(
        initial in prop::collection::vec(0..8usize, 0..6),
        notifications in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..8),
        crlf in any::<bool>(),
    ) {
        run(Lang::TypeScript, &initial, &notifications, crlf)?;
    }
}

#[test]
fn a_lone_carriage_return_keeps_rows_as_tree_sitter_counts_them() {
    // LSP counts `\r` as a line break; tree-sitter does not. The edit's
    // points must be tree-sitter's for the reparse to match.
    run(Lang::Python, &[0, 2], &[vec![Op::Type(0, 2)]], false).unwrap();
    let mut store = DocumentStore::new();
    let text = "x = 1\ry = \"a\"\n";
    store.open("file:///cr", Document::new(text, 0, "python"));
    let mut parsed = ParsedFile::new(Lang::Python, text.to_owned());
    let change = ContentChange { range: Some((LspPosition::new(1, 5), LspPosition::new(1, 5))), text: "é".to_owned() };
    let edits = store.change("file:///cr", 1, std::slice::from_ref(&change), PositionEncoding::Utf16).unwrap();
    assert!(parsed.apply(&[(edits[0], "é")]));
    let expected = "x = 1\ry = \"éa\"\n";
    assert_eq!(parsed.text(), expected);
    assert_eq!(dump(parsed.tree()), dump(&parse(Lang::Python, expected, None)));
}
