//! Definitions rendered as prompt text: signatures with their doc comments,
//! bodies left out, inside the headers of their enclosing definitions.

use super::lang::Lang;
use super::symbols::{Definition, FileSymbols};

/// Renders definition `index` of `symbols`: the headers of the definitions
/// around it, its doc comment, and its signature or outline.
pub fn definition(symbols: &FileSymbols, index: u32, lang: Lang) -> String {
    let chain = symbols.ancestry(index);
    let (target, ancestors) = chain.split_last().expect("the chain holds the definition itself");
    let mut out = String::new();
    let mut closers = Vec::new();
    for &ancestor in ancestors {
        let def = &symbols.definitions[ancestor as usize];
        out.push_str(&def.indent);
        out.push_str(&def.signature);
        if lang.is_indented() {
            out.push('\n');
        } else {
            out.push_str(" {\n");
            closers.push(format!("{}}}", def.indent));
        }
    }
    let def = &symbols.definitions[*target as usize];
    if let Some(doc) = def.doc().filter(|_| !def.doc_inside) {
        out.push_str(&def.indent);
        out.push_str(doc);
        out.push('\n');
    }
    out.push_str(&def.indent);
    match def.outline() {
        Some(outline) => out.push_str(outline),
        None => {
            out.push_str(&def.signature);
            out.push_str(&placeholder(def, lang));
        }
    }
    for closer in closers.iter().rev() {
        out.push('\n');
        out.push_str(closer);
    }
    out
}

/// Renders definition `index` on its own: its signature, with the body
/// left out, and no doc comment; one line for most definitions.
pub fn compact(symbols: &FileSymbols, index: u32, lang: Lang) -> String {
    let def = &symbols.definitions[index as usize];
    let mut out = def.signature.to_string();
    if def.elided {
        out.push_str(if lang.is_indented() { " ..." } else { " { ... }" });
    } else if def.kind.is_container() && lang.is_indented() {
        out.push_str(" ...");
    }
    out
}

/// Renders the enclosing definitions at a cursor: each one's header, as in
/// [`definition`] but without closing anything, so the text reads as the
/// beginning of the file down to the cursor's scope.
pub fn scopes(symbols: &FileSymbols, chain: &[u32], lang: Lang) -> String {
    let mut out = String::new();
    for &index in chain {
        let def = &symbols.definitions[index as usize];
        if let Some(doc) = def.doc().filter(|_| !def.doc_inside) {
            out.push_str(&def.indent);
            out.push_str(doc);
            out.push('\n');
        }
        out.push_str(&def.indent);
        out.push_str(&def.signature);
        out.push_str(if lang.is_indented() { "\n" } else { " {\n" });
        if let Some(doc) = def.doc().filter(|_| def.doc_inside) {
            out.push_str(&def.indent);
            out.push_str("    ");
            out.push_str(doc);
            out.push('\n');
        }
    }
    let indent = chain.last().map_or(String::new(), |&i| format!("{}    ", symbols.definitions[i as usize].indent));
    out.push_str(&indent);
    out.push_str(if lang.is_indented() { "..." } else { "// ..." });
    out
}

/// What stands for a body that was left out.
fn placeholder(def: &Definition, lang: Lang) -> String {
    if !def.elided {
        return String::new();
    }
    if lang.is_indented() {
        let body = format!("{}    ", def.indent);
        match def.doc().filter(|_| def.doc_inside) {
            Some(doc) => format!("\n{body}{doc}\n{body}..."),
            None => format!("\n{body}..."),
        }
    } else {
        " { ... }".to_owned()
    }
}
