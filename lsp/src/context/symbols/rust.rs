//! Rust: items, `impl` and `trait` members, `use` trees.

use tree_sitter::Node;

use super::{Extractor, ImportedName, Shape, SymbolKind, innermost_name};

pub(super) fn visit(ex: &mut Extractor<'_>, node: Node<'_>, outer: Node<'_>) {
    let name = |ex: &Extractor<'_>| ex.field(node, "name").unwrap_or("").to_owned();
    let shape = match node.kind() {
        "function_item" | "function_signature_item" => {
            let kind = match ex.parent_kind() {
                Some(SymbolKind::Impl | SymbolKind::Interface) => SymbolKind::Method,
                _ => SymbolKind::Function,
            };
            Shape::new(kind, name(ex), outer).body(node.child_by_field_name("body"))
        }
        "struct_item" | "union_item" => Shape::new(SymbolKind::Struct, name(ex), outer),
        "enum_item" => Shape::new(SymbolKind::Enum, name(ex), outer),
        "type_item" => Shape::new(SymbolKind::TypeAlias, name(ex), outer),
        "const_item" | "static_item" => Shape::new(SymbolKind::Constant, name(ex), outer),
        "macro_definition" => Shape::new(SymbolKind::Macro, name(ex), outer),
        "trait_item" => Shape::new(SymbolKind::Interface, name(ex), outer).members(node.child_by_field_name("body")),
        "impl_item" => {
            let ty = node.child_by_field_name("type").and_then(|t| innermost_name(ex, t)).unwrap_or("");
            Shape::new(SymbolKind::Impl, ty, outer).members(node.child_by_field_name("body"))
        }
        "mod_item" => match node.child_by_field_name("body") {
            Some(body) => Shape::new(SymbolKind::Module, name(ex), outer).members(Some(body)),
            None => return,
        },
        "use_declaration" => {
            if let Some(argument) = node.child_by_field_name("argument") {
                use_tree(ex, node, argument, "");
            }
            return;
        }
        _ => return,
    };
    ex.define(shape);
}

/// Where an item starts once the attributes right above it are counted.
pub(super) fn attributes_start(outer: Node<'_>, start: usize) -> usize {
    let mut start = start;
    let mut row = outer.start_position().row;
    let mut at = outer.prev_sibling();
    while let Some(node) = at.filter(|n| n.kind() == "attribute_item" && n.end_position().row + 1 >= row) {
        start = node.start_byte();
        row = node.start_position().row;
        at = node.prev_sibling();
    }
    start
}

/// Flattens a `use` tree into one import per leaf.
fn use_tree(ex: &mut Extractor<'_>, decl: Node<'_>, node: Node<'_>, base: &str) {
    let join = |a: &str, b: &str| if a.is_empty() { b.to_owned() } else { format!("{a}::{b}") };
    match node.kind() {
        "use_list" => {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                use_tree(ex, decl, child, base);
            }
        }
        "scoped_use_list" => {
            let base = match ex.field(node, "path") {
                Some(path) => join(base, path),
                None => base.to_owned(),
            };
            if let Some(list) = node.child_by_field_name("list") {
                use_tree(ex, decl, list, &base);
            }
        }
        "use_wildcard" => {
            let path = node.named_child(0).map_or("", |n| ex.text_of(n));
            ex.import(decl, &join(base, path), Vec::new(), None, true);
        }
        "use_as_clause" => {
            let path = join(base, ex.field(node, "path").unwrap_or(""));
            let alias = ex.field(node, "alias").map(Into::into);
            leaf(ex, decl, &path, alias);
        }
        _ => leaf(ex, decl, &join(base, ex.text_of(node)), None),
    }
}

fn leaf(ex: &mut Extractor<'_>, decl: Node<'_>, path: &str, alias: Option<Box<str>>) {
    match path.rsplit_once("::") {
        Some((module, "self")) => {
            let alias = alias.as_deref().or_else(|| module.rsplit("::").next());
            ex.import(decl, module, Vec::new(), alias, false);
        }
        Some((module, name)) => ex.import(decl, module, vec![ImportedName { name: name.into(), alias }], None, false),
        None => ex.import(decl, path, Vec::new(), alias.as_deref(), false),
    }
}
