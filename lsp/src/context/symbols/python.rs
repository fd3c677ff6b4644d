//! Python: functions, classes and their methods, module constants, imports.

use tree_sitter::Node;

use super::{Extractor, ImportedName, Shape, SymbolKind};

pub(super) fn visit(ex: &mut Extractor<'_>, node: Node<'_>, outer: Node<'_>) {
    let name = |ex: &Extractor<'_>| ex.field(node, "name").unwrap_or("").to_owned();
    let shape = match node.kind() {
        "function_definition" => {
            let kind =
                if ex.parent_kind() == Some(SymbolKind::Class) { SymbolKind::Method } else { SymbolKind::Function };
            Shape::new(kind, name(ex), outer).body(node.child_by_field_name("body"))
        }
        "class_definition" => Shape::new(SymbolKind::Class, name(ex), outer).members(node.child_by_field_name("body")),
        "decorated_definition" => {
            if let Some(definition) = node.child_by_field_name("definition") {
                visit(ex, definition, outer);
            }
            return;
        }
        "type_alias_statement" => {
            let left = node.child_by_field_name("left").map_or("", |n| ex.text_of(n));
            let name = left.split('[').next().unwrap_or("").trim();
            Shape::new(SymbolKind::TypeAlias, name, outer)
        }
        "expression_statement" if ex.parent_kind().is_none() => {
            let Some(assignment) = node.named_child(0).filter(|n| n.kind() == "assignment") else { return };
            let Some(left) = assignment.child_by_field_name("left").filter(|n| n.kind() == "identifier") else {
                return;
            };
            let name = ex.text_of(left);
            let constant = name.chars().any(|c| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !constant {
                return;
            }
            Shape::new(SymbolKind::Constant, name, outer)
        }
        "import_statement" => {
            let mut cursor = node.walk();
            let modules: Vec<Node<'_>> = node.children_by_field_name("name", &mut cursor).collect();
            for module in modules {
                match module.kind() {
                    "aliased_import" => {
                        let name = ex.field(module, "name").unwrap_or("");
                        let alias = ex.field(module, "alias");
                        ex.import(node, name, Vec::new(), alias, false);
                    }
                    _ => ex.import(node, ex.text_of(module), Vec::new(), None, false),
                }
            }
            return;
        }
        "import_from_statement" => {
            let module = ex.field(node, "module_name").unwrap_or("");
            let mut cursor = node.walk();
            let names = node
                .children_by_field_name("name", &mut cursor)
                .map(|n| match n.kind() {
                    "aliased_import" => ImportedName {
                        name: ex.field(n, "name").unwrap_or("").into(),
                        alias: ex.field(n, "alias").map(Into::into),
                    },
                    _ => ImportedName { name: ex.text_of(n).into(), alias: None },
                })
                .collect();
            let mut cursor = node.walk();
            let wildcard = node.named_children(&mut cursor).any(|n| n.kind() == "wildcard_import");
            ex.import(node, module, names, None, wildcard);
            return;
        }
        _ => return,
    };
    ex.define(shape);
}

/// The docstring of a function or class body: its first statement, when
/// that is a string.
pub(super) fn docstring(ex: &Extractor<'_>, body: Option<Node<'_>>) -> Option<String> {
    let first = body?.named_child(0).filter(|n| n.kind() == "expression_statement")?;
    let string = first.named_child(0).filter(|n| n.kind() == "string")?;
    let text = ex.text_of(string);
    let (kept, clipped) = super::clip(text, super::MAX_DOC_LINES, super::MAX_DOC_BYTES);
    if !clipped {
        return Some(kept.to_owned());
    }
    // Close the string that was cut, with the quotes that opened it.
    let quotes = text.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let quote = if quotes.starts_with("\"\"\"") || quotes.starts_with("'''") {
        &quotes[..3]
    } else {
        quotes.get(..1).unwrap_or("\"")
    };
    Some(format!("{} …{quote}", kept.trim_end()))
}
