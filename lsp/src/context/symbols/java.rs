//! Java: classes, interfaces, enums, records, methods, constants, imports.

use tree_sitter::Node;

use super::{Extractor, ImportedName, Shape, SymbolKind};

pub(super) fn visit(ex: &mut Extractor<'_>, node: Node<'_>, outer: Node<'_>) {
    let name = |ex: &Extractor<'_>| ex.field(node, "name").unwrap_or("").to_owned();
    let shape = match node.kind() {
        "class_declaration" | "record_declaration" => {
            Shape::new(SymbolKind::Class, name(ex), outer).members(node.child_by_field_name("body"))
        }
        "interface_declaration" | "annotation_type_declaration" => {
            Shape::new(SymbolKind::Interface, name(ex), outer).members(node.child_by_field_name("body"))
        }
        "enum_declaration" => Shape::new(SymbolKind::Enum, name(ex), outer),
        "method_declaration" | "constructor_declaration" => {
            Shape::new(SymbolKind::Method, name(ex), outer).body(node.child_by_field_name("body"))
        }
        "field_declaration" | "constant_declaration" => {
            let modifiers = node.named_child(0).filter(|n| n.kind() == "modifiers").map_or("", |n| ex.text_of(n));
            let constant = node.kind() == "constant_declaration"
                || ex.parent_kind() == Some(SymbolKind::Interface)
                || (modifiers.contains("static") && modifiers.contains("final"));
            if !constant {
                return;
            }
            let declarator = node.child_by_field_name("declarator");
            let name = declarator.and_then(|d| ex.field(d, "name")).unwrap_or("");
            Shape::new(SymbolKind::Constant, name, outer)
        }
        "import_declaration" => {
            let mut cursor = node.walk();
            let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
            let path = children
                .iter()
                .find(|n| matches!(n.kind(), "scoped_identifier" | "identifier"))
                .map_or("", |n| ex.text_of(*n));
            if children.iter().any(|n| n.kind() == "asterisk") {
                ex.import(node, path, Vec::new(), None, true);
            } else if let Some((module, name)) = path.rsplit_once('.') {
                ex.import(node, module, vec![ImportedName { name: name.into(), alias: None }], None, false);
            }
            return;
        }
        _ => return,
    };
    ex.define(shape);
}
