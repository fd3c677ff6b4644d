//! Go: functions, methods, types, constants, imports.

use tree_sitter::Node;

use super::{Extractor, Shape, SymbolKind};

pub(super) fn visit(ex: &mut Extractor<'_>, node: Node<'_>, outer: Node<'_>) {
    let name = |ex: &Extractor<'_>| ex.field(node, "name").unwrap_or("").to_owned();
    match node.kind() {
        "function_declaration" => {
            ex.define(Shape::new(SymbolKind::Function, name(ex), outer).body(node.child_by_field_name("body")));
        }
        "method_declaration" => {
            ex.define(Shape::new(SymbolKind::Method, name(ex), outer).body(node.child_by_field_name("body")));
        }
        "type_declaration" | "const_declaration" => {
            let mut cursor = node.walk();
            let specs: Vec<Node<'_>> = node
                .named_children(&mut cursor)
                .filter(|n| matches!(n.kind(), "type_spec" | "type_alias" | "const_spec"))
                .collect();
            let single = specs.len() == 1;
            for spec in specs {
                let (outer, prefix) = match (single, spec.kind()) {
                    (true, _) => (outer, ""),
                    (false, "const_spec") => (spec, "const "),
                    (false, _) => (spec, "type "),
                };
                let kind = match spec.child_by_field_name("type").map(|t| t.kind()) {
                    _ if spec.kind() == "const_spec" => SymbolKind::Constant,
                    Some("struct_type") => SymbolKind::Struct,
                    Some("interface_type") => SymbolKind::Interface,
                    _ => SymbolKind::TypeAlias,
                };
                let mut cursor = spec.walk();
                let names: Vec<&str> =
                    spec.children_by_field_name("name", &mut cursor).map(|n| ex.text_of(n)).collect();
                for name in names.into_iter().filter(|n| *n != ",") {
                    ex.define(Shape::new(kind, name, outer).prefix(prefix));
                }
            }
        }
        "import_declaration" | "import_spec_list" => {
            let mut cursor = node.walk();
            let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
            for child in children {
                visit(ex, child, child);
            }
        }
        "import_spec" => {
            let path = ex.field(node, "path").unwrap_or("").trim_matches(|c| c == '"' || c == '`');
            let alias = ex.field(node, "name").filter(|n| *n != "_" && *n != ".");
            let wildcard = ex.field(node, "name") == Some(".");
            ex.import(node, path, Vec::new(), alias, wildcard);
        }
        _ => {}
    }
}
