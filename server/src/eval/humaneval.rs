//! HumanEval infilling tasks, built as Bavarian et al. (2022, "Efficient
//! Training of Language Models to Fill in the Middle") built them from the
//! 164 HumanEval problems.
//!
//! * Single-line: every non-empty line of a canonical solution is removed in
//!   turn; 1,033 tasks.
//! * Multi-line: every run of consecutive lines from one non-empty line to a
//!   later (or the same) non-empty line is removed in turn; with `n`
//!   non-empty lines a problem gives `n (n + 1) / 2` tasks, 5,815 in all.
//!   These are the published counts (the FIM paper's Table 2, and the
//!   `humaneval_infilling` data that SantaCoder and StarCoder report on).
//!
//! The prefix is the prompt and the solution lines before the hole, the
//! suffix the line break after it and the lines after. The cursor sits after
//! the first removed line's indentation, where an editor that auto-indents
//! leaves it ([`CursorPlacement::Indented`]), or at the start of the line as
//! in the paper's prompts ([`CursorPlacement::LineStart`]); exact match
//! ignores surrounding whitespace, so it is the same metric either way.
//! Prefix + ground truth + suffix is always the prompt plus the canonical
//! solution, so running the tests on the ground truth passes (the
//! `--oracle` check).

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;
use weft_inference::Language;

use super::task::{Benchmark, CursorPlacement, Task, TestProgram};

/// One line of `HumanEval.jsonl`.
#[derive(Clone, Debug, Deserialize)]
pub struct Problem {
    pub task_id: String,
    pub prompt: String,
    pub canonical_solution: String,
    pub test: String,
    pub entry_point: String,
}

/// Reads `HumanEval.jsonl.gz` (or an uncompressed `.jsonl`).
pub fn load(path: &Path) -> anyhow::Result<Vec<Problem>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!("cannot read {} (run models/fetch-test-assets.sh, or pass --humaneval)", path.display())
    })?;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .with_context(|| format!("cannot decompress {}", path.display()))?;
        text
    } else {
        String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{}: line {} is not a problem", path.display(), i + 1))
        })
        .collect()
}

/// The tasks of `benchmark` (one of the HumanEval ones) for `problems`.
pub fn tasks(problems: &[Problem], benchmark: Benchmark, cursor: CursorPlacement) -> Vec<Task> {
    let mut out = Vec::new();
    for problem in problems {
        let tests = Arc::new(TestProgram { test: problem.test.clone(), entry_point: problem.entry_point.clone() });
        let lines: Vec<&str> = problem.canonical_solution.split('\n').collect();
        let non_empty: Vec<usize> = (0..lines.len()).filter(|&i| !lines[i].trim().is_empty()).collect();
        let spans: Vec<(usize, usize)> = match benchmark {
            Benchmark::HumanevalSingle => non_empty.iter().map(|&i| (i, i)).collect(),
            Benchmark::HumanevalMulti => non_empty
                .iter()
                .enumerate()
                .flat_map(|(a, &first)| non_empty[a..].iter().map(move |&last| (first, last)))
                .collect(),
            Benchmark::Repo => Vec::new(),
        };
        for (first, last) in spans {
            let mut prefix = problem.prompt.clone();
            for line in &lines[..first] {
                prefix.push_str(line);
                prefix.push('\n');
            }
            let mut ground_truth = lines[first..=last].join("\n");
            if cursor == CursorPlacement::Indented {
                let indent = ground_truth.len() - ground_truth.trim_start_matches([' ', '\t']).len();
                prefix.push_str(&ground_truth[..indent]);
                ground_truth.drain(..indent);
            }
            let suffix = format!("\n{}", lines[last + 1..].join("\n"));
            let id = if first == last {
                format!("{}/L{}", problem.task_id, first + 1)
            } else {
                format!("{}/L{}-L{}", problem.task_id, first + 1, last + 1)
            };
            out.push(Task {
                id,
                benchmark,
                language: Language::Python,
                path: None,
                prefix,
                suffix,
                ground_truth,
                multiline: benchmark == Benchmark::HumanevalMulti,
                tests: Some(tests.clone()),
                workspace: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn fixture() -> Vec<Problem> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/eval/humaneval-two.jsonl");
        load(&path).unwrap()
    }

    fn show(tasks: &[Task]) -> String {
        let mut out = String::new();
        for task in tasks {
            let before = task.prefix.rsplit('\n').next().unwrap_or("");
            let after = task.suffix.split('\n').nth(1).unwrap_or("");
            out.push_str(&format!("{} {before:?} [{:?}] next {after:?}\n", task.id, task.ground_truth));
        }
        out
    }

    #[test]
    fn every_non_empty_line_is_one_single_line_task() {
        let problems = fixture();
        let tasks = tasks(&problems, Benchmark::HumanevalSingle, CursorPlacement::LineStart);
        for task in &tasks {
            let problem = problems.iter().find(|p| task.id.starts_with(&format!("{}/", p.task_id))).unwrap();
            let whole = format!("{}{}{}", task.prefix, task.ground_truth, task.suffix);
            assert_eq!(whole, format!("{}{}", problem.prompt, problem.canonical_solution), "{}", task.id);
        }
        expect![[r#"
            Fixture/0/L1 "" ["    total = 0"] next "    for x in xs:"
            Fixture/0/L2 "" ["    for x in xs:"] next "        total += x"
            Fixture/0/L3 "" ["        total += x"] next ""
            Fixture/0/L5 "" ["    return total"] next ""
            Fixture/1/L1 "" ["    return s[::-1]"] next ""
        "#]]
        .assert_eq(&show(&tasks));
    }

    #[test]
    fn multi_line_tasks_span_from_one_non_empty_line_to_another() {
        let problems = fixture();
        let tasks = tasks(&problems, Benchmark::HumanevalMulti, CursorPlacement::LineStart);
        // Four non-empty lines give 4 * 5 / 2 spans, one gives one.
        assert_eq!(tasks.len(), 11);
        expect![[r#"
            Fixture/0/L1 "" ["    total = 0"] next "    for x in xs:"
            Fixture/0/L1-L2 "" ["    total = 0\n    for x in xs:"] next "        total += x"
            Fixture/0/L1-L3 "" ["    total = 0\n    for x in xs:\n        total += x"] next ""
            Fixture/0/L1-L5 "" ["    total = 0\n    for x in xs:\n        total += x\n\n    return total"] next ""
            Fixture/0/L2 "" ["    for x in xs:"] next "        total += x"
            Fixture/0/L2-L3 "" ["    for x in xs:\n        total += x"] next ""
            Fixture/0/L2-L5 "" ["    for x in xs:\n        total += x\n\n    return total"] next ""
            Fixture/0/L3 "" ["        total += x"] next ""
            Fixture/0/L3-L5 "" ["        total += x\n\n    return total"] next ""
            Fixture/0/L5 "" ["    return total"] next ""
            Fixture/1/L1 "" ["    return s[::-1]"] next ""
        "#]]
        .assert_eq(&show(&tasks));
        assert!(tasks.iter().all(|t| t.multiline));
    }

    #[test]
    fn an_indented_cursor_leaves_the_indentation_in_the_prefix() {
        let tasks = tasks(&fixture(), Benchmark::HumanevalSingle, CursorPlacement::Indented);
        expect![[r#"
            Fixture/0/L1 "    " ["total = 0"] next "    for x in xs:"
            Fixture/0/L2 "    " ["for x in xs:"] next "        total += x"
            Fixture/0/L3 "        " ["total += x"] next ""
            Fixture/0/L5 "    " ["return total"] next ""
            Fixture/1/L1 "    " ["return s[::-1]"] next ""
        "#]]
        .assert_eq(&show(&tasks));
    }

    #[test]
    fn a_malformed_line_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "{\"task_id\": 1}\n").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("bad.jsonl: line 1 is not a problem"), "{err}");
    }
}
