//! Definitions and imports of one file, read off its syntax tree.
//!
//! The walk visits only nodes that can hold definitions (the file, class and
//! impl bodies, namespaces, export and preprocessor wrappers): function bodies
//! are never entered, so extraction costs little next to parsing. Each
//! language says in its own module which node kinds define what
//! ([`visit`]); this module does the rest: names, signatures, doc comments.

mod c;
mod go;
mod java;
mod js;
mod python;
mod rust;

use std::ops::Range;

use tree_sitter::{Node, Tree};

use super::lang::Lang;

/// Longest signature kept, in lines and bytes; longer ones are cut. The
/// limits keep the index small on generated code (tables, bindings).
const MAX_SIGNATURE_LINES: usize = 12;
const MAX_SIGNATURE_BYTES: usize = 640;
/// Longest doc comment kept, in lines and bytes.
const MAX_DOC_LINES: usize = 8;
const MAX_DOC_BYTES: usize = 480;
/// Longest outline of a class, trait or interface kept, in lines and bytes.
const MAX_OUTLINE_LINES: usize = 30;
const MAX_OUTLINE_BYTES: usize = 1600;
/// Definitions kept at most per file: beyond this, a file is generated
/// bindings or tables, whose every item would cost index memory for little.
const MAX_DEFINITIONS: usize = 2000;
/// Deepest nesting of definitions followed.
const MAX_DEPTH: usize = 8;

/// What a definition defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SymbolKind {
    Function,
    Method,
    Class,
    Struct,
    Enum,
    /// A trait or an interface.
    Interface,
    TypeAlias,
    Constant,
    /// A namespace or an inline module.
    Module,
    Macro,
    /// A Rust `impl` block, named after its type.
    Impl,
}

impl SymbolKind {
    pub fn name(self) -> &'static str {
        match self {
            SymbolKind::Function => "function",
            SymbolKind::Method => "method",
            SymbolKind::Class => "class",
            SymbolKind::Struct => "struct",
            SymbolKind::Enum => "enum",
            SymbolKind::Interface => "interface",
            SymbolKind::TypeAlias => "type alias",
            SymbolKind::Constant => "constant",
            SymbolKind::Module => "module",
            SymbolKind::Macro => "macro",
            SymbolKind::Impl => "impl",
        }
    }

    /// Whether the definition holds others (methods, fields as definitions).
    pub fn is_container(self) -> bool {
        matches!(self, SymbolKind::Class | SymbolKind::Interface | SymbolKind::Module | SymbolKind::Impl)
    }
}

/// One definition in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub name: Box<str>,
    pub kind: SymbolKind,
    /// The declaration as written, from its first decorator, attribute or
    /// keyword up to its body (or whole, when it has no body to leave out).
    pub signature: Box<str>,
    /// Whether a body was left out of `signature`.
    pub elided: bool,
    /// The doc comment and the outline, which most definitions lack, in one
    /// allocation (see [`Definition::doc`], [`Definition::outline`]).
    pub extra: Option<Box<Extra>>,
    /// Whether `doc` is a docstring, which goes after the signature.
    pub doc_inside: bool,
    /// The whitespace before the definition on its first line.
    pub indent: Indent,
    /// Bytes of the whole definition, doc comment included.
    pub range: Range<usize>,
    /// Zero-based first and last line, doc comment included.
    pub lines: Range<u32>,
    /// The index of the enclosing definition in the same file.
    pub parent: Option<u32>,
}

/// What few definitions have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extra {
    /// The doc comment as written, or a Python docstring.
    pub doc: Option<Box<str>>,
    /// For a class, trait or interface: its whole text with the bodies of
    /// its members left out, so that fields and member signatures remain.
    pub outline: Option<Box<str>>,
}

impl Definition {
    pub fn doc(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.doc.as_deref())
    }

    pub fn outline(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.outline.as_deref())
    }
}

/// The indentation of a line, as a width of spaces or tabs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Indent {
    width: u8,
    tabs: bool,
}

impl Indent {
    const SPACES: &'static str = "                                                                ";
    const TABS: &'static str = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";

    /// The indentation of `text` (whitespace only), kept when it is all
    /// spaces or all tabs and not too deep; empty otherwise.
    pub fn of(text: &str) -> Indent {
        let tabs = text.starts_with('\t');
        let uniform = text.bytes().all(|b| b == if tabs { b'\t' } else { b' ' });
        let max = if tabs { Self::TABS.len() } else { Self::SPACES.len() };
        if uniform && text.len() <= max { Indent { width: text.len() as u8, tabs } } else { Indent::default() }
    }

    pub fn as_str(&self) -> &'static str {
        let all = if self.tabs { Self::TABS } else { Self::SPACES };
        &all[..self.width as usize]
    }
}

impl std::ops::Deref for Indent {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Indent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name imported from a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedName {
    /// The name in the module.
    pub name: Box<str>,
    /// The name in the importing file, when it differs.
    pub alias: Option<Box<str>>,
}

impl ImportedName {
    /// The name the importing file uses.
    pub fn local(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// One import, include or use declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    /// The module as written: `./math`, `crate::geometry`, `.models`,
    /// `com.acme.util`, `example.com/shapes`, `shapes.h`.
    pub module: Box<str>,
    /// The names imported from it; empty when the module itself is.
    pub names: Vec<ImportedName>,
    /// The local name of the module itself (`import numpy as np`,
    /// `import * as m`, a Go package name).
    pub alias: Option<Box<str>>,
    /// Every name of the module is imported (`*`, `#include`).
    pub wildcard: bool,
    /// Zero-based line of the import.
    pub line: u32,
}

/// What one file defines and imports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileSymbols {
    pub definitions: Vec<Definition>,
    pub imports: Vec<Import>,
}

impl FileSymbols {
    /// Reads the definitions and imports of `text`, parsed as `tree`.
    pub fn extract(lang: Lang, tree: &Tree, text: &str) -> FileSymbols {
        let mut ex = Extractor { text, lang, out: FileSymbols::default(), bodies: Vec::new(), parent: None, depth: 0 };
        ex.children(tree.root_node());
        ex.out
    }

    /// The chain of definitions from the outermost one down to `index`.
    pub fn ancestry(&self, index: u32) -> Vec<u32> {
        let mut chain = vec![index];
        let mut at = self.definitions[index as usize].parent;
        while let Some(parent) = at {
            chain.push(parent);
            at = self.definitions[parent as usize].parent;
        }
        chain.reverse();
        chain
    }

    /// The definitions whose parent is `index`.
    pub fn members(&self, index: u32) -> impl Iterator<Item = (u32, &Definition)> {
        self.definitions.iter().enumerate().filter(move |(_, d)| d.parent == Some(index)).map(|(i, d)| (i as u32, d))
    }
}

/// How a definition node is laid out, as a language module sees it.
pub(crate) struct Shape<'t> {
    pub kind: SymbolKind,
    pub name: String,
    /// Where the definition starts: a decorator, an `export`, a template.
    pub outer: Node<'t>,
    /// The body left out of the signature (a function's block).
    pub body: Option<Node<'t>>,
    /// The node holding member definitions, which the walk enters.
    pub members: Option<Node<'t>>,
    /// Text put before the signature, for declarations in a group (`type`).
    pub prefix: &'static str,
}

impl<'t> Shape<'t> {
    pub fn new(kind: SymbolKind, name: impl Into<String>, outer: Node<'t>) -> Self {
        Shape { kind, name: name.into(), outer, body: None, members: None, prefix: "" }
    }

    pub fn body(mut self, body: Option<Node<'t>>) -> Self {
        self.body = body;
        self
    }

    pub fn members(mut self, members: Option<Node<'t>>) -> Self {
        self.members = members;
        self
    }

    pub fn prefix(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }
}

/// The walk over one tree.
pub(crate) struct Extractor<'a> {
    pub text: &'a str,
    pub lang: Lang,
    pub out: FileSymbols,
    /// The byte range of each definition's elided body.
    bodies: Vec<Option<Range<usize>>>,
    parent: Option<u32>,
    depth: usize,
}

impl<'a> Extractor<'a> {
    /// The text of a node.
    pub fn text_of(&self, node: Node<'_>) -> &'a str {
        self.text.get(node.byte_range()).unwrap_or("")
    }

    /// The text of a node's field.
    pub fn field(&self, node: Node<'_>, field: &str) -> Option<&'a str> {
        node.child_by_field_name(field).map(|n| self.text_of(n))
    }

    /// The kind of the enclosing definition.
    pub fn parent_kind(&self) -> Option<SymbolKind> {
        self.parent.map(|p| self.out.definitions[p as usize].kind)
    }

    /// Visits the named children of a node that holds definitions.
    pub fn children(&mut self, node: Node<'_>) {
        if self.depth >= MAX_DEPTH {
            return;
        }
        self.depth += 1;
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            visit(self, child, child);
        }
        self.depth -= 1;
    }

    /// Records an import.
    pub fn import(
        &mut self,
        node: Node<'_>,
        module: &str,
        names: Vec<ImportedName>,
        alias: Option<&str>,
        wildcard: bool,
    ) {
        self.out.imports.push(Import {
            module: module.into(),
            names,
            alias: alias.map(Into::into),
            wildcard,
            line: node.start_position().row as u32,
        });
    }

    /// Records a definition and walks its members.
    pub fn define(&mut self, shape: Shape<'_>) {
        if shape.name.is_empty() || self.out.definitions.len() >= MAX_DEFINITIONS {
            return;
        }
        let text = self.text;
        let mut start = shape.outer.start_byte();
        if self.lang == Lang::Rust {
            start = rust::attributes_start(shape.outer, start);
        }
        let end = shape.outer.end_byte();
        let cut = shape.body.or(shape.members).map(|b| b.start_byte()).filter(|&b| b > start && b <= end);
        let raw = &text[start..cut.unwrap_or(end)];
        let trimmed = raw.trim_end();
        let (signature, truncated) = clip(trimmed, MAX_SIGNATURE_LINES, MAX_SIGNATURE_BYTES);
        let mut signature = format!("{}{}", shape.prefix, signature.trim_end_matches(['{', ' ', '\t']).trim_end());
        if truncated {
            signature.push_str("\n    ...");
        }
        let (doc, doc_inside, doc_start) = match self.lang {
            Lang::Python => (python::docstring(self, shape.body.or(shape.members)), true, None),
            _ => match doc_comment(self, shape.outer, start) {
                Some((doc, doc_start)) => (Some(doc), false, Some(doc_start)),
                None => (None, false, None),
            },
        };
        let first = doc_start.unwrap_or(start);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let indent = &text[line_start..start];
        let indent = if indent.chars().all(char::is_whitespace) { indent } else { "" };
        let index = self.out.definitions.len() as u32;
        self.out.definitions.push(Definition {
            name: shape.name.into(),
            kind: shape.kind,
            signature: signature.into(),
            elided: cut.is_some(),
            extra: doc.map(|doc| Box::new(Extra { doc: Some(doc.into()), outline: None })),
            doc_inside,
            indent: Indent::of(indent),
            range: first..end,
            lines: row_at(text, first, shape.outer) as u32..last_row(text, shape.outer) as u32,
            parent: self.parent,
        });
        self.bodies.push(shape.body.map(|b| b.byte_range()));
        if let Some(members) = shape.members {
            let saved = self.parent.replace(index);
            self.children(members);
            self.parent = saved;
            // Impl blocks and modules only ever head their members' snippets.
            if matches!(shape.kind, SymbolKind::Class | SymbolKind::Interface) {
                let outline = self.outline(index, start, end);
                let def = &mut self.out.definitions[index as usize];
                def.extra.get_or_insert_with(Box::default).outline = Some(outline.into());
            }
        }
    }

    /// The text of a container from `start` to `end` with the bodies of its
    /// members replaced by a placeholder.
    fn outline(&self, index: u32, start: usize, end: usize) -> String {
        let mut out = String::new();
        let mut at = start;
        let members = self.out.definitions.iter().zip(&self.bodies).filter(|(d, _)| d.parent == Some(index));
        for body in members.filter_map(|(_, body)| body.clone()) {
            if body.start < at || body.end > end {
                continue;
            }
            out.push_str(self.text[at..body.start].trim_end());
            if self.lang.is_indented() {
                let line_start = self.text[..body.start].rfind('\n').map_or(0, |i| i + 1);
                let indent = &self.text[line_start..body.start];
                let indent = if indent.trim().is_empty() { indent } else { "" };
                out.push('\n');
                out.push_str(indent);
                out.push_str("...");
            } else {
                out.push_str(" { ... }");
            }
            at = body.end;
        }
        out.push_str(&self.text[at..end]);
        let (kept, clipped) = clip(&out, MAX_OUTLINE_LINES, MAX_OUTLINE_BYTES);
        if clipped { format!("{kept}\n{}...", self.out.definitions[index as usize].indent) } else { out }
    }
}

/// Visits one node with the language's rules. `outer` is the node where
/// the definition starts, for wrappers such as `export` or decorators.
fn visit(ex: &mut Extractor<'_>, node: Node<'_>, outer: Node<'_>) {
    match ex.lang {
        Lang::Rust => rust::visit(ex, node, outer),
        Lang::Python => python::visit(ex, node, outer),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => js::visit(ex, node, outer),
        Lang::Go => go::visit(ex, node, outer),
        Lang::Java => java::visit(ex, node, outer),
        Lang::C | Lang::Cpp => c::visit(ex, node, outer),
    }
}

/// The row of the last non-blank byte of `node`: some nodes, such as
/// `#define` lines, end after their line break.
fn last_row(text: &str, node: Node<'_>) -> usize {
    let range = node.byte_range();
    let trimmed = text.get(range.clone()).map_or(0, |s| s.len() - s.trim_end().len());
    let breaks = text.get(range.end - trimmed..range.end).map_or(0, |s| s.bytes().filter(|&b| b == b'\n').count());
    node.end_position().row.saturating_sub(breaks)
}

/// The comments directly above a definition (no blank line between), as
/// written, and the byte where they start.
fn doc_comment(ex: &Extractor<'_>, outer: Node<'_>, start: usize) -> Option<(String, usize)> {
    let mut first: Option<Node<'_>> = None;
    let mut below_row = row_at(ex.text, start, outer);
    let mut at = outer.prev_sibling();
    while let Some(node) = at {
        let is_comment = matches!(node.kind(), "comment" | "line_comment" | "block_comment");
        if node.kind() == "attribute_item" && node.end_position().row + 1 >= below_row {
            below_row = node.start_position().row;
            at = node.prev_sibling();
            continue;
        }
        if !is_comment || node.end_position().row + 1 < below_row {
            break;
        }
        let text = ex.text_of(node);
        if ex.lang == Lang::Rust && !(text.starts_with("///") || text.starts_with("/**")) {
            break;
        }
        first = Some(node);
        below_row = node.start_position().row;
        at = node.prev_sibling();
    }
    let first = first?;
    let doc_start = first.start_byte();
    let last_end = ex.text[..start].trim_end().len().max(doc_start);
    let doc = ex.text[doc_start..last_end].trim_end();
    // Attributes between the comment and the item belong to the signature.
    let doc = match ex.lang {
        Lang::Rust => doc.lines().filter(|l| !l.trim_start().starts_with("#[")).collect::<Vec<_>>().join("\n"),
        _ => doc.to_owned(),
    };
    Some((clip(&doc, MAX_DOC_LINES, MAX_DOC_BYTES).0.to_owned(), doc_start))
}

/// The row of `byte`, which is at or before `node`'s start on the same row
/// or a row above it.
fn row_at(text: &str, byte: usize, node: Node<'_>) -> usize {
    let above = text.get(byte..node.start_byte()).map_or(0, |s| s.bytes().filter(|&b| b == b'\n').count());
    node.start_position().row.saturating_sub(above)
}

/// The first `max_lines` lines of `text`, at most `max_bytes` long (cut
/// at a line end where there is one), and whether anything was cut.
fn clip(text: &str, max_lines: usize, max_bytes: usize) -> (&str, bool) {
    let (mut kept, mut clipped) = match text.match_indices('\n').nth(max_lines.saturating_sub(1)) {
        Some((i, _)) => (&text[..i], true),
        None => (text, false),
    };
    if kept.len() > max_bytes {
        let mut end = max_bytes;
        while !kept.is_char_boundary(end) {
            end -= 1;
        }
        end = kept[..end].rfind('\n').filter(|&i| i > 0).unwrap_or(end);
        kept = &kept[..end];
        clipped = true;
    }
    (kept, clipped)
}

/// The innermost name in a C or C++ declarator, or a Rust or TypeScript type.
pub(crate) fn innermost_name<'a>(ex: &Extractor<'a>, node: Node<'_>) -> Option<&'a str> {
    let mut node = node;
    for _ in 0..8 {
        match node.kind() {
            "identifier"
            | "field_identifier"
            | "type_identifier"
            | "destructor_name"
            | "operator_name"
            | "namespace_identifier"
            | "primitive_type"
            | "property_identifier" => return Some(ex.text_of(node)),
            "qualified_identifier" | "scoped_identifier" | "scoped_type_identifier" => {
                node = node.child_by_field_name("name")?;
            }
            "generic_type" | "template_type" => {
                node = node.child_by_field_name("type").or(node.child_by_field_name("name"))?
            }
            _ => node = node.child_by_field_name("declarator").or_else(|| node.named_child(0))?,
        }
    }
    None
}
