//! What each step answers, as Rust types and as the JSON schema the model is
//! held to. The schemas use a small subset (object, array, string, integer,
//! boolean, `enum`, `required`, `additionalProperties: false`) that every
//! grammar converter and remote provider understands.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A step's outcome for the code under review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Approve,
    Revise,
    Reject,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Approve => "APPROVE",
            Verdict::Revise => "REVISE",
            Verdict::Reject => "REJECT",
        }
    }
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub description: String,
    /// Workspace files the step changes or reads.
    pub files: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlanStep>,
}

/// A whole file as a code or test step writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    pub path: String,
    pub content: String,
}

/// What a coder or tester answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeAnswer {
    pub files: Vec<FileContent>,
    #[serde(default)]
    pub summary: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// A problem as a reviewer reports it: one-based lines, as it saw them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct RawFinding {
    pub path: String,
    #[serde(deserialize_with = "lenient_line")]
    pub start_line: u32,
    #[serde(deserialize_with = "lenient_line")]
    pub end_line: u32,
    pub severity: Severity,
    pub message: String,
}

/// A reviewer's or judge's answer, as it gave it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct RawReview {
    pub verdict: Verdict,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub findings: Vec<RawFinding>,
}

/// A line number as a model wrote it: an integer (negative or zero become
/// 1), a float or a numeric string.
fn lenient_line<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let number = match &value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    number
        .map(|n| n.clamp(1.0, f64::from(u32::MAX)) as u32)
        .ok_or_else(|| serde::de::Error::custom(format!("a line number was expected, not {value}")))
}

/// A problem a reviewer found, checked against the file: zero-based lines,
/// `end_line` included, inside the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Relative to the workspace root.
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub severity: Severity,
    pub message: String,
    /// `reviewer`, `security`, `performance` or `maintainability`.
    pub source: String,
}

/// A review: the verdict and findings of one reviewer or judge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub verdict: Verdict,
    pub summary: String,
    pub findings: Vec<Finding>,
}

/// A review with the name of whoever gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgeReview {
    /// `reviewer`, `security`, `performance` or `maintainability`.
    pub judge: String,
    #[serde(flatten)]
    pub review: Review,
}

/// What the test analyzer concludes from a test run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestAnalysis {
    pub passed: bool,
    pub analysis: String,
}

/// A teaching-style explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub summary: String,
    #[serde(default)]
    pub walkthrough: Vec<String>,
    #[serde(default)]
    pub pitfalls: Vec<String>,
}

/// Bounds on what a step may write, from its token limit, so that a
/// grammar-constrained model closes its JSON before the limit cuts it
/// (a token is about three characters of text or code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Characters of a summary, a message or a plan step.
    pub short: usize,
    /// Items of a list (plan steps, findings, explanation points).
    pub items: usize,
    /// Characters of all the files of one answer together.
    pub content: usize,
}

impl Budget {
    pub fn for_tokens(max_tokens: u32) -> Budget {
        let tokens = max_tokens as usize;
        Budget { short: (tokens / 2).clamp(60, 240), items: (tokens / 100).clamp(1, 6), content: (tokens * 2).max(200) }
    }
}

/// A string, restricted to `choices` when there are any.
fn string_of(choices: &[String]) -> Value {
    if choices.is_empty() {
        json!({ "type": "string", "minLength": 1, "maxLength": 120 })
    } else {
        json!({ "type": "string", "enum": choices })
    }
}

fn text(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

/// A plan whose steps name files among `files`.
pub fn plan_schema(files: &[String], budget: Budget) -> Value {
    let step = object(
        json!({
            "description": { "type": "string", "minLength": 1, "maxLength": budget.short },
            "files": { "type": "array", "items": string_of(files), "minItems": 1, "maxItems": 3 }
        }),
        &["description", "files"],
    );
    object(
        json!({ "steps": { "type": "array", "items": step, "minItems": 1, "maxItems": budget.items.max(2) } }),
        &["steps"],
    )
}

/// Whole files with paths among `files` (at most two files, any paths,
/// when empty).
pub fn code_schema(files: &[String], budget: Budget) -> Value {
    let max_files = if files.is_empty() { 2 } else { files.len() };
    let file =
        object(json!({ "path": string_of(files), "content": text(budget.content / max_files) }), &["path", "content"]);
    object(
        json!({
            "summary": text(budget.short),
            "files": { "type": "array", "items": file, "minItems": 1, "maxItems": max_files }
        }),
        &["summary", "files"],
    )
}

/// A verdict with findings in `files`: APPROVE with any number of them,
/// REVISE or REJECT with at least one (a verdict against the code says
/// where the problem is).
pub fn review_schema(files: &[String], budget: Budget) -> Value {
    let finding = object(
        json!({
            "path": string_of(files),
            "start_line": { "type": "integer" },
            "end_line": { "type": "integer" },
            "severity": { "type": "string", "enum": ["error", "warning", "info"] },
            "message": { "type": "string", "minLength": 1, "maxLength": budget.short }
        }),
        &["path", "start_line", "end_line", "severity", "message"],
    );
    let review = |verdicts: Value, min_findings: usize| {
        object(
            json!({
                "verdict": { "type": "string", "enum": verdicts },
                "summary": text(budget.short),
                "findings": { "type": "array", "items": finding, "minItems": min_findings, "maxItems": budget.items }
            }),
            &["verdict", "summary", "findings"],
        )
    };
    json!({ "anyOf": [review(json!(["APPROVE"]), 0), review(json!(["REVISE", "REJECT"]), 1)] })
}

pub fn test_analysis_schema(budget: Budget) -> Value {
    object(json!({ "passed": { "type": "boolean" }, "analysis": text(budget.short) }), &["passed", "analysis"])
}

pub fn explanation_schema(budget: Budget) -> Value {
    let point = text(budget.short);
    object(
        json!({
            "summary": text(budget.short * 2),
            "walkthrough": { "type": "array", "items": point, "maxItems": budget.items },
            "pitfalls": { "type": "array", "items": point, "maxItems": (budget.items / 2).max(1) }
        }),
        &["summary", "walkthrough", "pitfalls"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Schema;

    /// Every step schema is in the subset the chat layer turns into a
    /// grammar (a keyword outside it would be refused at the first step).
    #[test]
    fn every_step_schema_parses_and_becomes_a_grammar() {
        let files = vec!["calc.py".to_owned(), "src/a b.py".to_owned()];
        for tokens in [64, 320, 4096] {
            let budget = Budget::for_tokens(tokens);
            let schemas = [
                plan_schema(&files, budget),
                plan_schema(&[], budget),
                code_schema(&files, budget),
                code_schema(&[], budget),
                review_schema(&files, budget),
                test_analysis_schema(budget),
                explanation_schema(budget),
            ];
            for schema in schemas {
                let parsed = Schema::parse(&schema).unwrap_or_else(|err| panic!("{err}: {schema}"));
                assert!(crate::chat::grammar::to_gbnf(&parsed).contains("root ::="));
            }
        }
        let review = json!({
            "verdict": "REVISE", "summary": "x",
            "findings": [{ "path": "calc.py", "start_line": 1, "end_line": 2, "severity": "info", "message": "m" }]
        });
        let schema = Schema::parse(&review_schema(&files, Budget::for_tokens(320))).unwrap();
        assert!(schema.validate(&review).is_ok());
        // A verdict against the code must say where.
        let bare = json!({ "verdict": "REJECT", "summary": "no", "findings": [] });
        assert!(schema.validate(&bare).is_err());
        assert!(schema.validate(&json!({ "verdict": "APPROVE", "summary": "ok", "findings": [] })).is_ok());
        let outside = json!({ "steps": [{ "description": "d", "files": ["../x.py"] }] });
        assert!(Schema::parse(&plan_schema(&files, Budget::for_tokens(320))).unwrap().validate(&outside).is_err());
    }
}
