//! C and C++: functions and prototypes, structs, classes, enums, typedefs,
//! namespaces, macros, `#include`.

use tree_sitter::Node;

use super::{Extractor, Shape, SymbolKind, innermost_name};
use crate::context::lang::Lang;

pub(super) fn visit(ex: &mut Extractor<'_>, node: Node<'_>, outer: Node<'_>) {
    let name = |ex: &Extractor<'_>| ex.field(node, "name").unwrap_or("").to_owned();
    let method_or_function = |ex: &Extractor<'_>| {
        if ex.parent_kind() == Some(SymbolKind::Class) { SymbolKind::Method } else { SymbolKind::Function }
    };
    let shape = match node.kind() {
        "function_definition" => {
            let name = node.child_by_field_name("declarator").and_then(|d| innermost_name(ex, d)).unwrap_or("");
            Shape::new(method_or_function(ex), name, outer).body(node.child_by_field_name("body"))
        }
        "declaration" | "field_declaration" => {
            match node.child_by_field_name("declarator") {
                Some(declarator) if is_function(declarator) => {
                    let name = innermost_name(ex, declarator).unwrap_or("");
                    Shape::new(method_or_function(ex), name, outer)
                }
                Some(_) => return,
                // `struct point { ... };` declares only its type.
                None => {
                    if let Some(ty) = node.child_by_field_name("type") {
                        visit(ex, ty, outer);
                    }
                    return;
                }
            }
        }
        "struct_specifier" | "union_specifier" | "class_specifier" if node.child_by_field_name("body").is_some() => {
            if ex.lang == Lang::Cpp {
                Shape::new(SymbolKind::Class, name(ex), outer).members(node.child_by_field_name("body"))
            } else {
                Shape::new(SymbolKind::Struct, name(ex), outer)
            }
        }
        "enum_specifier" if node.child_by_field_name("body").is_some() => Shape::new(SymbolKind::Enum, name(ex), outer),
        "type_definition" => {
            let name = node.child_by_field_name("declarator").and_then(|d| innermost_name(ex, d)).unwrap_or("");
            Shape::new(SymbolKind::TypeAlias, name, outer)
        }
        "alias_declaration" => Shape::new(SymbolKind::TypeAlias, name(ex), outer),
        "preproc_def" => Shape::new(SymbolKind::Constant, name(ex), outer),
        "preproc_function_def" => Shape::new(SymbolKind::Macro, name(ex), outer),
        "namespace_definition" => match node.child_by_field_name("name") {
            Some(_) => Shape::new(SymbolKind::Module, name(ex), outer).members(node.child_by_field_name("body")),
            None => {
                if let Some(body) = node.child_by_field_name("body") {
                    ex.children(body);
                }
                return;
            }
        },
        "template_declaration" => {
            let mut cursor = node.walk();
            let inner: Vec<Node<'_>> =
                node.named_children(&mut cursor).filter(|n| n.kind() != "template_parameter_list").collect();
            for child in inner {
                visit(ex, child, outer);
            }
            return;
        }
        "linkage_specification" => {
            if let Some(body) = node.child_by_field_name("body") {
                match body.kind() {
                    "declaration_list" => ex.children(body),
                    _ => visit(ex, body, outer),
                }
            }
            return;
        }
        "preproc_ifdef" | "preproc_if" | "preproc_else" | "preproc_elif" | "preproc_elifdef" | "declaration_list" => {
            ex.children(node);
            return;
        }
        "preproc_include" => {
            let path = ex.field(node, "path").unwrap_or("");
            let path = path.trim_matches(|c| matches!(c, '"' | '<' | '>'));
            ex.import(node, path, Vec::new(), None, true);
            return;
        }
        _ => return,
    };
    ex.define(shape);
}

/// Whether a declarator declares a function (possibly returning a pointer).
fn is_function(declarator: Node<'_>) -> bool {
    let mut node = declarator;
    for _ in 0..6 {
        match node.kind() {
            "function_declarator" => return true,
            "pointer_declarator" | "reference_declarator" | "parenthesized_declarator" => {
                match node.child_by_field_name("declarator").or_else(|| node.named_child(0)) {
                    Some(inner) => node = inner,
                    None => return false,
                }
            }
            _ => return false,
        }
    }
    false
}
