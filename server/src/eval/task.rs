//! Evaluation tasks in plain data: a document split at a cursor, the text
//! that was removed there, and how to check a completion.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weft_inference::Language;

/// A benchmark: how tasks are built and scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    /// HumanEval single-line infilling (Bavarian et al. 2022): 1,033 tasks.
    HumanevalSingle,
    /// HumanEval multi-line infilling (Bavarian et al. 2022): 5,815 tasks.
    HumanevalMulti,
    /// Repo-level cross-file line completion in real repositories.
    Repo,
}

impl Benchmark {
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::HumanevalSingle => "humaneval-single",
            Benchmark::HumanevalMulti => "humaneval-multi",
            Benchmark::Repo => "repo",
        }
    }

    /// Whether completions are scored by running tests (pass@1).
    pub fn runs_tests(self) -> bool {
        matches!(self, Benchmark::HumanevalSingle | Benchmark::HumanevalMulti)
    }
}

/// What context the prompt gets besides the cursor's surroundings: the
/// ablation of the repo-level benchmark. HumanEval problems are single files
/// and always run without.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ContextMode {
    /// No context engine: the prefix and suffix windows only.
    None,
    /// The context engine with cross-file sources off (definitions and
    /// scopes of the current file), as the editor runs it with
    /// `cross_file = false`.
    InFile,
    /// The context engine as the editor runs it: definitions from other
    /// files of the workspace, module outlines, scopes, similar windows.
    CrossFile,
}

impl ContextMode {
    pub fn name(self) -> &'static str {
        match self {
            ContextMode::None => "none",
            ContextMode::InFile => "in-file",
            ContextMode::CrossFile => "cross-file",
        }
    }
}

/// Where the cursor of a masked line sits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CursorPlacement {
    /// After the line's indentation, as an editor that auto-indents leaves
    /// it; the ground truth is the line without its indentation.
    #[default]
    Indented,
    /// At the start of the emptied line: the ground truth includes the
    /// indentation, as in Bavarian et al.'s prompts.
    LineStart,
}

/// How a completion is checked by running code: a HumanEval problem's tests.
#[derive(Debug)]
pub struct TestProgram {
    /// Appended after the completed document: defines `check`.
    pub test: String,
    pub entry_point: String,
}

impl TestProgram {
    /// The program that runs the tests on `prefix + completion + suffix`.
    pub fn program(&self, prefix: &str, completion: &str, suffix: &str) -> String {
        format!("{prefix}{completion}{suffix}\n\n{}\n\ncheck({})\n", self.test, self.entry_point)
    }
}

/// A real repository on disk, for the repo-level benchmark.
#[derive(Debug)]
pub struct Workspace {
    pub root: PathBuf,
}

/// One completion task.
#[derive(Clone, Debug)]
pub struct Task {
    /// Unique within its benchmark, e.g. `HumanEval/0/L3`.
    pub id: String,
    pub benchmark: Benchmark,
    pub language: Language,
    /// Workspace-relative path of the document, shown to the model.
    pub path: Option<String>,
    /// The document before the cursor.
    pub prefix: String,
    /// The document after the removed text.
    pub suffix: String,
    /// The removed text.
    pub ground_truth: String,
    pub multiline: bool,
    pub tests: Option<Arc<TestProgram>>,
    pub workspace: Option<Arc<Workspace>>,
}
