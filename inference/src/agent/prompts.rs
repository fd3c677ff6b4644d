//! What each role is told. Prompts are short: a small local model reads them
//! on a CPU, and the schema carries the format.

use std::fmt::Write as _;

use super::AgentRole;

pub(crate) fn system(role: AgentRole) -> &'static str {
    match role {
        AgentRole::Planner => {
            "You are a software planner. Break the task into a few concrete steps. \
             Each step says what to change and names the files it touches. Answer in JSON."
        }
        AgentRole::Coder => {
            "You are a careful programmer. Write the complete new content of each file you change. \
             Answer in JSON with the files and a one-line summary."
        }
        AgentRole::Tester => {
            "You write unit tests. Write one test file for the given code, with its path. \
             Answer in JSON with the files and a one-line summary."
        }
        AgentRole::TestAnalyzer => {
            "You read test output. Say whether the tests passed and, if not, what in the code is wrong. \
             Answer in JSON."
        }
        AgentRole::Reviewer => {
            "You review code changes. Verdict APPROVE if the change is correct, REVISE if it needs fixes, \
             REJECT if it is wrong. List findings with file, line numbers as shown, severity and message. \
             Answer in JSON."
        }
        AgentRole::SecurityJudge => {
            "You judge code for security: injection, unsafe input handling, secrets, unsafe file or process use. \
             Verdict APPROVE, REVISE or REJECT, with findings (file, line numbers as shown). Answer in JSON."
        }
        AgentRole::PerformanceJudge => {
            "You judge code for performance: needless work, bad complexity, blocking calls, allocations in loops. \
             Verdict APPROVE, REVISE or REJECT, with findings (file, line numbers as shown). Answer in JSON."
        }
        AgentRole::MaintainabilityJudge => {
            "You judge code for maintainability: naming, structure, duplication, error handling, tests. \
             Verdict APPROVE, REVISE or REJECT, with findings (file, line numbers as shown). Answer in JSON."
        }
        AgentRole::Explainer => {
            "You are a patient teacher. Explain what the code does, step by step, for a developer new to it, \
             and name pitfalls. Answer in JSON."
        }
    }
}

/// A file's text with one-based line numbers from `first_line` (one-based).
pub(crate) fn numbered(text: &str, first_line: u32) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.lines().enumerate() {
        let _ = writeln!(out, "{:>4}| {line}", first_line as usize + i);
    }
    out
}

/// `text` cut to at most `max` bytes at a line boundary, with a note.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(end, |i| i + 1);
    format!("{}… ({} more bytes not shown)\n", &text[..end], text.len() - end)
}

/// A file for a prompt: its path and its text in a fence.
pub(crate) fn file_block(path: &str, text: &str) -> String {
    format!("File {path}:\n```\n{text}```\n")
}
