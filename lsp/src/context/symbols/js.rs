//! JavaScript, TypeScript and TSX: functions, classes, interfaces, types,
//! enums, top-level constants, namespaces, ES imports.

use tree_sitter::Node;

use super::{Extractor, ImportedName, Shape, SymbolKind};

pub(super) fn visit(ex: &mut Extractor<'_>, node: Node<'_>, outer: Node<'_>) {
    let name = |ex: &Extractor<'_>| ex.field(node, "name").unwrap_or("").to_owned();
    let shape = match node.kind() {
        "export_statement" => {
            if let Some(declaration) = node.child_by_field_name("declaration") {
                visit(ex, declaration, outer);
            }
            return;
        }
        "ambient_declaration" | "expression_statement" => {
            let mut cursor = node.walk();
            let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
            for child in children {
                visit(ex, child, outer);
            }
            return;
        }
        "function_declaration" | "generator_function_declaration" | "function_signature" => {
            Shape::new(SymbolKind::Function, name(ex), outer).body(node.child_by_field_name("body"))
        }
        "class_declaration" | "abstract_class_declaration" => {
            Shape::new(SymbolKind::Class, name(ex), outer).members(node.child_by_field_name("body"))
        }
        "method_definition" | "method_signature" | "abstract_method_signature" => {
            Shape::new(SymbolKind::Method, name(ex), outer).body(node.child_by_field_name("body"))
        }
        "interface_declaration" => Shape::new(SymbolKind::Interface, name(ex), outer),
        "type_alias_declaration" => Shape::new(SymbolKind::TypeAlias, name(ex), outer),
        "enum_declaration" => Shape::new(SymbolKind::Enum, name(ex), outer),
        "internal_module" | "module" => {
            Shape::new(SymbolKind::Module, name(ex), outer).members(node.child_by_field_name("body"))
        }
        "lexical_declaration" if ex.text_of(node).starts_with("const") || outer.kind() == "export_statement" => {
            let mut cursor = node.walk();
            let declarators: Vec<Node<'_>> =
                node.named_children(&mut cursor).filter(|n| n.kind() == "variable_declarator").collect();
            let single = declarators.len() == 1;
            for declarator in declarators {
                let Some(name) = ex.field(declarator, "name") else { continue };
                let value = declarator.child_by_field_name("value");
                let function = value.filter(|v| {
                    matches!(v.kind(), "arrow_function" | "function_expression" | "function" | "generator_function")
                });
                let outer = if single { outer } else { declarator };
                let shape = match function {
                    Some(f) => Shape::new(SymbolKind::Function, name, outer)
                        .body(f.child_by_field_name("body").filter(|b| b.kind() == "statement_block")),
                    None => Shape::new(SymbolKind::Constant, name, outer),
                };
                ex.define(shape);
            }
            return;
        }
        "import_statement" => {
            import(ex, node);
            return;
        }
        _ => return,
    };
    ex.define(shape);
}

fn import(ex: &mut Extractor<'_>, node: Node<'_>) {
    let Some(source) = ex.field(node, "source") else { return };
    let module = source.trim_matches(|c| c == '"' || c == '\'' || c == '`');
    let mut names = Vec::new();
    let mut alias = None;
    let mut cursor = node.walk();
    let clause = node.named_children(&mut cursor).find(|n| n.kind() == "import_clause");
    if let Some(clause) = clause {
        let mut cursor = clause.walk();
        for part in clause.named_children(&mut cursor) {
            match part.kind() {
                // A default import: the module's default export, usually
                // defined under the same name.
                "identifier" => names.push(ImportedName { name: ex.text_of(part).into(), alias: None }),
                "namespace_import" => alias = part.named_child(0).map(|n| ex.text_of(n)),
                "named_imports" => {
                    let mut cursor = part.walk();
                    for specifier in part.named_children(&mut cursor).filter(|n| n.kind() == "import_specifier") {
                        let name = ex.field(specifier, "name").unwrap_or("");
                        let local = ex.field(specifier, "alias");
                        names.push(ImportedName { name: name.into(), alias: local.map(Into::into) });
                    }
                }
                _ => {}
            }
        }
    }
    ex.import(node, module, names, alias, false);
}
