//! A [`Schema`] as a GBNF grammar, llama.cpp's grammar format, so that a
//! local model can only sample text that parses as JSON and satisfies it.
//!
//! The grammar produces compact JSON: at most one space after `{`, `[`, `:`
//! and `,` and before `}` and `]`, none before `:` and `,`, no newlines (a small model asked for JSON otherwise wanders into
//! endless indentation). Objects never get properties the schema does not
//! list; required properties come first, in schema order, then any subset of
//! the optional ones, in schema order. Number literals have at most 16
//! integer digits, 15 decimals and a 3-digit exponent, so generation cannot
//! run away inside a number. Strings are bounded only by `maxLength`: give
//! free-text fields one, or a `max_tokens` cut ends the answer before its
//! JSON is complete.

use std::collections::HashMap;

use super::schema::{Property, Schema};

/// The GBNF grammar of `schema`; its start rule is `root`.
pub fn to_gbnf(schema: &Schema) -> String {
    let mut builder = Builder::default();
    let expr = builder.visit(schema, "root");
    if expr != "root" {
        builder.rules.insert(0, ("root".to_owned(), expr));
    }
    let mut out = String::new();
    for (name, body) in builder.rules.iter().chain(&builder.primitives) {
        out.push_str(name);
        out.push_str(" ::= ");
        out.push_str(body);
        out.push('\n');
    }
    out
}

#[derive(Default)]
struct Builder {
    rules: Vec<(String, String)>,
    by_body: HashMap<String, String>,
    /// Shared rules (`string`, `char`, `ws`…), written last.
    primitives: Vec<(String, String)>,
}

const WS: &str = r#"" "?"#;
const CHAR: &str = r#"[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})"#;
const INTEGER: &str = r#""-"? ("0" | [1-9] [0-9]{0,15})"#;
const NUMBER: &str = r#"integer ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?"#;

impl Builder {
    /// A grammar expression for `schema`: a rule name or a literal.
    fn visit(&mut self, schema: &Schema, hint: &str) -> String {
        match schema {
            Schema::String { min_length: 0, max_length: None } => {
                self.primitive("char", CHAR);
                self.primitive("string", r#""\"" char* "\"""#)
            }
            Schema::String { min_length, max_length } => {
                self.primitive("char", CHAR);
                let repeat = match max_length {
                    Some(max) if max == min_length => format!("{{{min_length}}}"),
                    Some(max) => format!("{{{min_length},{max}}}"),
                    None => format!("{{{min_length},}}"),
                };
                self.rule(hint, format!(r#""\"" char{repeat} "\"""#))
            }
            Schema::Integer => self.primitive("integer", INTEGER),
            Schema::Number => {
                self.primitive("integer", INTEGER);
                self.primitive("number", NUMBER)
            }
            Schema::Boolean => self.primitive("boolean", r#""true" | "false""#),
            Schema::Null => r#""null""#.to_owned(),
            Schema::Enum(values) => {
                let alternatives: Vec<String> = values.iter().map(|v| literal(&v.to_string())).collect();
                if alternatives.len() == 1 {
                    alternatives.into_iter().next().expect("one value")
                } else {
                    self.rule(hint, alternatives.join(" | "))
                }
            }
            Schema::AnyOf(options) => {
                let alternatives: Vec<String> =
                    options.iter().enumerate().map(|(i, o)| self.visit(o, &format!("{hint}-{i}"))).collect();
                self.rule(hint, alternatives.join(" | "))
            }
            Schema::Array { items, min_items, max_items } => {
                self.primitive("ws", WS);
                let item = self.visit(items, &format!("{hint}-item"));
                let more = format!(r#""," ws {item}"#);
                let elements = match (*min_items, *max_items) {
                    (_, Some(0)) => String::new(),
                    (0, None) => format!("( {item} ( {more} )* )?"),
                    (0, Some(1)) => format!("{item}?"),
                    (0, Some(max)) => format!("( {item} ( {more} ){{0,{}}} )?", max - 1),
                    (1, None) => format!("{item} ( {more} )*"),
                    (min, None) => format!("{item} ( {more} ){{{},}}", min - 1),
                    (min, Some(max)) if min == max => format!("{item} ( {more} ){{{}}}", min - 1),
                    (min, Some(max)) => format!("{item} ( {more} ){{{},{}}}", min - 1, max - 1),
                };
                let body = if elements.is_empty() {
                    r#""[" ws "]""#.to_owned()
                } else {
                    format!(r#""[" ws {elements} ws "]""#)
                };
                self.rule(hint, body)
            }
            Schema::Object { properties, .. } => {
                self.primitive("ws", WS);
                let body = self.object_body(properties, hint);
                self.rule(hint, body)
            }
        }
    }

    fn object_body(&mut self, properties: &[Property], hint: &str) -> String {
        let mut required = Vec::new();
        let mut optional = Vec::new();
        for property in properties {
            let value = self.visit(&property.schema, &format!("{hint}-{}", rule_name(&property.name)));
            let pair =
                format!(r#"{} ":" ws {value}"#, literal(&serde_json::Value::from(property.name.as_str()).to_string()));
            if property.required { required.push(pair) } else { optional.push(pair) }
        }
        const SEP: &str = r#" "," ws "#;
        // Any subset of the optional pairs, in order: the first one present,
        // then each later one or not.
        let optional_tail = (!optional.is_empty()).then(|| {
            let chains: Vec<String> = (0..optional.len())
                .map(|first| {
                    let mut chain = optional[first].clone();
                    for later in &optional[first + 1..] {
                        chain.push_str(&format!(r#" ( "," ws {later} )?"#));
                    }
                    chain
                })
                .collect();
            if chains.len() == 1 { chains[0].clone() } else { format!("( {} )", chains.join(" | ")) }
        });
        let inner = match (required.is_empty(), optional_tail) {
            (true, None) => String::new(),
            (true, Some(tail)) => format!("( {tail} )? "),
            (false, None) => format!("{} ", required.join(SEP)),
            (false, Some(tail)) => format!(r#"{} ( "," ws {tail} )? "#, required.join(SEP)),
        };
        format!(r#""{{" ws {inner}ws "}}""#)
    }

    fn primitive(&mut self, name: &str, body: &str) -> String {
        if !self.primitives.iter().any(|(n, _)| n == name) {
            self.primitives.push((name.to_owned(), body.to_owned()));
        }
        name.to_owned()
    }

    /// Adds a rule (or reuses one with the same body) and returns its name.
    fn rule(&mut self, hint: &str, body: String) -> String {
        if let Some(name) = self.by_body.get(&body) {
            return name.clone();
        }
        let mut name = hint.to_owned();
        let mut n = 1;
        while self.rules.iter().any(|(existing, _)| *existing == name) {
            n += 1;
            name = format!("{hint}{n}");
        }
        self.by_body.insert(body.clone(), name.clone());
        self.rules.push((name.clone(), body));
        name
    }
}

/// A GBNF string literal matching `text` exactly.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A rule-name fragment: GBNF names are `[a-zA-Z0-9-]+`.
fn rule_name(text: &str) -> String {
    let name: String = text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    if name.is_empty() { "x".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use serde_json::json;

    use super::*;

    fn check(schema: serde_json::Value, expected: Expect) {
        expected.assert_eq(&to_gbnf(&Schema::parse(&schema).unwrap()));
    }

    #[test]
    fn an_object_with_required_properties() {
        check(
            json!({
                "type": "object",
                "properties": {
                    "a_verdict": {"enum": ["APPROVE", "REVISE", "REJECT"]},
                    "b_reason": {"type": "string", "maxLength": 80},
                    "c_done": {"type": "boolean"}
                },
                "required": ["a_verdict", "b_reason", "c_done"]
            }),
            expect![[r#"
                root-a-verdict ::= "\"APPROVE\"" | "\"REVISE\"" | "\"REJECT\""
                root-b-reason ::= "\"" char{0,80} "\""
                root ::= "{" ws "\"a_verdict\"" ":" ws root-a-verdict "," ws "\"b_reason\"" ":" ws root-b-reason "," ws "\"c_done\"" ":" ws boolean ws "}"
                ws ::= " "?
                char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
                boolean ::= "true" | "false"
            "#]],
        );
    }

    #[test]
    fn optional_properties_form_any_ordered_subset() {
        check(
            json!({
                "type": "object",
                "properties": {
                    "a": {"type": "integer"},
                    "b": {"type": "number"},
                    "c": {"type": "string"}
                },
                "required": ["a"]
            }),
            expect![[r#"
                root ::= "{" ws "\"a\"" ":" ws integer ( "," ws ( "\"b\"" ":" ws number ( "," ws "\"c\"" ":" ws string )? | "\"c\"" ":" ws string ) )? ws "}"
                ws ::= " "?
                integer ::= "-"? ("0" | [1-9] [0-9]{0,15})
                number ::= integer ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?
                char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
                string ::= "\"" char* "\""
            "#]],
        );
        check(
            json!({"type": "object", "properties": {"x": {"type": "null"}, "y": {"const": 1}}}),
            expect![[r#"
                root ::= "{" ws ( ( "\"x\"" ":" ws "null" ( "," ws "\"y\"" ":" ws "1" )? | "\"y\"" ":" ws "1" ) )? ws "}"
                ws ::= " "?
            "#]],
        );
        check(
            json!({"type": "object"}),
            expect![[r#"
                root ::= "{" ws ws "}"
                ws ::= " "?
            "#]],
        );
    }

    #[test]
    fn arrays_of_nested_objects_with_bounds() {
        check(
            json!({
                "type": "object",
                "properties": {
                    "steps": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 4,
                        "items": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "minLength": 1, "maxLength": 40},
                                "kind": {"type": ["string", "null"]},
                                "tags": {"type": "array", "items": {"type": "string", "maxLength": 40}}
                            },
                            "required": ["file", "kind", "tags"]
                        }
                    }
                },
                "required": ["steps"]
            }),
            expect![[r#"
                root-steps-item-file ::= "\"" char{1,40} "\""
                root-steps-item-kind ::= string | "null"
                root-steps-item-tags-item ::= "\"" char{0,40} "\""
                root-steps-item-tags ::= "[" ws ( root-steps-item-tags-item ( "," ws root-steps-item-tags-item )* )? ws "]"
                root-steps-item ::= "{" ws "\"file\"" ":" ws root-steps-item-file "," ws "\"kind\"" ":" ws root-steps-item-kind "," ws "\"tags\"" ":" ws root-steps-item-tags ws "}"
                root-steps ::= "[" ws root-steps-item ( "," ws root-steps-item ){0,3} ws "]"
                root ::= "{" ws "\"steps\"" ":" ws root-steps ws "}"
                ws ::= " "?
                char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
                string ::= "\"" char* "\""
            "#]],
        );
    }

    #[test]
    fn scalar_roots_and_escaped_literals() {
        check(
            json!({"enum": ["say \"hi\"", "a\\b", "line\nbreak", 2.5, null, true]}),
            expect![[r#"
                root ::= "\"say \\\"hi\\\"\"" | "\"a\\\\b\"" | "\"line\\nbreak\"" | "2.5" | "null" | "true"
            "#]],
        );
        check(
            json!({"type": "array", "items": {"type": "integer"}, "minItems": 2}),
            expect![[r#"
                root ::= "[" ws integer ( "," ws integer ){1,} ws "]"
                ws ::= " "?
                integer ::= "-"? ("0" | [1-9] [0-9]{0,15})
            "#]],
        );
    }
}
