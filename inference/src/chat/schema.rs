//! The JSON-schema subset agent steps use, parsed once into [`Schema`].
//!
//! Two consumers share it: [`super::grammar`] turns it into a GBNF grammar
//! that constrains a local model's sampling, and [`Schema::validate`] checks
//! the answers of remote providers. A keyword outside the subset is an error
//! naming the keyword and where it is, never silently ignored, so a grammar
//! can never be looser than the schema it came from.
//!
//! Supported: `type` (`object`, `array`, `string`, `integer`, `number`,
//! `boolean`, `null`, or a list of these), `properties`, `required`,
//! `additionalProperties: false`, `items`, `minItems`, `maxItems`,
//! `minLength`, `maxLength`, `enum`, `const`, `anyOf`, and the annotations
//! `title`, `description`, `default`, `examples`, `$schema`, `$id`, `$comment`.

use serde_json::{Map, Value};

/// A parsed schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Schema {
    String {
        min_length: usize,
        max_length: Option<usize>,
    },
    Integer,
    Number,
    Boolean,
    Null,
    /// One of these values exactly (`enum`, or `const` with one value).
    Enum(Vec<Value>),
    Array {
        items: Box<Schema>,
        min_items: usize,
        max_items: Option<usize>,
    },
    /// An object with these properties in this order. Other properties are
    /// allowed by the validator unless `closed`; the grammar never produces
    /// them.
    Object {
        properties: Vec<Property>,
        closed: bool,
    },
    AnyOf(Vec<Schema>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    pub name: String,
    pub schema: Schema,
    pub required: bool,
}

/// A schema outside the supported subset, or malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JSON schema at {path}: {message}")]
pub struct SchemaError {
    /// A JSON pointer to the offending schema, `#` for the root.
    pub path: String,
    pub message: String,
}

/// Where a value breaks its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// A JSON pointer into the value, `#` for the root.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

const ANNOTATIONS: &[&str] = &["title", "description", "default", "examples", "$schema", "$id", "$comment"];

impl Schema {
    pub fn parse(schema: &Value) -> Result<Schema, SchemaError> {
        parse_at(schema, "#")
    }

    /// Checks `value` against the schema; every violation found is listed.
    pub fn validate(&self, value: &Value) -> Result<(), Vec<Violation>> {
        let mut violations = Vec::new();
        check(self, value, "#", &mut violations);
        if violations.is_empty() { Ok(()) } else { Err(violations) }
    }
}

fn error(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError { path: path.to_owned(), message: message.into() }
}

fn parse_at(schema: &Value, path: &str) -> Result<Schema, SchemaError> {
    let Value::Object(map) = schema else {
        return Err(error(path, format!("a schema must be an object, not {}", kind_of(schema))));
    };
    for key in map.keys() {
        if !ANNOTATIONS.contains(&key.as_str()) && !SUPPORTED.contains(&key.as_str()) {
            return Err(error(path, format!("keyword `{key}` is not supported")));
        }
    }
    if let Some(values) = map.get("enum") {
        let Value::Array(values) = values else {
            return Err(error(path, "`enum` must be an array"));
        };
        if values.is_empty() {
            return Err(error(path, "`enum` must not be empty"));
        }
        return Ok(Schema::Enum(values.clone()));
    }
    if let Some(value) = map.get("const") {
        return Ok(Schema::Enum(vec![value.clone()]));
    }
    if let Some(options) = map.get("anyOf") {
        let Value::Array(options) = options else {
            return Err(error(path, "`anyOf` must be an array"));
        };
        if options.is_empty() {
            return Err(error(path, "`anyOf` must not be empty"));
        }
        let options = options
            .iter()
            .enumerate()
            .map(|(i, option)| parse_at(option, &format!("{path}/anyOf/{i}")))
            .collect::<Result<_, _>>()?;
        return Ok(Schema::AnyOf(options));
    }
    match map.get("type") {
        None => Err(error(path, "a schema needs `type`, `enum`, `const` or `anyOf`")),
        Some(Value::String(name)) => parse_typed(map, name, path),
        Some(Value::Array(names)) => {
            let options = names
                .iter()
                .map(|name| match name {
                    Value::String(name) => parse_typed(map, name, path),
                    other => Err(error(path, format!("`type` lists {other}, not a type name"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            match options.len() {
                0 => Err(error(path, "`type` must not be an empty list")),
                1 => Ok(options.into_iter().next().expect("one option")),
                _ => Ok(Schema::AnyOf(options)),
            }
        }
        Some(other) => Err(error(path, format!("`type` must be a string or a list, not {other}"))),
    }
}

const SUPPORTED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "const",
    "anyOf",
];

fn parse_typed(map: &Map<String, Value>, name: &str, path: &str) -> Result<Schema, SchemaError> {
    let count = |key: &str| -> Result<Option<usize>, SchemaError> {
        match map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| error(path, format!("`{key}` must be a non-negative integer"))),
        }
    };
    match name {
        "string" => {
            let min_length = count("minLength")?.unwrap_or(0);
            let max_length = count("maxLength")?;
            if max_length.is_some_and(|max| max < min_length) {
                return Err(error(path, "`maxLength` is below `minLength`"));
            }
            Ok(Schema::String { min_length, max_length })
        }
        "integer" => Ok(Schema::Integer),
        "number" => Ok(Schema::Number),
        "boolean" => Ok(Schema::Boolean),
        "null" => Ok(Schema::Null),
        "array" => {
            let Some(items) = map.get("items") else {
                return Err(error(path, "an array schema needs `items`"));
            };
            let items = parse_at(items, &format!("{path}/items"))?;
            let min_items = count("minItems")?.unwrap_or(0);
            let max_items = count("maxItems")?;
            if max_items.is_some_and(|max| max < min_items) {
                return Err(error(path, "`maxItems` is below `minItems`"));
            }
            Ok(Schema::Array { items: Box::new(items), min_items, max_items })
        }
        "object" => parse_object(map, path),
        other => Err(error(path, format!("type `{other}` is not supported"))),
    }
}

fn parse_object(map: &Map<String, Value>, path: &str) -> Result<Schema, SchemaError> {
    let required: Vec<&str> = match map.get("required") {
        None => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| name.as_str().ok_or_else(|| error(path, "`required` must list property names")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(error(path, "`required` must be an array")),
    };
    let closed = match map.get("additionalProperties") {
        None | Some(Value::Bool(true)) => false,
        Some(Value::Bool(false)) => true,
        Some(_) => return Err(error(path, "`additionalProperties` may only be true or false")),
    };
    let mut properties = Vec::new();
    match map.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            for (name, schema) in props {
                let schema = parse_at(schema, &format!("{path}/properties/{}", escape_pointer(name)))?;
                properties.push(Property { name: name.clone(), schema, required: required.contains(&name.as_str()) });
            }
        }
        Some(_) => return Err(error(path, "`properties` must be an object")),
    }
    if let Some(missing) = required.iter().find(|name| !properties.iter().any(|p| p.name == **name)) {
        return Err(error(path, format!("required property `{missing}` is not in `properties`")));
    }
    Ok(Schema::Object { properties, closed })
}

fn check(schema: &Schema, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let mut fail = |message: String| out.push(Violation { path: path.to_owned(), message });
    match schema {
        Schema::String { min_length, max_length } => match value {
            Value::String(s) => {
                let chars = s.chars().count();
                if chars < *min_length {
                    fail(format!("is {chars} characters long, at least {min_length} expected"));
                }
                if let Some(max) = max_length
                    && chars > *max
                {
                    fail(format!("is {chars} characters long, at most {max} expected"));
                }
            }
            _ => fail(format!("expected a string, found {}", kind_of(value))),
        },
        Schema::Integer => {
            if !(value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)) {
                fail(format!("expected an integer, found {}", kind_of(value)));
            }
        }
        Schema::Number => {
            if !value.is_number() {
                fail(format!("expected a number, found {}", kind_of(value)));
            }
        }
        Schema::Boolean => {
            if !value.is_boolean() {
                fail(format!("expected true or false, found {}", kind_of(value)));
            }
        }
        Schema::Null => {
            if !value.is_null() {
                fail(format!("expected null, found {}", kind_of(value)));
            }
        }
        Schema::Enum(values) => {
            if !values.contains(value) {
                let listed: Vec<String> = values.iter().map(Value::to_string).collect();
                fail(format!("expected one of {}, found {value}", listed.join(", ")));
            }
        }
        Schema::Array { items, min_items, max_items } => match value {
            Value::Array(elements) => {
                if elements.len() < *min_items {
                    fail(format!("has {} items, at least {min_items} expected", elements.len()));
                }
                if let Some(max) = max_items
                    && elements.len() > *max
                {
                    fail(format!("has {} items, at most {max} expected", elements.len()));
                }
                for (i, element) in elements.iter().enumerate() {
                    check(items, element, &format!("{path}/{i}"), out);
                }
            }
            _ => fail(format!("expected an array, found {}", kind_of(value))),
        },
        Schema::Object { properties, closed } => match value {
            Value::Object(map) => {
                for property in properties {
                    match map.get(&property.name) {
                        Some(v) => {
                            let at = format!("{path}/{}", escape_pointer(&property.name));
                            check(&property.schema, v, &at, out);
                        }
                        None if property.required => {
                            out.push(Violation {
                                path: path.to_owned(),
                                message: format!("missing required property `{}`", property.name),
                            });
                        }
                        None => {}
                    }
                }
                if *closed {
                    for key in map.keys().filter(|key| !properties.iter().any(|p| &p.name == *key)) {
                        out.push(Violation { path: path.to_owned(), message: format!("unexpected property `{key}`") });
                    }
                }
            }
            _ => fail(format!("expected an object, found {}", kind_of(value))),
        },
        Schema::AnyOf(options) => {
            let mut first = None;
            for option in options {
                let mut found = Vec::new();
                check(option, value, path, &mut found);
                if found.is_empty() {
                    return;
                }
                first.get_or_insert(found);
            }
            let reasons: Vec<String> = first.unwrap_or_default().iter().map(|v| v.message.clone()).collect();
            fail(format!("matches none of the {} alternatives (first: {})", options.len(), reasons.join("; ")));
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn review_schema() -> Schema {
        Schema::parse(&json!({
            "type": "object",
            "properties": {
                "verdict": {"enum": ["APPROVE", "REVISE", "REJECT"]},
                "findings": {
                    "type": "array",
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "properties": {
                            "line": {"type": "integer"},
                            "message": {"type": "string", "maxLength": 20},
                            "severity": {"type": ["string", "null"]}
                        },
                        "required": ["line", "message"],
                        "additionalProperties": false
                    }
                },
                "score": {"type": "number"},
                "done": {"type": "boolean"}
            },
            "required": ["verdict", "findings"]
        }))
        .unwrap()
    }

    fn violations(schema: &Schema, value: Value) -> Vec<String> {
        match schema.validate(&value) {
            Ok(()) => Vec::new(),
            Err(found) => found.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_valid_value_passes() {
        let schema = review_schema();
        let value = json!({
            "verdict": "REVISE",
            "findings": [{"line": 3, "message": "off by one", "severity": null}],
            "score": 0.5,
            "done": false,
            "extra": "allowed at the root"
        });
        assert_eq!(violations(&schema, value), Vec::<String>::new());
        assert_eq!(violations(&schema, json!({"verdict": "APPROVE", "findings": []})), Vec::<String>::new());
    }

    #[test]
    fn every_violation_is_listed_with_its_path() {
        let schema = review_schema();
        let value = json!({
            "verdict": "MAYBE",
            "findings": [
                {"line": 1.5, "message": "this message is far too long", "why": 1},
                {"message": 7, "severity": 3},
                {"line": 1, "message": ""},
                {"line": 2, "message": ""}
            ],
            "score": "high",
            "done": "yes"
        });
        expect_test::expect![[r##"
            [
                "#/done: expected true or false, found a string",
                "#/findings: has 4 items, at most 3 expected",
                "#/findings/0/line: expected an integer, found a number",
                "#/findings/0/message: is 28 characters long, at most 20 expected",
                "#/findings/0: unexpected property `why`",
                "#/findings/1: missing required property `line`",
                "#/findings/1/message: expected a string, found a number",
                "#/findings/1/severity: matches none of the 2 alternatives (first: expected a string, found a number)",
                "#/score: expected a number, found a string",
                "#/verdict: expected one of \"APPROVE\", \"REVISE\", \"REJECT\", found \"MAYBE\"",
            ]
        "##]]
        .assert_debug_eq(&violations(&schema, value));
        assert_eq!(violations(&schema, json!([1])), ["#: expected an object, found an array"]);
    }

    #[test]
    fn unsupported_keywords_are_named_with_their_place() {
        let err = |schema: Value| Schema::parse(&schema).unwrap_err().to_string();
        assert_eq!(
            err(json!({"type": "object", "properties": {"a/b": {"type": "string", "pattern": "x+"}}})),
            "unsupported JSON schema at #/properties/a~1b: keyword `pattern` is not supported"
        );
        assert_eq!(
            err(json!({"type": "array", "items": {"$ref": "#/defs/x"}})),
            "unsupported JSON schema at #/items: keyword `$ref` is not supported"
        );
        assert_eq!(err(json!({"type": "array"})), "unsupported JSON schema at #: an array schema needs `items`");
        assert_eq!(err(json!({"type": "date"})), "unsupported JSON schema at #: type `date` is not supported");
        assert_eq!(
            err(json!({"type": "object", "properties": {}, "required": ["x"]})),
            "unsupported JSON schema at #: required property `x` is not in `properties`"
        );
        assert_eq!(
            err(json!({"type": "object", "additionalProperties": {"type": "string"}})),
            "unsupported JSON schema at #: `additionalProperties` may only be true or false"
        );
        assert_eq!(err(json!(true)), "unsupported JSON schema at #: a schema must be an object, not a boolean");
        assert_eq!(
            err(json!({"description": "x"})),
            "unsupported JSON schema at #: a schema needs `type`, `enum`, `const` or `anyOf`"
        );
    }

    #[test]
    fn integers_written_as_whole_floats_are_integers() {
        let schema = Schema::parse(&json!({"type": "integer"})).unwrap();
        assert_eq!(violations(&schema, json!(3.0)), Vec::<String>::new());
        assert_eq!(violations(&schema, json!(-7)), Vec::<String>::new());
        assert_eq!(violations(&schema, json!(true)), ["#: expected an integer, found a boolean"]);
    }
}
