//! Reading model output that is almost what was asked for.
//!
//! A grammar-constrained local model answers valid JSON, unless it ran out of
//! tokens mid-answer; a remote model may wrap its JSON in prose or a code
//! fence, and code inside a JSON string may itself sit in a fence. These
//! functions recover the intended value or say clearly why they cannot.

use serde_json::Value;

/// A fenced code block: the info string's first word and the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeBlock {
    pub language: String,
    pub code: String,
}

/// Every fenced block (``` or ~~~, three or more, possibly indented) in
/// `text`, in order. A block left open at the end runs to the end.
pub fn extract_code_blocks(text: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<(char, usize, String, Vec<&str>)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let fence_len = fence_char.map_or(0, |c| trimmed.chars().take_while(|x| *x == c).count());
        let closes = match &open {
            Some((c, len, _, _)) => {
                fence_char == Some(*c) && fence_len >= *len && trimmed[fence_len..].trim().is_empty()
            }
            None => false,
        };
        if closes {
            let (_, _, language, lines) = open.take().expect("an open block");
            blocks.push(CodeBlock { language, code: lines.concat() });
        } else if let Some((_, _, _, lines)) = &mut open {
            lines.push(line);
        } else if let (Some(c), true) = (fence_char, fence_len >= 3) {
            let info = trimmed[fence_len..].trim();
            let language = info.split_whitespace().next().unwrap_or("").to_owned();
            open = Some((c, fence_len, language, Vec::new()));
        }
    }
    if let Some((_, _, language, lines)) = open {
        blocks.push(CodeBlock { language, code: lines.concat() });
    }
    blocks
}

/// File content as a model wrote it: the code of a single fenced block when
/// it wrapped the content in one, else the text itself.
pub fn strip_fences(content: &str) -> String {
    let trimmed = content.trim();
    if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
        let blocks = extract_code_blocks(trimmed);
        if blocks.len() == 1 {
            return blocks.into_iter().next().expect("one block").code;
        }
    }
    content.to_owned()
}

/// The JSON value in a model's answer: the answer itself, the first fenced
/// block, the first value embedded in prose, or a value cut short by the
/// token limit with its open strings, arrays and objects closed.
pub fn parse_json_lenient(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    for block in extract_code_blocks(text) {
        if let Ok(value) = serde_json::from_str(block.code.trim()) {
            return Ok(value);
        }
    }
    let Some(start) = text.find(['{', '[']) else {
        return Err(format!("no JSON in the answer: {}", preview(text)));
    };
    let embedded = &text[start..];
    let mut stream = serde_json::Deserializer::from_str(embedded).into_iter::<Value>();
    if let Some(Ok(value)) = stream.next() {
        return Ok(value);
    }
    let repaired = close_truncated(embedded);
    serde_json::from_str(&repaired).map_err(|err| format!("the answer is not valid JSON ({err}): {}", preview(text)))
}

/// Closes what a truncated JSON text left open.
fn close_truncated(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        out.push(c);
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            '}' | ']' => {
                stack.pop();
            }
            _ => {}
        }
    }
    if in_string {
        if escaped {
            out.pop();
        }
        out.push('"');
    }
    loop {
        let trimmed = out.trim_end();
        if let Some(rest) = trimmed.strip_suffix(',') {
            out = rest.to_owned();
        } else if trimmed.ends_with(':') {
            out = format!("{trimmed} null");
        } else {
            break;
        }
    }
    // A key without its value (`{"a": 1, "b"`) gets one.
    if stack.last() == Some(&'}') && dangling_key(&out) {
        out.push_str(": null");
    }
    while let Some(close) = stack.pop() {
        out.push(close);
    }
    out
}

/// Whether the text ends with a string that is an object key awaiting its
/// colon: the character before that string is `{` or `,`.
fn dangling_key(text: &str) -> bool {
    let trimmed = text.trim_end();
    if !trimmed.ends_with('"') {
        return false;
    }
    let body = &trimmed[..trimmed.len() - 1];
    let mut start = None;
    let bytes = body.as_bytes();
    for i in (0..bytes.len()).rev() {
        if bytes[i] == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
            start = Some(i);
            break;
        }
    }
    start.is_some_and(|i| matches!(body[..i].trim_end().chars().last(), Some('{' | ',')))
}

fn preview(text: &str) -> String {
    let head: String = text.chars().take(120).collect();
    if head.len() < text.len() { format!("{head}…") } else { head }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_in_prose_fences_and_cut_short() {
        assert_eq!(parse_json_lenient(r#"{"a": 1}"#).unwrap(), json!({ "a": 1 }));
        assert_eq!(parse_json_lenient("Sure!\n```json\n{\"a\": [1, 2]}\n```\nDone.").unwrap(), json!({ "a": [1, 2] }));
        assert_eq!(parse_json_lenient("Here: {\"a\": true} and more {").unwrap(), json!({ "a": true }));
        assert_eq!(
            parse_json_lenient(r#"{"steps": [{"description": "add a fun"#).unwrap(),
            json!({ "steps": [{ "description": "add a fun" }] })
        );
        assert_eq!(parse_json_lenient(r#"{"a": "x\"#).unwrap(), json!({ "a": "x" }));
        assert_eq!(parse_json_lenient(r#"{"a": 1, "b":"#).unwrap(), json!({ "a": 1, "b": null }));
        assert_eq!(parse_json_lenient(r#"{"a": 1, "b""#).unwrap(), json!({ "a": 1, "b": null }));
        assert_eq!(parse_json_lenient(r#"{"a": [1, 2,"#).unwrap(), json!({ "a": [1, 2] }));
        let err = parse_json_lenient("no json here").unwrap_err();
        assert!(err.starts_with("no JSON in the answer"), "{err}");
    }

    #[test]
    fn code_blocks_with_info_strings_tildes_and_an_open_end() {
        let text =
            "Intro\n```python title=\"a.py\"\nx = 1\n```\ntext\n  ~~~~\n```not a fence\n  ~~~~\n```rust\nfn f() {}\n";
        let blocks = extract_code_blocks(text);
        assert_eq!(
            blocks,
            vec![
                CodeBlock { language: "python".into(), code: "x = 1\n".into() },
                CodeBlock { language: "".into(), code: "```not a fence\n".into() },
                CodeBlock { language: "rust".into(), code: "fn f() {}\n".into() },
            ]
        );
        assert_eq!(strip_fences("```py\ndef f():\n    pass\n```"), "def f():\n    pass\n");
        assert_eq!(strip_fences("def f(): pass\n"), "def f(): pass\n");
    }
}
